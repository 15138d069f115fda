"""URL scheme -> backend factory. Backends register their scheme when their module loads.

The built-in schemes' modules are imported on first use only, so opening a local repository
never loads boto3. A plugin registers its own scheme with :func:`register_scheme`. A scheme
registered with the options its backend knows (name -> validator, see
:mod:`strongroom.storage.options`) gets only those, checked: an unknown key or a bad value is a
ConfigError naming the option (exit 2), never a failure deep inside the backend.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from typing import Any

from strongroom.errors import ConfigError
from strongroom.storage.base import Backend
from strongroom.storage.options import Validator, check_options

Factory = Callable[[str, dict[str, Any]], Backend]

# Scheme -> module that registers it. A URL without a scheme is a local path.
BUILTIN_SCHEMES = {"file": "strongroom.storage.local", "s3": "strongroom.storage.s3_scheme"}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_factories: dict[str, Factory] = {}
_known_options: dict[str, Mapping[str, Validator]] = {}


def register_scheme(scheme: str, factory: Factory,
                    options: Mapping[str, Validator] | None = None) -> None:
    """Open ``scheme://...`` URLs with ``factory(url, options)``; ``options``: the keys the
    backend knows and their validators (None: the factory checks its options itself)."""
    _factories[scheme.lower()] = factory
    if options is None:
        _known_options.pop(scheme.lower(), None)
    else:
        _known_options[scheme.lower()] = dict(options)


def known_options(scheme: str) -> list[str]:
    """The option keys a registered scheme declared (empty if it declared none)."""
    return sorted(_known_options.get(scheme.lower(), {}))


def scheme_of(url: str) -> str:
    """The URL's scheme, ``file`` for a plain path."""
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else "file"


def schemes() -> list[str]:
    """Every scheme a backend is known for (built-in or registered)."""
    return sorted({*BUILTIN_SCHEMES, *_factories})


def open_backend(url: str, options: dict[str, Any] | None = None) -> Backend:
    """A backend for ``url``: a filesystem path, ``file://`` URL or ``s3://bucket/prefix``."""
    scheme = scheme_of(url)
    if scheme not in _factories and scheme in BUILTIN_SCHEMES:
        importlib.import_module(BUILTIN_SCHEMES[scheme])  # registers the scheme
    factory = _factories.get(scheme)
    if factory is None:
        raise ConfigError(f"unknown storage scheme {scheme}:// in {url!r} (known: "
                          f"{', '.join(s + '://' for s in schemes())})")
    known = _known_options.get(scheme)
    opts = dict(options or {})
    if known is not None:
        opts = check_options(scheme, known, opts)
    return factory(url, opts)

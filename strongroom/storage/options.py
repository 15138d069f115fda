"""Backend options (``-o key=value``): each backend declares the keys it knows and how to read
their values; :func:`check_options` refuses unknown keys and bad values with a ConfigError
(exit 2) that names the option, before any backend is built.

A validator takes the raw value (text from a command line, or a native value from a block or
a stored setting) and returns the value the backend gets, or raises ValueError saying why.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from strongroom.errors import ConfigError

Validator = Callable[[Any], Any]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")
# botocore's own check of a region name (it raises InvalidRegionError on anything else)
_REGION = re.compile(r"^(?![0-9]+$)(?!-)[a-zA-Z0-9-]{1,63}(?<!-)$")
# Options whose values are never repeated in a message.
SECRET_KEYS = frozenset({"secret_access_key", "session_token", "password"})


def text(value: Any) -> str:
    """Any non-empty text."""
    out = str(value).strip()
    if not out:
        raise ValueError("is empty")
    return out


def whole_number(low: int, high: int) -> Validator:
    """A whole number between ``low`` and ``high``."""

    def check(value: Any) -> int:
        try:
            number = int(str(value).strip())
        except ValueError:
            raise ValueError("is not a whole number") from None
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}")
        return number

    return check


def seconds(low: float, high: float) -> Validator:
    """A number of seconds between ``low`` (excluded) and ``high``."""

    def check(value: Any) -> float:
        try:
            number = float(str(value).strip())
        except ValueError:
            raise ValueError("is not a number of seconds") from None
        if not low < number <= high:
            raise ValueError(f"must be more than {low:g} and at most {high:g} seconds")
        return number

    return check


def boolean(value: Any) -> bool:
    """true/false, yes/no, on/off, 1/0."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError("is not true or false")


def choice(*allowed: str) -> Validator:
    """One of ``allowed`` (any case); returned upper-cased as S3 spells them."""

    def check(value: Any) -> str:
        word = str(value).strip().upper()
        if word not in allowed:
            raise ValueError(f"must be {', '.join(allowed[:-1])} or {allowed[-1]}")
        return word

    return check


def lower_choice(*allowed: str) -> Validator:
    """One of ``allowed``, lower-case words."""

    def check(value: Any) -> str:
        word = str(value).strip().lower()
        if word not in allowed:
            raise ValueError(f"must be {', '.join(allowed[:-1])} or {allowed[-1]}")
        return word

    return check


def http_url(value: Any) -> str:
    """An http:// or https:// URL with a host (and a valid port, if any)."""
    url = str(value).strip()
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        raise ValueError("is not a URL (want http://host:port or https://host)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ValueError("is not a URL (want http://host:port or https://host)")
    return url


def region(value: Any) -> str:
    """An AWS-style region name (letters, digits and dashes)."""
    name = str(value).strip()
    if not _REGION.match(name):
        raise ValueError("is not a region name (e.g. us-east-1)")
    return name


def check_options(scheme: str, known: Mapping[str, Validator], options: Mapping[str, Any],
                  ignore: Iterable[str] = ()) -> dict[str, Any]:
    """``options`` with every value checked and converted; ConfigError naming the option for
    an unknown key or a bad value (secret values are never repeated)."""
    out: dict[str, Any] = {}
    skip = set(ignore)
    for key, value in options.items():
        if key in skip:
            continue
        validator = known.get(key)
        if validator is None:
            names = ", ".join(sorted(known)) or "none"
            raise ConfigError(f"unknown option {key!r} for {scheme}:// repositories (known: "
                              f"{names})")
        if value is None:
            continue  # not set (e.g. an empty block field)
        try:
            out[key] = validator(value)
        except ValueError as exc:
            shown = "" if key in SECRET_KEYS else f", got {str(value)!r}"
            raise ConfigError(f"option {key} {exc}{shown}") from None
    return out

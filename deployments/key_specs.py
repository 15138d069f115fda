"""Keys in the platform file and their deployments.

* ``keys:`` entries name a password, a key file, a PKCS#11 token (``pkcs11:``) or a KMS key
  (``kms:``), validated by :class:`deployments.config.KeyConfig` (the engine's key models,
  shared with the block); :func:`key_block` turns one into the ``RepositoryKey`` block.
* The quarterly ``key-rotation`` of every target (first day of January, April, July and
  October, platform time zone) and a daily ``key-rotation-check`` that alerts when a target's
  newest data-key epoch is older than 100 days.
"""

from __future__ import annotations

from typing import Any

KEY_ROTATION_CRON = "0 3 1 1,4,7,10 *"
KEY_CHECK_CRON = "30 6 * * *"


def key_block(key: Any) -> Any:
    """The ``RepositoryKey`` block of a platform-file key (``deployments.config.KeyConfig``)."""
    from blocks.keys import RepositoryKey

    return RepositoryKey(**key.model_dump(exclude_none=True))


def key_specs(config: Any) -> dict[str, dict[str, Any]]:
    from deployments.build import when  # build imports this module

    targets = list(config.targets)
    runs = [("key-rotation", KEY_ROTATION_CRON, True,
             "quarterly data-key rotation of every target (a new epoch; no data rewritten)"),
            ("key-rotation-check", KEY_CHECK_CRON, False,
             "alert when a target's newest data-key epoch is older than 100 days")]
    return {slug: {"flow": "key_rotation",
                   "schedules": [{"cron": cron, "timezone": config.timezone, "active": True,
                                  "slug": slug}],
                   "parameters": {"targets": targets, "rotate": rotate},
                   "tags": ["strongroom", "keys"],
                   "description": f"{what} {when(cron, config.timezone)}"}
            for slug, cron, rotate, what in runs}


def flows() -> dict[str, Any]:
    from flows.keys import key_rotation

    return {"key_rotation": key_rotation}

"""Storage backends behind one small interface (:class:`Backend`), opened by URL scheme."""

from strongroom.storage.base import Backend, ObjectInfo
from strongroom.storage.registry import open_backend, register_scheme

__all__ = ["Backend", "ObjectInfo", "open_backend", "register_scheme"]

"""Storage backends behind one small interface (:class:`Backend`)."""

from strongroom.storage.base import Backend, open_backend

__all__ = ["Backend", "open_backend"]

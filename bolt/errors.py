"""Errors raised by a BOLT map. All are importable from :mod:`bolt`."""

__all__ = [
    "BoltError", "IntegrityError", "CapacityError", "BoundExceededError",
    "KeySizeError", "ValueSizeError", "KeyTypeError", "ValueTypeError", "BackendError",
]


class BoltError(Exception):
    """Base class of every error a BOLT map raises on purpose."""


class IntegrityError(BoltError):
    """A host page failed AES-GCM verification: it was modified, swapped or replayed.

    No value is returned from a page that fails verification.
    """

    def __init__(self, page: int, message: str | None = None):
        self.page = page
        super().__init__(message or f"host page {page} failed verification "
                                    "(modified, swapped or replayed by the host)")


class CapacityError(BoltError):
    """A PUT of a new key found the map at capacity (reported after the full access)."""


class BoundExceededError(BoltError):
    """A structure sized from the analytical bounds (algorithm §1) overflowed.

    ``bound`` names which: ``"bin load"``, ``"value frames"``, ``"index bucket"`` or
    ``"page counter"``. Everything stored before remains readable.
    """

    def __init__(self, bound: str, message: str):
        self.bound = bound
        super().__init__(message)


class KeySizeError(BoltError, ValueError):
    """A key is longer than the map's ``key_size``."""


class ValueSizeError(BoltError, ValueError):
    """A value is longer than the map's ``value_size``."""


class KeyTypeError(BoltError, TypeError):
    """A key is neither ``bytes`` nor ``str``."""


class ValueTypeError(BoltError, TypeError):
    """A value is not bytes-like."""


class BackendError(BoltError):
    """A backend could not be built or started, or died while serving the map."""

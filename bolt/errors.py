"""Errors raised by a BOLT map. All are importable from :mod:`bolt`."""

__all__ = [
    "BoltError", "IntegrityError", "CapacityError", "BoundExceededError", "BOUND_BIN_LOAD",
    "BOUND_VALUE_FRAMES", "BOUND_INDEX", "BOUND_PAGE_COUNTER", "BOUND_UNNAMED",
    "KeySizeError", "ValueSizeError", "KeyTypeError", "ValueTypeError", "BackendError",
    "SaltReuseError", "ChannelError", "AttestationError", "NotSetUpError", "DeviceChangedError",
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


#: What :attr:`BoundExceededError.bound` names. The eviction buffer holds one entry per value
#: frame (it shares their pool), so its running out is the ``"value frames"`` bound.
BOUND_BIN_LOAD = "bin load"
BOUND_VALUE_FRAMES = "value frames"
BOUND_INDEX = "index bucket"
BOUND_PAGE_COUNTER = "page counter"
#: The RTL reports that a bound was crossed, not which.
BOUND_UNNAMED = "bin load, value frames or index bucket"


class BoundExceededError(BoltError):
    """A structure sized from the analytical bounds (algorithm §1) overflowed.

    ``bound`` names which: :data:`BOUND_BIN_LOAD`, :data:`BOUND_VALUE_FRAMES`,
    :data:`BOUND_INDEX` or :data:`BOUND_PAGE_COUNTER` (:data:`BOUND_UNNAMED` from the RTL
    backend, whose response does not say). Everything stored before remains readable.
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


class SaltReuseError(BoltError, ValueError):
    """A test salt (``unsafe_test_salt=``) was given with a master key this process already set
    up with it: the Setup would reuse GCM nonces."""


class BackendError(BoltError):
    """A backend could not be built or started, or died while serving the map."""


class ChannelError(BoltError):
    """The sealed channel to the accelerator failed: a frame did not verify, came out of
    sequence, had the wrong length or never came. The session is closed; the map's content is
    unchanged, and a new session (``Map.new_session()``) sees it intact."""


class AttestationError(ChannelError):
    """The accelerator's attestation report did not verify: a signature not made by the pinned
    vendor key, or a measurement other than the one the client expects."""


class NotSetUpError(BoltError):
    """The accelerator refused an access because no Setup has completed (it has no keys)."""


class DeviceChangedError(ChannelError):
    """A client reconnected and found another accelerator instance (a new attested device key):
    the server restarted, and its map is not the one the client used."""

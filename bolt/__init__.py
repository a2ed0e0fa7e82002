"""BOLT: an oblivious key-value map on a secure-HBM accelerator.

``bolt.Map`` is the map; ``bolt.Params`` its public parameters; ``bolt.connect`` a client of a
map that a ``bolt serve`` server holds; the errors below are what they raise on purpose.
"""
from .errors import (AttestationError, BackendError, BoltError, BoundExceededError,
                     CapacityError, ChannelError, DeviceChangedError, IntegrityError,
                     KeySizeError, KeyTypeError, NotSetUpError, SaltReuseError, ValueSizeError,
                     ValueTypeError)
from .map import Map
from .params import Params
from .protocol import Op, Response, Status

__all__ = [
    "Map", "Params", "Op", "Status", "Response",
    "BoltError", "IntegrityError", "CapacityError", "BoundExceededError", "KeySizeError",
    "ValueSizeError", "KeyTypeError", "ValueTypeError", "BackendError", "SaltReuseError",
    "ChannelError", "AttestationError", "NotSetUpError", "DeviceChangedError", "connect",
    "RemoteMap",
]


def __getattr__(name):
    # bolt.connect and bolt.RemoteMap load the network client only when first used.
    if name in ("connect", "RemoteMap"):
        from . import remote
        return getattr(remote, name)
    raise AttributeError(f"module 'bolt' has no attribute {name!r}")

"""BOLT: an oblivious key-value map on a secure-HBM accelerator.

``bolt.Map`` is the map; ``bolt.Params`` its public parameters; the errors below are what it
raises on purpose.
"""
from .errors import (AttestationError, BackendError, BoltError, BoundExceededError,
                     CapacityError, ChannelError, IntegrityError, KeySizeError, KeyTypeError,
                     NotSetUpError, SaltReuseError, ValueSizeError, ValueTypeError)
from .map import Map
from .params import Params
from .protocol import Op, Response, Status

__all__ = [
    "Map", "Params", "Op", "Status", "Response",
    "BoltError", "IntegrityError", "CapacityError", "BoundExceededError", "KeySizeError",
    "ValueSizeError", "KeyTypeError", "ValueTypeError", "BackendError", "SaltReuseError",
    "ChannelError", "AttestationError", "NotSetUpError",
]

"""``bolt.Map``: the oblivious map as a Python ``MutableMapping`` over a backend."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from operator import itemgetter

from .errors import (BOUND_UNNAMED, BackendError, BoundExceededError, CapacityError,
                     IntegrityError, KeySizeError, KeyTypeError, ValueSizeError, ValueTypeError)
from .crypto import claim_test_salt
from .params import Params
from .protocol import Op, Response, Status

__all__ = ["Map", "BACKENDS"]


def _reference_backend(params: Params, **options):
    from .model import ReferenceAccelerator
    return ReferenceAccelerator(params, **options)


def _rtl_backend(params: Params, **options):
    from .host.backend import RtlBackend
    return RtlBackend(params, **options)


#: Backend name -> factory(params, master_key=..., salt=...).
BACKENDS = {"reference": _reference_backend, "rtl": _rtl_backend}


class Map(MutableMapping):
    """An oblivious key-value map (BOLT) whose host-memory trace hides every operation.

    Parameters
    ----------
    capacity : int
        N, the most items the map may hold.
    key_size, value_size, load, hbm_fraction
        The public parameters of algorithm §1 (see :class:`bolt.Params`).
    master_key : bytes, optional
        16-byte master key; drawn from the OS if omitted.
    backend : str
        ``"reference"`` (the Python model) or ``"rtl"`` (the Verilator simulation).
    unsafe_test_salt : bytes, optional
        For reproducible tests only: the 15-byte salt of the first Setup instead of a fresh one
        from the OS. A (master key, salt) pair this process has set up before is refused
        (:class:`bolt.SaltReuseError`); reusing one in another process, which nothing can
        check, reuses GCM nonces and lets the host replay the other map's pages unnoticed.

    Keys are ``bytes`` or ``str`` (stored as UTF-8; iteration yields ``bytes``), values are
    bytes-like. ``m.trace`` is the recorded host trace and ``m.host_memory`` the untrusted
    host byte store, which a test may tamper with as the host could.

    A map may be shared by threads: one lock serializes its accesses, bulk loads and ``close``
    (the accelerator runs one access at a time anyway).
    """

    def __init__(self, capacity: int = 65536, *, key_size: int = 16, value_size: int = 64,
                 load: int = 8, hbm_fraction: float = 0.2, master_key: bytes | None = None,
                 backend: str = "reference", unsafe_test_salt: bytes | None = None,
                 **backend_options):
        self._open(capacity, key_size=key_size, value_size=value_size, load=load,
                   hbm_fraction=hbm_fraction, master_key=master_key, backend=backend,
                   unsafe_test_salt=unsafe_test_salt, items=None, **backend_options)

    def _open(self, capacity, *, key_size, value_size, load, hbm_fraction, master_key, backend,
              unsafe_test_salt, items, **backend_options) -> None:
        self.params = Params(capacity=capacity, key_size=key_size, value_size=value_size,
                             load=load, hbm_fraction=hbm_fraction)
        if "salt" in backend_options:
            raise TypeError("bolt.Map takes no salt=: every Setup draws a fresh one; for "
                            "reproducible tests only, see unsafe_test_salt=")
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {sorted(BACKENDS)}")
        self.backend_name = backend
        self._closed = False
        # Re-entrant: an access may be made by code that already holds it (a subclass, a tool).
        self._lock = threading.RLock()
        checked = self._checked_items(items) if items is not None else ()
        self._master_key = master_key       # only to check test salts against (None: drawn)
        salt = self._test_salt(unsafe_test_salt)
        self._backend = BACKENDS[backend](self.params, master_key=master_key, salt=salt,
                                          items=checked, **backend_options)

    @classmethod
    def from_items(cls, items: Mapping | Iterable[tuple], capacity: int = 65536, *,
                   key_size: int = 16, value_size: int = 64, load: int = 8,
                   hbm_fraction: float = 0.2, master_key: bytes | None = None,
                   backend: str = "reference", unsafe_test_salt: bytes | None = None,
                   **backend_options) -> "Map":
        """A map bulk-loaded with ``items`` by one Setup (linear time, B page writes)."""
        new = cls.__new__(cls)
        new._open(capacity, key_size=key_size, value_size=value_size, load=load,
                  hbm_fraction=hbm_fraction, master_key=master_key, backend=backend,
                  unsafe_test_salt=unsafe_test_salt, items=items, **backend_options)
        return new

    def _checked_items(self, items: Mapping | Iterable[tuple]) -> list[tuple[bytes, bytes]]:
        if isinstance(items, Mapping):
            items = items.items()
        elif isinstance(items, (str, bytes, bytearray, memoryview)) or not isinstance(
                items, Iterable):
            raise TypeError("items must be a mapping or an iterable of (key, value) pairs, "
                            f"not {type(items).__name__}")
        items = items if isinstance(items, list) else list(items)
        if items and all(type(item) is tuple and len(item) == 2 for item in items):
            # The common case, checked with whole-list builtins: plain bytes within size.
            keys, values = map(itemgetter(0), items), map(itemgetter(1), items)
            keys, values = list(keys), list(values)
            if (all(type(key) is bytes for key in keys)
                    and all(type(value) is bytes for value in values)
                    and max(map(len, keys)) <= self.params.key_size
                    and max(map(len, values)) <= self.params.value_size):
                return items
        for position, item in enumerate(items):
            if isinstance(item, (str, bytes, bytearray, memoryview)) or not isinstance(
                    item, Iterable) or len(item := tuple(item)) != 2:
                raise TypeError(f"items must be (key, value) pairs; item {position} is {item!r}")
        return [(self._key(key), self._value(value)) for key, value in items]

    def load(self, items: Mapping | Iterable[tuple], *,
             unsafe_test_salt: bytes | None = None) -> None:
        """Replace the whole content by a Setup with ``items`` (the last of a repeated key wins)
        under a fresh salt (``unsafe_test_salt``: as for the constructor).

        Every key and value is checked before anything changes.
        """
        checked = self._checked_items(items)
        with self._lock:
            if self._closed:
                raise BackendError("this map is closed")
            self._backend.setup(checked, salt=self._test_salt(unsafe_test_salt))

    def _test_salt(self, salt) -> bytes | None:
        return None if salt is None else claim_test_salt(self._master_key, salt)

    # -- input checks (before anything reaches the accelerator) ---------------------------------

    def _key(self, key) -> bytes:
        if isinstance(key, str):
            try:
                key = key.encode("utf-8")
            except UnicodeEncodeError as error:
                raise KeyTypeError(f"str keys are stored as UTF-8 and {key!r} has no UTF-8 form "
                                   f"({error.reason} at position {error.start}); pass bytes "
                                   "instead") from None
        elif isinstance(key, (bytearray, memoryview)):
            key = bytes(key)
        elif not isinstance(key, bytes):
            raise KeyTypeError(f"keys must be bytes or str, not {type(key).__name__}")
        if len(key) > self.params.key_size:
            raise KeySizeError(f"key of {len(key)} bytes exceeds key_size="
                               f"{self.params.key_size}")
        return key

    def _value(self, value) -> bytes:
        if isinstance(value, (bytearray, memoryview)):
            value = bytes(value)
        elif not isinstance(value, bytes):
            raise ValueTypeError(f"values must be bytes-like, not {type(value).__name__}")
        if len(value) > self.params.value_size:
            raise ValueSizeError(f"value of {len(value)} bytes exceeds value_size="
                                 f"{self.params.value_size}")
        return value

    # -- outcomes: raised only after the full access, the same for every backend ----------------

    @staticmethod
    def _outcome(response: Response, key) -> Response:
        status = response.status
        if status == Status.INTEGRITY:
            raise IntegrityError(response.page)
        if status == Status.FULL:
            raise CapacityError(f"the map is full; {key!r} was not stored")
        if status == Status.BOUND:
            bound = response.bound or BOUND_UNNAMED
            raise BoundExceededError(bound, f"the access of {key!r} would have crossed the "
                                            f"{bound} bound; the map's content is unchanged")
        return response

    def _access(self, op: Op, key, value: bytes | None = None) -> Response:
        with self._lock:
            if self._closed:
                raise BackendError("this map is closed")
            response = self._backend.access(op, key, value)
        return self._outcome(response, key)

    # -- MutableMapping ---------------------------------------------------------------------------

    def __getitem__(self, key) -> bytes:
        key = self._key(key)
        response = self._access(Op.GET, key)
        if response.status == Status.ABSENT:
            raise KeyError(key)
        return response.value

    def get(self, key, default=None):
        """The value of ``key``, or ``default`` if absent (one GET access, no exception)."""
        response = self._access(Op.GET, self._key(key))
        return response.value if response.status == Status.FOUND else default

    def __contains__(self, key) -> bool:
        """A GET access (the same trace as any other op)."""
        return self._access(Op.GET, self._key(key)).status == Status.FOUND

    def __setitem__(self, key, value) -> None:
        key, value = self._key(key), self._value(value)
        self._access(Op.PUT, key, value)

    def __delitem__(self, key) -> None:
        key = self._key(key)
        if self._access(Op.DELETE, key).status == Status.ABSENT:
            raise KeyError(key)

    def put(self, key, value) -> bytes | None:
        """Store ``value``; return the old value or None (one access)."""
        key, value = self._key(key), self._value(value)
        return self._access(Op.PUT, key, value).value

    def __iter__(self) -> Iterator[bytes]:
        with self._lock:
            return self._backend.keys()   # a copy of the keys held now

    def __len__(self) -> int:
        with self._lock:
            return len(self._backend)

    # -- what researchers inspect -----------------------------------------------------------------

    @property
    def trace(self):
        """The recorded host trace (:class:`bolt.trace.Trace`)."""
        return self._backend.trace

    @property
    def host_memory(self):
        """The untrusted host byte store (:class:`bolt.trace.HostMemory`)."""
        return self._backend.host_memory

    @property
    def stats(self):
        """Per-operation cycle counts and projected latency (:class:`bolt.host.backend.RtlStats`)
        on the RTL backend; None on the reference backend, which has no cycles."""
        return getattr(self._backend, "stats", None)

    @property
    def backend(self):
        return self._backend

    def __repr__(self) -> str:
        return (f"<bolt.Map {len(self)}/{self.params.capacity} items, "
                f"{self.backend_name} backend>")

    # -- lifetime ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the backend (stops the RTL simulation); the map refuses work afterwards."""
        with self._lock:
            self._closed = True
            close = getattr(self._backend, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> "Map":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # A copy would fork the page counters and reuse GCM nonces (algorithm §5).
    def __reduce_ex__(self, protocol):
        raise TypeError("a bolt.Map cannot be pickled or copied: a copy would fork its page "
                        "write counters and reuse GCM nonces")

    def __copy__(self):
        self.__reduce_ex__(None)

    def __deepcopy__(self, memo):
        self.__reduce_ex__(None)

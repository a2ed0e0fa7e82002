"""``bolt.Map``: the oblivious map as a Python ``MutableMapping`` over a backend.

By default the map object is the client of a sealed channel (:mod:`bolt.channel`): it verifies
the accelerator's attestation, opens a session, and sends every command and Setup item as a
fixed-size sealed frame through the host (:class:`~bolt.channel.relay.HostRelay`, which records
the host's whole view). ``channel=False`` calls the backend directly, as before the channel
existed (for comparisons and tools that reach into the model).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from operator import itemgetter

from .crypto import claim_test_salt, master_key_or_new, new_salt
from .errors import (BOUND_UNNAMED, BackendError, BoundExceededError, CapacityError, ChannelError,
                     IntegrityError, KeySizeError, KeyTypeError, NotSetUpError, ValueSizeError,
                     ValueTypeError)
from .params import TWO_CHOICE, Params
from .protocol import Op, Response, Status

__all__ = ["Map", "BACKENDS"]

# Enum members as module constants: an enum's attribute lookup costs more than the comparison.
_GET, _PUT, _DELETE = Op.GET, Op.PUT, Op.DELETE
_ABSENT, _FOUND = Status.ABSENT, Status.FOUND
_TUPLE, _PAIR, _BYTES = {tuple}, {2}, {bytes}
_STORED = _ANSWERED = (Status.ABSENT, Status.FOUND)   # the outcomes that are answers


def _reference_backend(params: Params, **options):
    from .model import ReferenceAccelerator
    return ReferenceAccelerator(params, **options)


def _rtl_backend(params: Params, **options):
    from .host.backend import RtlBackend
    return RtlBackend(params, **options)


#: Backend name -> factory(params, master_key=..., salt=..., items=...): the accelerator called
#: directly (``channel=False``).
BACKENDS = {"reference": _reference_backend, "rtl": _rtl_backend}


def _reference_device(params: Params, **options):
    from .channel import ReferenceDevice
    return ReferenceDevice(params, **options)


def _reference_measurement(params: Params, device) -> bytes:
    from .channel import reference_measurement
    return reference_measurement(params)


def _rtl_device(params: Params, **options):
    from .host.backend import RtlBackend
    return RtlBackend(params, channel=True, **options)


def _rtl_measurement(params: Params, device) -> bytes:
    from .channel import rtl_measurement
    return rtl_measurement(params, device.verilog)   # the Verilog this installation generated


#: Backend name -> (factory(params, **options) of the device behind the channel, the function
#: giving the measurement a client expects of it).
DEVICES = {"reference": (_reference_device, _reference_measurement),
           "rtl": (_rtl_device, _rtl_measurement)}


@contextmanager
def _collector_paused():
    """Pause Python's cyclic garbage collector for a bulk load: a Setup of 2^20 items allocates
    millions of tuples, which the collector would traverse again and again to free nothing
    (about a fifth of the Setup's time). Reference counting still frees everything."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Map(MutableMapping):
    """An oblivious key-value map (BOLT) whose host-memory trace hides every operation.

    Parameters
    ----------
    capacity : int
        N, the most items the map may hold.
    key_size, value_size, load, hbm_fraction
        The public parameters of algorithm §1 (see :class:`bolt.Params`).
    placement, pool_size
        ``"two-choice"`` (the default) or ``"pool"``, the trusted pool of ``pool_size`` items
        (default M) of algorithm §13 (see :class:`bolt.Params`; the reference backend only).
    master_key : bytes, optional
        16-byte master key; drawn from the OS if omitted.
    backend : str
        ``"reference"`` (the Python model) or ``"rtl"`` (the Verilator simulation).
    unsafe_test_salt : bytes, optional
        For reproducible tests only: the 15-byte salt of the first Setup instead of a fresh one
        from the OS. A (master key, salt) pair this process has set up before is refused
        (:class:`bolt.SaltReuseError`); reusing one in another process, which nothing can
        check, reuses GCM nonces and lets the host replay the other map's pages unnoticed.

    channel : bool, optional
        Talk to the accelerator through the sealed channel (the default where the backend has
        one: the reference backend) or call it directly.
    measurement : bytes, optional
        The attestation measurement to pin; by default the one this installation computes for
        the backend and parameters.
    vendor_key : Ed25519PublicKey, optional
        The key attestation reports must be signed with (the project's TEST FIXTURE key by
        default).

    Keys are ``bytes`` or ``str`` (stored as UTF-8; iteration yields ``bytes``), values are
    bytes-like. ``m.host_view`` is everything the host sees (frames and the page trace),
    ``m.trace`` the page trace alone and ``m.host_memory`` the untrusted host byte store, which a
    test may tamper with as the host could.

    A map may be shared by threads: one lock serializes its accesses, bulk loads and ``close``
    (the accelerator runs one access at a time anyway).
    """

    def __init__(self, capacity: int = 65536, *, key_size: int = 16, value_size: int = 64,
                 load: int = 8, hbm_fraction: float = 0.2, placement: str = TWO_CHOICE,
                 pool_size: int | None = None, master_key: bytes | None = None,
                 backend: str = "reference", unsafe_test_salt: bytes | None = None,
                 channel: bool | None = None, measurement: bytes | None = None,
                 vendor_key=None, **backend_options):
        self._open(capacity, key_size=key_size, value_size=value_size, load=load,
                   hbm_fraction=hbm_fraction, placement=placement, pool_size=pool_size,
                   master_key=master_key, backend=backend,
                   unsafe_test_salt=unsafe_test_salt, items=None, channel=channel,
                   measurement=measurement, vendor_key=vendor_key, **backend_options)

    def _open(self, capacity, *, key_size, value_size, load, hbm_fraction, placement, pool_size,
              master_key, backend, unsafe_test_salt, items, channel=None, measurement=None,
              vendor_key=None, **backend_options) -> None:
        self.params = Params(capacity=capacity, key_size=key_size, value_size=value_size,
                             load=load, hbm_fraction=hbm_fraction, placement=placement,
                             pool_size=pool_size)
        if "salt" in backend_options:
            raise TypeError("bolt.Map takes no salt=: every Setup draws a fresh one; for "
                            "reproducible tests only, see unsafe_test_salt=")
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {sorted(BACKENDS)}")
        if channel is None:
            channel = backend in DEVICES
        elif channel and backend not in DEVICES:
            raise ValueError(f"the {backend} backend has no sealed channel yet")
        self.backend_name = backend
        self._closed = False
        # Re-entrant: an access may be made by code that already holds it (a subclass, a tool).
        self._lock = threading.RLock()
        checked = self._checked_items(items) if items is not None else ()
        self._client = self._host = None
        if not channel:
            self._master_key = master_key   # only to check test salts against (None: drawn)
            salt = self._test_salt(unsafe_test_salt)
            self._backend = BACKENDS[backend](self.params, master_key=master_key, salt=salt,
                                              items=checked, **backend_options)
            return
        # The client holds the master key and sends it, sealed, with every Setup.
        self._master_key = master_key_or_new(master_key)
        salt = self._test_salt(unsafe_test_salt)
        from .channel import ChannelClient, HostRelay
        new_device, expected_measurement = DEVICES[backend]
        self._backend = new_device(self.params, **backend_options)
        try:
            self._host = HostRelay(self._backend)
            self._client = ChannelClient(
                self.params, self._host, vendor_key=vendor_key,
                measurement=(measurement if measurement is not None
                             else expected_measurement(self.params, self._backend)))
            self._keys: dict[bytes, None] = {}
            self._setup(checked, salt)
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_items(cls, items: Mapping | Iterable[tuple], capacity: int = 65536, *,
                   key_size: int = 16, value_size: int = 64, load: int = 8,
                   hbm_fraction: float = 0.2, placement: str = TWO_CHOICE,
                   pool_size: int | None = None, master_key: bytes | None = None,
                   backend: str = "reference", unsafe_test_salt: bytes | None = None,
                   channel: bool | None = None, measurement: bytes | None = None,
                   vendor_key=None, **backend_options) -> "Map":
        """A map bulk-loaded with ``items`` by one Setup (linear time, B page writes)."""
        new = cls.__new__(cls)
        with _collector_paused():
            new._open(capacity, key_size=key_size, value_size=value_size, load=load,
                      hbm_fraction=hbm_fraction, placement=placement, pool_size=pool_size,
                      master_key=master_key, backend=backend,
                      unsafe_test_salt=unsafe_test_salt, items=items, channel=channel,
                      measurement=measurement, vendor_key=vendor_key, **backend_options)
        return new

    def _checked_items(self, items: Mapping | Iterable[tuple]) -> list[tuple[bytes, bytes]]:
        if isinstance(items, Mapping):
            items = items.items()
        elif isinstance(items, (str, bytes, bytearray, memoryview)) or not isinstance(
                items, Iterable):
            raise TypeError("items must be a mapping or an iterable of (key, value) pairs, "
                            f"not {type(items).__name__}")
        items = items if isinstance(items, list) else list(items)
        if items and set(map(type, items)) == _TUPLE and set(map(len, items)) == _PAIR:
            # The common case, checked by builtins over whole lists (no Python frame per item):
            # plain bytes within size.
            keys, values = list(map(itemgetter(0), items)), list(map(itemgetter(1), items))
            if (set(map(type, keys)) == _BYTES and set(map(type, values)) == _BYTES
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
        with self._lock, _collector_paused():
            checked = self._checked_items(items)
            if self._closed:
                raise BackendError("this map is closed")
            salt = self._test_salt(unsafe_test_salt)
            if self._client is None:
                self._backend.setup(checked, salt=salt)
            else:
                self._setup(checked, salt)

    def _setup(self, items, salt: bytes | None) -> None:
        """Setup through the channel: key material and items sealed, one frame each. A failed
        Setup leaves the accelerator refusing accesses until the next one succeeds."""
        items = dict(items)
        if len(items) > self.params.capacity:
            raise CapacityError(f"{len(items)} items exceed the capacity of "
                                f"{self.params.capacity}; nothing was sent")
        self._keys = {}
        response = self._client.setup(items, master_key=self._master_key,
                                      salt=salt if salt is not None else new_salt())
        if response.status == Status.FULL:
            raise CapacityError(f"{len(items)} items exceed the capacity of "
                                f"{self.params.capacity}")
        if response.status != Status.ABSENT:
            raise BoundExceededError(BOUND_UNNAMED,
                                     f"Setup crossed a bound ({response.status.name}); the map "
                                     "refuses accesses until a Setup succeeds")
        self._keys = dict.fromkeys(items)

    def new_session(self) -> None:
        """Verify the accelerator's attestation again and open a new session (after a
        :class:`~bolt.errors.ChannelError`, for instance); the map's content is unchanged."""
        with self._lock:
            if self._closed:
                raise BackendError("this map is closed")
            if self._client is None:
                raise ValueError("this map has no channel (channel=False)")
            self._client.open_session()

    def _test_salt(self, salt) -> bytes | None:
        return None if salt is None else claim_test_salt(self._master_key, salt)

    # -- input checks (before anything reaches the accelerator) ---------------------------------

    def _key(self, key) -> bytes:
        if type(key) is not bytes:   # plain bytes (nearly every key) skip the three tests
            if isinstance(key, str):
                try:
                    key = key.encode("utf-8")
                except UnicodeEncodeError as error:
                    raise KeyTypeError(f"str keys are stored as UTF-8 and {key!r} has no UTF-8 "
                                       f"form ({error.reason} at position {error.start}); pass "
                                       "bytes instead") from None
            elif isinstance(key, (bytearray, memoryview)):
                key = bytes(key)
            elif not isinstance(key, bytes):
                raise KeyTypeError(f"keys must be bytes or str, not {type(key).__name__}")
        if len(key) > self.params.key_size:
            raise KeySizeError(f"key of {len(key)} bytes exceeds key_size="
                               f"{self.params.key_size}")
        return key

    def _value(self, value) -> bytes:
        if type(value) is bytes:
            pass
        elif isinstance(value, (bytearray, memoryview)):
            value = bytes(value)
        elif not isinstance(value, bytes):
            raise ValueTypeError(f"values must be bytes-like, not {type(value).__name__}")
        if len(value) > self.params.value_size:
            raise ValueSizeError(f"value of {len(value)} bytes exceeds value_size="
                                 f"{self.params.value_size}")
        return value

    # -- outcomes: raised only after the full access, the same for every backend ----------------

    @staticmethod
    def _raise_for(response: Response, key) -> None:
        """Raise the error a response that is not an answer stands for."""
        status = response.status
        if status == Status.INTEGRITY:
            raise IntegrityError(response.page)
        if status == Status.FULL:
            raise CapacityError(f"the map is full; {key!r} was not stored")
        if status == Status.BOUND:
            bound = response.bound or BOUND_UNNAMED
            raise BoundExceededError(bound, f"the access of {key!r} would have crossed the "
                                            f"{bound} bound; the map's content is unchanged")
        if status == Status.REFUSED:
            raise NotSetUpError("the accelerator refused the access: no Setup has completed")
        if status == Status.CHANNEL:
            raise ChannelError("the accelerator rejected a command frame")

    def _access(self, op: Op, key, value: bytes | None = None) -> Response:
        # acquire and release rather than a with block: half its cost, on every access.
        lock = self._lock
        lock.acquire()
        try:
            if self._closed:
                raise BackendError("this map is closed")
            client = self._client
            if client is None:
                response = self._backend.access(op, key, value)
            else:
                response = client.access(op, key, value)
                if op != _GET:          # a GET changes no key
                    self._record(op, key, response)
        finally:
            lock.release()
        if response.status not in _ANSWERED:
            self._raise_for(response, key)
        return response

    def _record(self, op: Op, key: bytes, response: Response) -> None:
        """Keep the client's key set (len, iteration): nothing of it is on the host."""
        if op == _PUT:
            if response.status in _STORED:
                self._keys[key] = None
        elif op == _DELETE and response.status == _FOUND:
            del self._keys[key]

    # -- MutableMapping ---------------------------------------------------------------------------

    def __getitem__(self, key) -> bytes:
        key = self._key(key)
        response = self._access(_GET, key)
        if response.status == _ABSENT:
            raise KeyError(key)
        return response.value

    def get(self, key, default=None):
        """The value of ``key``, or ``default`` if absent (one GET access, no exception)."""
        response = self._access(_GET, self._key(key))
        return response.value if response.status == _FOUND else default

    def __contains__(self, key) -> bool:
        """A GET access (the same trace as any other op)."""
        return self._access(_GET, self._key(key)).status == _FOUND

    def __setitem__(self, key, value) -> None:
        key, value = self._key(key), self._value(value)
        self._access(_PUT, key, value)

    def __delitem__(self, key) -> None:
        key = self._key(key)
        if self._access(_DELETE, key).status == _ABSENT:
            raise KeyError(key)

    def put(self, key, value) -> bytes | None:
        """Store ``value``; return the old value or None (one access)."""
        key, value = self._key(key), self._value(value)
        return self._access(_PUT, key, value).value

    def __iter__(self) -> Iterator[bytes]:
        with self._lock:   # a copy of the keys held now
            return self._backend.keys() if self._client is None else iter(list(self._keys))

    def __len__(self) -> int:
        with self._lock:
            return len(self._backend) if self._client is None else len(self._keys)

    # -- what researchers inspect -----------------------------------------------------------------

    @property
    def host_view(self):
        """Everything the host sees (:class:`bolt.channel.HostRelay`): the relayed frames
        (direction, kind, length, bytes, order) and the page trace. None without a channel."""
        return self._host

    @property
    def trace(self):
        """The recorded host trace of page accesses (:class:`bolt.trace.Trace`)."""
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
        """The accelerator itself (trusted side; for tests and debugging): the reference model or
        the RTL backend, behind the channel if there is one."""
        if self._client is None:
            return self._backend
        return getattr(self._backend, "accelerator", self._backend)

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

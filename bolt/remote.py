"""``bolt.connect``: a client of a ``bolt serve`` server, with the API of :class:`bolt.Map`.

The client verifies the accelerator's attestation report and opens a sealed session of its own
through the server (:class:`~bolt.channel.ChannelClient` over a TCP transport), so the server,
the untrusted host, relays only public messages and fixed-size sealed frames. Many clients may
share one server and one map; the accelerator serves their accesses one at a time in arrival
order.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterable, Mapping, Sequence

from .channel import ChannelClient
from .channel.attestation import Report
from .channel.frames import FrameRun
from .errors import DeviceChangedError
from .map import Map
from .params import Params
from .wire import PROTOCOL_VERSION, Kind, WireError, receive, send

__all__ = ["connect", "RemoteMap", "NetworkTransport", "parse_address"]


def parse_address(address: str | tuple[str, int]) -> tuple[str, int]:
    """``"host:port"`` or ``(host, port)``."""
    if isinstance(address, tuple):
        return address
    host, separator, port = str(address).rpartition(":")
    if not separator or not port.isdigit():
        raise ValueError(f"a server address is host:port, not {address!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


class NetworkTransport:
    """The channel client's transport to a server (``report``, ``open_session``,
    ``exchange``), one TCP connection. Any failure closes it for good."""

    def __init__(self, address: str | tuple[str, int], *, timeout_s: float = 30.0):
        self.address = parse_address(address)
        try:
            self._socket = socket.create_connection(self.address, timeout=timeout_s)
        except OSError as error:
            raise WireError(f"cannot reach the server at {self.address[0]}:{self.address[1]}: "
                            f"{error}") from error
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = self._socket.makefile("rb")
        self.report_bytes: bytes | None = None
        self.hello = json.loads(self._call(None, Kind.HELLO))
        if self.hello.get("protocol") != PROTOCOL_VERSION:
            self.close()
            raise WireError(f"the server speaks protocol {self.hello.get('protocol')}, "
                            f"not {PROTOCOL_VERSION}")
        self.params = Params(**self.hello["params"])
        self._response_bytes = self.params.response_frame_bytes

    def _call(self, request: tuple[Kind, bytes] | None, answer: Kind) -> bytes:
        if self._socket is None:
            raise WireError("the connection to the server is closed")
        try:
            if request is not None:
                send(self._socket, *request)
            return receive(self._reader, answer)
        except WireError:
            self.close()
            raise

    def report(self) -> bytes:
        self.report_bytes = self._call((Kind.REPORT, b""), Kind.REPORT)
        return self.report_bytes

    def open_session(self, encapsulated_key: bytes) -> bytes:
        return self._call((Kind.SESSION, encapsulated_key), Kind.SESSION)

    def exchange(self, frames: Sequence[bytes]) -> list[bytes]:
        body = self._call((Kind.EXCHANGE, frames.tobytes() if isinstance(frames, FrameRun)
                           else b"".join(frames)), Kind.EXCHANGE)
        size = self._response_bytes
        # A body that is not whole frames is cut into them anyway: the last piece fails to open
        # and the channel client reports it.
        return [body[i:i + size] for i in range(0, len(body), size)]

    def close(self) -> None:
        if self._socket is not None:
            self._reader.close()
            self._socket.close()
            self._socket = None


class RemoteMap(Map):
    """A :class:`bolt.Map` whose accelerator is behind a server (see :func:`connect`).

    Reads and writes are as for ``bolt.Map``; the map is shared with the server's other
    clients, so its size and keys are not known to one client (``len`` and iteration raise
    TypeError), and its host trace and memory are on the server.
    """

    def __init__(self, address: str | tuple[str, int], *, measurement: bytes | str,
                 vendor_key=None, timeout_s: float = 30.0):
        self._closed = True
        self._lock = threading.RLock()
        self._address = parse_address(address)
        self._timeout_s = timeout_s
        self._vendor_key = vendor_key
        self._measurement = (bytes.fromhex(measurement) if isinstance(measurement, str)
                             else bytes(measurement))
        self._transport = None
        self._device_key = None
        self._open_connection()
        self.backend_name = f"server {self._address[0]}:{self._address[1]}"
        self._closed = False

    def _open_connection(self) -> None:
        """Connect, verify the attestation and open a session; remember the device."""
        transport = NetworkTransport(self._address, timeout_s=self._timeout_s)
        try:
            client = ChannelClient(transport.params, transport, measurement=self._measurement,
                                   vendor_key=self._vendor_key)
        except BaseException:
            transport.close()
            raise
        device_key = Report.from_bytes(transport.report_bytes).device_key
        if self._device_key is not None and device_key != self._device_key:
            transport.close()
            raise DeviceChangedError(
                "the server now runs another accelerator instance (new device key): its map is "
                "not the one this client used; connect anew with bolt.connect to use it")
        self._device_key = device_key
        self.params = transport.params
        self._transport, self._client = transport, client
        self._host = self._backend = None
        self._keys = {}
        self._master_key = None

    def reconnect(self) -> None:
        """A new connection and session to the same accelerator, after the old one failed.
        Raises :class:`~bolt.errors.DeviceChangedError` if the server restarted (its
        accelerator, and so its map, is another one)."""
        with self._lock:
            if self._transport is not None:
                self._transport.close()
            self._open_connection()
            self._closed = False

    def load(self, items: Mapping | Iterable[tuple], *, master_key: bytes | None = None) -> None:
        """Replace the whole shared map by a Setup with ``items`` (if the server relays it),
        under ``master_key`` (drawn here if omitted; it travels sealed) and a fresh salt."""
        from .crypto import master_key_or_new
        with self._lock:
            self._master_key = master_key_or_new(master_key)
            try:
                super().load(items)
            finally:
                self._master_key = None

    def _record(self, op, key, response) -> None:
        pass   # no key record: the other clients change the map too

    @property
    def device_key(self) -> bytes:
        """The attested X25519 public key of the accelerator this client talks to."""
        return self._device_key

    def __iter__(self):
        raise TypeError("a map shared through a server has no key list one client could know")

    def __len__(self):
        raise TypeError("a map shared through a server has no size one client could know")

    @property
    def trace(self):
        raise AttributeError("the host trace of a served map is recorded on the server")

    @property
    def host_memory(self):
        raise AttributeError("the host memory of a served map is on the server")

    @property
    def backend(self):
        raise AttributeError("the accelerator of a served map is behind the server")

    def __repr__(self) -> str:
        return f"<bolt.RemoteMap {self.backend_name}, {self.params.capacity} items at most>"

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._transport is not None:
                self._transport.close()


def connect(address: str | tuple[str, int], *, measurement: bytes | str, vendor_key=None,
            items: Mapping | Iterable[tuple] | None = None, timeout_s: float = 30.0) -> RemoteMap:
    """A client of the map a ``bolt serve`` server holds.

    Parameters
    ----------
    address : str or (host, port)
        ``"127.0.0.1:7407"``.
    measurement : bytes or hex str
        The attestation measurement the accelerator must report (``bolt serve`` prints it);
        any other raises :class:`~bolt.errors.AttestationError`.
    vendor_key : Ed25519PublicKey, optional
        The key reports must be signed with (the project's TEST FIXTURE key by default).
    items : mapping or iterable of pairs, optional
        Bulk-load these (a Setup that replaces the whole map for every client), if the server
        relays it; a new server's map needs one Setup (``items={}`` for an empty map) before
        any access.
    timeout_s : float
        Longest wait for any answer of the server; then :class:`~bolt.errors.BackendError`.
    """
    client = RemoteMap(address, measurement=measurement, vendor_key=vendor_key,
                       timeout_s=timeout_s)
    if items is not None:
        try:
            client.load(items)
        except BaseException:
            client.close()
            raise
    return client

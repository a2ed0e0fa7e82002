"""``bolt serve``: the untrusted host as a server that many clients reach over TCP.

The server owns the host memory and one accelerator device (the reference model or the RTL
simulation, each behind its sealed channel and security monitor). It relays what clients send
(attestation report requests, session requests, sealed command frames) to the device and the
answers back, one request at a time in arrival order, and sees nothing but public facts and
ciphertext: its logs hold client ids, message kinds, frame counts, lengths and timings only.

Networking is asyncio streams from the standard library: one event loop multiplexes the clients
with per-read timeouts, and every device call runs in one worker thread, so a slow RTL
simulation never stalls the loop and the device is never entered by two requests at once. A
request/answer protocol this small gains nothing from gRPC's code generation and HTTP/2 stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..channel.frames import FrameRun
from ..errors import BackendError, ChannelError
from ..params import Params
from ..wire import HEADER_BYTES, Kind, WireError, decode_length, encode, hello_body

__all__ = ["Server", "ServerConfig", "LocalServer", "start_local_server", "new_device",
           "JsonLogFormatter", "Recorder", "read_record"]

log = logging.getLogger("bolt.serve")


@dataclass(frozen=True)
class ServerConfig:
    """How the server treats its clients.

    Attributes
    ----------
    host, port
        Where to listen; 127.0.0.1 by default, port 0 picks a free one.
    max_clients
        Connections served at once; more are refused with an ERROR.
    queue_size
        Requests waiting for the device at most (each client has at most one outstanding).
    request_timeout_s
        Longest a client may take to send the rest of a message once it started, to take an
        answer, or to wait for a place in the queue.
    idle_timeout_s
        Longest a client may stay silent between requests before it is disconnected.
    reload
        Relay bulk loads (a Setup, which replaces the whole map for every client) after the
        first one. The host tells a Setup from an access by its frame count, a public fact.
    lifetime_s
        Stop by itself after this long (None: until a signal).
    record
        A file to write the operator's whole view to, as JSON lines: every message with its
        direction, client, kind, length and bytes (hex), and after each exchange the page
        trace it caused. Without it the page trace is dropped after each exchange, so a
        long-running server's memory stays bounded.
    device_thread
        Run device calls in a worker thread, so the event loop keeps serving the network
        meanwhile (for the RTL simulation, whose accesses take milliseconds); the reference
        model's accesses take tens of microseconds and run on the loop itself, which saves two
        thread switches an access.
    """

    host: str = "127.0.0.1"
    port: int = 0
    max_clients: int = 64
    queue_size: int = 64
    request_timeout_s: float = 30.0
    idle_timeout_s: float = 300.0
    reload: bool = False
    lifetime_s: float | None = None
    device_thread: bool = False
    record: str | os.PathLike | None = None


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, event and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"t": round(record.created, 6), "level": record.levelname.lower(),
                 "event": record.getMessage()}
        entry.update(getattr(record, "fields", {}))
        return json.dumps(entry)


def _log(level: int, event: str, **fields) -> None:
    if log.isEnabledFor(level):
        log.log(level, event, extra={"fields": fields})


class Server:
    """The relay between TCP clients and one device.

    Parameters
    ----------
    device
        ``report()``, ``open_session(key, session=)``, ``close_session(session)``,
        ``exchange(frames, session=)`` (see :mod:`bolt.channel`). A device whose
        ``open_session`` takes no ``session`` holds one session at a time: the server then
        lets one client hold it and answers another's session request with an ERROR.
    params : Params
        The device's public parameters.
    backend : str
        The device's name, told to clients.
    config : ServerConfig
    tap : callable, optional
        ``tap(direction, client, message)`` sees every message as it crosses the socket
        (``"in"`` or ``"out"``, header included): what an operator recording the traffic gets.
    """

    def __init__(self, device, params: Params, *, backend: str = "reference",
                 config: ServerConfig = ServerConfig(),
                 tap: Callable[[str, int, bytes], None] | None = None):
        self.device = device
        self.params = params
        self.config = config
        self.tap = tap
        self.address: tuple[str, int] | None = None
        self._hello = encode(Kind.HELLO, hello_body(params, backend, reload=config.reload))
        self._recorder = Recorder(config.record) if config.record is not None else None
        self._client_ids = itertools.count(1)
        self._clients = 0
        self._loads = 0
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bolt-device")
        self._queue: asyncio.Queue | None = None
        self._stopping: asyncio.Event | None = None
        self._handlers: set[asyncio.Task] = set()
        self._deadlines: dict[int, list] = {}     # client -> [deadline or None, its writer]
        self._timed_out: set[int] = set()
        self._sessions = "session" in inspect.signature(device.open_session).parameters
        self._session_holder: int | None = None   # one-session devices: the client holding it
        # The longest message a client may send: a whole Setup of N items if loads are relayed.
        setup_frames = params.capacity + params.setup_key_frames + 1
        self._longest_request = setup_frames * params.command_frame_bytes

    # -- the device, one request at a time -----------------------------------------------------

    async def _device_loop(self) -> None:
        loop = asyncio.get_running_loop()
        in_thread = self.config.device_thread
        while True:
            call, answer = await self._queue.get()
            if answer.cancelled():
                continue
            try:
                result = await loop.run_in_executor(self._worker, call) if in_thread else call()
            except Exception as error:   # the device's own error, passed to the client's task
                if not answer.done():
                    answer.set_exception(error)
            else:
                if not answer.done():
                    answer.set_result(result)

    async def _on_device(self, call: Callable[[], object]):
        """Queue ``call`` for the device and wait for its result (arrival order).

        A request that was queued runs even if its client goes away meanwhile: an access is
        never cut in half, so the map stays consistent.
        """
        answer = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((call, answer))
        except asyncio.QueueFull:
            raise WireError("the server is busy (its queue is full); try again later") from None
        return await asyncio.shield(answer)

    def _open_session(self, client: int, encapsulated_key: bytes) -> bytes:
        if self._sessions:
            return self.device.open_session(encapsulated_key, session=client)
        if self._session_holder not in (None, client):
            raise WireError("this accelerator holds one session at a time, and another client "
                            "holds it; try again later")
        nonce = self.device.open_session(encapsulated_key)
        self._session_holder = client
        return nonce

    def _close_session(self, client: int) -> None:
        if self._sessions:
            self.device.close_session(client)
        elif self._session_holder == client:
            self._session_holder = None

    # -- one client --------------------------------------------------------------------------------

    def _seen(self, direction: str, client: int, message: bytes) -> None:
        if self.tap is not None:
            self.tap(direction, client, message)
        if self._recorder is not None:
            self._recorder.message(direction, client, message)

    def _arm(self, client: int, seconds: float | None) -> None:
        """Give ``client`` until ``seconds`` from now (None: no limit) for what it does next."""
        entry = self._deadlines.get(client)
        if entry is not None:   # None: a client refused before it was registered
            entry[0] = None if seconds is None else asyncio.get_running_loop().time() + seconds

    async def _watchdog(self) -> None:
        """Disconnect every client past its deadline. One task for all clients: a timer per
        read would cost more than the read (it measurably slowed every access)."""
        config = self.config
        period = max(0.02, min(1.0, min(config.request_timeout_s, config.idle_timeout_s) / 4))
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            for client, entry in list(self._deadlines.items()):
                if entry[0] is not None and now > entry[0]:
                    entry[0] = None
                    self._timed_out.add(client)
                    entry[1].transport.abort()

    async def _write(self, client: int, writer: asyncio.StreamWriter, message: bytes) -> None:
        self._seen("out", client, message)
        writer.write(message)
        self._arm(client, self.config.request_timeout_s)
        await writer.drain()
        self._arm(client, None)

    async def _read(self, client: int, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        self._arm(client, self.config.idle_timeout_s)
        header = await reader.readexactly(HEADER_BYTES)
        kind, length = decode_length(header)
        if length > self._longest_request:
            raise WireError(f"a message of {length} bytes exceeds the longest request "
                            f"({self._longest_request})")
        self._arm(client, self.config.request_timeout_s)
        body = await reader.readexactly(length)
        self._arm(client, None)
        self._seen("in", client, header + body)
        return kind, body

    async def _serve_client(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        client = next(self._client_ids)
        peer = writer.get_extra_info("peername")
        started = time.perf_counter()
        requests = 0
        reason = "closed by the client"
        if self._clients >= self.config.max_clients:
            _log(logging.WARNING, "refused", client=client, reason="too many clients")
            with contextlib.suppress(Exception):
                await self._write(client, writer, encode(Kind.ERROR, b"too many clients"))
            writer.close()
            return
        self._clients += 1
        self._handlers.add(asyncio.current_task())
        self._deadlines[client] = [None, writer]
        _log(logging.INFO, "connect", client=client, peer=f"{peer[0]}:{peer[1]}",
             clients=self._clients)
        session_open = False
        try:
            await self._write(client, writer, self._hello)
            while True:
                kind, body = await self._read(client, reader)
                requests += 1
                if kind == Kind.REPORT:
                    report = await self._on_device(self.device.report)
                    await self._write(client, writer, encode(Kind.REPORT, report))
                elif kind == Kind.SESSION:
                    nonce = await self._on_device(lambda: self._open_session(client, body))
                    session_open = True
                    _log(logging.INFO, "session", client=client)
                    await self._write(client, writer, encode(Kind.SESSION, nonce))
                elif kind == Kind.EXCHANGE:
                    await self._exchange(client, writer, body)
                else:
                    raise WireError(f"unexpected message kind {kind}")
        except asyncio.CancelledError:
            # The server stops (serve() cancels its handlers): end quietly, as on a close.
            reason = "the server stops"
        except asyncio.IncompleteReadError as error:
            reason = "closed by the client" if not error.partial else "closed mid-message"
        except (WireError, ChannelError) as error:
            reason = str(error)
            with contextlib.suppress(Exception):
                await self._write(client, writer, encode(Kind.ERROR, reason.encode()))
        except (ConnectionError, OSError) as error:
            reason = f"connection lost: {type(error).__name__}"
        except BackendError as error:
            reason = "the device failed"
            _log(logging.ERROR, "device failed", client=client, error=type(error).__name__)
            with contextlib.suppress(Exception):
                await self._write(client, writer, encode(Kind.ERROR, b"the device failed"))
            self._stopping.set()
        finally:
            self._clients -= 1
            self._handlers.discard(asyncio.current_task())
            del self._deadlines[client]
            if client in self._timed_out:
                self._timed_out.discard(client)
                reason = "timed out"
            elif self._stopping.is_set():
                reason = "the server stops"
            elif session_open:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await self._on_device(lambda: self._close_session(client))
            writer.close()
            _log(logging.INFO, "disconnect", client=client, reason=reason, requests=requests,
                 seconds=round(time.perf_counter() - started, 3))

    async def _exchange(self, client: int, writer: asyncio.StreamWriter, body: bytes) -> None:
        size = self.params.command_frame_bytes
        count, rest = divmod(len(body), size)
        if rest or count == 0:
            raise WireError(f"an EXCHANGE of {len(body)} bytes is not whole frames of {size}")
        if count > 1:
            # A Setup (an access is one frame): it replaces the map for every client.
            if self._loads and not self.config.reload:
                raise WireError("this server relays only the first bulk load (start it with "
                                "--reload to allow more)")
            self._loads += 1
        frames = FrameRun(body, size) if count > 1 else [body]
        queued = time.perf_counter()
        timing = {}

        def run():
            timing["start"] = time.perf_counter()
            if self._sessions:
                responses = self.device.exchange(frames, session=client)
            elif self._session_holder != client:
                raise WireError("another client holds the accelerator's one session")
            else:
                responses = self.device.exchange(frames)
            trace = self.device.trace
            if self._recorder is not None:
                self._recorder.pages(client, trace)
            trace.clear()
            return responses

        responses = await self._on_device(run)
        done = time.perf_counter()
        await self._write(client, writer, encode(Kind.EXCHANGE, b"".join(responses)))
        _log(logging.DEBUG, "exchange", client=client, frames_in=count,
             bytes_in=len(body), frames_out=len(responses),
             bytes_out=sum(map(len, responses)),
             queue_ms=round((timing.get("start", done) - queued) * 1e3, 3),
             device_ms=round((done - timing.get("start", done)) * 1e3, 3))

    # -- lifetime ------------------------------------------------------------------------------------

    async def serve(self, ready: Callable[[tuple[str, int]], None] | None = None) -> None:
        """Serve until :meth:`stop`, a signal, the device failing or ``lifetime_s``."""
        self._queue = asyncio.Queue(self.config.queue_size)
        self._stopping = asyncio.Event()
        device_task = asyncio.create_task(self._device_loop())
        watchdog = asyncio.create_task(self._watchdog())
        server = await asyncio.start_server(self._serve_client, self.config.host,
                                            self.config.port, limit=1 << 16)
        self.address = server.sockets[0].getsockname()[:2]
        _log(logging.INFO, "listening", host=self.address[0], port=self.address[1],
             max_clients=self.config.max_clients, queue=self.config.queue_size)
        if ready is not None:
            ready(self.address)
        try:
            async with server, asyncio.timeout(self.config.lifetime_s):
                await self._stopping.wait()
        except TimeoutError:
            _log(logging.INFO, "lifetime over", seconds=self.config.lifetime_s)
        finally:
            # Close every connection now: a client waiting for an answer gets an error at once
            # instead of waiting for its timeout.
            self._stopping.set()
            handlers = list(self._handlers)
            for handler in handlers:
                handler.cancel()
            if handlers:
                await asyncio.wait(handlers, timeout=self.config.request_timeout_s)
            device_task.cancel()
            watchdog.cancel()
            self._worker.shutdown(wait=True)
            if self._recorder is not None:
                self._recorder.close()
            _log(logging.INFO, "stopped")

    def stop(self) -> None:
        """Ask :meth:`serve` to return (call from the event loop's thread)."""
        if self._stopping is not None:
            self._stopping.set()


class Recorder:
    """The operator's view, written as it happens (JSON lines; see ``ServerConfig.record``)."""

    def __init__(self, path: str | os.PathLike):
        self._file = open(path, "w", encoding="ascii")

    def message(self, direction: str, client: int, message: bytes) -> None:
        kind = Kind(message[HEADER_BYTES - 1]).name if len(message) >= HEADER_BYTES else None
        self._file.write(json.dumps({"message": {
            "direction": direction, "client": client, "kind": kind, "length": len(message),
            "data": message.hex()}}) + "\n")

    def pages(self, client: int, trace) -> None:
        self._file.write(json.dumps({"pages": {
            "client": client, "events": [list(event) for event in trace]}}) + "\n")

    def close(self) -> None:
        self._file.close()


def read_record(path: str | os.PathLike) -> tuple[list[dict], list[dict]]:
    """``(messages, page traces)`` of a recording, each in order."""
    messages, pages = [], []
    with open(path, encoding="ascii") as lines:
        for line in lines:
            entry = json.loads(line)
            if "message" in entry:
                entry["message"]["data"] = bytes.fromhex(entry["message"]["data"])
                messages.append(entry["message"])
            else:
                pages.append(entry["pages"])
    return messages, pages


# -- devices -------------------------------------------------------------------------------------

def new_device(backend: str, params: Params, **options):
    """The device behind ``bolt serve``: ``"reference"`` or ``"rtl"``, behind its channel."""
    from ..map import DEVICES
    if backend not in DEVICES:
        raise BackendError(f"the {backend} backend has no sealed channel yet; "
                           f"choose one of {sorted(DEVICES)}")
    return DEVICES[backend][0](params, **options)


def device_measurement(backend: str, params: Params, device) -> bytes:
    from ..map import DEVICES
    return DEVICES[backend][1](params, device)


def run(backend: str, params: Params, config: ServerConfig, *,
        announce: Callable[[dict], None]) -> None:
    """Build the device, serve until stopped; ``announce`` gets the address and measurement
    once the server listens (``bolt serve`` prints it as one JSON line)."""
    if backend == "rtl":
        config = dataclasses.replace(config, device_thread=True)
    device = new_device(backend, params)
    try:
        server = Server(device, params, backend=backend, config=config)
        measurement = device_measurement(backend, params, device)

        async def main():
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, server.stop)
            await server.serve(lambda address: announce(
                {"address": f"{address[0]}:{address[1]}", "backend": backend,
                 "measurement": measurement.hex(), "pid": os.getpid()}))

        asyncio.run(main())
    finally:
        close = getattr(device, "close", None)
        if close is not None:
            close()


# -- a server in a child process (bolt loadtest, tests) --------------------------------------------

@dataclass
class LocalServer:
    """A ``bolt serve`` child process on 127.0.0.1 and what it announced."""

    process: subprocess.Popen
    address: str
    measurement: bytes

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not stop within ``timeout_s``."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process.stdout.close()

    def kill(self) -> None:
        """SIGKILL: the server dies at once, as in a crash."""
        self.process.kill()
        self.process.wait()

    def __enter__(self) -> "LocalServer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def start_local_server(params: Params, *, backend: str = "reference", lifetime_s: float = 600,
                       port: int = 0, log_path: str | os.PathLike | None = None,
                       options: tuple = (), start_timeout_s: float = 120.0) -> LocalServer:
    """Start ``bolt serve`` for ``params`` on 127.0.0.1 (``port``, 0: a free one) in a child
    process that stops by itself after ``lifetime_s``; wait until it listens."""
    arguments = [f"--{name.replace('_', '-')}={value}"
                 for name, value in params.arguments().items()]
    command = [sys.executable, "-m", "bolt.cli", "serve", "--backend", backend, "--port", str(port),
               "--lifetime", str(lifetime_s), *arguments, *options]
    log_file = open(log_path, "wb") if log_path is not None else subprocess.DEVNULL
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log_file,
                                   stdin=subprocess.DEVNULL)
    finally:
        if log_path is not None:
            log_file.close()
    deadline = time.monotonic() + start_timeout_s
    line = b""
    os.set_blocking(process.stdout.fileno(), False)
    while not line.endswith(b"\n"):
        if process.poll() is not None:
            raise BackendError(f"bolt serve exited (code {process.returncode}) before it "
                               "listened")
        if time.monotonic() > deadline:
            process.kill()
            raise BackendError(f"bolt serve did not listen within {start_timeout_s} s")
        chunk = process.stdout.read()
        if chunk:
            line += chunk
        else:
            time.sleep(0.02)
    announced = json.loads(line.decode())
    return LocalServer(process, announced["address"], bytes.fromhex(announced["measurement"]))

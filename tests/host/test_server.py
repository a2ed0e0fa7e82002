"""``bolt serve`` and ``bolt.connect``: many clients, one map, and what the operator sees.

Every server here listens on 127.0.0.1 only and stops by itself (``tests/host/serving.py``).
"""

import io
import json
import logging
import socket
import threading
import time

import pytest

import bolt
from bolt.host.server import JsonLogFormatter, read_record
from bolt.params import Params
from bolt.trace import TraceEvent, access_pages
from bolt.tools.loadtest import run_clients
from bolt.wire import HEADER_BYTES, Kind, WireError, decode_length, encode

from tests.host.serving import served

PARAMS = Params(capacity=1024, key_size=16, value_size=32, load=4, hbm_fraction=0.25)


def test_clients_share_one_map():
    with served(PARAMS) as (_, address, measurement):
        first = bolt.connect(address, measurement=measurement, items={b"seed": b"planted"})
        second = bolt.connect(address, measurement=measurement)
        assert second[b"seed"] == b"planted"
        first["alice"] = b"secret"
        assert second.get("alice") == b"secret" and "alice" in second
        assert second.put("alice", b"new") == b"secret"
        del first["alice"]
        assert "alice" not in second and second.get("alice") is None
        with pytest.raises(KeyError):
            second["alice"]
        with pytest.raises(bolt.KeySizeError):
            second[b"k" * 17] = b"v"           # refused before anything is sent
        with pytest.raises(TypeError):
            len(second)                        # no client knows the shared map's size
        assert first.device_key == second.device_key
        first.close(), second.close()


def test_many_clients_at_once_get_every_answer_right():
    with served(PARAMS) as (server, address, measurement):
        bolt.connect(address, measurement=measurement, items={}).close()
        result = run_clients(lambda n: bolt.connect(address, measurement=measurement),
                             close_client=lambda client: client.close(), clients=4, ops=500,
                             keys_per_client=60, key_size=16, value_size=32, seed=5,
                             progress=False)
        assert len(server.device.trace) == 0      # not kept without --record: memory bounded
    assert result.errors == [] and result.wrong == 0 and result.ops == 2000


def test_a_wrong_measurement_is_refused():
    with served(PARAMS) as (_, address, measurement):
        wrong = bytes(32)
        with pytest.raises(bolt.AttestationError):
            bolt.connect(address, measurement=wrong)


def test_access_before_any_setup_is_refused():
    with served(PARAMS) as (_, address, measurement):
        client = bolt.connect(address, measurement=measurement)
        with pytest.raises(bolt.NotSetUpError):
            client[b"k"] = b"v"
        client.close()


def test_only_the_first_bulk_load_is_relayed_unless_reload():
    with served(PARAMS) as (_, address, measurement):
        keeper = bolt.connect(address, measurement=measurement, items={b"a": b"1"})
        other = bolt.connect(address, measurement=measurement)
        with pytest.raises(WireError, match="--reload"):
            other.load({b"b": b"2"})
        assert keeper[b"a"] == b"1"            # the refused load changed nothing
        keeper.close(), other.close()
    with served(PARAMS, reload=True) as (_, address, measurement):
        client = bolt.connect(address, measurement=measurement, items={b"a": b"1"})
        client.load({b"b": b"2"})
        assert client.get(b"a") is None and client[b"b"] == b"2"
        client.close()


def _once_free(connect, within_s=10):
    """``connect()`` once the server has seen a client leave (it learns it asynchronously)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return connect()
        except WireError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _raw(address):
    host, port = address.split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    kind, length = decode_length(sock.recv(HEADER_BYTES, socket.MSG_WAITALL))
    assert kind == Kind.HELLO
    sock.recv(length, socket.MSG_WAITALL)
    return sock


def _closed_by_server(sock, within_s):
    """True if the server closes the connection (after any ERROR) within ``within_s``."""
    sock.settimeout(within_s)
    try:
        while sock.recv(4096):
            pass
        return True
    except socket.timeout:
        return False


def test_a_client_stalling_mid_message_is_disconnected_and_changes_nothing():
    with served(PARAMS, request_timeout_s=0.5) as (_, address, measurement):
        client = bolt.connect(address, measurement=measurement, items={b"k": b"v"})
        stalled = _raw(address)
        stalled.sendall(encode(Kind.EXCHANGE, bytes(PARAMS.command_frame_bytes))[:20])
        started = time.monotonic()
        assert _closed_by_server(stalled, within_s=10)
        assert time.monotonic() - started < 5
        assert client[b"k"] == b"v"            # others were served meanwhile, map intact
        client.close()


def test_an_idle_client_is_disconnected():
    with served(PARAMS, idle_timeout_s=0.3) as (_, address, _measurement):
        idle = _raw(address)
        assert _closed_by_server(idle, within_s=10)


def test_malformed_requests_end_only_that_connection():
    with served(PARAMS) as (_, address, measurement):
        client = bolt.connect(address, measurement=measurement, items={b"k": b"v"})
        for bad in (encode(Kind.EXCHANGE, bytes(PARAMS.command_frame_bytes - 1)),   # no frame
                    b"\x00\x00\x00\x01\x77",                                      # bad kind
                    (1 << 31).to_bytes(4, "big") + bytes((Kind.EXCHANGE,))):        # too long
            sock = _raw(address)
            sock.sendall(bad)
            assert _closed_by_server(sock, within_s=10)
        assert client[b"k"] == b"v"
        client.close()


def test_too_many_clients_are_refused():
    with served(PARAMS, max_clients=2) as (_, address, measurement):
        kept = [bolt.connect(address, measurement=measurement) for _ in range(2)]
        with pytest.raises(WireError, match="too many clients"):
            bolt.connect(address, measurement=measurement)
        kept[0].close()
        _once_free(lambda: bolt.connect(address, measurement=measurement)).close()
        kept[1].close()


def test_a_tampered_frame_ends_only_its_own_session():
    """The server (the host) alters one client's frame: that client gets a ChannelError and
    can open a new session; the other client's session goes on."""
    with served(PARAMS) as (server, address, measurement):
        victim = bolt.connect(address, measurement=measurement, items={b"k": b"v"})
        bystander = bolt.connect(address, measurement=measurement)
        exchange = server.device.exchange

        def tamper(frames, session=0):
            frames = [bytes([frames[0][0] ^ 1]) + frames[0][1:]] + list(frames[1:])
            return exchange(frames, session=session)

        server.device.exchange = tamper
        with pytest.raises(bolt.ChannelError):
            victim[b"k"]
        server.device.exchange = exchange
        assert bystander[b"k"] == b"v"
        victim.new_session()
        assert victim[b"k"] == b"v"
        victim.close(), bystander.close()


def test_the_operator_sees_only_fixed_size_frames_and_the_page_trace(tmp_path):
    """Record every byte crossing the server's sockets (the server's own recording, and a tap
    on its sockets), the page trace and the host memory while clients work; find no key or
    value byte, only frames of the two fixed lengths and whole-page accesses."""
    traffic = []
    lock = threading.Lock()

    def tap(direction, client, message):
        with lock:
            traffic.append((direction, client, message))

    keys = [b"KEY-%02d-%s" % (i, b"q" * 8) for i in range(24)]
    values = [b"VALUE-%02d-" % i + b"z" * 20 for i in range(24)]
    logs = io.StringIO()
    handler = logging.StreamHandler(logs)
    handler.setFormatter(JsonLogFormatter())
    logger = logging.getLogger("bolt.serve")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    record = tmp_path / "view.jsonl"
    with served(PARAMS, tap=tap, record=record) as (server, address, measurement):
        loader = bolt.connect(address, measurement=measurement, items=dict(zip(keys, values)))
        workers = [bolt.connect(address, measurement=measurement) for _ in range(2)]
        memory_snapshots = [server.device.host_memory.snapshot()]

        def work(client, start):
            for i in range(start, len(keys), 2):
                assert client[keys[i]] == values[i]
                client[keys[i]] = values[(i + 1) % len(values)]
                del client[keys[i]]
                client.get(keys[i])

        threads = [threading.Thread(target=work, args=(c, n)) for n, c in enumerate(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        memory_snapshots.append(server.device.host_memory.snapshot())
        for client in (loader, *workers):
            client.close()
    messages, page_traces = read_record(record)
    assert [(m["direction"], m["client"], m["data"]) for m in messages] == traffic
    logger.removeHandler(handler)
    logger.setLevel(level)
    # The logs: one JSON object a line, an entry per exchange, lengths and timings only.
    entries = [json.loads(line) for line in logs.getvalue().splitlines()]
    exchanges = [e for e in entries if e["event"] == "exchange"]
    assert len(exchanges) == 1 + 4 * len(keys)
    assert {e["bytes_in"] for e in exchanges[1:]} == {PARAMS.command_frame_bytes}
    assert all(set(e) <= {"t", "level", "event", "client", "peer", "clients", "frames_in",
                          "bytes_in", "frames_out", "bytes_out", "queue_ms", "device_ms",
                          "reason", "requests", "seconds", "host", "port", "max_clients",
                          "queue"} for e in entries)
    recorded = b"".join(message for _, _, message in traffic) + b"".join(memory_snapshots)
    recorded += logs.getvalue().encode()
    for secret in keys + values:
        assert secret not in recorded
        assert secret[:8] not in recorded
    # Messages: HELLO (public parameters), REPORT, SESSION, then whole fixed-size frames.
    lengths = {"in": set(), "out": set()}
    for direction, _, message in traffic:
        kind, length = decode_length(message[:HEADER_BYTES])
        assert len(message) == HEADER_BYTES + length
        if kind == Kind.EXCHANGE:
            size = (PARAMS.command_frame_bytes if direction == "in"
                    else PARAMS.response_frame_bytes)
            assert length % size == 0
            lengths[direction].add(length if length == size else "setup")
    assert lengths == {"in": {PARAMS.command_frame_bytes, "setup"},
                       "out": {PARAMS.response_frame_bytes}}
    # The page trace: whole pages, 0, 1 or 2 per op, the reads then the writes.
    stride = PARAMS.page_stride
    assert len(page_traces) == 1 + 4 * len(keys)
    setup, accesses = page_traces[0]["events"], [t["events"] for t in page_traces[1:]]
    assert [kind for kind, _, _ in setup] == ["write"] * PARAMS.host_bins
    for events in [setup] + accesses:
        assert all(length == stride and address % stride == 0 for _, address, length in events)
    for events in accesses:
        assert access_pages([TraceEvent(*event) for event in events], stride) is not None
    assert {len(events) for events in accesses} == {0, 2, 4}


class OneSessionDevice:
    """The reference device behind an accelerator with one session slot (as a channel without a
    session table would be)."""

    def __init__(self, params):
        from bolt.channel import ReferenceDevice
        self.inner = ReferenceDevice(params)

    def report(self):
        return self.inner.report()

    def open_session(self, encapsulated_key):
        return self.inner.open_session(encapsulated_key)

    def exchange(self, frames):
        return self.inner.exchange(frames)

    @property
    def trace(self):
        return self.inner.trace


def test_a_one_session_accelerator_serves_one_client_at_a_time():
    with served(PARAMS, device=OneSessionDevice(PARAMS)) as (_, address, measurement):
        holder = bolt.connect(address, measurement=measurement, items={b"k": b"v"})
        with pytest.raises(WireError, match="one session"):
            bolt.connect(address, measurement=measurement)
        assert holder[b"k"] == b"v"          # the refused client disturbed nothing
        holder.close()
        successor = _once_free(lambda: bolt.connect(address, measurement=measurement))
        assert successor[b"k"] == b"v"
        successor.close()

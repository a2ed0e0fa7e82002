"""A server that dies, a client killed mid-run, a server restarted under a client.

The servers are ``bolt serve`` child processes on 127.0.0.1 that stop by themselves.
"""

import subprocess
import sys
import time

import pytest

import bolt
from bolt.host.server import start_local_server
from bolt.tools.loadtest import run_clients

from tests.host.test_server import PARAMS

LIFETIME_S = 120


def test_a_dead_server_gives_a_clear_error_and_a_restart_is_detected():
    first = start_local_server(PARAMS, lifetime_s=LIFETIME_S)
    try:
        client = bolt.connect(first.address, measurement=first.measurement, items={},
                              timeout_s=10)
        client[b"k"] = b"before"
        first.kill()
        started = time.monotonic()
        for _ in range(3):   # every access fails, none returns a value
            with pytest.raises(bolt.BackendError):
                client.get(b"k")
        assert time.monotonic() - started < 10
        port = int(first.address.rsplit(":", 1)[1])
        second = start_local_server(PARAMS, lifetime_s=LIFETIME_S, port=port)
    finally:
        first.stop()
    try:
        # The same address now serves another accelerator: the old client refuses it.
        with pytest.raises(bolt.DeviceChangedError):
            client.reconnect()
        with pytest.raises(bolt.BackendError):
            client.get(b"k")
        # A new client attests the new accelerator, whose map has had no Setup.
        fresh = bolt.connect(second.address, measurement=second.measurement, timeout_s=10)
        assert fresh.device_key != client.device_key
        with pytest.raises(bolt.NotSetUpError):
            fresh.get(b"k")
        fresh.close()
    finally:
        second.stop()


_WRITER = """
import sys, bolt
client = bolt.connect(sys.argv[1], measurement=bytes.fromhex(sys.argv[2]), timeout_s=10)
for count in range(1, 100000):
    client[b"w%d" % (count % 16)] = b"%d" % count
    print(count, flush=True)
"""


def test_a_client_killed_mid_run_leaves_the_map_consistent():
    with start_local_server(PARAMS, lifetime_s=LIFETIME_S) as server:
        bolt.connect(server.address, measurement=server.measurement, items={}).close()
        writer = subprocess.Popen([sys.executable, "-c", _WRITER, server.address,
                                   server.measurement.hex()], stdout=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL)
        acknowledged = 0
        deadline = time.monotonic() + 60
        try:
            while acknowledged < 300 and time.monotonic() < deadline:
                line = writer.stdout.readline()
                if not line:
                    break
                acknowledged = int(line)
        finally:
            writer.kill()
            writer.wait()
            # What it acknowledged before it died but this test had not read yet.
            for line in writer.stdout.read().split():
                acknowledged = int(line)
            writer.stdout.close()
        assert acknowledged >= 300
        # Every key holds its last acknowledged value, or the one of the single PUT that may
        # have been in flight when the writer died; nothing else.
        client = bolt.connect(server.address, measurement=server.measurement)
        last = {}
        for count in range(1, acknowledged + 1):
            last[b"w%d" % (count % 16)] = b"%d" % count
        in_flight = acknowledged + 1
        for key, value in last.items():
            found = client[key]
            assert found == value or (key == b"w%d" % (in_flight % 16)
                                      and found == b"%d" % in_flight)
        client.close()
        # And the server serves the next clients right.
        result = run_clients(lambda n: bolt.connect(server.address,
                                                    measurement=server.measurement),
                             close_client=lambda c: c.close(), clients=2, ops=300,
                             keys_per_client=40, key_size=16, value_size=32, progress=False)
        assert result.errors == [] and result.wrong == 0


def test_a_server_at_the_end_of_its_lifetime_stops_and_its_clients_learn_it_at_once():
    server = start_local_server(PARAMS, lifetime_s=2)
    try:
        client = bolt.connect(server.address, measurement=server.measurement, items={},
                              timeout_s=60)
        client[b"k"] = b"v"
        server.process.wait(30)          # stops by itself, with a client still connected
        started = time.monotonic()
        with pytest.raises(bolt.BackendError, match="closed"):
            client[b"k"]
        assert time.monotonic() - started < 5   # not the client's 60 s timeout
    finally:
        server.stop()

"""The load test's checker, and one bolt.Map shared by threads (every answer checked)."""

import sys
import threading

import pytest

import bolt
from bolt.tools.loadtest import client_keys, run_clients


@pytest.fixture
def busy_switching():
    """Let threads switch every microsecond, so an unprotected map would interleave accesses."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_threads_sharing_one_map_get_every_answer_right(busy_switching):
    m = bolt.Map(capacity=4096, key_size=16, value_size=32)
    result = run_clients(lambda n: m, clients=2, ops=4000, keys_per_client=300, key_size=16,
                         value_size=32, seed=3, progress=False)
    assert result.errors == []
    assert result.wrong == 0
    assert result.ops == 2 * 4000 and len(result.latencies) == result.ops
    # The two key spaces are both in the map, and nothing else is.
    keys = set(m)
    assert keys and all(key.split(b".")[1] in (b"0", b"1") for key in keys)


def test_close_and_load_wait_for_an_access_in_flight():
    m = bolt.Map(capacity=256, key_size=8, value_size=16)
    entered, release = threading.Event(), threading.Event()
    access = m.backend.access

    def slow_access(*args):
        entered.set()
        release.wait(5)
        return access(*args)

    m.backend.access = slow_access
    writer = threading.Thread(target=m.__setitem__, args=(b"k", b"v"))
    writer.start()
    entered.wait(5)
    closer = threading.Thread(target=m.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive(), "close() did not wait for the access in flight"
    release.set()
    writer.join(5)
    closer.join(5)
    with pytest.raises(bolt.BackendError, match="closed"):
        m[b"k"]


class _StaleMap(dict):
    """A faulty map: every 50th PUT is lost."""

    def __init__(self):
        super().__init__()
        self.puts = 0

    def put(self, key, value):
        self.puts += 1
        old = self.get(key)
        if self.puts % 50:
            self[key] = value
        return old


def test_the_checker_counts_wrong_answers():
    result = run_clients(lambda n: _StaleMap(), clients=2, ops=2000, keys_per_client=50,
                         key_size=16, value_size=16, seed=1, progress=False)
    assert result.errors == []
    assert result.wrong > 0


def test_keys_that_do_not_fit_are_refused():
    with pytest.raises(ValueError, match="key_size"):
        client_keys("ab12", 3, 100000, key_size=8)


def test_bolt_loadtest_against_a_local_server():
    import json

    from click.testing import CliRunner

    from bolt.cli.loadtest import command

    result = CliRunner().invoke(command, ["--clients", "2", "--ops", "200", "-N", "1024",
                                          "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["clients"] == 2 and summary["ops"] == 400
    assert summary["wrong"] == 0 and summary["errors"] == 0
    assert summary["where"].startswith("local reference server 127.0.0.1:")

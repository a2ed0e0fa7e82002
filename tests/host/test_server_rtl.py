"""bolt serve --backend rtl: two clients, each with its own session, on the one simulated
accelerator (its key slot reloaded by the monitor as they alternate). 127.0.0.1 only."""

import pytest

import bolt
from bolt.host.server import start_local_server
from bolt.params import Params
from bolt.tools.loadtest import run_clients

pytestmark = pytest.mark.rtl

#: The parameters of tests/sim/test_channel.py, so the sealed design is built once.
PARAMS = Params(capacity=1024, key_size=16, value_size=8, load=8, hbm_fraction=0.2)


def test_two_clients_share_the_rtl_accelerator():
    with start_local_server(PARAMS, backend="rtl", lifetime_s=900,
                            start_timeout_s=900) as server:
        first = bolt.connect(server.address, measurement=server.measurement,
                             items={b"shared": b"both"}, timeout_s=300)
        second = bolt.connect(server.address, measurement=server.measurement, timeout_s=300)
        assert second[b"shared"] == b"both"
        first[b"a"] = b"1"
        second[b"b"] = b"2"
        assert (first[b"b"], second[b"a"]) == (b"2", b"1")
        first.close(), second.close()
        result = run_clients(lambda n: bolt.connect(server.address,
                                                    measurement=server.measurement,
                                                    timeout_s=300),
                             close_client=lambda c: c.close(), clients=2, ops=40,
                             keys_per_client=10, key_size=16, value_size=8, progress=False)
        assert result.errors == [] and result.wrong == 0

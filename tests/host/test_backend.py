"""What only the RTL backend has: cycle statistics and the latency projection, its lifetime
(close, a dead simulator, a failed build) and ``bolt sim``. What every backend must do is in
``test_conformance.py``."""

import os
import signal
import time

import pytest

import bolt

from tests.conftest import MASTER_KEY, unique_salt
from tests.core.test_conformance import PARAMS

PARAMS_PAGE_BEATS = bolt.Params(**PARAMS).page_beats

pytestmark = pytest.mark.rtl


def test_stats_and_projected_latency():
    # Without the sealed channel: the core's answers carry the cycle stamps.
    with bolt.Map(**PARAMS, master_key=MASTER_KEY, unsafe_test_salt=unique_salt(), backend="rtl",
                  channel=False, clock_hz=250e6, host_round_trip_s=2e-6,
                  host_bandwidth=8e9) as m:
        for i in range(40):
            m[b"k%d" % i] = b"v"
        for i in range(40):
            assert m[b"k%d" % i] == b"v"
        stats = m.stats
        assert len(stats.cycles) == len(stats.reads) == 80 and stats.setup_cycles > 0
        assert [len(events) // 2 for events in m.trace.ops()][-80:] == stats.reads
        by_touches = {}
        for cycles, reads in zip(stats.cycles, stats.reads):
            by_touches.setdefault(reads, []).append(cycles)
        # More host touches take no less time to the answer.
        means = [sum(c) / len(c) for _, c in sorted(by_touches.items())]
        assert means == sorted(means) and len(means) >= 2
        summary = stats.summary()
        assert summary["accesses"] == 80 and summary["clock (MHz)"] == 250
        # Every access with a page read has its stamps in order: reads, data, response.
        for total, reads, reads_at, data_at, idle_at in zip(
                stats.cycles, stats.reads, stats.reads_at, stats.data_at, stats.idle_at):
            assert (0 < reads_at < data_at < total) if reads else reads_at == data_at == 0
            assert idle_at > total
        one = stats.projection(1)
        assert summary["1 in flight: mean latency (us)"] == one["mean latency (us)"]
        best = stats.projection(None)
        assert best["throughput (accesses/s)"] >= one["throughput (accesses/s)"]


def _phases(simulated_link: bool):
    with bolt.Map(**PARAMS, master_key=MASTER_KEY, unsafe_test_salt=unique_salt(), backend="rtl",
                  channel=False, simulated_link=simulated_link) as m:
        for i in range(30):
            m[b"k%d" % i] = b"v%d" % i
        assert all(m[b"k%d" % i] == b"v%d" % i for i in range(30))
        stats = m.stats
        link = stats.link
        # Simulated as the link, a page's last beat comes at least a round trip and its
        # bytes' time on the link after the reads.
        least = link.cycles(link.round_trip_s) + link.cycles(
            (PARAMS_PAGE_BEATS - 1) * 64 / link.bandwidth) if simulated_link else 0
        for reads, reads_at, data_at, ready_at in zip(stats.reads, stats.reads_at,
                                                      stats.data_at, stats.ready_at):
            assert data_at - reads_at >= least if reads else reads_at == data_at == 0
            # The quickest host's pages are in before the HBM reads end, a real link's after.
            if reads:
                assert (data_at > ready_at) == simulated_link
        return min(reads_at for reads, reads_at in zip(stats.reads, stats.reads_at) if reads), \
            stats.phases()


def test_a_simulated_link_hides_the_on_chip_work_of_its_round_trip():
    # The gather, the decisions and the flushes' frame reads run while the pages travel: they
    # take the same cycles whatever the host, and the front does not change (but for a cycle
    # per DRBG word a draw rejects, hence the shortest front of each run). After a real link's
    # last page beat the back is the decryption's tail; after the quickest host's pages, long
    # decrypted by the end of the HBM reads, only the take is left.
    quick_front, quick = _phases(simulated_link=False)
    slow_front, slow = _phases(simulated_link=True)
    assert quick_front == slow_front
    for t in (1, 2):
        assert quick.hbm_reads[t] == slow.hbm_reads[t] > 0
        assert 0 < quick.back[t] < slow.back[t]
    with pytest.raises(ValueError, match="bytes a cycle"):
        bolt.Map(**PARAMS, backend="rtl", channel=False, simulated_link=True,
                 host_bandwidth=1e15)


def _stamped_run(channel: bool):
    with bolt.Map(**PARAMS, master_key=MASTER_KEY, unsafe_test_salt=unique_salt(), backend="rtl",
                  channel=channel) as m:
        for i in range(30):
            m[b"k%d" % i] = b"v%d" % i
        assert all(m[b"k%d" % i] == b"v%d" % i for i in range(30))
        stats = m.stats
        assert len(stats.cycles) == 60
        for total, reads, reads_at, data_at, idle_at, ready_at in zip(
                stats.cycles, stats.reads, stats.reads_at, stats.data_at, stats.idle_at,
                stats.ready_at):
            assert (0 < reads_at < data_at < total and reads_at < ready_at < total) if reads \
                else reads_at == data_at == ready_at == 0
            assert idle_at > total
        front = min(at for at, reads in zip(stats.reads_at, stats.reads) if reads)
        return front, stats.phases(), stats.summary()


def test_through_the_channel_the_phases_hold_its_opening_and_sealing():
    # The sealed accelerator's measurement port carries the core's stamps, counted from each
    # frame's acceptance: the frame's opening in the prelude (before the front, off the HBM
    # port), its sealing after the core's response (beside the tail), and the same HBM reads,
    # back and tail, so the same cycles on the HBM port.
    plain_front, plain, _ = _stamped_run(channel=False)
    sealed_front, sealed, summary = _stamped_run(channel=True)
    p = bolt.Params(**PARAMS)

    def blocks(plaintext_bytes):
        return -(-plaintext_bytes // 16)

    def gcm_pass(plaintext_bytes):      # blocks + 15 cycles (hdl/channel.py)
        return blocks(plaintext_bytes) + 15
    assert sealed_front - plain_front >= gcm_pass(p.command_plaintext_bytes)
    assert sealed.prelude - plain.prelude >= gcm_pass(p.command_plaintext_bytes)
    assert sealed.front == pytest.approx(plain.front, abs=0.5)
    # The response's pass begins while the core runs: after the response only its data
    # groups, the tag and the frame's offer remain, less than a whole pass.
    assert plain.sealing == 0
    assert blocks(p.response_plaintext_bytes) < sealed.sealing < gcm_pass(
        p.response_plaintext_bytes)
    for t in (1, 2):
        assert sealed.hbm_reads[t] == plain.hbm_reads[t] > 0
        assert sealed.back[t] == pytest.approx(plain.back[t], abs=0.5)
        assert sealed.tail[t] == pytest.approx(plain.tail[t], abs=0.5)
        assert sealed.port_cycles(t) == pytest.approx(plain.port_cycles(t), abs=1)
    assert summary["sealing cycles (response to answer, beside the tail)"] == sealed.sealing
    assert summary["HBM port cap (accesses/s)"] > 0


def test_close_stops_the_simulator_and_the_map_refuses_work():
    m = bolt.Map(**PARAMS, master_key=MASTER_KEY, backend="rtl")
    process = m.backend._process
    m[b"k"] = b"v"
    m.close()
    assert process.poll() is not None
    with pytest.raises(bolt.BackendError):
        m[b"k"]
    m.close()  # closing twice is harmless


def test_a_dead_simulator_is_a_clear_error_not_a_hang():
    m = bolt.Map(**PARAMS, master_key=MASTER_KEY, backend="rtl", timeout_s=20)
    m[b"k"] = b"v"
    os.killpg(m.backend._process.pid, signal.SIGKILL)
    start = time.monotonic()
    with pytest.raises(bolt.BackendError, match="simulator"):
        m[b"k"]
    assert time.monotonic() - start < 20
    m.close()


def test_a_failed_build_is_a_clear_error(monkeypatch):
    import bolt.sim.verilator

    def broken(*args, **kwargs):
        raise RuntimeError("Verilator build of bolt_accelerator failed: %Error: no space")

    monkeypatch.setattr(bolt.sim.verilator, "build", broken)
    with pytest.raises(bolt.BackendError, match="could not build the accelerator"):
        bolt.Map(**PARAMS, backend="rtl")


def test_bolt_sim_prints_cycles_and_projected_latency():
    from click.testing import CliRunner

    from bolt.cli import main

    result = CliRunner().invoke(main, [
        "sim", "-N", str(PARAMS["capacity"]), "-V", str(PARAMS["value_size"]), "--ops", "30",
        "--workload", "uniform", "--setup-items", "5", "--no-progress",
        "--no-profile-guided"])    # the suite's build, not one more (tests/sim covers that kind)
    assert result.exit_code == 0, result.output
    rows = dict(line.rsplit(None, 1) for line in result.output.splitlines()[2:]
                if line.strip() and not line.startswith(("mean cycles by", "back cycles", "tail cycles")))
    assert int(rows["accesses"]) == 30
    assert int(rows["setup items"]) == 5      # of the workload's N/2: a short Setup on request
    assert float(rows["simulation CPU per access (ms)"]) > 0   # the simulator's process found
    for depth in ("1 in flight", "best in flight"):
        mean = float(rows[f"{depth}: mean latency (us)"].replace(",", ""))
        assert 0 < mean <= float(rows[f"{depth}: p99 latency (us)"].replace(",", ""))


def test_build_cache_is_shared_by_every_interpreter_path(monkeypatch):
    """`bolt` runs as …/python3 and `python -m pytest` as …/python: both must find the same
    build, so neither compiles the accelerator again."""
    import sys

    from bolt.sim import verilator

    keys = set()
    for executable in ("/venv/bin/python", "/venv/bin/python3", sys.executable):
        monkeypatch.setattr(sys, "executable", executable)
        keys.add(verilator._versions())
        assert executable in verilator._make_overrides()   # make still runs this interpreter
    assert len(keys) == 1


def test_build_cache_is_not_shared_across_cocotb_installations(monkeypatch):
    """A build links the VPI library of the cocotb that made it: another environment (a CI
    clone's, or one since deleted) must build its own."""
    import cocotb_tools.config

    from bolt.sim import verilator

    here = verilator._versions()
    monkeypatch.setattr(cocotb_tools.config, "libs_dir", "/elsewhere/cocotb/libs")
    assert verilator._versions() != here


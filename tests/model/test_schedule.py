"""The public schedule of accesses in flight (bolt.model.schedule) and the projection that
reads it (RtlStats)."""

import random

import pytest

from bolt.host.backend import RtlStats
from bolt.model.schedule import AccessPhases, HostLink, best_depth, project, schedule

LINK = HostLink(clock_hz=300e6, round_trip_s=1e-6, bandwidth=12e9)
PAGE = 1200                                  # 0.1 us on the link: 30 cycles
PHASES = AccessPhases(front=60, back=(120, 100, 160), tail=(40, 50, 70), hbm_reads=(30, 80, 120),
                      prelude=20, sealing=15)


def _touches(n, seed):
    rng = random.Random(seed)
    return [rng.choice((0, 1, 1, 2, 2, 2)) for _ in range(n)]


def test_times_depend_only_on_arrivals_and_touch_counts():
    touches = _touches(200, 1)
    arrivals = sorted(random.Random(2).uniform(0, 40000) for _ in touches)
    rng = random.Random(3)
    runs = []
    for _ in range(2):   # other pages, same public data: the same times
        pages = [tuple(rng.randrange(8) for _ in range(t)) for t in touches]
        run = schedule(arrivals, touches, pages, PHASES, LINK, PAGE, depth=4)
        runs.append((run.accept, run.taken, run.reads, run.ready, run.data, run.response,
                     run.tail_start, run.idle, run.writes_done))
    assert runs[0] == runs[1]


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_each_access_keeps_its_order_and_depth_bounds_the_accesses_in_flight(depth):
    touches = _touches(300, 4)
    run = schedule(None, touches, [()] * 300, PHASES, LINK, PAGE, depth)
    for i, t in enumerate(touches):
        assert run.accept[i] + PHASES.prelude <= run.taken[i]
        assert run.taken[i] + PHASES.front == run.reads[i] <= run.data[i] < run.response[i]
        assert run.ready[i] == run.reads[i] + PHASES.hbm_reads[t]
        assert run.response[i] >= max(run.data[i], run.ready[i]) + PHASES.back[t] + PHASES.sealing
        # The tail and the page writes begin at the core's response, as the answer is sealed.
        responded = run.response[i] - PHASES.sealing
        assert run.tail_start[i] >= responded
        assert run.idle[i] == run.tail_start[i] + PHASES.tail[t]
        assert run.writes_done[i] >= responded + t * 30 - 1e-9
        if i:
            assert run.response[i] > run.response[i - 1]      # in command order
            assert run.taken[i] >= run.taken[i - 1] + PHASES.front
            # The front holds one command: the next once the one before has left it.
            assert run.accept[i] >= run.taken[i - 1] + 1
        if i >= depth:
            assert run.taken[i] >= run.idle[i - depth]
    # One HBM port: every access's reads (from the port taking it to the end of its HBM
    # reads) and tail hold it, one at a time; the prelude does not.
    held = sorted([*zip(run.taken, run.ready), *zip(run.tail_start, run.idle)])
    assert all(end <= start for (_, end), (start, _) in zip(held, held[1:]))


def test_one_in_flight_is_the_sum_of_the_phases_and_the_link():
    rtt, page = 300, 30
    for t in (0, 1, 2):
        run = project([t] * 10, PHASES, LINK, PAGE, depth=1)
        # From the port taking an access to its core's response.
        core = (PHASES.front + max(rtt + t * page if t else 0, PHASES.hbm_reads[t])
                + PHASES.back[t])
        # The first access is answered after its prelude, core and sealing; each later one
        # arrives at the answer before it, is prepared during that access's tail (longer
        # than the sealing and the prelude together) and taken as it ends.
        assert min(PHASES.tail) > PHASES.sealing + PHASES.prelude
        idle = PHASES.prelude + core + PHASES.sealing
        assert run["mean latency (us)"] == pytest.approx(
            (idle + 9 * (PHASES.tail[t] + core)) / 10 / 300)
        assert run["idle accelerator: mean latency (us)"] == pytest.approx(idle / 300)
        assert run["throughput (accesses/s)"] == pytest.approx(
            10 * 300e6 / (PHASES.prelude + 10 * (core + PHASES.tail[t])))


def test_accesses_in_flight_hide_the_round_trip_up_to_the_busiest_stage():
    touches = _touches(2000, 5)
    one = project(touches, PHASES, LINK, PAGE, 1)
    best = best_depth(touches, PHASES, LINK, PAGE)
    assert best["throughput (accesses/s)"] > 2 * one["throughput (accesses/s)"]
    # The back end (one access at a time) and the HBM port (reads and tails one at a time)
    # bound the rate: their mean cycles per access.
    mean_back = sum(PHASES.back[t] + PHASES.tail[t] for t in touches) / len(touches)
    mean_port = sum(PHASES.port_cycles(t) for t in touches) / len(touches)
    assert best["throughput (accesses/s)"] <= 300e6 / max(mean_back, mean_port) * 1.001
    assert best["HBM port cap (accesses/s)"] == pytest.approx(300e6 / mean_port)


def test_the_hbm_port_caps_the_rate_when_it_is_the_busiest_stage():
    """Long HBM reads and tails, a short back: the port's cycles per access set the rate,
    however many accesses are in flight."""
    touches = _touches(1000, 6)
    busy = AccessPhases(front=60, back=(10, 10, 10), tail=(100, 200, 300),
                        hbm_reads=(100, 150, 250))
    run = best_depth(touches, busy, LINK, PAGE)
    assert run["depth"] > 1
    assert run["throughput (accesses/s)"] == pytest.approx(run["HBM port cap (accesses/s)"],
                                                           rel=0.02)


def test_unmeasured_phases_give_no_port_cap_and_no_division_by_zero():
    """Accesses recorded by their totals alone (no stamps): every access's phases but its
    back are zero, and a few accesses may all touch pages."""
    unmeasured = AccessPhases(front=0.0, back=(0.0, 700.0, 900.0))
    run = project([1, 2, 2, 1, 2], unmeasured, LINK, PAGE)
    assert run["HBM port cap (accesses/s)"] is None
    assert run["throughput (accesses/s)"] > 0 and run["mean latency (us)"] > 0
    assert project([0, 1], unmeasured, LINK, PAGE)["HBM port cap (accesses/s)"] is None
    stats = RtlStats(page_bytes=PAGE)
    for cycles, reads in ((800, 1), (1000, 2)):
        stats.record(cycles, reads, reads * PAGE)
    assert stats.summary()["HBM port cap (accesses/s)"] == "not measured (no cycle stamps)"


def test_the_link_caps_the_rate_when_it_is_the_busiest_stage():
    touches = [2] * 500
    fast = AccessPhases(front=1, back=(1, 1, 1))
    slow_link = HostLink(300e6, 1e-6, 1.2e9)       # a page takes 1 us
    run = best_depth(touches, fast, slow_link, PAGE)
    assert run["link cap (accesses/s)"] == pytest.approx(1.2e9 / (2 * PAGE))
    assert run["throughput (accesses/s)"] == pytest.approx(run["link cap (accesses/s)"], rel=0.02)


def test_a_read_of_a_page_an_earlier_access_still_writes_is_forwarded():
    touches = [2, 1, 1, 0]
    pages = [(3, 5), (5,), (7,), ()]
    run = schedule(None, touches, pages, PHASES, LINK, PAGE, depth=4)
    assert run.reads[1] < run.writes_done[0]        # access 1 reads page 5 before it is written
    assert run.forwarded == [0, 1, 0, 0]
    serial = schedule(None, touches, pages, PHASES, LINK, PAGE, depth=1)
    assert serial.forwarded[1] == (serial.reads[1] < serial.writes_done[0])


def test_projection_of_rtl_stamps():
    # 300 cycles at 300 MHz is 1 us; a 1,200-byte page is 0.1 us on the link.
    stats = RtlStats(clock_hz=300e6, host_round_trip_s=1e-6, host_bandwidth=12e9,
                     page_bytes=PAGE, value_size=64)
    stats.record((300, 0, 0, 300, 0, 12, 0), 0, 0)
    # Taken from the front after 12 cycles, 30 to the read, its HBM reads over 60 later, 230
    # after the data.
    stats.record((330, 30, 100, 360, 90, 12, 0), 1, 2 * PAGE)
    phases = stats.phases()
    assert phases.prelude == 12 and phases.front == 18 and phases.tail[:2] == (0, 30)
    # No page: its work after the front is HBM reads.
    assert phases.hbm_reads[:2] == (270, 60) and phases.back[:2] == (0, 230)
    one = stats.projection(1)
    # The second access arrives at the first's answer and is prepared at once (no tail).
    assert one["mean latency (us)"] == pytest.approx((1 + (0.04 + 0.06 + 1 + 0.1 + 230 / 300))
                                                     / 2)
    summary = stats.summary()
    assert summary["paper's FPGA latency (us)"] == 6.99
    assert summary["1 in flight: mean latency (us)"] == one["mean latency (us)"]
    assert RtlStats().summary() == {"accesses": 0}

"""The bounds simulator (bolt.tools.bounds): state invariants, statistics and the CLI."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import chisquare

from bolt.tools.bounds import QUANTITIES, simulate
from bolt.cli import main
from bolt.params import Params

from ..conftest import unique_salt


@pytest.mark.parametrize("placement", [{}, dict(placement="pool", pool_size=5),
                                       dict(placement="pool")])
@pytest.mark.parametrize("put,delete", [(0.0, 0.0), (0.3, 0.2), (0.1, 0.6)])
def test_state_invariants_hold_after_every_access(put, delete, placement):
    # check_invariants re-derives loads, HBM items, every pending count and the pool from the
    # per-item state after each access and raises inside the kernel on any mismatch.
    p = Params(capacity=96, load=4, hbm_fraction=0.3, **placement)
    res = simulate(p, 5000, seed=3, put=put, delete=delete, check_invariants=True)
    assert int(res.final_load.sum()) == res.present - res.pool_final
    assert res.pool_max <= p.pool_size
    assert res.final_load.max() <= p.slots
    assert sum(res.ops.values()) == 5000
    if put == delete == 0:
        assert res.present == p.capacity and res.hits == 5000   # every access a GET hit
    else:
        assert res.hits < 5000                                     # the mix has misses


def test_maxima_below_the_bounds_at_moderate_size():
    p = Params(capacity=2**12, load=8, hbm_fraction=0.2)
    res = simulate(p, 200_000, seed=1)
    assert res.crossed == [], res.rows()
    # The running maxima only grow, and end at the reported maxima.
    assert (np.diff(res.running_max, axis=0) >= 0).all()
    assert list(res.running_max[-1]) == [res.maxima[q] for q in QUANTITIES]
    assert res.checkpoints[-1] == 200_000
    # Frames are HBM items plus pending items, so their maximum is at most the sum of maxima.
    assert res.maxima["value frames"] <= res.maxima["items in HBM bins"] + \
        res.maxima["eviction buffer"]
    assert res.maxima["value frames"] >= res.maxima["items in HBM bins"]


def test_pool_maxima_below_the_bounds_and_the_pool_full():
    p = Params(capacity=2**12, load=8, hbm_fraction=0.2, placement="pool")
    res = simulate(p, 200_000, seed=1)
    assert res.crossed == [], res.rows()
    assert res.pool_max == res.pool_final == p.pool_size    # a full map keeps every slot full
    assert res.rows()[-1][0] == "pool occupancy" and res.rows()[-1][-1] == "ok"
    # The bins hold N - P items: fewer than with two-choice, whose maxima are the reference.
    two_choice = simulate(Params(capacity=2**12, load=8, hbm_fraction=0.2), 200_000, seed=1)
    assert res.maxima["items in HBM bins"] < two_choice.maxima["items in HBM bins"]
    assert res.maxima["bin load"] <= two_choice.maxima["bin load"] + 1


def test_touch_distribution_uses_the_exact_host_fraction():
    # M = 10 bins, K = floor(0.29 * 10) = 2, so h = 0.8 while 1 - α = 0.71.
    p = Params(capacity=40, load=4, hbm_fraction=0.29)
    h = p.host_fraction
    assert h == 0.8
    res = simulate(p, 100_000, seed=7)
    expected = np.array([(1 - h) ** 2, 2 * h * (1 - h), h * h]) * res.touches.sum()
    assert chisquare(res.touches, expected).pvalue > 1e-4
    a = 1 - p.hbm_fraction
    wrong = np.array([(1 - a) ** 2, 2 * a * (1 - a), a * a]) * res.touches.sum()
    assert chisquare(res.touches, wrong).pvalue < 1e-10


def test_one_access_leaves_exactly_the_replaced_item_pending():
    # All bins on the host (α = 0): Setup stores everything in pages, and the one access
    # re-places its item into a host bin, after the flushes, so it is pending.
    p = Params(capacity=64, load=4, hbm_fraction=0.0)
    res = simulate(p, 1, seed=0)
    assert res.maxima["items in HBM bins"] == 0
    assert res.maxima["eviction buffer"] == 1
    assert res.maxima["value frames"] == 1


def test_same_seed_same_result_and_different_seed_differs():
    p = Params(capacity=256, load=4, hbm_fraction=0.2)
    a, b, c = (simulate(p, 20_000, seed=s) for s in (5, 5, 6))
    assert (a.touches == b.touches).all() and (a.final_load == b.final_load).all()
    assert not (a.final_load == c.final_load).all()


def test_bad_arguments_are_refused():
    p = Params(capacity=64, load=4)
    with pytest.raises(ValueError):
        simulate(p, 10, fill=1.5)
    with pytest.raises(ValueError):
        simulate(p, 10, put=0.8, delete=0.5)
    with pytest.raises(ValueError):
        simulate(p, 10, fill=0.0)


def test_cli_prints_the_table_and_writes_json_and_png(tmp_path):
    out = tmp_path / "b"
    result = CliRunner().invoke(main, ["bounds", "-N", "1024", "-c", "4,8", "-a", "0.2",
                                       "-T", "20000", "--out", str(out)])
    assert result.exit_code == 0, result.output
    for q in QUANTITIES:
        assert q in result.output
    data = json.loads((out / "bounds.json").read_text())
    assert [d["load"] for d in data] == [4, 8]
    assert all(d["accesses"] == 20000 and set(d["maxima"]) == set(QUANTITIES) for d in data)
    assert (out / "bounds.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("placement", [{}, dict(placement="pool")])
def test_simulator_matches_the_reference_model_on_average(placement):
    # The same process, run by the model (DRBG, real index and eviction buffer) and by the
    # simulator: the time-averaged pending and HBM-bin items must agree. (Dropping the flush
    # of y, or of x, would roughly double the pending average.)
    from bolt import Map

    p = Params(capacity=512, key_size=8, value_size=8, load=4, hbm_fraction=0.25, **placement)
    items = [(i.to_bytes(4, "big"), b"v") for i in range(p.capacity)]
    m = Map.from_items(items, capacity=p.capacity, key_size=8, value_size=8, load=4,
                       hbm_fraction=0.25, crypto=False, master_key=bytes(16),
                       unsafe_test_salt=unique_salt(), **placement)
    rng = np.random.default_rng(1)
    pending, hbm = [], []
    for t in range(5000):
        m[items[rng.integers(p.capacity)][0]]
        if t >= 1000:
            o = m.backend.occupancy()
            pending.append(o["pending items"])
            hbm.append(o["items in HBM bins"])
    sim = simulate(p, 100_000, checkpoints=100_000, seed=2)
    assert len(sim.checkpoints) == 100_000
    sim_hbm, sim_pending = sim.current[1000:, 0].mean(), sim.current[1000:, 1].mean()
    assert abs(np.mean(pending) - sim_pending) < 0.15 * sim_pending
    assert abs(np.mean(hbm) - sim_hbm) < 0.06 * sim_hbm

"""The audit's trace engine gives the reference model's trace, access for access
(algorithm §9): same DRBG stream, same placement, same bound checks."""

import numpy as np
import pytest

from bolt import Params
from bolt.model import ReferenceAccelerator
from bolt.protocol import Op, Status
from bolt.tools.features import host_view
from bolt.tools.trace_engine import TraceEngine
from bolt.tools.workloads import WORKLOADS, make_workload

from ..conftest import MASTER_KEY, SALT


def _model_run(workload, *, crypto):
    model = ReferenceAccelerator(workload.params, master_key=MASTER_KEY, salt=SALT,
                                 crypto=crypto)
    model.setup(workload.preload, salt=SALT)
    model.trace.clear()
    statuses = [model.access(op, key, value).status for op, key, value in workload]
    return host_view(model.trace, workload.params), np.array(statuses)


def _engine_run(workload):
    engine = TraceEngine(workload.params, master_key=MASTER_KEY, salt=SALT,
                         setup_keys=workload.setup_ids, universe=workload.universe)
    return engine.run(workload.op_codes, workload.key_ids)


#: The two placements (algorithm §3 and §13); a pool smaller than M, so that Setup leaves
#: items in bins at the workloads' half-full maps.
PLACEMENTS = {"two-choice": {}, "pool": dict(placement="pool", pool_size=20)}


@pytest.mark.parametrize("placement", sorted(PLACEMENTS))
@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_engine_trace_equals_the_models(name, placement):
    params = Params(capacity=128, key_size=8, value_size=16, load=4, hbm_fraction=0.25,
                    **PLACEMENTS[placement])
    workload = make_workload(name, params, 1500, seed=7)
    view, statuses = _model_run(workload, crypto=False)
    run = _engine_run(workload)
    assert view.shape_violations == 0
    assert (run.pages == view.pages).all()
    assert (run.statuses == statuses).all()
    assert (run.counts > 0).any()


@pytest.mark.parametrize("placement", sorted(PLACEMENTS))
def test_engine_equals_the_full_crypto_model(placement):
    params = Params(capacity=64, key_size=8, value_size=16, load=4, hbm_fraction=0.25,
                    **PLACEMENTS[placement])
    workload = make_workload("uniform", params, 600, seed=3)
    view, statuses = _model_run(workload, crypto=True)
    run = _engine_run(workload)
    assert (run.pages == view.pages).all() and (run.statuses == statuses).all()
    assert {Status.FOUND, Status.ABSENT} <= set(statuses.tolist())


@pytest.mark.parametrize("placement", sorted(PLACEMENTS))
def test_engine_follows_the_model_through_full_maps_and_crossed_bounds(placement):
    # Few frames and few slots (set on the parameters both read), a map near capacity and
    # many PUTs of new keys: FULL and BOUND answers, which change nothing, must match too.
    params = Params(capacity=64, key_size=8, value_size=16, load=4, hbm_fraction=0.25,
                    **PLACEMENTS[placement])
    params.__dict__["frames"] = 18
    params.__dict__["slots"] = 7
    workload = make_workload("uniform", params, 3000, seed=11)
    rng = np.random.default_rng(0)
    workload.setup_ids = np.arange(params.capacity - 4)
    workload.universe = 2 * params.capacity
    workload.key_ids = rng.integers(0, workload.universe, 3000)
    workload.op_codes[rng.random(3000) < 0.8] = Op.PUT
    view, statuses = _model_run(workload, crypto=False)
    run = _engine_run(workload)
    assert {Status.FULL, Status.BOUND} <= set(statuses.tolist())
    assert (run.pages == view.pages).all() and (run.statuses == statuses).all()


@pytest.mark.parametrize("placement", sorted(PLACEMENTS))
def test_engine_continues_the_stream_across_word_refills(placement):
    # One long run and the same accesses in small pieces give the same trace.
    params = Params(capacity=256, key_size=8, value_size=16, load=4, hbm_fraction=0.25,
                    **PLACEMENTS[placement])
    workload = make_workload("uniform", params, 5000, seed=1)
    whole = _engine_run(workload).pages
    engine = TraceEngine(params, master_key=MASTER_KEY, salt=SALT,
                         setup_keys=workload.setup_ids, universe=workload.universe)
    pieces = [engine.run(workload.op_codes[i:i + 333], workload.key_ids[i:i + 333]).pages
              for i in range(0, 5000, 333)]
    assert (np.concatenate(pieces) == whole).all()

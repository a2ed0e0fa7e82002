"""Cosimulation of the accelerator RTL against the reference model (cocotb on Verilator).

Each parameter set is built once (cached by :mod:`bolt.sim.verilator`); the cocotb module
``bolt.sim.tb_accelerator`` drives the same Setup and operations into the RTL and into
:class:`bolt.model.ReferenceAccelerator` and compares responses, traces and host bytes.

The testbench serves the host port with random back-pressure (the card's host model; the
constant-time test: cocotbext-axi) and the HBM with random latency and stalls. At any size:
``bolt sim --cosim``. ``BOLT_RTL_OPS`` scales the workload (default 300 accesses per
parameter set, and 60 per timing workload); a long run:
``BOLT_RTL_OPS=10000 pytest -m rtl tests/sim/test_accelerator.py``.
"""

from __future__ import annotations

import json
import os

import pytest

from bolt.params import Params

pytestmark = pytest.mark.rtl

#: Two small capacities so Setup and the runs stay quick: N = 2^10 with 8-byte values, and
#: N = 2^12 at the default value size (V = 64; its pages have the same 13 slots as N = 2^16).
PARAM_SETS = {
    "N1024-V8": {"capacity": 1024, "value_size": 8},
    "N4096-V64": {"capacity": 4096},
}


def _build(args):
    # The RTL backend's build, so the cache entry is shared with bolt.Map(backend="rtl").
    from bolt.host.backend import build_accelerator

    return build_accelerator(Params(**args))


@pytest.mark.parametrize("name", list(PARAM_SETS))
def test_cosim_and_timing(name, tmp_path):
    """Mixed workload cosimulation, integrity failure, and cycle counts per touch count."""
    from bolt.sim.streams import CLOCK_PERIOD_NS
    from bolt.sim.verilator import main_clock_env, run

    args = PARAM_SETS[name]
    handle = _build(args)
    report = tmp_path / "timing.json"
    ops = int(os.environ.get("BOLT_RTL_OPS", 300))
    run(handle, "bolt.sim.tb_accelerator", env={
        "BOLT_PARAMS": json.dumps(args),
        "BOLT_OPS": ops,
        "BOLT_SETUP_ITEMS": Params(**args).capacity // 2,
        "BOLT_SEED": 1 + len(name),
        "BOLT_CRYPTO": 1,
        "BOLT_TIMING_OPS": max(60, ops // 5),
        "BOLT_REPORT": report,
        **main_clock_env(CLOCK_PERIOD_NS),   # the RTL backend's clock and main loop
    })
    result = json.loads(report.read_text())
    timing = result["timing"]
    print(f"\n{name}: cycles per access by x/y host bins, less the extra DRBG words (the host "
          "replays the same back-pressure every access; HBM random)")
    for workload, r in timing.items():
        print(f"  {workload:<13} {r}")
    assert set(timing) == {"hot key", "uniform hits", "misses"}

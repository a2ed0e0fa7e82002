"""Child-process entry point of the RTL backend: run the simulation server on a cached build.

``python -m bolt.sim.launch`` with ``BOLT_BUILD_DIR`` and ``BOLT_BUILD_NAME`` naming the build;
every other ``BOLT_*`` variable is passed on to :mod:`bolt.sim.server`. A failure is
printed to stderr (the parent shows it) and exits non-zero.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bolt.sim.streams import CLOCK_PERIOD_NS
from bolt.sim.verilator import SimulationFailed, VerilatorBuild, main_clock_env, run


def main() -> int:
    directory = Path(os.environ["BOLT_BUILD_DIR"])
    name = os.environ["BOLT_BUILD_NAME"]
    handle = VerilatorBuild(name=name, directory=directory, verilog=directory / f"{name}.v")
    waveform = os.environ.get("BOLT_WAVEFORM_DIR")
    # The main loop drives the clock (two VPI writes and a timer fewer a half period) unless
    # the environment says otherwise (BOLT_MAIN_CLOCK empty: cocotb's clock).
    env = {**main_clock_env(CLOCK_PERIOD_NS),
           **{key: value for key, value in os.environ.items() if key.startswith("BOLT_")}}
    try:
        run(handle, os.environ.get("BOLT_SERVER_MODULE", "bolt.sim.server"), env=env, waves=bool(waveform), verbose=True,
            test_dir=Path(waveform) if waveform else None)
    except SimulationFailed as failure:
        print(failure, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``bolt synth``'s memory inventory of the accelerator (no Yosys, no Verilator needed)."""

from __future__ import annotations

import gc
import warnings

from click.testing import CliRunner

from bolt.cli import main
from bolt.params import Params


def test_no_memory_on_chip_grows_with_n():
    """Every structure sized by N is in HBM: the accelerator's on-chip memories have the same
    depths at N = 2^10 and 2^20 (a bin number, log N bits, is the widest thing they hold)."""
    from bolt.hdl.accelerator import RtlAccelerator
    from bolt.hdl.report import memory_inventory

    small, large = (sorted((m.path, m.depth, m.width) for m in memory_inventory(
        RtlAccelerator(Params(capacity=n, value_size=8)))) for n in (1 << 10, 1 << 20))
    assert [m[:2] for m in small] == [m[:2] for m in large]
    assert all(depth <= 256 and width <= 32 for _, depth, width in large), large


def test_memory_inventory_leaves_no_unused_elaboratable_behind():
    """The inventory elaborates the design only to read it; Amaranth must not warn, when the
    garbage is collected, that what it made was never used."""
    from amaranth.hdl import UnusedElaboratable

    from bolt.hdl.accelerator import RtlAccelerator
    from bolt.hdl.report import memory_inventory

    gc.collect()     # earlier tests' garbage is theirs to answer for
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnusedElaboratable)
        assert memory_inventory(RtlAccelerator(Params(capacity=1024, value_size=8)))
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, UnusedElaboratable)]


def test_synth_no_yosys_prints_the_hbm_map_against_the_u55c():
    result = CliRunner().invoke(main, ["synth", "--no-yosys", "-N", "1024", "-V", "8"])
    assert result.exit_code == 0, result.output
    for region in ("index", "loads", "bins", "staging", "frames", "stack", "counters"):
        assert any(line.split()[:1] == [region] for line in result.output.splitlines()), region
    assert "U55C budget" in result.output
    hbm_line = next(line for line in result.output.splitlines()
                    if line.startswith("HBM structures"))
    assert not hbm_line.startswith("HBM structures: 0.000"), hbm_line

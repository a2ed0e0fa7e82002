"""``bolt synth``'s memory inventory of the accelerator (no Yosys, no Verilator needed)."""

from __future__ import annotations

import gc
import warnings

from click.testing import CliRunner

from bolt.cli import main
from bolt.params import Params


def test_memory_inventory_lists_every_trusted_structure():
    """Every HBM structure of algorithm §2 is found under the accelerator (also beneath its
    reset-domain wrapper), sized from the parameters."""
    from bolt.hdl.accelerator import RtlAccelerator
    from bolt.hdl.report import memory_inventory

    p = Params(capacity=1024, value_size=8)
    memories = {m.path.rsplit(".", 1)[-1]: m for m in memory_inventory(RtlAccelerator(p))}
    expected_depths = {
        "buckets": p.index_buckets, "values": p.frames, "stack": p.frames,
        "nexts": p.frames, "prevs": p.frames, "iposs": p.frames,
        "heads": p.host_bins, "tails": p.host_bins, "counts": p.host_bins,
        "counters": p.host_bins, "staging": p.host_bins, "loads": p.bins,
    }
    assert {name: memories[name].depth for name in expected_depths} == expected_depths
    assert memories["counters"].width == 64
    assert memories["staging"].width == 8 * p.page_plaintext_bytes
    assert memories["buckets"].placement == "HBM"


def test_memory_inventory_leaves_no_unused_elaboratable_behind():
    """The inventory elaborates the design only to read it; Amaranth must not warn, when the
    garbage is collected, that what it made was never used."""
    from amaranth.hdl import UnusedElaboratable

    from bolt.hdl.accelerator import RtlAccelerator
    from bolt.hdl.report import memory_inventory

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnusedElaboratable)
        assert memory_inventory(RtlAccelerator(Params(capacity=1024, value_size=8)))
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, UnusedElaboratable)]


def test_synth_no_yosys_prints_memories_against_the_u55c():
    result = CliRunner().invoke(main, ["synth", "--no-yosys", "-N", "1024", "-V", "8"])
    assert result.exit_code == 0, result.output
    assert "core.index.buckets" in result.output
    assert "U55C budget" in result.output
    hbm_line = next(line for line in result.output.splitlines()
                    if line.startswith("HBM structures"))
    assert not hbm_line.startswith("HBM structures: 0.000"), hbm_line

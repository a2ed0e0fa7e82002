"""``bolt synth``'s memory inventory of the accelerator (no Yosys, no Verilator needed)."""

from __future__ import annotations

import gc
import warnings

from click.testing import CliRunner

from bolt.cli import main
from bolt.params import Params


def test_no_memory_on_chip_grows_with_n():
    """Every structure sized by N is in HBM: the accelerator's on-chip memories have the same
    depths at N = 2^10 and 2^20 (a bin number, log N bits, is the widest thing the FIFOs
    hold), but for the page engines' sealed pages and plaintext banks, which hold one page
    each (its slots grow as log log N), and the control's buffers of the flushes' frames, one
    row per slot of each page over its banks (a frame record holds an index position, log N
    bits); the index's
    overflow area is its 64 entries at every N (an entry's bin and frame numbers are log N
    bits); each HBM port's write queue holds the same number of requests at every N (an
    address, log N bits, beside each)."""
    from bolt.hdl.accelerator import RtlAccelerator
    from bolt.hdl.hbm import FRAME_BANKS, WRITE_QUEUE_DEPTH, HbmMap, frame_record_layout
    from bolt.hdl.pages import PAGE_GCM_LANES
    from bolt.hdl.report import memory_inventory

    inventories = {}
    for n in (1 << 10, 1 << 20):
        p = Params(capacity=n, value_size=8)
        memories = memory_inventory(RtlAccelerator(p))
        sealed = [m for m in memories if m.path.endswith(".sealed")]
        assert [(m.depth, m.width) for m in sealed] == [(p.page_beats, 512)] * 2
        plaintext = [m for m in memories if ".plaintext.bank" in m.path]
        # GCM's group of two blocks, 32 bytes, spans up to three of the 28-byte slots: four
        # banks in each engine.
        assert (p.slot_bytes, PAGE_GCM_LANES) == (28, 2)
        assert [(m.depth, m.width) for m in plaintext] == \
            [(-(-p.slots // 4), 8 * p.slot_bytes)] * 8
        overflow = [m for m in memories if m.path.endswith(".lookup.overflow")]
        assert [(m.depth, m.width) for m in overflow] == [
            (p.index_overflow_entries // p.index_overflow_lanes,
             p.index_overflow_lanes * p.index_entry_bits)]
        held = [m for m in memories if m.path.endswith(tuple(
            f".{flush}.held{bank}" for flush in ("flush_a", "flush_b")
            for bank in range(FRAME_BANKS)))]
        assert [(m.depth, m.width) for m in held] == \
            [(-(-p.slots // FRAME_BANKS), frame_record_layout(p).size)] * (2 * FRAME_BANKS)
        # Each HBM port's write queue: its requests (an address, log N bits, beside the data).
        queues = [m for m in memories if ".write_queue." in m.path]
        assert len(queues) == HbmMap(p).ports
        assert all(m.depth <= WRITE_QUEUE_DEPTH for m in queues)
        pages = sealed + plaintext + overflow + held + queues
        inventories[n] = sorted((m.path, m.depth, m.width) for m in memories if m not in pages)
    small, large = inventories.values()
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
    for region in ("index", "loads", "bins", "maps", "staging", "frames0", "frames3", "stack",
                   "counters"):
        assert any(line.split()[:1] == [region] for line in result.output.splitlines()), region
    assert "U55C budget" in result.output
    hbm_line = next(line for line in result.output.splitlines()
                    if line.startswith("HBM structures"))
    assert not hbm_line.startswith("HBM structures: 0.000"), hbm_line


def _cell(kind, inputs, outputs):
    """A cell of a Yosys JSON netlist: ``inputs``/``outputs`` map port names to bit numbers."""
    return {"type": kind,
            "port_directions": {**dict.fromkeys(inputs, "input"),
                                **dict.fromkeys(outputs, "output")},
            "connections": {port: [bit] for port, bit in {**inputs, **outputs}.items()}}


def test_longest_path_counts_luts_between_registers():
    """Two register-to-register paths: three LUTs and a wide multiplexer, against a carry
    cell and two LUTs; a LUT RAM's write data does not reach its read data, its read address
    does. The longest path is the one with the most LUTs, cut at the registers."""
    from bolt.hdl.report import longest_path

    cells = {
        "q": _cell("FDRE", {"D": 20, "C": 1, "CE": 1, "R": 1}, {"Q": 2}),
        "a": _cell("LUT4", {"I0": 2}, {"O": 4}),
        "b": _cell("LUT6", {"I0": 4, "I1": 2}, {"O": 5}),
        "c": _cell("LUT6", {"I0": 5}, {"O": 6}),
        "f7": _cell("MUXF7", {"I0": 6, "I1": 5, "S": 4}, {"O": 7}),
        "d": _cell("FDRE", {"D": 7, "C": 1, "CE": 1, "R": 1}, {"Q": 20}),
        "carry": _cell("CARRY4", {"CI": 2}, {"CO": 8}),
        "e": _cell("LUT2", {"I0": 8}, {"O": 9}),
        "g": _cell("LUT2", {"I0": 9}, {"O": 10}),
        "ram": _cell("RAM32M", {"DIA": 10, "ADDRA": 30, "WCLK": 1}, {"DOA": 11}),
        "h": _cell("FDRE", {"D": 11, "C": 1, "CE": 1, "R": 1}, {"Q": 30}),
    }
    netnames = {"state": {"bits": [2]}, "next_state": {"bits": [20]}, "addr": {"bits": [30]}}
    path = longest_path({"cells": cells, "netnames": netnames})
    assert (path.luts, path.cells) == (3, 4)
    assert path.start == "state" and path.end == "next_state (register input)"
    cells["ram"]["connections"]["ADDRA"] = [10]          # the LUT chain now addresses it
    path = longest_path({"cells": cells, "netnames": netnames})
    assert (path.luts, path.cells) == (3, 4)
    cells["e2"] = _cell("LUT2", {"I0": 10}, {"O": 12})
    cells["ram"]["connections"]["ADDRA"] = [12]
    path = longest_path({"cells": cells, "netnames": netnames})
    assert (path.luts, path.cells) == (4, 5) and path.end == "addr (register input)"

"""The accelerator's key index (algorithm §2): two-choice buckets with an overflow area.

A key is placed in one of two buckets whose numbers come from a PRF of the key (computed
outside, by the accelerator's AES core under the index key), the less full of the two; when
both are full it goes to a small overflow area that every lookup searches in full. The tables
stand for HBM; their sizes come from :class:`bolt.params.Params` (``index_buckets``,
``index_bucket_depth``, ``index_overflow_entries``, ``index_entry_bits``).

Every lookup takes exactly :attr:`Index.lookup_cycles` cycles, whatever the key, the contents of
the buckets or where (or whether) the key is found: both buckets are read and compared in one
cycle each, then the overflow area, ``index_overflow_lanes`` entries per cycle.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bolt.params import Params, bits_for

__all__ = ["Index", "entry_layout", "position_layout"]


def entry_layout(params: Params) -> data.StructLayout:
    """One index entry: valid, kind, key length, key (little-endian bytes), bin, frame or slot.

    Its width is ``params.index_entry_bits``.
    """
    layout = data.StructLayout({
        "valid": 1,
        "kind": 2,
        "klen": 8,
        "key": 8 * params.key_size,
        "bin": params.bin_bits,
        "loc": max(params.frame_bits, params.slot_bits),
    })
    assert layout.size == params.index_entry_bits
    return layout


def _overflow_rows(params: Params) -> int:
    assert params.index_overflow_entries % params.index_overflow_lanes == 0
    return params.index_overflow_entries // params.index_overflow_lanes


def position_layout(params: Params) -> data.StructLayout:
    """Where an entry sits: a bucket row and way, or (``overflow``) an overflow row and lane."""
    return data.StructLayout({
        "overflow": 1,
        "row": max(bits_for(params.index_buckets), bits_for(_overflow_rows(params))),
        "way": max(bits_for(params.index_bucket_depth), bits_for(params.index_overflow_lanes)),
    })


class Index(wiring.Component):
    """Two-choice bucket index with an overflow area.

    Parameters
    ----------
    params : Params
        Sizes and field widths.

    Members
    -------
    start : ``In(1)``
        Pulse (while ``busy`` is low) to look up ``key``/``klen`` in buckets ``bucket1`` and
        ``bucket2``. ``done`` pulses exactly :attr:`lookup_cycles` cycles later.
    clear : ``In(1)``
        Pulse (while ``busy`` is low) to invalidate every entry; ``done`` pulses
        :attr:`clear_cycles` cycles later.
    key, klen, bucket1, bucket2 : ``In``
        The lookup's inputs, held until ``done``.
    busy, done : ``Out(1)``
    found, entry, pos : ``Out``
        When ``done``: whether the key is present, its entry and its position.
    free_ok, free_pos : ``Out``
        When ``done``: where a new key would go (the less full of the two buckets, ties to
        ``bucket1``, else the first free overflow entry) and whether there is room at all.
    rd_pos, rd_entry : ``In``, ``Out``
        An asynchronous read of the entry at a position.
    wr_en, wr_pos, wr_entry : ``In``
        A synchronous write of one entry (not while a lookup or a clear runs).
    """

    def __init__(self, params: Params):
        self._p = params
        self.entry_layout = entry_layout(params)
        self.position_layout = position_layout(params)
        bucket_bits = bits_for(params.index_buckets)
        super().__init__({
            "start": In(1),
            "clear": In(1),
            "key": In(8 * params.key_size),
            "klen": In(8),
            "bucket1": In(bucket_bits),
            "bucket2": In(bucket_bits),
            "busy": Out(1),
            "done": Out(1),
            "found": Out(1),
            "entry": Out(self.entry_layout),
            "pos": Out(self.position_layout),
            "free_ok": Out(1),
            "free_pos": Out(self.position_layout),
            "rd_pos": In(self.position_layout),
            "rd_entry": Out(self.entry_layout),
            "wr_en": In(1),
            "wr_pos": In(self.position_layout),
            "wr_entry": In(self.entry_layout),
        })

    @property
    def lookup_cycles(self) -> int:
        return 2 + _overflow_rows(self._p)

    @property
    def clear_cycles(self) -> int:
        return max(self._p.index_buckets, _overflow_rows(self._p))

    def elaborate(self, platform):
        p = self._p
        m = Module()
        depth, lanes, n_rows = p.index_bucket_depth, p.index_overflow_lanes, _overflow_rows(p)
        layout = self.entry_layout

        m.submodules.buckets = buckets = Memory(
            shape=data.ArrayLayout(layout, depth), depth=p.index_buckets, init=[])
        m.submodules.overflow = overflow = Memory(
            shape=data.ArrayLayout(layout, lanes), depth=n_rows, init=[])
        b_look = buckets.read_port(domain="comb")
        b_read = buckets.read_port(domain="comb")
        b_write = buckets.write_port(granularity=1)
        o_look = overflow.read_port(domain="comb")
        o_read = overflow.read_port(domain="comb")
        o_write = overflow.write_port(granularity=1)

        # Asynchronous read by position.
        m.d.comb += [b_read.addr.eq(self.rd_pos.row), o_read.addr.eq(self.rd_pos.row)]
        with m.If(self.rd_pos.overflow):
            m.d.comb += self.rd_entry.eq(o_read.data[self.rd_pos.way])
        with m.Else():
            m.d.comb += self.rd_entry.eq(b_read.data[self.rd_pos.way])

        # Lookup and clear sequencer: step 0 reads bucket1, step 1 bucket2, steps 2.. overflow.
        running = Signal()
        clearing = Signal()
        step = Signal(range(max(self.lookup_cycles, self.clear_cycles) + 1))
        m.d.comb += self.busy.eq(running | clearing)
        m.d.sync += self.done.eq(0)

        def matches(entry):
            return entry.valid & (entry.klen == self.klen) & (entry.key == self.key)

        found = Signal()
        entry = Signal(layout)
        pos = Signal(self.position_layout)
        fill = [Signal(range(depth + 1), name=f"fill{i}") for i in range(2)]
        free_way = [Signal(range(depth), name=f"free_way{i}") for i in range(2)]
        ovf_free = Signal()
        ovf_free_row = Signal(range(n_rows))
        ovf_free_way = Signal(range(lanes))
        m.d.comb += [self.found.eq(found), self.entry.eq(entry), self.pos.eq(pos)]

        # Bucket read for the lookup: bucket1 at step 0, bucket2 at step 1.
        row = Signal.like(self.bucket1)
        m.d.comb += row.eq(self.bucket1)
        with m.If(step == 1):
            m.d.comb += row.eq(self.bucket2)
        m.d.comb += [b_look.addr.eq(row), o_look.addr.eq(step - 2)]

        # Comparison of a whole bucket (or overflow row): match, match way, first free way.
        def compare(row_data, n, name):
            entries = [row_data[w] for w in range(n)]
            hits = Signal(n, name=f"{name}_hits")
            m.d.comb += hits.eq(Cat(*[matches(e) for e in entries]))
            hit_way = Signal(range(n), name=f"{name}_hit_way")
            first_free = Signal(range(n), name=f"{name}_first_free")
            for w in reversed(range(n)):
                with m.If(hits[w]):
                    m.d.comb += hit_way.eq(w)
                with m.If(~entries[w].valid):
                    m.d.comb += first_free.eq(w)
            any_free = Cat(*[~e.valid for e in entries]).any()
            return entries, hits, hit_way, first_free, any_free

        ways, hit_ways, hit_way, first_free, _ = compare(b_look.data, depth, "bucket")
        count = Signal(range(depth + 1))
        m.d.comb += count.eq(sum(w.valid for w in ways))
        o_lanes, o_hits, o_hit_lane, o_first_free, o_any_free = compare(o_look.data, lanes,
                                                                        "overflow")

        with m.If(self.start & ~self.busy):
            m.d.sync += [running.eq(1), step.eq(0), found.eq(0), ovf_free.eq(0)]
        with m.If(self.clear & ~self.busy):
            m.d.sync += [clearing.eq(1), step.eq(0)]

        with m.If(running):
            m.d.sync += step.eq(step + 1)
            with m.If(step < 2):
                with m.If(step == 0):
                    m.d.sync += [fill[0].eq(count), free_way[0].eq(first_free)]
                with m.Else():
                    m.d.sync += [fill[1].eq(count), free_way[1].eq(first_free)]
                with m.If(hit_ways.any()):
                    m.d.sync += [found.eq(1), entry.eq(b_look.data[hit_way]),
                                 pos.overflow.eq(0), pos.row.eq(row), pos.way.eq(hit_way)]
            with m.Else():
                with m.If(o_hits.any()):
                    m.d.sync += [found.eq(1), entry.eq(o_look.data[o_hit_lane]),
                                 pos.overflow.eq(1), pos.row.eq(step - 2),
                                 pos.way.eq(o_hit_lane)]
                with m.If(o_any_free & ~ovf_free):
                    m.d.sync += [ovf_free.eq(1), ovf_free_row.eq(step - 2),
                                 ovf_free_way.eq(o_first_free)]
            with m.If(step == self.lookup_cycles - 1):
                m.d.sync += [running.eq(0), self.done.eq(1)]

        # Where a new key goes: the less full bucket (ties: bucket1), else overflow.
        use2 = Signal()
        m.d.comb += use2.eq(fill[1] < fill[0])
        with m.If(use2):
            m.d.comb += [self.free_pos.row.eq(self.bucket2), self.free_pos.way.eq(free_way[1])]
        with m.Else():
            m.d.comb += [self.free_pos.row.eq(self.bucket1), self.free_pos.way.eq(free_way[0])]
        both_full = (fill[0] == depth) & (fill[1] == depth)
        with m.If(both_full):
            m.d.comb += [self.free_pos.overflow.eq(1), self.free_pos.row.eq(ovf_free_row),
                         self.free_pos.way.eq(ovf_free_way), self.free_ok.eq(ovf_free)]
        with m.Else():
            m.d.comb += self.free_ok.eq(1)

        # Writes: the clear sequencer, else the write port.
        with m.If(clearing):
            m.d.sync += step.eq(step + 1)
            m.d.comb += [b_write.addr.eq(step), b_write.en.eq(Const(-1, depth)),
                         b_write.data.eq(0),
                         o_write.addr.eq(step), o_write.data.eq(0)]
            with m.If(step < n_rows):
                m.d.comb += o_write.en.eq(Const(-1, lanes))
            with m.If(step == self.clear_cycles - 1):
                m.d.sync += [clearing.eq(0), self.done.eq(1)]
        with m.Elif(self.wr_en):
            m.d.comb += [b_write.addr.eq(self.wr_pos.row), o_write.addr.eq(self.wr_pos.row)]
            with m.If(self.wr_pos.overflow):
                m.d.comb += o_write.en.eq(1 << self.wr_pos.way)
                for w in range(lanes):
                    m.d.comb += o_write.data[w].eq(self.wr_entry)
            with m.Else():
                m.d.comb += [b_write.en.eq(1 << self.wr_pos.way)]
                for w in range(depth):
                    m.d.comb += b_write.data[w].eq(self.wr_entry)
        return m

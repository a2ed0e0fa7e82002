"""Step 2 of an Access, the index lookup: two-choice buckets and an overflow area in HBM.

A key is placed in one of two buckets whose numbers come from a PRF of the key (computed by
the accelerator's AES core under the index key), the less full of the two; when both are full
it goes to the overflow area, which every lookup reads in full. Entries sit one per HBM beat
(:func:`bolt.hdl.hbm.index_entry_layout`): bucket ``b`` is the ``index_bucket_depth`` entries
from entry ``b · depth``, the overflow area the ``index_overflow_entries`` after all buckets.
An index position is that entry number.

Every lookup reads the same three bursts (bucket 1, bucket 2, the overflow area) and compares
each entry as its beat arrives, whatever the key, the buckets' contents or where (whether) the
key is found.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from bolt.params import Params

from .hbm import BEAT_BITS, HbmMap, index_entry_layout, index_position_bits

__all__ = ["Lookup"]


class Lookup(wiring.Component):
    """Find ``key`` in buckets ``bucket1`` and ``bucket2`` and the overflow area.

    Members
    -------
    start : ``In(1)``
        Pulse to begin; ``key``, ``klen``, ``bucket1``, ``bucket2`` are held until ``done``.
    rd : ``Out(stream)``
        The three read bursts (to :class:`~bolt.hdl.hbm.HbmMaster`).
    beat : ``In(stream)``
        Their beats, in order.
    done : ``Out(1)``
        High once every beat is in; then ``found``, ``entry`` and ``pos`` give the key's entry,
        and ``free_ok``/``free_pos`` where a new key would go (the less full bucket, ties to
        ``bucket1``, else the first free overflow entry) and whether there is room at all.
    """

    def __init__(self, params: Params, hbm: HbmMap):
        self._p = params
        self._map = hbm
        self.entry_layout = index_entry_layout(params)
        bucket_bits = max(1, (params.index_buckets - 1).bit_length())
        pos_bits = index_position_bits(params)
        super().__init__({
            "start": In(1),
            "key": In(8 * params.key_size),
            "klen": In(8),
            "bucket1": In(bucket_bits),
            "bucket2": In(bucket_bits),
            "rd": Out(stream.Signature(data.StructLayout({
                "addr": hbm.address_width, "beats": range(1, 65)}))),
            "beat": In(stream.Signature(data.StructLayout({"data": BEAT_BITS, "last": 1}))),
            "done": Out(1),
            "found": Out(1),
            "entry": Out(self.entry_layout),
            "pos": Out(pos_bits),
            "free_ok": Out(1),
            "free_pos": Out(pos_bits),
        })

    @property
    def beats(self) -> int:
        """Beats a lookup reads."""
        return 2 * self._p.index_bucket_depth + self._p.index_overflow_entries

    def elaborate(self, platform):
        p = self._p
        m = Module()
        depth = p.index_bucket_depth
        overflow_base = p.index_buckets * depth
        index = self._map.index

        # The three requests, one per cycle once started.
        request = Signal(range(4), init=3)
        with m.If(self.start):
            m.d.sync += request.eq(0)
        with m.Switch(request):
            for i, (first, beats) in enumerate([(self.bucket1 * depth, depth),
                                                (self.bucket2 * depth, depth),
                                                (overflow_base, p.index_overflow_entries)]):
                with m.Case(i):
                    m.d.comb += [self.rd.valid.eq(1),
                                 self.rd.payload.addr.eq(index.address(first)),
                                 self.rd.payload.beats.eq(beats)]
        with m.If(self.rd.valid & self.rd.ready):
            m.d.sync += request.eq(request + 1)

        # The scan: beat j is way j of bucket 1, way j - depth of bucket 2, or overflow entry
        # j - 2 depth.
        j = Signal(range(self.beats + 1), init=self.beats)
        found = Signal()
        fill = [Signal(range(depth + 1), name=f"fill{i}") for i in range(2)]
        free_way = [Signal(range(depth), name=f"free_way{i}") for i in range(2)]
        has_free = [Signal(name=f"has_free{i}") for i in range(2)]
        ovf_free = Signal()
        ovf_free_pos = Signal.like(self.free_pos)
        m.d.comb += [self.beat.ready.eq(1), self.done.eq(j == self.beats),
                     self.found.eq(found)]
        entry = Signal(self.entry_layout)
        m.d.comb += entry.eq(self.beat.payload.data[:len(entry.as_value())])
        match = entry.valid & (entry.klen == self.klen) & (entry.key == self.key)
        in_bucket = [j < depth, (j >= depth) & (j < 2 * depth)]
        position = Mux(in_bucket[0], self.bucket1 * depth + j,
                       Mux(in_bucket[1], self.bucket2 * depth + (j - depth),
                           overflow_base + (j - 2 * depth)))
        with m.If(self.start):
            m.d.sync += [j.eq(0), found.eq(0), ovf_free.eq(0),
                         fill[0].eq(0), fill[1].eq(0), has_free[0].eq(0), has_free[1].eq(0)]
        with m.Elif(self.beat.valid & (j != self.beats)):
            m.d.sync += j.eq(j + 1)
            with m.If(match):
                m.d.sync += [found.eq(1), self.entry.eq(entry), self.pos.eq(position)]
            for b in range(2):
                way = j - b * depth
                with m.If(in_bucket[b]):
                    with m.If(entry.valid):
                        m.d.sync += fill[b].eq(fill[b] + 1)
                    with m.Elif(~has_free[b]):
                        m.d.sync += [has_free[b].eq(1), free_way[b].eq(way)]
            with m.If(~in_bucket[0] & ~in_bucket[1] & ~entry.valid & ~ovf_free):
                m.d.sync += [ovf_free.eq(1), ovf_free_pos.eq(position)]

        use2 = fill[1] < fill[0]
        both_full = (fill[0] == depth) & (fill[1] == depth)
        with m.If(both_full):
            m.d.comb += [self.free_pos.eq(ovf_free_pos), self.free_ok.eq(ovf_free)]
        with m.Elif(use2):
            m.d.comb += [self.free_pos.eq(self.bucket2 * depth + free_way[1]),
                         self.free_ok.eq(1)]
        with m.Else():
            m.d.comb += [self.free_pos.eq(self.bucket1 * depth + free_way[0]),
                         self.free_ok.eq(1)]
        return m

"""Step 2 of an Access, the index lookup: two-choice buckets in HBM and an overflow area on chip.

A key is placed in one of two buckets whose numbers come from a PRF of the key (computed by
the accelerator's AES core under the index key), the less full of the two; when both are full
it goes to the overflow area, which every lookup searches in full. An index position is an
entry number: bucket ``b`` is the ``index_bucket_depth`` entries from ``b · stride``
(:func:`~bolt.hdl.hbm.index_bucket_stride`, the depth rounded up to a power of two), the
overflow area the ``index_overflow_entries`` after all buckets.

The buckets grow with N and sit in HBM, one entry per beat
(:func:`bolt.hdl.hbm.index_entry_layout`), striped over the map's index ports (entry ``i`` on
port ``i mod ports``): a bucket is a burst of ``ceil(depth / ports)`` beats on every port (the
last one may belong to the next bucket, and is ignored), and both buckets' bursts on all ports
are in flight at once. The overflow area is the same size at every N, so it lives on chip, in a
memory of ``index_overflow_lanes`` entries a row with synchronous reads, scanned a row a cycle
while the bucket bursts are in flight. Every index write reaches :class:`Lookup` too
(``write``), and it keeps those that fall in the overflow area.

Every lookup reads the same bursts and scans every overflow row, whatever the key, the
buckets' contents or where (whether) the key is found.
"""

from __future__ import annotations

import operator
from functools import reduce

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bolt.params import Params

from .hbm import BEAT_BITS, HbmMap, index_bucket_stride, index_entry_layout, index_position_bits
from .scan import lowest_set

__all__ = ["Lookup"]


class Lookup(wiring.Component):
    """Find ``key`` in buckets ``bucket1`` and ``bucket2`` and the overflow area.

    Members
    -------
    start : ``In(1)``
        Pulse to begin; ``key``, ``klen``, ``bucket1``, ``bucket2`` are read from the cycle
        after and held until ``done``.
    rd : ``Out(stream)``, one per index port
        Each port's two bucket read bursts (to its :class:`~bolt.hdl.hbm.HbmMaster`),
        offered from the cycle after ``start``.
    beat : ``In(stream)``, one per index port
        Their beats, in order.
    done : ``Out(1)``
        High once every beat is in and the overflow area is scanned (:attr:`scan_cycles` after
        ``start`` at the latest); then ``found``, ``entry`` and ``pos`` give the key's entry,
        and ``free_ok``/``free_pos`` where a new key would go (the less full bucket, ties to
        ``bucket1``, else the first free overflow entry) and whether there is room at all.
    write, write_pos, write_entry : ``In``
        An index write (``write`` high for a cycle): entry ``write_entry`` at position
        ``write_pos``. The control passes every index write it makes, with its write enable;
        those in the overflow area are kept (a cycle later), the others ignored.
    clear : ``In(1)``
        Pulse to empty the overflow area (Setup): a row a cycle, :attr:`clear_cycles` in all,
        during which no lookup or write may run.
    """

    def __init__(self, params: Params, hbm: HbmMap):
        self._p = params
        self._map = hbm
        self.entry_layout = index_entry_layout(params)
        lanes = params.index_overflow_lanes
        assert params.index_overflow_entries % lanes == 0 and lanes & (lanes - 1) == 0
        self._rows = params.index_overflow_entries // params.index_overflow_lanes
        bucket_bits = max(1, (params.index_buckets - 1).bit_length())
        pos_bits = index_position_bits(params)
        super().__init__({
            "start": In(1),
            "key": In(8 * params.key_size),
            "klen": In(8),
            "bucket1": In(bucket_bits),
            "bucket2": In(bucket_bits),
            "rd": Out(stream.Signature(data.StructLayout({
                "addr": hbm.address_width, "beats": range(1, 65)}))).array(hbm.index_ports),
            "beat": In(stream.Signature(data.StructLayout({
                "data": BEAT_BITS, "last": 1}))).array(hbm.index_ports),
            "done": Out(1),
            "found": Out(1),
            "entry": Out(self.entry_layout),
            "pos": Out(pos_bits),
            "free_ok": Out(1),
            "free_pos": Out(pos_bits),
            "write": In(1),
            "write_pos": In(pos_bits),
            "write_entry": In(self.entry_layout),
            "clear": In(1),
        })

    #: Read bursts of a lookup on each index port (bucket 1, bucket 2).
    requests = 2

    @property
    def stripe_beats(self) -> int:
        """Beats of a bucket on each index port."""
        return -(-self._p.index_bucket_depth // self._map.index_ports)

    @property
    def beats(self) -> int:
        """Beats a lookup reads on each index port."""
        return self.requests * self.stripe_beats

    @property
    def scan_cycles(self) -> int:
        """Cycles from ``start`` to the overflow area's result: a row read a cycle, its
        comparison, its verdict, then the found entry read again from its row."""
        return self._rows + 4

    @property
    def clear_cycles(self) -> int:
        return self._rows

    def elaborate(self, platform):
        p = self._p
        m = Module()
        depth, lanes, rows = p.index_bucket_depth, p.index_overflow_lanes, self._rows
        bucket_stride = index_bucket_stride(p)
        overflow_base = p.index_buckets * bucket_stride
        index = self._map.index
        entry_layout = self.entry_layout

        ports, stripe = self._map.index_ports, self.stripe_beats
        shift = index.stripe_shift
        # Where each bucket begins (its way 0's index position).
        starts = [Signal(len(self.pos), name=f"start{b}") for b in range(2)]
        m.d.comb += [starts[0].eq(self.bucket1 * bucket_stride),
                     starts[1].eq(self.bucket2 * bucket_stride)]

        def matches(entry):
            return entry.valid & (entry.klen == self.klen) & (entry.key == self.key)

        # The key's entry, from each port's bucket beats and from the overflow area, each into
        # registers of its own. A key is in the index at most once; were it found twice, the
        # last place in port order, then the overflow area, would win.
        sources = [f"port{q}" for q in range(ports)] + ["overflow"]
        found = [Signal(name=f"found_{n}") for n in sources]
        found_entry = [Signal(entry_layout, name=f"entry_{n}") for n in sources]
        found_pos = [Signal.like(self.pos, name=f"pos_{n}") for n in sources]
        m.d.comb += [self.found.eq(Cat(*found).any()), self.entry.eq(found_entry[0]),
                     self.pos.eq(found_pos[0])]
        for n in range(1, len(sources)):
            with m.If(found[n]):
                m.d.comb += [self.entry.eq(found_entry[n]), self.pos.eq(found_pos[n])]

        # -- the buckets: on port q, beat i of bucket b's burst is way w0 + i · ports, w0 the
        # first way on that port; ways past the bucket's depth belong to the next one ------
        fills = [[Signal(range(stripe + 1), name=f"fill{b}_port{q}") for b in range(2)]
                 for q in range(ports)]
        free_ways = [Signal(depth, name=f"free_ways{b}") for b in range(2)]
        free_set = [[] for _ in range(2)]     # each port's free way seen this cycle, one-hot
        beats_in = []
        for q in range(ports):
            rd, beat = self.rd[q], self.beat[q]
            # The two requests, one per cycle once started.
            request = Signal(range(self.requests + 1), init=self.requests, name=f"request{q}")
            with m.If(self.start):
                m.d.sync += request.eq(0)
            with m.Switch(request):
                for b in range(2):
                    with m.Case(b):
                        first = (starts[b] + (ports - 1 - q)) >> shift   # on port q
                        m.d.comb += [rd.valid.eq(1),
                                     rd.payload.addr.eq(index.base + first * index.stride),
                                     rd.payload.beats.eq(stripe)]
            with m.If(rd.valid & rd.ready):
                m.d.sync += request.eq(request + 1)

            # The next beat's place, in registers ahead of it (off the path from the beat to
            # the comparisons): its number j, its way, whether that way is in the bucket, and
            # its index position.
            j = Signal(range(self.beats + 1), init=self.beats, name=f"beat{q}")
            way = Signal(range(depth + ports * stripe), name=f"way{q}")
            inside, position = Signal(name=f"inside{q}"), Signal.like(self.pos, name=f"pos{q}")
            # All of this port's beats are in after this cycle.
            beats_in.append((j == self.beats) | ((j == self.beats - 1) & beat.valid))
            m.d.comb += beat.ready.eq(1)
            entry = Signal(entry_layout, name=f"entry{q}")
            m.d.comb += entry.eq(beat.payload.data[:entry_layout.size])
            second = j >= stripe
            arrived = beat.valid & (j != self.beats)
            # Computed from the beat number after this cycle, so ready for that beat: the
            # first beat comes two cycles after ``start`` at the earliest (its request leaves
            # in the cycle after, with the buckets).
            j_next = Mux(self.start, 0, j + arrived)
            start_next = Mux(j_next >= stripe, starts[1], starts[0])
            way_next = (((q - start_next)[:shift] if shift else 0)
                        + Mux(j_next >= stripe, j_next - stripe, j_next) * ports)
            m.d.sync += [way.eq(way_next), inside.eq(way_next < depth),
                         position.eq(start_next + way_next)]
            with m.If(self.start):
                m.d.sync += [j.eq(0), found[q].eq(0), fills[q][0].eq(0), fills[q][1].eq(0)]
            with m.Elif(arrived):
                m.d.sync += j.eq(j + 1)
                with m.If(matches(entry) & inside):
                    m.d.sync += [found[q].eq(1), found_entry[q].eq(entry),
                                 found_pos[q].eq(position)]
                for b, in_bucket in enumerate([~second, second]):
                    with m.If(in_bucket & inside & entry.valid):
                        m.d.sync += fills[q][b].eq(fills[q][b] + 1)
            for b, in_bucket in enumerate([~second, second]):
                free_set[b].append(Mux(arrived & in_bucket & inside & ~entry.valid,
                                       (1 << way)[:depth], 0))
        for b in range(2):
            with m.If(self.start):
                m.d.sync += free_ways[b].eq(0)
            with m.Else():
                m.d.sync += free_ways[b].eq(reduce(operator.or_, free_set[b], free_ways[b]))
        fill = [sum(fills[q][b] for q in range(ports)) for b in range(2)]
        free_way = [lowest_set([free_ways[b][w] for w in range(depth)]) for b in range(2)]

        # -- the overflow area: a row a cycle, in three register stages --------------------------
        m.submodules.overflow = overflow = Memory(
            shape=data.ArrayLayout(entry_layout, lanes), depth=rows, init=[])
        row_read = overflow.read_port()
        row_write = overflow.write_port(granularity=1)

        # Stage 0, step s < rows: row s is read. Stage 1: its lanes compared (match, free),
        # into registers. Stage 2: the row's verdict. Then the found row is read again
        # (step rows + 2) and its entry taken (rows + 3).
        step = Signal(range(self.scan_cycles + 1), init=self.scan_cycles)
        with m.If(self.start):
            m.d.sync += step.eq(0)
        with m.Elif(step != self.scan_cycles):
            m.d.sync += step.eq(step + 1)

        lane_bits = (lanes - 1).bit_length()
        reading, read_row = Signal(), Signal(range(rows))      # stage 1: the row just read
        judged, judged_row = Signal(), Signal(range(rows))     # stage 2: the row compared
        row_matches, row_free = Signal(lanes), Signal(lanes)
        found_row, found_lane = Signal(range(rows)), Signal(range(lanes))
        overflow_free = Signal()
        overflow_free_pos = Signal.like(self.free_pos)
        m.d.comb += row_read.addr.eq(Mux(step < rows, step, found_row))
        lanes_read = [row_read.data[lane] for lane in range(lanes)]
        m.d.sync += [reading.eq(step < rows), read_row.eq(step),
                     judged.eq(reading), judged_row.eq(read_row),
                     row_matches.eq(Cat(*[matches(e) for e in lanes_read])),
                     row_free.eq(Cat(*[~e.valid for e in lanes_read]))]
        with m.If(self.start):
            m.d.sync += [found[-1].eq(0), overflow_free.eq(0)]
        with m.Elif(judged):
            # A row's last match (the lowest set bit of its matches reversed) and first free lane.
            with m.If(row_matches.any()):
                last = Signal(range(lanes))
                m.d.comb += last.eq(
                    (lanes - 1) - lowest_set([row_matches[lanes - 1 - i] for i in range(lanes)]))
                m.d.sync += [found[-1].eq(1), found_row.eq(judged_row), found_lane.eq(last),
                             found_pos[-1].eq(overflow_base + judged_row * lanes + last)]
            with m.If(row_free.any() & ~overflow_free):
                m.d.sync += [overflow_free.eq(1), overflow_free_pos.eq(
                    overflow_base + judged_row * lanes
                    + lowest_set([row_free[i] for i in range(lanes)]))]
        with m.If(step == rows + 3):
            m.d.sync += found_entry[-1].eq(row_read.data[found_lane])

        # `done` from a register, set a cycle ahead (the control's next state waits on it):
        # every port's beats in and the scan over, as they will be after this cycle.
        done = Signal(init=1)
        scanned = (step == self.scan_cycles) | (step == self.scan_cycles - 1)
        m.d.sync += done.eq(~self.start & Cat(*beats_in).all() & scanned)
        m.d.comb += self.done.eq(done)

        # The free place: the less full bucket, ties to bucket 1, else the overflow area.
        use2 = fill[1] < fill[0]
        both_full = (fill[0] == depth) & (fill[1] == depth)
        with m.If(both_full):
            m.d.comb += [self.free_pos.eq(overflow_free_pos), self.free_ok.eq(overflow_free)]
        with m.Elif(use2):
            m.d.comb += [self.free_pos.eq(starts[1] + free_way[1]),
                         self.free_ok.eq(1)]
        with m.Else():
            m.d.comb += [self.free_pos.eq(starts[0] + free_way[0]),
                         self.free_ok.eq(1)]

        # -- writes into the overflow area, and its clear ---------------------------------------
        # An index write is registered here first, so that the decision whether it falls in
        # the overflow area, and its row and lane, start from registers.
        written = Signal()
        written_offset = Signal(len(self.write_pos) + 1)   # from the overflow area's start
        written_entry = Signal(entry_layout)
        m.d.sync += [written.eq(self.write), written_offset.eq(self.write_pos - overflow_base),
                     written_entry.eq(self.write_entry)]
        in_overflow = ~written_offset[-1] & (written_offset < p.index_overflow_entries)
        clearing = Signal()
        clear_row = Signal(range(rows))
        with m.If(self.clear):
            m.d.sync += [clearing.eq(1), clear_row.eq(0)]
        with m.Elif(clearing):
            m.d.sync += clear_row.eq(clear_row + 1)
            with m.If(clear_row == rows - 1):
                m.d.sync += clearing.eq(0)
        with m.If(clearing):
            m.d.comb += [row_write.addr.eq(clear_row), row_write.en.eq((1 << lanes) - 1)]
        with m.Else():
            written_lane = written_offset[:lane_bits]
            m.d.comb += [row_write.addr.eq(written_offset[lane_bits:]),
                         row_write.en.eq(Cat(*[written & in_overflow & (written_lane == i)
                                               for i in range(lanes)]))]
            for i in range(lanes):
                m.d.comb += row_write.data[i].eq(written_entry)
        return m

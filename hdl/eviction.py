"""The eviction buffer (algorithm §2): per host bin, a FIFO of items placed there but not yet
written to the host page.

An entry is a frame (the item's value stays in its frame) plus the position of the item's
index entry (where its key is, and what the flush must update). Entries are indexed by their
frame number, so the buffer has exactly as many entries as the frame pool (``docs/design.md``:
it shares the pool's size). Each host bin has a doubly linked list (head, tail; next and prev per
entry) and a count, so that appending, removing any entry and popping the head each take one
cycle, whatever the list holds.
"""

from __future__ import annotations

from enum import IntEnum

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bolt.params import Params

__all__ = ["EvictionBuffer", "EvictionOp"]


class EvictionOp(IntEnum):
    NONE = 0
    APPEND = 1   #: append ``frame`` (with ``ipos``) to the list of ``bin``
    UNLINK = 2   #: remove ``frame`` from the list of ``bin``
    POP = 3      #: remove the head of the list of ``bin`` (if any)


class EvictionBuffer(wiring.Component):
    """Per-host-bin FIFOs of pending (frame, index position) entries.

    Parameters
    ----------
    params : Params
    ipos_shape : ShapeLike
        Shape of the index position stored with each entry.

    Members
    -------
    op, bin, frame, ipos : ``In``
        One operation per cycle (:class:`EvictionOp`), on host bin ``bin`` (0-based host page).
    head_valid, head_frame, head_ipos : ``Out``
        The head of the list of ``bin`` (asynchronous).
    count : ``Out``
        Entries pending for ``bin``; ``count2`` for ``bin2``.
    clear : ``In(1)``
        Empty every list (``clear_cycles`` cycles; ``done`` pulses after).
    """

    def __init__(self, params: Params, ipos_shape):
        self._p = params
        fb = params.frame_bits
        hb = max(1, (params.host_bins - 1).bit_length())
        self.ipos_shape = ipos_shape
        super().__init__({
            "op": In(EvictionOp),
            "bin": In(hb),
            "frame": In(fb),
            "ipos": In(ipos_shape),
            "head_valid": Out(1),
            "head_frame": Out(fb),
            "head_ipos": Out(ipos_shape),
            "count": Out(range(params.frames + 1)),
            "bin2": In(hb),
            "count2": Out(range(params.frames + 1)),
            "clear": In(1),
            "busy": Out(1),
            "done": Out(1),
        })

    @property
    def clear_cycles(self) -> int:
        return self._p.host_bins

    def elaborate(self, platform):
        p = self._p
        m = Module()
        fb = p.frame_bits
        head_layout = data.StructLayout({"valid": 1, "frame": fb})
        cshape = range(p.frames + 1)
        m.submodules.heads = heads = Memory(shape=head_layout, depth=p.host_bins, init=[])
        m.submodules.tails = tails = Memory(shape=fb, depth=p.host_bins, init=[])
        m.submodules.counts = counts = Memory(shape=cshape, depth=p.host_bins, init=[])
        m.submodules.nexts = nexts = Memory(shape=fb, depth=p.frames, init=[])
        m.submodules.prevs = prevs = Memory(shape=fb, depth=p.frames, init=[])
        m.submodules.iposs = iposs = Memory(shape=self.ipos_shape, depth=p.frames, init=[])

        head_rd, head_wr = heads.read_port(domain="comb"), heads.write_port()
        tail_rd, tail_wr = tails.read_port(domain="comb"), tails.write_port()
        count_rd, count_wr = counts.read_port(domain="comb"), counts.write_port()
        count2_rd = counts.read_port(domain="comb")
        next_f, next_head, next_wr = (nexts.read_port(domain="comb"),
                                      nexts.read_port(domain="comb"), nexts.write_port())
        prev_f, prev_wr = prevs.read_port(domain="comb"), prevs.write_port()
        ipos_head, ipos_wr = iposs.read_port(domain="comb"), iposs.write_port()

        head = head_rd.data
        tail = tail_rd.data
        m.d.comb += [
            head_rd.addr.eq(self.bin), tail_rd.addr.eq(self.bin), count_rd.addr.eq(self.bin),
            count2_rd.addr.eq(self.bin2),
            next_f.addr.eq(self.frame), prev_f.addr.eq(self.frame),
            next_head.addr.eq(head.frame), ipos_head.addr.eq(head.frame),
            self.head_valid.eq(head.valid), self.head_frame.eq(head.frame),
            self.head_ipos.eq(ipos_head.data),
            self.count.eq(count_rd.data), self.count2.eq(count2_rd.data),
            head_wr.addr.eq(self.bin), tail_wr.addr.eq(self.bin), count_wr.addr.eq(self.bin),
        ]

        clearing = Signal()
        step = Signal(range(p.host_bins + 1))
        m.d.comb += self.busy.eq(clearing)
        m.d.sync += self.done.eq(0)
        with m.If(clearing):
            m.d.comb += [head_wr.addr.eq(step), head_wr.data.eq(0), head_wr.en.eq(1),
                         count_wr.addr.eq(step), count_wr.data.eq(0), count_wr.en.eq(1)]
            m.d.sync += step.eq(step + 1)
            with m.If(step == p.host_bins - 1):
                m.d.sync += [clearing.eq(0), self.done.eq(1)]
        with m.Elif(self.clear):
            m.d.sync += [clearing.eq(1), step.eq(0)]
        with m.Elif(self.op == EvictionOp.APPEND):
            m.d.comb += [
                prev_wr.addr.eq(self.frame), prev_wr.data.eq(tail), prev_wr.en.eq(1),
                ipos_wr.addr.eq(self.frame), ipos_wr.data.eq(self.ipos), ipos_wr.en.eq(1),
                tail_wr.data.eq(self.frame), tail_wr.en.eq(1),
                count_wr.data.eq(count_rd.data + 1), count_wr.en.eq(1),
            ]
            with m.If(head.valid):
                m.d.comb += [next_wr.addr.eq(tail), next_wr.data.eq(self.frame),
                             next_wr.en.eq(1)]
            with m.Else():
                m.d.comb += [head_wr.data.valid.eq(1), head_wr.data.frame.eq(self.frame),
                             head_wr.en.eq(1)]
        with m.Elif(self.op == EvictionOp.UNLINK):
            is_head = head.valid & (head.frame == self.frame)
            is_tail = tail == self.frame
            m.d.comb += [count_wr.data.eq(count_rd.data - 1), count_wr.en.eq(1)]
            with m.If(is_head):
                m.d.comb += [head_wr.data.valid.eq(~is_tail), head_wr.data.frame.eq(next_f.data),
                             head_wr.en.eq(1)]
            with m.Else():
                m.d.comb += [next_wr.addr.eq(prev_f.data), next_wr.data.eq(next_f.data),
                             next_wr.en.eq(1)]
            with m.If(is_tail):
                m.d.comb += [tail_wr.data.eq(prev_f.data), tail_wr.en.eq(~is_head)]
            with m.Else():
                m.d.comb += [prev_wr.addr.eq(next_f.data), prev_wr.data.eq(prev_f.data),
                             prev_wr.en.eq(1)]
        with m.Elif(self.op == EvictionOp.POP):
            with m.If(head.valid):
                m.d.comb += [head_wr.data.valid.eq(tail != head.frame),
                             head_wr.data.frame.eq(next_head.data), head_wr.en.eq(1),
                             count_wr.data.eq(count_rd.data - 1), count_wr.en.eq(1)]
        return m

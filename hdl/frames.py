"""The value frame pool (algorithm §2): V-byte frames in HBM with a free list.

``params.frames`` frames (the frame bound of algorithm §1), each holding a value length and a value.
The free list is a stack of frame numbers; allocating and freeing each take one cycle.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bolt.params import Params

__all__ = ["FramePool", "frame_layout"]


def frame_layout(params: Params) -> data.StructLayout:
    """One frame: value length (16 bits) and value (little-endian bytes, zero padded)."""
    return data.StructLayout({"vlen": 16, "value": 8 * params.value_size})


class FramePool(wiring.Component):
    """Frames and their free list.

    Members
    -------
    alloc : ``In(1)``
        Take the frame offered on ``alloc_frame`` (valid while ``free_count`` is not zero).
    free, free_frame : ``In``
        Give a frame back. Not in the same cycle as ``alloc``.
    free_count : ``Out``
        Frames on the free list.
    clear : ``In(1)``
        Put every frame on the free list (``clear_cycles`` cycles, ``done`` pulses after).
    rd_frame, rd_value : asynchronous read of a frame's contents.
    wr_en, wr_frame, wr_value : synchronous write of a frame's contents.
    """

    def __init__(self, params: Params):
        self._p = params
        self.layout = frame_layout(params)
        fb = params.frame_bits
        super().__init__({
            "alloc": In(1),
            "alloc_frame": Out(fb),
            "free": In(1),
            "free_frame": In(fb),
            "free_count": Out(range(params.frames + 1)),
            "clear": In(1),
            "busy": Out(1),
            "done": Out(1),
            "rd_frame": In(fb),
            "rd_value": Out(self.layout),
            "wr_en": In(1),
            "wr_frame": In(fb),
            "wr_value": In(self.layout),
        })

    @property
    def clear_cycles(self) -> int:
        return self._p.frames

    def elaborate(self, platform):
        n = self._p.frames
        m = Module()
        m.submodules.values = values = Memory(shape=self.layout, depth=n, init=[])
        # The free list as the reference model keeps it: frame 0 on top, taken first.
        m.submodules.stack = stack = Memory(shape=self._p.frame_bits, depth=n,
                                            init=list(range(n - 1, -1, -1)))
        v_rd = values.read_port(domain="comb")
        v_wr = values.write_port()
        s_rd = stack.read_port(domain="comb")
        s_wr = stack.write_port()
        top = Signal(range(n + 1), init=n)
        m.d.comb += [v_rd.addr.eq(self.rd_frame), self.rd_value.eq(v_rd.data),
                     v_wr.addr.eq(self.wr_frame), v_wr.data.eq(self.wr_value),
                     v_wr.en.eq(self.wr_en),
                     self.free_count.eq(top), s_rd.addr.eq(top - 1),
                     self.alloc_frame.eq(s_rd.data)]

        clearing = Signal()
        step = Signal(range(n + 1))
        m.d.comb += self.busy.eq(clearing)
        m.d.sync += self.done.eq(0)
        with m.If(clearing):
            m.d.comb += [s_wr.addr.eq(step), s_wr.data.eq(n - 1 - step), s_wr.en.eq(1)]
            m.d.sync += step.eq(step + 1)
            with m.If(step == n - 1):
                m.d.sync += [clearing.eq(0), top.eq(n), self.done.eq(1)]
        with m.Elif(self.clear):
            m.d.sync += [clearing.eq(1), step.eq(0)]
        with m.Elif(self.alloc):
            m.d.sync += top.eq(top - 1)
        with m.Elif(self.free):
            m.d.comb += [s_wr.addr.eq(top), s_wr.data.eq(self.free_frame), s_wr.en.eq(1)]
            m.d.sync += top.eq(top + 1)
        return m

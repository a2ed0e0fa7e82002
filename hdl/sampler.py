"""The accelerator's source of U(M) samples: the DRBG of algorithm §6, sampled ahead.

Setup and Access draw only ``U(M)`` values, in stream order, so the samples can be drawn ahead
of need and buffered: an Access then pops its draws from the buffer in a fixed number of
cycles (the rejection sampling's variable work happens in the background, on public randomness
that depends on no operation).

:func:`make_sampler` returns a component with:

``key`` (``In(128)``), ``restart`` (``In(1)``)
    A ``restart`` pulse empties the buffer and restarts the DRBG under ``key`` (held stable
    afterwards) with its counter at 0.
``o`` (``Out(stream(range(M)))``)
    The samples ``U(M)``, in the DRBG's order.
"""

from __future__ import annotations

from amaranth.hdl import Module, ResetInserter, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from bolt.crypto import uniform_mask
from bolt.params import Params

from .aes import Aes128

__all__ = ["make_sampler", "UniformSampler"]


class UniformSampler(wiring.Component):
    """AES-128-CTR words (four per block, most significant first) filtered by ``U(n)``'s
    rejection rule into a FIFO of ``depth`` samples.

    Uses the iterative :class:`~bolt.hdl.aes.Aes128` (10 cycles per block).
    """

    def __init__(self, n: int, *, depth: int = 16):
        self._n = n
        self._depth = depth
        super().__init__({
            "key": In(128),
            "restart": In(1),
            "o": Out(stream.Signature(range(n))),
        })

    def elaborate(self, platform):
        m = Module()
        # A restart resets the whole engine: DRBG counter, AES core and buffer.
        core = _SamplerCore(self._n, self._depth)
        m.submodules.core = ResetInserter({"sync": self.restart})(core)
        m.d.comb += [core.key.eq(self.key), self.o.payload.eq(core.o.payload),
                     self.o.valid.eq(core.o.valid & ~self.restart), core.o.ready.eq(self.o.ready)]
        return m


class _SamplerCore(wiring.Component):
    def __init__(self, n: int, depth: int):
        self._n = n
        self._depth = depth
        super().__init__({"key": In(128), "o": Out(stream.Signature(range(n)))})

    def elaborate(self, platform):
        n, depth = self._n, self._depth
        mask = uniform_mask(n)
        m = Module()
        m.submodules.aes = aes = Aes128(pipelined=False)
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=len(self.o.payload), depth=depth)
        m.d.comb += [self.o.payload.eq(fifo.r_data), self.o.valid.eq(fifo.r_rdy),
                     fifo.r_en.eq(self.o.ready)]

        counter = Signal(128)
        block = Signal(128)
        word = Signal(2)
        with m.FSM():
            with m.State("KEY"):
                m.d.comb += [aes.o_stream.ready.eq(1), aes.key_stream.valid.eq(1),
                             aes.key_stream.payload.eq(self.key)]
                with m.If(aes.key_stream.ready):
                    m.next = "RUN"
            with m.State("RUN"):
                with m.If(fifo.level <= depth - 5):
                    m.d.comb += [aes.i_stream.valid.eq(1), aes.i_stream.payload.eq(counter)]
                    with m.If(aes.i_stream.ready):
                        m.d.sync += counter.eq(counter + 1)
                        m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += aes.o_stream.ready.eq(1)
                with m.If(aes.o_stream.valid):
                    m.d.sync += [block.eq(aes.o_stream.payload), word.eq(0)]
                    m.next = "PUSH"
            with m.State("PUSH"):
                w = block.word_select(~word, 32) & mask
                m.d.comb += [fifo.w_data.eq(w), fifo.w_en.eq(w < n)]
                m.d.sync += word.eq(word + 1)
                with m.If(word == 3):
                    m.next = "RUN"
        return m


def make_sampler(params: Params, factory=None):
    """The sample source for ``params.bins`` bins (``factory(params)`` overrides it)."""
    if factory is not None:
        return factory(params)
    return UniformSampler(params.bins)

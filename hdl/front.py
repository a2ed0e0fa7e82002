"""The accelerator's front stage: the next command, taken and prepared while the access before
it still runs (algorithm §12, accesses in flight).

An access's first step needs neither HBM nor the host: the index PRF (a CBC-MAC of ``klen ‖
key`` under the index key, on the control's iterative AES core) and the DRBG draws. The front
runs them for the next command while the back finishes the access before it, most often during
its tail, and offers the prepared command; the back takes it the cycle it is idle. Only a
Setup's first command changes what the prelude uses (the index key, the DRBG), so the control
holds the front (``hold``) while it does.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from bolt.params import Params
from bolt.protocol import Cmd

from .pages import bswap

__all__ = ["CommandFront", "DRAWS"]

#: DRBG draws of an access (r, y, c1, c2); a Setup item makes the last two.
DRAWS = 4


class CommandFront(wiring.Component):
    """Take a command, compute its index MAC and its draws, offer it prepared.

    Parameters
    ----------
    params : Params
        The public parameters (key size, bins).
    command_layout : data.StructLayout
        The command's layout (:func:`bolt.hdl.accelerator.command_layout`).

    Members
    -------
    cmd : ``In(stream.Signature(command_layout))``
        Taken whenever the front holds no command and ``hold`` is low.
    prepared : ``Out(stream.Signature(...))``
        The command, its index ``mac`` (GET, PUT, DELETE and SETUP_ITEM), its draws ``r``,
        ``y``, ``c1``, ``c2`` (an access: all four; a Setup item: ``c1``, ``c2``; others: none,
        the registers as they were) and its ``age``, the cycles since it was taken (1 in the
        cycle after). Offered once the MAC and the draws are in; the front takes a new
        command the cycle after it is taken.
    hold : ``In(1)``
        Take no command (a Setup's keys are changing).
    block : ``Out(stream.Signature(128))``
        The MAC's blocks, to the AES core (keyed with the index key); the first leaves in the
        cycle its command is taken, each other in the cycle the block before comes back.
    result : ``In(stream.Signature(128))``
        The AES core's output (always taken).
    draws : ``In(stream.Signature(range(params.bins)))``
        The DRBG's uniform draws over the bins.
    """

    def __init__(self, *, params: Params, command_layout: data.StructLayout):
        self._p = params
        self._command = command_layout
        self.blocks = -(-(1 + params.key_size) // 16)     # MAC message blocks
        bins = range(params.bins)
        self.prepared_layout = data.StructLayout({
            "cmd": command_layout, "mac": 128, "r": bins, "y": bins, "c1": bins, "c2": bins,
            "age": 32})
        super().__init__({
            "cmd": In(stream.Signature(command_layout)),
            "prepared": Out(stream.Signature(self.prepared_layout)),
            "hold": In(1),
            "block": Out(stream.Signature(128)),
            "result": In(stream.Signature(128)),
            "draws": In(stream.Signature(bins)),
        })

    def message(self, m, cmd):
        """The MAC's message for command ``cmd``: klen ‖ key, zero padded to whole blocks
        (block ``j`` is ``bswap`` of bits ``128 j`` on)."""
        message = Signal(128 * self.blocks)
        m.d.comb += message.eq(Cat(cmd.klen, cmd.key))
        return message

    def elaborate(self, platform):
        m = Module()
        cmd, prepared, out = self.cmd, self.prepared, self.prepared.payload
        block, result = self.block, self.result

        sent = Signal(range(self.blocks + 1))          # blocks sent to the AES core
        # The message block `sent` (the first also from the command as it comes).
        next_block = Signal(128)
        message = self.message(m, out.cmd)
        with m.Switch(sent):
            for j in range(self.blocks):
                with m.Case(j):
                    m.d.comb += next_block.eq(bswap(message[128 * j:128 * (j + 1)]))

        m.d.sync += out.age.eq(out.age + 1)
        m.d.comb += result.ready.eq(1)

        # The draws, taken as the sampler offers them while the MAC runs: r, y, c1, then c2,
        # drawn again while it equals c1.
        drawn = Signal(range(DRAWS + 1), init=DRAWS)
        with m.If(drawn != DRAWS):
            m.d.comb += self.draws.ready.eq(1)
            with m.If(self.draws.valid):
                sample = self.draws.payload
                with m.Switch(drawn):
                    with m.Case(0):
                        m.d.sync += [out.r.eq(sample), drawn.eq(1)]
                    with m.Case(1):
                        m.d.sync += [out.y.eq(sample), drawn.eq(2)]
                    with m.Case(2):
                        m.d.sync += [out.c1.eq(sample), drawn.eq(3)]
                    with m.Case(3):
                        with m.If(sample != out.c1):
                            m.d.sync += [out.c2.eq(sample), drawn.eq(DRAWS)]

        with m.FSM():
            with m.State("EMPTY"):
                m.d.comb += cmd.ready.eq(~self.hold)
                with m.If(cmd.valid & ~self.hold):
                    m.d.sync += [out.cmd.eq(cmd.payload), out.age.eq(1), out.mac.eq(0),
                                 sent.eq(0)]
                    with m.Switch(cmd.payload.op):
                        with m.Case(Cmd.GET, Cmd.PUT, Cmd.DELETE, Cmd.SETUP_ITEM):
                            with m.If(cmd.payload.op == Cmd.SETUP_ITEM):
                                m.d.sync += drawn.eq(2)
                            with m.Else():
                                m.d.sync += drawn.eq(0)
                            m.d.comb += [block.valid.eq(1), block.payload.eq(
                                bswap(self.message(m, cmd.payload)[:128]))]
                            with m.If(block.ready):
                                m.d.sync += sent.eq(1)
                                m.next = "WAIT"
                            with m.Else():
                                m.next = "SEND"
                        with m.Default():
                            m.next = "HELD"
            with m.State("SEND"):
                m.d.comb += [block.valid.eq(1), block.payload.eq(out.mac ^ next_block)]
                with m.If(block.ready):
                    m.d.sync += sent.eq(sent + 1)
                    m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(result.valid):
                    m.d.sync += out.mac.eq(result.payload)
                    with m.If(sent == self.blocks):
                        m.next = "HELD"
                    with m.Else():
                        # The next block (`sent` counts those sent) follows at once.
                        m.d.comb += [block.valid.eq(1),
                                     block.payload.eq(result.payload ^ next_block)]
                        with m.If(block.ready):
                            m.d.sync += sent.eq(sent + 1)
                        with m.Else():
                            m.next = "SEND"
            with m.State("HELD"):
                m.d.comb += prepared.valid.eq(drawn == DRAWS)
                with m.If(prepared.valid & prepared.ready):
                    m.next = "EMPTY"
        return m

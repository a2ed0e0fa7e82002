"""Step 3 of an Access, a touch's flush: a host bin's pending items into its page.

A touched host bin's eviction list names the frames of its pending items (algorithm §3,
step 3). Their frames, each holding the item's key and index position beside its value, are
read from HBM while the page travels, from :data:`~bolt.hdl.hbm.FRAME_BANKS` copies of the
frames on ports of their own side by side, and wait here, in as many banks (slot ``i`` of the
list in bank ``i mod FRAME_BANKS``), each with a synchronous read and a write port; once
the page is in (and the key's own item out of it), :class:`Flush` puts them into the page's
lowest free slots, a slot a cycle, and notes each one's index position in the page's map
(:func:`~bolt.hdl.hbm.page_map_layout`), which says, from then on, where the item is: its index
entry is not written again. The fill takes the same number of cycles however many items the
list holds.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bolt.params import Params

from .hbm import FRAME_BANKS, frame_record_layout, page_map_layout
from .pages import SlotPortSignature, bswap
from .scan import lowest_set

__all__ = ["Flush"]


class Flush(wiring.Component):
    """Hold a bin's pending frames, put them into its page's lowest free slots.

    Parameters
    ----------
    params : Params
        The public parameters (slots, key and value sizes, frame record).

    Members
    -------
    hold : ``In(stream.Signature(...)).array(FRAME_BANKS)``
        The list's frames as HBM returns them, a stream per bank (taken every cycle, all banks
        at once): on stream ``b``, frame record ``frame`` is the list's ``row · FRAME_BANKS +
        b``-th.
    start : ``In(1)``
        Pulse to begin the fill: the first ``count`` frames held go into the page's lowest free
        slots (free as ``page.used`` says in the cycle after), in list order; ``count`` is held
        until ``done``, and the page has at least ``count`` free slots.
    page : ``Out(SlotPortSignature(params))``
        The page's slots (a :class:`~bolt.hdl.pages.PageEngine`'s plaintext buffer); the fill
        only writes them.
    busy, done : ``Out(1)``
        The fill runs (``busy``) for :attr:`fill_cycles` cycles after ``start``, whatever
        ``count`` is; ``done`` is high in the last, when the page holds every item.
    map_in : ``In(page_map_layout(params))``
        The page's map before the fill (held from ``start`` for as long as ``map_out`` is
        read).
    map_out : ``Out(page_map_layout(params))``
        From ``done`` on, ``map_in`` with each slot the fill put an item in marked used and
        holding the item's index position.
    """

    def __init__(self, *, params: Params):
        self._p = params
        self.frame_layout = frame_record_layout(params)
        self.bank_rows = -(-params.slots // FRAME_BANKS)
        super().__init__({
            "hold": In(stream.Signature(data.StructLayout({
                "row": range(self.bank_rows), "frame": self.frame_layout}))).array(FRAME_BANKS),
            "start": In(1),
            "count": In(range(params.slots + 1)),
            "page": Out(SlotPortSignature(params)),
            "busy": Out(1),
            "done": Out(1),
            "map_in": In(page_map_layout(params)),
            "map_out": Out(page_map_layout(params)),
        })

    @property
    def fill_cycles(self) -> int:
        """Cycles of a fill: the free slots found, then a frame a cycle, then one more."""
        return self._p.slots + 2

    def elaborate(self, platform):
        S = self._p.slots
        m = Module()

        held_rd = []
        for bank, hold in enumerate(self.hold):
            m.submodules[f"held{bank}"] = held = Memory(shape=self.frame_layout,
                                                        depth=self.bank_rows, init=[])
            held_wr = held.write_port()
            held_rd.append(held.read_port())
            m.d.comb += [hold.ready.eq(1), held_wr.en.eq(hold.valid),
                         held_wr.addr.eq(hold.payload.row), held_wr.data.eq(hold.payload.frame)]

        # The fill's cycle j: 0 to slots + 1, then idle (slots + 2). In cycle j frame j is read
        # and frame j - 1 goes into the lowest free slot.
        j = Signal(range(S + 3), init=S + 2)
        with m.If(self.start):
            m.d.sync += j.eq(0)
        with m.Elif(j != S + 2):
            m.d.sync += j.eq(j + 1)
        # `busy` (j != slots + 2) and `done` (j == slots + 1) from registers, set a cycle ahead.
        busy, done = Signal(), Signal()
        m.d.sync += [busy.eq(self.start | (j < S + 1)), done.eq(~self.start & (j == S))]
        # Frame j from its bank, read in cycle j: the bank's data is chosen by j's bank a
        # cycle later.
        bank_bits = (FRAME_BANKS - 1).bit_length()
        read_bank = Signal(range(FRAME_BANKS))
        m.d.sync += read_bank.eq(j[:bank_bits] if bank_bits else 0)
        m.d.comb += [self.busy.eq(busy), self.done.eq(done)]
        m.d.comb += [port.addr.eq(j >> bank_bits) for port in held_rd]

        # The page's map: the slots this fill filled, each with its item's index position (a
        # register each), over the map the fill began from (held, as ``map_in`` says). A
        # register per slot's whole entry, loaded from ``map_in`` and driving ``map_out``, made
        # Yosys's ABC9 mapping of this module fail.
        ipos_shape = self.map_in.shape().elem_shape.members["ipos"]
        filled = Signal(S)
        placed = [Signal(ipos_shape, name=f"placed_ipos_{s}") for s in range(S)]
        for s in range(S):
            m.d.comb += [self.map_out[s].used.eq(filled[s] | self.map_in[s].used),
                         self.map_out[s].ipos.eq(Mux(filled[s], placed[s],
                                                     self.map_in[s].ipos))]

        # The free slots as the fill takes them, and the lowest, in registers.
        free, free_slot = Signal(S), Signal(range(S))
        with m.If(j == 0):
            used = self.page.used
            m.d.sync += [free.eq(~used), free_slot.eq(lowest_set([~used[s] for s in range(S)]))]
            m.d.sync += filled.eq(0)
        frame = Signal(self.frame_layout)
        with m.Switch(read_bank):
            for bank, port in enumerate(held_rd):
                with m.Case(bank):
                    m.d.comb += frame.eq(port.data)
        with m.If((j != 0) & (j <= self.count)):
            m.d.comb += [self.page.wr_en.eq(1), self.page.wr_idx.eq(free_slot),
                         self.page.wr.flag.eq(1), self.page.wr.klen.eq(frame.klen),
                         self.page.wr.key.eq(frame.key),
                         self.page.wr.vlen_be.eq(bswap(frame.vlen)),
                         self.page.wr.value.eq(frame.value)]
            rest = free & (free - 1)          # the lowest is taken
            m.d.sync += [free.eq(rest), free_slot.eq(lowest_set([rest[s] for s in range(S)]))]
            for s in range(S):
                with m.If(free_slot == s):
                    m.d.sync += [filled[s].eq(1), placed[s].eq(frame.ipos)]
        return m

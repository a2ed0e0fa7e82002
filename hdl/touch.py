"""Step 3 of an Access, the touch of page x: the key's item taken out of its slot.

Once page x is in and verified (in a page engine's plaintext buffer), the slot the index names
for the key is read and checked to hold the key; if the access takes the item (it is deleted or
re-placed), its value goes to the result and the re-placement and the slot is emptied. A slot
that does not hold the key is an integrity failure: the page stays as it was (algorithm §3,
step 3). The read, the check and the write are a cycle each, so that the comparison of a whole
slot shares a cycle neither with the page RAM's read nor with the write enable it drives.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from bolt.params import Params

from .pages import SlotPortSignature, bswap

__all__ = ["Take"]


class Take(wiring.Component):
    """Check that slot ``slot`` of a page holds ``key``, and empty it if asked to.

    Parameters
    ----------
    params : Params
        The public parameters (slots, key and value sizes).

    Members
    -------
    request : ``In(stream.Signature(...))``
        The slot, the key (``klen``, ``key``) and whether to ``take`` the item out. Taken
        while no result waits; the slot is read in the cycle the request is taken
        (``page.rd_idx`` is ``request.payload.slot`` throughout).
    page : ``Out(SlotPortSignature(params))``
        The page's slots (a :class:`~bolt.hdl.pages.PageEngine`'s plaintext buffer).
    result : ``Out(stream.Signature(...))``
        Two cycles after the request: whether the slot ``holds`` the key, and the slot's
        ``vlen`` and ``value``. As the result is taken, the slot is emptied if the request
        said ``take`` and the slot holds the key.
    """

    def __init__(self, *, params: Params):
        self._p = params
        self.request_layout = data.StructLayout({
            "slot": range(params.slots), "klen": 8, "key": 8 * params.key_size, "take": 1})
        self.result_layout = data.StructLayout({
            "holds": 1, "vlen": 16, "value": 8 * params.value_size})
        super().__init__({
            "request": In(stream.Signature(self.request_layout)),
            "page": Out(SlotPortSignature(params)),
            "result": Out(stream.Signature(self.result_layout)),
        })

    def elaborate(self, platform):
        m = Module()
        request, page, result = self.request, self.page, self.result

        # The request is taken and its slot read.
        held = Signal(self.request_layout)
        checking = Signal()      # the slot read is on `page.rd` now
        m.d.comb += [request.ready.eq(~checking & ~result.valid),
                     page.rd_idx.eq(request.payload.slot)]
        with m.If(request.valid & request.ready):
            m.d.sync += [held.eq(request.payload), checking.eq(1)]

        # The slot is in: whether it holds the key, into a register of its own.
        slot = page.rd
        with m.If(checking):
            m.d.sync += [checking.eq(0), result.valid.eq(1),
                         result.payload.holds.eq((slot.flag != 0) & (slot.klen == held.klen)
                                                 & (slot.key == held.key)),
                         result.payload.vlen.eq(bswap(slot.vlen_be)),
                         result.payload.value.eq(slot.value)]

        # The result is taken: the item leaves its slot.
        taken = result.valid & result.ready
        m.d.comb += [page.wr_idx.eq(held.slot), page.wr.eq(0),
                     page.wr_en.eq(taken & held.take & result.payload.holds)]
        with m.If(taken):
            m.d.sync += result.valid.eq(0)
        return m

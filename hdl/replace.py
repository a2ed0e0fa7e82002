"""Steps 5 and 6 of an Access, the re-placement: where the key's item goes in bin nb, and what
that changes in HBM.

The item the access stores again (a PUT's new value, or a GET's old one) goes to bin nb, the
less loaded of c1 and c2, chosen at the decisions. It takes a value frame: its own, if it had
one and it was taken (its frame is freed and taken again at once), else the top of the free
stack, else a frame never used since Setup. Its index entry keeps its position (a new key's
goes to the place the lookup found free); in a host bin nb it waits in nb's eviction list. A
DELETE of an item with a frame of its own frees the frame: it goes on the free stack.

:class:`Replacement` is combinational: the control registers its outputs as the step that
writes them begins, and runs the writes on the step's fixed schedule.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bolt.params import Params
from bolt.protocol import HBM, HOST, PENDING

from .hbm import (bin_record_layout, frame_record_layout, index_entry_layout,
                  index_position_bits)

__all__ = ["Replacement"]


class Replacement(wiring.Component):
    """The key's re-placement into bin ``nb``: its frame, index entry and the loads and list
    it changes.

    Parameters
    ----------
    params : Params
        The public parameters.

    Members
    -------
    put, found, take, fits : ``In(1)``
        The access: a PUT; the key was found (its entry ``kind``, ``loc`` at index position
        ``pos``), and is taken out (deleted or re-placed); the re-placement has room.
    kind, loc, pos, free_pos : ``In``
        The key's entry and its position, and where a new key's entry goes.
    klen, key, put_vlen, put_value, old_vlen, old_value : ``In``
        The key, the PUT's value and the key's old value (step 4).
    x, load_x, nb, load_nb : ``In``
        The key's bin x (or the random one) and nb, with their loads before the access.
    top, fresh, stack_top : ``In``
        The free stack's height (after the flushes' pushes), the first frame never used since
        Setup, and the frame that was on top of the stack before the flushes.
    pushed_any, last_pushed : ``In``
        Whether the flushes pushed frames, and the last one pushed.
    nb_list, nb_flushed : ``In``
        nb's eviction list, as read before the flushes; whether a flush emptied it since.
    frame, record, frame_write : ``Out``
        The item's frame and the record written into it (if ``frame_write``).
    ipos, entry, entry_write : ``Out``
        The index entry written at position ``ipos`` (if ``entry_write``): the item's new
        entry, or an empty one for a key deleted.
    new_load_x, new_load_nb : ``Out``
        The loads of x and nb afterwards.
    list, list_write : ``Out``
        nb's eviction list with the item appended, written if nb is a host bin.
    allocate : ``Out(1)``
        The item takes a frame from the free stack, or else a fresh one.
    push : ``Out(1)``
        The key's own frame, freed, goes on the free stack (at height ``top``).
    """

    def __init__(self, *, params: Params):
        self._p = p = params
        self.entry_layout = index_entry_layout(p)
        self.frame_layout = frame_record_layout(p)
        self.list_layout = bin_record_layout(p)
        position, frames = index_position_bits(p), range(p.frames + 1)
        bins, load = range(p.bins), range(p.slots + 1)
        super().__init__({
            "put": In(1), "found": In(1), "take": In(1), "fits": In(1),
            "kind": In(2), "loc": In(self.entry_layout.members["loc"]),
            "pos": In(position), "free_pos": In(position),
            "klen": In(8), "key": In(8 * p.key_size),
            "put_vlen": In(16), "put_value": In(8 * p.value_size),
            "old_vlen": In(16), "old_value": In(8 * p.value_size),
            "x": In(bins), "load_x": In(load), "nb": In(bins), "load_nb": In(load),
            "top": In(frames), "fresh": In(frames), "stack_top": In(p.frame_bits),
            "pushed_any": In(1), "last_pushed": In(p.frame_bits),
            "nb_list": In(self.list_layout), "nb_flushed": In(1),
            "frame": Out(p.frame_bits), "record": Out(self.frame_layout), "frame_write": Out(1),
            "ipos": Out(position), "entry": Out(self.entry_layout), "entry_write": Out(1),
            "new_load_x": Out(load), "new_load_nb": Out(load),
            "list": Out(self.list_layout), "list_write": Out(1),
            "allocate": Out(1), "push": Out(1),
        })

    def elaborate(self, platform):
        p, fb = self._p, self._p.frame_bits
        m = Module()
        own_freed = self.take & (self.kind != HOST)     # the key's own frame is freed
        nb_host = self.nb >= p.hbm_bins

        # The frame: the key's own, freed; else the top of the free stack, else a fresh one.
        stack_top = Mux(self.pushed_any, self.last_pushed, self.stack_top)
        allocated = Mux(self.top != 0, stack_top, self.fresh[:fb])
        m.d.comb += [self.frame.eq(Mux(own_freed, self.loc[:fb], allocated)),
                     self.allocate.eq(self.fits & ~own_freed),
                     self.push.eq(own_freed & ~self.fits),
                     self.frame_write.eq(self.fits)]
        m.d.comb += [self.record.vlen.eq(Mux(self.put, self.put_vlen, self.old_vlen)),
                     self.record.value.eq(Mux(self.put, self.put_value, self.old_value)),
                     self.record.klen.eq(self.klen), self.record.key.eq(self.key),
                     self.record.ipos.eq(self.ipos)]

        # The index entry keeps its place; a new key's goes where the lookup found room.
        m.d.comb += [self.ipos.eq(Mux(self.found, self.pos, self.free_pos)),
                     self.entry_write.eq(self.fits | self.take)]
        with m.If(self.fits):
            m.d.comb += [self.entry.valid.eq(1), self.entry.kind.eq(Mux(nb_host, PENDING, HBM)),
                         self.entry.klen.eq(self.klen), self.entry.key.eq(self.key),
                         self.entry.bin.eq(self.nb), self.entry.loc.eq(self.frame)]

        # The loads: x loses the item taken, nb gains the one placed (x == nb: both).
        new_load_x = self.load_x - self.take + (self.fits & (self.nb == self.x))
        m.d.comb += [self.new_load_x.eq(new_load_x),
                     self.new_load_nb.eq(Mux(self.nb == self.x, new_load_x,
                                             self.load_nb + self.fits))]

        # nb's list (empty if a flush emptied it) with the item appended.
        listed = self.list_layout(Mux(self.nb_flushed, 0, self.nb_list))
        m.d.comb += [self.list.eq(listed), self.list.count.eq(listed.count + 1),
                     self.list.frames[listed.count].eq(self.frame),
                     self.list_write.eq(self.fits & nb_host)]
        return m

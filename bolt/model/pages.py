"""The host pages as the accelerator sees them: whole-page touches of algorithm §3.

Two interchangeable page stores share one interface and record the identical trace:
:class:`SealedPages` keeps AES-GCM pages in a :class:`~bolt.trace.HostMemory` (the reference),
:class:`PlainPages` keeps slot contents in Python lists and does no crypto (the trace-only mode
of algorithm §9, for large audit samples).
"""

from __future__ import annotations

import functools
import struct
from typing import NamedTuple

import numpy as np

from ..crypto import PageCipher
from ..errors import IntegrityError
from ..params import Params
from ..trace import READ, WRITE, HostMemory, Trace

__all__ = ["SealedPages", "PlainPages", "HostItems", "EncodedItems", "encode_slot", "slot_format",
           "slot_rows",
           "OCCUPIED", "COUNTER_LIMIT"]

#: The largest write counter a page is ever sealed under: the nonce's counter field is 8 bytes.
#: An access whose writes would need a larger one is refused before it changes anything
#: (``ReferenceAccelerator._check_counters``); at one write per nanosecond that takes 584 years.
COUNTER_LIMIT = 2**64 - 1

Item = tuple[bytes, bytes]  # (key, value)
#: The flag byte of a slot that holds an item (an empty slot is all zeros).
OCCUPIED = 1


class EncodedItems(dict):
    """Setup items (key -> value, no key repeated) with their slot plaintexts: ``slots[i]`` is
    :func:`encode_slot` of the i-th item. The channel's Setup frames carry items in the slot
    layout already, so a Setup given these takes its host slots from them instead of encoding
    every item again."""

    @property
    def slots(self) -> np.ndarray:
        """The items' slot plaintexts, one row each in item order (set once the items are in:
        the count is checked)."""
        return self._slots

    @slots.setter
    def slots(self, slots: np.ndarray) -> None:
        if slots.shape[0] != len(self):
            raise ValueError(f"{slots.shape[0]} slot plaintexts for {len(self)} items")
        self._slots = slots


class HostItems(NamedTuple):
    """The items a Setup puts in host pages, as columns (a million of them: no tuple each)."""

    pages: np.ndarray    #: each item's page (int64)
    slots: np.ndarray    #: its slot in the page (int64)
    keys: list[bytes]
    values: list[bytes]
    encoded: np.ndarray | None = None   #: their slot plaintexts, if known (EncodedItems)

    def rows(self):
        """``(page, slot, key, value)`` of each item."""
        return zip(self.pages.tolist(), self.slots.tolist(), self.keys, self.values)


@functools.lru_cache(maxsize=16)
def slot_format(key_size: int, value_size: int) -> struct.Struct:
    """A slot plaintext: ``flag ‖ key length ‖ key (zero padded) ‖ value length (2, BE) ‖
    value (zero padded)``; a channel command has this layout, its op in place of the flag."""
    return struct.Struct(f">BB{key_size}sH{value_size}s")


def encode_slot(params: Params, key: bytes, value: bytes) -> bytes:
    """The slot plaintext of an item (:func:`slot_format`)."""
    return slot_format(params.key_size, params.value_size).pack(OCCUPIED, len(key), key,
                                                                len(value), value)


def decode_slot(params: Params, slot: bytes) -> Item | None:
    """The (key, value) held in a slot plaintext, or None for an empty slot."""
    return _slot_item(*slot_format(params.key_size, params.value_size).unpack_from(slot))


def _slot_item(flag: int, key_length: int, key: bytes, value_length: int,
               value: bytes) -> Item | None:
    """The (key, value) of a slot's :func:`slot_format` fields, or None for an empty slot."""
    if flag == 0:
        return None
    return key[:key_length], value[:value_length]


def slot_array(params: Params, host_items: HostItems) -> np.ndarray:
    """Every page plaintext as one (pages, page_plaintext_bytes) array, built column-wise:
    a vectorized :func:`encode_slot` over all items (Setup of 2^20 items in about a second)."""
    p = params
    slots = np.zeros((p.host_bins * p.slots, p.slot_bytes), dtype=np.uint8)
    if host_items.keys:
        encoded = host_items.encoded
        slots[host_items.pages * p.slots + host_items.slots] = (
            encoded if encoded is not None else slot_rows(p, host_items.keys, host_items.values))
    return slots.reshape(p.host_bins, p.page_plaintext_bytes)


def slot_rows(params: Params, keys: list[bytes], values: list[bytes]) -> np.ndarray:
    """:func:`encode_slot` of every (key, value) as one (items, slot_bytes) array."""
    p, n = params, len(keys)
    rows = np.zeros((n, p.slot_bytes), dtype=np.uint8)
    if n == 0:
        return rows
    ks, vs = p.key_size, p.value_size
    key_lengths = np.fromiter(map(len, keys), dtype=np.uint8, count=n)
    value_lengths = np.fromiter(map(len, values), dtype=np.uint16, count=n)
    rows[:, 0] = OCCUPIED
    rows[:, 1] = key_lengths
    rows[:, 2:2 + ks] = _padded(keys, key_lengths, ks)
    rows[:, 2 + ks] = value_lengths >> 8
    rows[:, 3 + ks] = value_lengths & 0xFF
    rows[:, 4 + ks:] = _padded(values, value_lengths, vs)
    return rows


def _padded(fields: list[bytes], lengths: np.ndarray, size: int) -> np.ndarray:
    """The byte strings as rows of ``size`` bytes, zero padded: one join, then one masked
    store (a row-major boolean mask takes the joined bytes in field order)."""
    joined = np.frombuffer(b"".join(fields), dtype=np.uint8)
    if (lengths == size).all():
        return joined.reshape(len(fields), size)
    rows = np.zeros((len(fields), size), dtype=np.uint8)
    rows[np.arange(size) < lengths[:, None]] = joined
    return rows


class SealedPages:
    """B AES-GCM pages in untrusted host memory, with their write counters in trusted HBM.

    A touch is :meth:`read` (the host access), :meth:`open` (verify and decrypt), :meth:`edit`
    (take and flush, on chip) and :meth:`write` (seal under a fresh counter, the host access);
    an access issues both of its reads before either write (algorithm §12).
    """

    def __init__(self, params: Params, page_key: bytes, trace: Trace):
        self.params = params
        self.host = HostMemory(params.host_bytes, trace)
        self.counters = [0] * params.host_bins
        self._cipher = PageCipher(page_key)
        self._stride, self._sealed_bytes = params.page_stride, params.page_sealed_bytes
        self._slot_bytes = params.slot_bytes
        self._slot_format = slot_format(params.key_size, params.value_size)
        self._empty_slot = bytes(params.slot_bytes)
        self._padding = bytes(params.page_stride - params.page_sealed_bytes)
        # The two page engines' plaintext buffers (an access opens at most two pages, x's and
        # y's, and writes them back before the next access opens any).
        self._engines = (bytearray(params.page_plaintext_bytes),
                         bytearray(params.page_plaintext_bytes))

    def setup(self, host_items: HostItems) -> None:
        """Write every page in ascending order under counter 1, each page's items in its lowest
        slots."""
        p = self.params
        plaintexts = slot_array(p, host_items)
        stride, sealed, end = p.page_stride, p.page_sealed_bytes, p.host_bins * p.page_stride
        # Each page sealed straight into its place in the store, then zero padding.
        run = self.host.write_run_in_place(0, stride, p.host_bins)
        np.frombuffer(run, dtype=np.uint8).reshape(p.host_bins, stride)[:, sealed:] = 0
        pages = list(map(run.__getitem__, map(slice, range(0, end, stride),
                                              range(sealed, end + sealed, stride))))
        self._cipher.seal_pages(1, plaintexts, into=pages)
        self.counters[:] = [1] * p.host_bins

    # A page is read and written in place in the host store (HostMemory.read_in_place and
    # write_in_place): no copy of its bytes on the way in or out, on every touch.

    def read(self, page: int) -> memoryview:
        """Read ``page`` from the host (one trace event); :meth:`open` verifies it. The bytes
        are the store's own: open them before any page is written."""
        stride = self._stride
        return self.host.read_in_place(page * stride, stride)

    def open(self, page: int, raw: memoryview, engine: int = 0) -> bytearray:
        """The plaintext of what :meth:`read` returned, verified under the page's counter now,
        in page engine ``engine``'s buffer (0 or 1: valid until that engine opens another
        page). Raises :class:`IntegrityError` if it does not verify."""
        plaintext = self._cipher.open(page, self.counters[page], raw[:self._sealed_bytes],
                                      self._engines[engine])
        if plaintext is None:
            raise IntegrityError(page)
        return plaintext

    def edit(self, page: int, plaintext: bytearray, take: tuple[int, bytes] | None,
             inserts: list[Item]) -> tuple[bytes | None, list[int]]:
        """Take the item of key ``take[1]`` out of slot ``take[0]`` and write ``inserts`` into
        the lowest free slots, on chip. Returns the taken value (or None) and the slots the
        inserts went to; raises :class:`IntegrityError`, having changed nothing, if the slot
        does not hold the key."""
        size, slot_format_ = self._slot_bytes, self._slot_format
        taken = None
        if take is not None:
            slot, key = take
            start = slot * size
            item = _slot_item(*slot_format_.unpack_from(plaintext, start))
            if item is None or item[0] != key:
                raise IntegrityError(page, f"host page {page} does not hold the key the "
                                           f"index places in slot {slot}")
            taken = item[1]
            plaintext[start:start + size] = self._empty_slot
        free = []
        if inserts:
            # The lowest free slots, found by their flag bytes; each item packed in place.
            flags = plaintext[0::size]
            slot = flags.find(0)
            pack_into = slot_format_.pack_into
            for key, value in inserts:
                if slot < 0:
                    break
                pack_into(plaintext, slot * size, OCCUPIED, len(key), key, len(value), value)
                free.append(slot)
                slot = flags.find(0, slot + 1)
        return taken, free

    def write(self, page: int, plaintext: bytearray) -> None:
        """Seal ``plaintext`` under the page's next counter and write it to the host."""
        # The counter moves on only once the host took the page: a write that raised stored
        # nothing (HostMemory checks before it stores), so its nonce never reached the host.
        counter = self.counters[page] + 1
        stride, sealed = self._stride, self._sealed_bytes
        image = self.host.write_in_place(page * stride, stride)
        self._cipher.seal(page, counter, plaintext, image[:sealed])
        image[sealed:] = self._padding
        self.counters[page] = counter


class PlainPages:
    """Trace-only pages: the same slot logic and trace as :class:`SealedPages`, no crypto."""

    def __init__(self, params: Params, page_key: bytes, trace: Trace):
        self.params = params
        self.host = None
        self.trace = trace
        self.counters = [0] * params.host_bins
        self._pages: list[list[Item | None]] = [[None] * params.slots
                                                 for _ in range(params.host_bins)]

    def setup(self, host_items: HostItems) -> None:
        p = self.params
        for page, slot, key, value in host_items.rows():
            self._pages[page][slot] = (key, value)
        self.counters[:] = [1] * p.host_bins
        self._record_setup_writes(host_items)

    def _record_setup_writes(self, host_items: HostItems) -> None:
        # Every page is written, used or not: how many items a page holds stays hidden.
        p = self.params
        self.trace.record_run(WRITE, 0, p.page_stride, p.host_bins)

    def read(self, page: int) -> list[Item | None]:
        p = self.params
        self.trace.record(READ, page * p.page_stride, p.page_stride)
        return list(self._pages[page])

    def open(self, page: int, slots: list[Item | None], engine: int = 0) -> list[Item | None]:
        return slots

    def edit(self, page: int, slots: list[Item | None], take: tuple[int, bytes] | None,
             inserts: list[Item]) -> tuple[bytes | None, list[int]]:
        taken = None
        if take is not None:
            slot, key = take
            item = slots[slot]
            if item is None or item[0] != key:
                raise IntegrityError(page, f"page {page} does not hold the key the index "
                                           f"places in slot {slot}")
            taken = item[1]
            slots[slot] = None
        free = [slot for slot, item in enumerate(slots) if item is None][:len(inserts)]
        for slot, item in zip(free, inserts):
            slots[slot] = item
        return taken, free

    def write(self, page: int, slots: list[Item | None]) -> None:
        p = self.params
        self._pages[page] = list(slots)
        self.counters[page] += 1
        self.trace.record(WRITE, page * p.page_stride, p.page_stride)

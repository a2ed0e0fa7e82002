"""The host pages as the accelerator sees them: whole-page touches of spec section 3.

Two interchangeable page stores share one interface and record the identical trace:
:class:`SealedPages` keeps AES-GCM pages in a :class:`~bolt.trace.HostMemory` (the reference),
:class:`PlainPages` keeps slot contents in Python lists and does no crypto (the trace-only mode
of spec section 9, for large audit samples).
"""

from __future__ import annotations

from ..crypto import PageCipher
from ..errors import BoundExceededError, IntegrityError
from ..params import Params
from ..trace import READ, WRITE, HostMemory, Trace

__all__ = ["SealedPages", "PlainPages", "encode_slot", "COUNTER_LIMIT"]

#: A page counter is never written with this value or beyond (it is 64 bits wide).
COUNTER_LIMIT = 2**64 - 1

Item = tuple[bytes, bytes]  # (key, value)


def encode_slot(params: Params, key: bytes, value: bytes) -> bytes:
    """``flag ‖ key length ‖ key (padded) ‖ value length (2, BE) ‖ value (padded)``."""
    return b"".join((b"\x01", len(key).to_bytes(1, "big"), key.ljust(params.key_size, b"\0"),
                     len(value).to_bytes(2, "big"), value.ljust(params.value_size, b"\0")))


def decode_slot(params: Params, slot: bytes) -> Item | None:
    """The (key, value) held in a slot plaintext, or None for an empty slot."""
    if slot[0] == 0:
        return None
    key_end = 2 + slot[1]
    value_start = 2 + params.key_size + 2
    value_length = int.from_bytes(slot[value_start - 2:value_start], "big")
    return bytes(slot[2:key_end]), bytes(slot[value_start:value_start + value_length])


class SealedPages:
    """B AES-GCM pages in untrusted host memory, with their write counters in trusted HBM."""

    def __init__(self, params: Params, page_key: bytes, trace: Trace):
        self.params = params
        self.host = HostMemory(params.host_bytes, trace)
        self.counters = [0] * params.host_bins
        self._cipher = PageCipher(page_key)
        self._padding = bytes(params.page_stride - params.page_sealed_bytes)

    def _write(self, page: int, plaintext: bytes) -> None:
        counter = self.counters[page] + 1
        self.counters[page] = counter
        sealed = self._cipher.seal(page, counter, plaintext)
        self.host.write(page * self.params.page_stride, sealed + self._padding)

    def setup(self, page_items: list[list[Item]]) -> None:
        """Write every page in ascending order under counter 1, items from the lowest slot."""
        p = self.params
        empty = bytes(p.slot_bytes)
        for page, items in enumerate(page_items):
            slots = [encode_slot(p, key, value) for key, value in items]
            slots += [empty] * (p.slots - len(slots))
            self._write(page, b"".join(slots))

    def touch(self, page: int, take: tuple[int, bytes] | None,
              inserts: list[Item]) -> tuple[bytes | None, list[int]]:
        """Read and verify ``page``; take the item of key ``take[1]`` out of slot ``take[0]``;
        write ``inserts`` into the lowest free slots; re-encrypt under a fresh counter and
        write the page back.

        Returns the taken value (or None) and the slots the inserts went to. Raises
        :class:`IntegrityError` (changing nothing) if the page does not verify.
        """
        p = self.params
        if self.counters[page] + 1 >= COUNTER_LIMIT:
            raise BoundExceededError("page counter", f"page {page}'s write counter would wrap")
        raw = self.host.read(page * p.page_stride, p.page_stride)
        plaintext = self._cipher.open(page, self.counters[page], raw[:p.page_sealed_bytes])
        if plaintext is None:
            raise IntegrityError(page)
        plaintext = bytearray(plaintext)
        size = p.slot_bytes
        taken = None
        if take is not None:
            slot, key = take
            start = slot * size
            item = decode_slot(p, plaintext[start:start + size])
            if item is None or item[0] != key:
                raise IntegrityError(page, f"host page {page} does not hold the key the "
                                           f"index places in slot {slot}")
            taken = item[1]
            plaintext[start:start + size] = bytes(size)
        flags = plaintext[0::size]
        free = [slot for slot, flag in enumerate(flags) if not flag][:len(inserts)]
        for slot, (key, value) in zip(free, inserts):
            plaintext[slot * size:(slot + 1) * size] = encode_slot(p, key, value)
        self._write(page, bytes(plaintext))
        return taken, free


class PlainPages:
    """Trace-only pages: the same slot logic and trace as :class:`SealedPages`, no crypto."""

    def __init__(self, params: Params, page_key: bytes, trace: Trace):
        self.params = params
        self.host = None
        self.trace = trace
        self.counters = [0] * params.host_bins
        self._pages: list[list[Item | None]] = [[None] * params.slots
                                                 for _ in range(params.host_bins)]

    def setup(self, page_items: list[list[Item]]) -> None:
        p = self.params
        for page, items in enumerate(page_items):
            self._pages[page] = list(items) + [None] * (p.slots - len(items))
            self.counters[page] = 1
            self.trace.record(WRITE, page * p.page_stride, p.page_stride)

    def touch(self, page: int, take: tuple[int, bytes] | None,
              inserts: list[Item]) -> tuple[bytes | None, list[int]]:
        p = self.params
        address = page * p.page_stride
        self.trace.record(READ, address, p.page_stride)
        slots = self._pages[page]
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
        self.counters[page] += 1
        self.trace.record(WRITE, address, p.page_stride)
        return taken, free

"""Untrusted host memory and the trace of every access the accelerator makes to it.

The adversary of algorithm §2 sees exactly what :class:`Trace` records: for each host access,
its kind ("read" or "write"), byte address and length, in order, and where one operation ends
and the next begins (the host sees the number and timing of operations).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import partial
from itertools import repeat
from operator import itemgetter
from typing import NamedTuple

import numpy as np

__all__ = ["TraceEvent", "Trace", "HostMemory", "READ", "WRITE", "access_pages"]

READ, WRITE = "read", "write"

_new_tuple = tuple.__new__


class TraceEvent(NamedTuple):
    kind: str      #: "read" or "write"
    address: int   #: byte address in host memory
    length: int    #: bytes moved


#: A recorded (kind, address, length) as a :class:`TraceEvent` (C-level: no namedtuple __new__).
_as_event = partial(_new_tuple, TraceEvent)


class Trace(Sequence):
    """The recorded host trace: a sequence of :class:`TraceEvent`, grouped by operation.

    ``ops()`` splits the events at operation boundaries; ``clear()`` forgets everything.
    """

    def __init__(self):
        # Events are kept as plain (kind, address, length) tuples and made TraceEvents as they
        # are read out: a plain tuple costs a third as much to record, on every host access.
        self._events: list[tuple[str, int, int]] = []
        self._op_starts: list[int] = []
        #: ``append((kind, address, length))``: record one event (the host store's record on
        #: every access, without a Python frame).
        self.append = self._events.append
        #: ``event_count()``: the number of events recorded so far (``len(trace)`` without a
        #: Python frame, for the channel's record of where each frame falls among the events).
        self.event_count = self._events.__len__

    def record(self, kind: str, address: int, length: int) -> None:
        self._events.append((kind, address, length))

    def record_run(self, kind: str, address: int, length: int, count: int) -> None:
        """``count`` events of ``length`` bytes at consecutive addresses from ``address`` (a
        Setup's page writes, recorded in one pass)."""
        self._events.extend(zip(repeat(kind, count),
                                range(address, address + count * length, length),
                                repeat(length, count)))

    def begin_op(self) -> None:
        """Mark that the events recorded from now on belong to a new operation."""
        self._op_starts.append(len(self._events))

    def clear(self) -> None:
        self._events.clear()
        self._op_starts.clear()

    def __len__(self) -> int:
        return len(self._events)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return list(map(_as_event, self._events[i]))
        return _as_event(self._events[i])

    def __iter__(self) -> Iterator[TraceEvent]:
        return map(_as_event, self._events)

    def __eq__(self, other) -> bool:
        if isinstance(other, Trace):
            return self._events == other._events and self._op_starts == other._op_starts
        return list(self._events) == list(other)

    def __repr__(self) -> str:
        return f"<Trace: {len(self._events)} events in {len(self._op_starts)} operations>"

    @property
    def op_count(self) -> int:
        return len(self._op_starts)

    def ops(self) -> list[list[TraceEvent]]:
        """Events of each operation, in order (events before the first operation are dropped)."""
        bounds = self._op_starts + [len(self._events)]
        return [list(map(_as_event, self._events[a:b])) for a, b in zip(bounds, bounds[1:])]

    def last_op(self) -> list[TraceEvent]:
        """Events of the latest operation: ``ops()[-1]`` without splitting the whole trace,
        which after a Setup of 2^20 items is millions of events."""
        if not self._op_starts:
            raise IndexError("no operation has been recorded")
        return list(map(_as_event, self._events[self._op_starts[-1]:]))

    def addresses(self) -> np.ndarray:
        return np.fromiter(map(itemgetter(1), self._events), dtype=np.int64,
                           count=len(self._events))

    def bytes_moved(self) -> int:
        return sum(map(itemgetter(2), self._events))


def access_pages(events: Sequence[TraceEvent], page_stride: int) -> list[int] | None:
    """The pages one access touched, in order, if its events have an access's shape: reads of
    whole pages, then writes of the same pages in the same order (the reads-first order of
    algorithm §12); None otherwise."""
    n = len(events) // 2
    if len(events) % 2 or n > 2:
        return None
    pages = []
    for read, write in zip(events[:n], events[n:]):
        if not (read.kind == READ and write.kind == WRITE and read.address == write.address
                and read.length == write.length == page_stride
                and read.address % page_stride == 0):
            return None
        pages.append(read.address // page_stride)
    return pages


class HostMemory:
    """One contiguous byte store in untrusted host memory, addressed by byte.

    :meth:`read` and :meth:`write` are the accelerator's accesses and are recorded in
    :attr:`trace`. Indexing (``mem[a:b]``, ``mem[a:b] = ...``) is the adversary's own view and
    is not recorded, so a test can inspect or tamper with the store.

    ``buffer``: a writable buffer of ``size`` bytes to keep them in instead of a new
    ``bytearray`` (the RTL backend's memory map, which its simulation process shares).
    """

    def __init__(self, size: int, trace: Trace | None = None, *, buffer=None):
        if buffer is not None and len(buffer) != size:
            raise ValueError(f"a buffer of {len(buffer)} bytes for a host memory of {size}")
        self._bytes = bytearray(size) if buffer is None else buffer
        self._view = memoryview(self._bytes)
        self._size = size
        self.trace = trace if trace is not None else Trace()

    def __len__(self) -> int:
        return len(self._bytes)

    # read, write and their in-place forms take their span as _span does, inline: they run on
    # every page touch.

    def read(self, address: int, length: int) -> bytes:
        if not 0 <= address <= address + length <= self._size:
            self._outside(address, length)
        view = self._view[address:address + length]
        self.trace.append((READ, address, length))
        return view.tobytes()

    def write(self, address: int, data: bytes) -> None:
        length = len(data)
        if not 0 <= address <= address + length <= self._size:
            self._outside(address, length)
        view = self._view[address:address + length]
        self.trace.append((WRITE, address, length))
        view[:] = data

    def read_in_place(self, address: int, length: int) -> memoryview:
        """:meth:`read` without the copy: a view of the store's bytes, which the next write of
        them changes (a page store reads its pages and opens them before it writes any)."""
        if not 0 <= address <= address + length <= self._size:
            self._outside(address, length)
        self.trace.append((READ, address, length))
        return self._view[address:address + length]

    def write_in_place(self, address: int, length: int) -> memoryview:
        """Record a write of ``length`` bytes at ``address`` and return the store's bytes it
        covers, for the writer to fill (a page sealed straight into its place: no copy)."""
        if not 0 <= address <= address + length <= self._size:
            self._outside(address, length)
        self.trace.append((WRITE, address, length))
        return self._view[address:address + length]

    def write_run_in_place(self, address: int, length: int, count: int) -> memoryview:
        """Record ``count`` consecutive writes of ``length`` bytes from ``address`` and return
        the store's bytes they cover, for the writer to fill (a Setup's pages, sealed straight
        into the store instead of into a copy of it)."""
        view = self._span(address, length * count)
        self.trace.record_run(WRITE, address, length, count)
        return view

    def _span(self, address: int, length: int) -> memoryview:
        """The store's bytes ``[address, address + length)``; IndexError if they are not all
        in it."""
        if not 0 <= address <= address + length <= self._size:
            self._outside(address, length)
        view = self._view[address:address + length]
        return view

    def _outside(self, address: int, length: int):
        raise IndexError(f"host access [{address}, {address + length}) outside "
                         f"host memory of {len(self._bytes)} bytes")

    def __getitem__(self, index):
        return self._bytes[index]

    def __setitem__(self, index, value) -> None:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self._bytes))
            if step == 1 and len(value) != stop - start:
                raise ValueError("tampering must keep the host memory size")
        self._bytes[index] = value

    def snapshot(self) -> bytes:
        """A copy of every host byte."""
        return bytes(self._bytes)

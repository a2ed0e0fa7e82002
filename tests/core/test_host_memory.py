"""The host store's in-place accesses (the page store's read and write) against its copying
ones: the same trace events, the same span checks, the store's own bytes."""

import pytest

from bolt.trace import READ, WRITE, HostMemory, TraceEvent


def test_in_place_accesses_record_what_the_copying_ones_record():
    copying, in_place = HostMemory(256), HostMemory(256)
    copying.write(64, b"\x07" * 32)
    in_place.write_in_place(64, 32)[:] = b"\x07" * 32
    assert copying.read(64, 64) == in_place.read_in_place(64, 64).tobytes()
    assert list(copying.trace) == list(in_place.trace) == [TraceEvent(WRITE, 64, 32),
                                                           TraceEvent(READ, 64, 64)]
    assert copying.snapshot() == in_place.snapshot()


def test_an_in_place_read_is_the_store_itself_until_it_is_written():
    memory = HostMemory(128)
    view = memory.read_in_place(0, 64)
    memory.write(0, b"\x01" * 64)
    assert view.tobytes() == b"\x01" * 64


@pytest.mark.parametrize("access", ["read_in_place", "write_in_place"])
@pytest.mark.parametrize("address, length", [(-1, 8), (120, 16), (128, 1)])
def test_an_in_place_access_outside_the_store_records_nothing(access, address, length):
    memory = HostMemory(128)
    with pytest.raises(IndexError, match="outside host memory of 128 bytes"):
        getattr(memory, access)(address, length)
    assert len(memory.trace) == 0

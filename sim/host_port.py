"""The cocotb side of the accelerator's host-memory port (an AXI4 master).

Two servers share :class:`HostPageTarget`, which reads and writes a
:class:`bolt.trace.HostMemory` (or the RTL backend's remote one) a page at a time, so the memory
records exactly the trace the reference model records: one read event of ``page_stride`` bytes
at the first burst of a page read, one write event at the last burst of a page write (a page may
arrive as several bursts: AXI bursts never cross 4 KB). Bytes are read and written live, so a
test that tampers with the memory between accesses is seen by the next read.

- :class:`HostPort` serves the top level's ``host__*`` AXI4 ports with cocotbext-axi's
  ``AxiSlave``, and :func:`random_pauses` generators give it back-pressure and latency on every
  channel. Its channels wake Python on every clock edge of every beat.
- :class:`HostModelPort` serves the simulated card's host model (:mod:`bolt.sim.card`), an
  AXI4 slave in the simulated design with its own latency and random back-pressure, which
  wakes Python once per burst. The RTL backend and the long cosimulations use it.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import random
import sys

import cocotb
from cocotb.triggers import ValueChange
from cocotbext.axi import AxiBus, AxiSlave

from bolt.params import BEAT_BYTES

__all__ = ["HostPageTarget", "HostPort", "HostModelPort", "random_pauses"]


def random_pauses(rng: random.Random, probability: float, longest: int = 8):
    """A pause generator for cocotbext-axi: runs of paused cycles (each run up to ``longest``
    cycles) start with ``probability`` per cycle."""
    while True:
        if rng.random() < probability:
            yield from itertools.repeat(True, rng.randint(1, longest))
        yield False


def _quiet(*logs) -> None:
    # cocotbext-axi logs every burst at INFO: thousands of lines per second of simulation.
    for log in logs:
        log.setLevel(logging.WARNING)


class HostPageTarget:
    """The ``AxiSlave`` target over a page-granular host memory (``read``/``write`` of whole
    pages), with one trace event per page moved."""

    def __init__(self, memory, page_stride: int):
        self.memory = memory
        self.page_stride = page_stride
        self._reading: tuple[int, bytes] | None = None
        self._writing: dict[int, bytearray] = {}

    def _page_of(self, address: int) -> int:
        return address - address % self.page_stride

    def read_burst(self, address: int, length: int) -> bytes:
        page = self._page_of(address)
        if address == page:         # the first beat of a page read
            self._reading = (page, self.memory.read(page, self.page_stride))
        if self._reading is None or self._reading[0] != page:
            raise ValueError(f"read at {address:#x} is not part of a whole-page read")
        offset = address - page
        return self._reading[1][offset:offset + length]

    def write_burst(self, address: int, data: bytes) -> None:
        page = self._page_of(address)
        received = self._writing.setdefault(page, bytearray())
        if address != page + len(received):
            raise ValueError(f"write at {address:#x} is not the next beat of page {page:#x}")
        received += data
        if len(received) == self.page_stride:
            del self._writing[page]
            self.memory.write(page, bytes(received))

    # The ``AxiSlave`` target interface.
    async def read(self, address: int, length: int) -> bytes:
        return self.read_burst(address, length)

    async def write(self, address: int, data: bytes) -> None:
        self.write_burst(address, data)


def _channels(slave):
    return (slave.write_if.aw_channel, slave.write_if.w_channel, slave.write_if.b_channel,
            slave.read_if.ar_channel, slave.read_if.r_channel)


def _set_pauses(slave, rng: random.Random | None, probability: float) -> None:
    for channel in _channels(slave):      # each channel its own stream, drawn from ``rng``
        channel.set_pause_generator(
            random_pauses(random.Random(rng.getrandbits(64)), probability)
            if rng is not None and probability else None)


class HostPort:
    """Serve the ``host`` AXI4 port of ``dut`` from ``memory``.

    Parameters
    ----------
    memory :
        Has ``read(address, length)`` and ``write(address, data)`` of whole pages
        (:class:`bolt.trace.HostMemory`, or the RTL backend's remote memory).
    page_stride : int
        Bytes of one page.
    """

    def __init__(self, dut, memory, *, page_stride: int, prefix: str = "host"):
        self.target = HostPageTarget(memory, page_stride)
        self.slave = AxiSlave(AxiBus.from_prefix(dut, prefix + "_"), dut.clk, target=self.target)
        _quiet(self.slave.write_if.log, self.slave.read_if.log)

    def set_pauses(self, rng: random.Random | None, probability: float) -> None:
        """Back-pressure and random latency on every channel (``probability`` 0: none)."""
        _set_pauses(self.slave, rng, probability)


class _VpiVector(ctypes.Structure):
    """VPI's ``s_vpi_value`` holding a ``vpiVectorVal`` (a pointer to ``(aval, bval)`` words)."""

    _fields_ = [("format", ctypes.c_int32), ("vector", ctypes.c_void_p)]


#: ``vpi_user.h``: the value format of 32-bit ``(aval, bval)`` word pairs, and the put that
#: waits for the simulator's next application of writes, as cocotb's own deposits do.
_VPI_VECTOR_VAL = 9
_VPI_INERTIAL_DELAY = 2


class _BurstBus:
    """A wide top-level port read and written as bytes through VPI's word vectors.

    cocotb reads and writes a vector as a string of one character per bit, which Python and
    the simulator's VPI convert bit by bit: for the host model's 9,216-bit data ports (a burst
    at V = 64) a tenth of the simulation's instructions per access. The executable exports the
    VPI functions (cocotb's library calls them), so they are called here directly, 32 bits a
    word. ``None`` from :meth:`open` where the simulator does not offer them.
    """

    def __init__(self, vpi, handle: int, bits: int):
        self._vpi = vpi
        self._handle = ctypes.c_void_p(handle)
        self._bytes = bits // 8
        words = (bits + 31) // 32
        self._pairs = (ctypes.c_uint32 * (2 * words))()     # bval words stay 0: no X or Z
        self._avals = memoryview(self._pairs).cast("B").cast("I")[0::2]
        self._value = _VpiVector(_VPI_VECTOR_VAL, ctypes.addressof(self._pairs))
        self._words = words

    @classmethod
    def open(cls, signal) -> "_BurstBus | None":
        """The port ``signal`` (a cocotb handle) as a :class:`_BurstBus`, or None."""
        bits = len(signal)
        if bits % 32 or sys.byteorder != "little":    # words taken as the bytes' native order
            return None
        try:
            vpi = ctypes.CDLL(None)
            by_name, _, _ = vpi.vpi_handle_by_name, vpi.vpi_get_value, vpi.vpi_put_value
        except (OSError, AttributeError):
            return None
        by_name.restype = ctypes.c_void_p
        by_name.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        vpi.vpi_get_value.argtypes = [ctypes.c_void_p, ctypes.POINTER(_VpiVector)]
        vpi.vpi_get_value.restype = None
        vpi.vpi_put_value.argtypes = [ctypes.c_void_p, ctypes.POINTER(_VpiVector),
                                      ctypes.c_void_p, ctypes.c_int32]
        vpi.vpi_put_value.restype = ctypes.c_void_p
        # `_path` is public in cocotb: handle attributes start with an underscore so that they
        # never clash with the design's names.
        handle = by_name(signal._path.encode(), None)
        return cls(vpi, handle, bits) if handle else None

    def read(self) -> bytes:
        """The port's value, least significant byte first."""
        value = _VpiVector(_VPI_VECTOR_VAL, None)
        self._vpi.vpi_get_value(self._handle, ctypes.byref(value))
        if not value.vector:
            raise RuntimeError("the simulator gave no value for the host model's write data")
        pairs = (ctypes.c_uint32 * (2 * self._words)).from_address(value.vector)
        return memoryview(pairs).cast("B").cast("I")[0::2].tobytes()

    def write(self, data: bytes) -> None:
        """Deposit ``data`` (least significant byte first, zeros above it): held, as
        cocotb's own writes are, until the simulator applies this time step's writes."""
        self._avals[:] = memoryview(data.ljust(self._bytes, b"\0")).cast("I")
        self._vpi.vpi_put_value(self._handle, ctypes.byref(self._value), None,
                                _VPI_INERTIAL_DELAY)


class HostModelPort:
    """Serve the host model of ``dut`` (a :class:`bolt.sim.card.SimulatedCard`) from
    ``memory``, and switch the card's host port to it.

    Parameters
    ----------
    memory, page_stride :
        As for :class:`HostPort`.
    latency : int
        Cycles from a read request to its first beat, at least.
    rate : int
        Bytes a cycle the read beats follow each other at (a link's bandwidth over the clock;
        0: a beat every cycle).
    stall : float
        The chance the model holds each handshake low in a cycle.
    seed : int
        The seed of its back-pressure (taken at the next reset).
    """

    def __init__(self, dut, memory, *, page_stride: int, latency: int = 0, rate: int = 0,
                 stall: float = 0.0, seed: int = 1):
        self.dut = dut
        self.target = HostPageTarget(memory, page_stride)
        dut.host_model_select.value = 1
        dut.host_model_latency.value = latency
        dut.host_model_rate.value = rate
        dut.host_model_stall.value = min(255, round(256 * stall))
        dut.host_model_seed.value = seed
        dut.host_model_answered.value = 0
        self._bits = len(dut.host_model_read_data)
        self._read_data = _BurstBus.open(dut.host_model_read_data)
        self._write_data = _BurstBus.open(dut.host_model_write_data)
        self._task = cocotb.start_soon(self._serve())

    async def _serve(self) -> None:
        dut, target = self.dut, self.target
        request = dut.host_model_request
        while True:
            await ValueChange(request)
            flag = int(request.value)
            if flag == int(dut.host_model_answered.value):
                continue                     # reset, not a request
            address = int(dut.host_model_address.value)
            length = int(dut.host_model_beats.value) * BEAT_BYTES
            if int(dut.host_model_write.value):
                if self._write_data is not None:
                    data = self._write_data.read()
                else:
                    data = int(dut.host_model_write_data.value).to_bytes(self._bits // 8,
                                                                         "little")
                target.write_burst(address, data[:length])
            else:
                data = target.read_burst(address, length)
                if self._read_data is not None:
                    self._read_data.write(data)
                else:
                    dut.host_model_read_data.value = int.from_bytes(data, "little")
            dut.host_model_answered.value = flag

"""The BOLT accelerator: Setup and Access of algorithm §§3 and 4 in hardware.

Interfaces
----------
``cmd`` (``In(stream)``, :func:`command_layout`)
    ``op`` is an :class:`~bolt.protocol.Op` (GET 0, PUT 1, DELETE 2) or a :class:`Cmd` Setup
    code: ``SETUP_BEGIN`` (``master_key``, ``salt``: derive the subkeys, restart the DRBG, empty
    every structure), ``SETUP_ITEM`` (``key``, ``value``: place one item; the host sends each
    distinct key once, in ``dict(items)`` order), ``SETUP_END`` (write all B pages, ascending,
    under counter 1). Keys and values are little-endian byte vectors (byte ``i`` in bits
    ``8i+7..8i``), zero padded, with their lengths in ``klen`` and ``vlen``.
``resp`` (``Out(stream)``, :func:`response_layout`)
    One response per command: ``status`` (:class:`~bolt.protocol.Status`), ``has_value``,
    ``vlen``/``value``, ``page`` (for INTEGRITY), and, counted from the command's acceptance
    (measurement only), ``cycles`` to the response being offered, ``reads_at`` to the first page
    read request, ``data_at`` to the last page beat in, ``ready_at`` to the end of its HBM
    reads and ``taken_at`` to the back taking it from the front (:class:`Cycles`). The front
    takes the next command while the access before it still runs (``cmd.ready``: the front is
    free) and prepares it (PRF, draws); the back takes it once idle.
``host`` (``Out(AxiSignature)``)
    The host-memory AXI4 master (:class:`bolt.hdl.pages.HostAxiBridge`): whole pages, split at
    4 KB boundaries. It is the only path to the host.
``hbm`` (``Out(AxiSignature)``, one per HBM port)
    The trusted HBM, laid out by :class:`bolt.hdl.hbm.HbmMap` over its ports: every structure
    sized by N.
``overruns`` (``Out(16)``)
    Steps whose HBM responses came later than their fixed budget, summed over the ports
    (:class:`~bolt.hdl.hbm.HbmMaster`).
``idle`` (``Out(1)``)
    The back is idle: every host event of the commands it took is in (it takes the front's
    next command in a cycle it is high).

Timing
------
Every Access runs the same steps whatever its op, key, value, hit or miss and pending items:
draw and PRF (in the front), lookup; the page reads of ``x`` and ``y`` that are host bins, both
at once (reads first, algorithm §12) on two page engines; gather, decisions and the flushes'
frame reads while they travel; the key's item out of page ``x``; the response; then, before
the next command's lookup, the flushes' writes, both page writes and the re-placement. Each
HBM step issues the same requests every time (a write the data would skip carries no byte
strobes) and ends a fixed number of cycles after it began, given HBM answers
within ``hbm_latency`` cycles. The only branches are on whether ``x`` and ``y`` are host bins
(both visible in the trace) and on an integrity failure (which the trace also shows); the
touches wait for the host, whose timing the host already knows.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from amaranth.hdl import ClockDomain, ClockSignal, DomainRenamer, Module, ResetSignal, Shape, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from bolt.params import Params
from bolt.protocol import Cmd, Status

from .control import AccessControl
from .hbm import AxiSignature, HbmMap
from .pages import ADDRESS_BITS

__all__ = ["RtlAccelerator", "Cmd", "Cycles", "CYCLE_STAMPS", "command_layout",
           "response_layout", "HBM_LATENCY", "pass_through",
           "pack_command", "unpack_response", "pack_fields", "unpack_fields"]

#: Cycles an HBM read may take from its request to its first beat (about 100 ns at 300 MHz,
#: the U55C's HBM under light load) before a step's fixed schedule is overrun.
HBM_LATENCY = 32


@functools.lru_cache(maxsize=None)
def command_layout(params: Params) -> data.StructLayout:
    return data.StructLayout({
        "op": 3,
        "klen": 8,
        "key": 8 * params.key_size,
        "vlen": 16,
        "value": 8 * params.value_size,
        "master_key": 128,   # SETUP_BEGIN only: int.from_bytes(master_key, "big")
        "salt": 120,         # SETUP_BEGIN only: int.from_bytes(salt, "big")
    })


#: A response's cycle stamps (measurement only), counted from its command's acceptance: in
#: ``resp`` and, behind the channel, on the sealed accelerator's ``stamps`` port.
CYCLE_STAMPS = {
    "cycles": 32,        # to the response
    "reads_at": 32,      # cycle of the first page read request (0: none)
    "data_at": 32,       # cycle of the last page beat in
    "ready_at": 32,      # cycle its HBM reads ended (the flushes' frames in; 0: no page)
    "taken_at": 32,      # cycle the back took it from the front (its lookup began)
}


@functools.lru_cache(maxsize=None)
def response_layout(params: Params) -> data.StructLayout:
    return data.StructLayout({
        "status": 3,
        "has_value": 1,
        "vlen": 16,
        "value": 8 * params.value_size,
        "page": 32,
        **CYCLE_STAMPS,
    })


class RtlAccelerator(wiring.Component):
    """The BOLT accelerator for one :class:`~bolt.params.Params`.

    Parameters
    ----------
    params : Params
        The public parameters; the HBM map is generated from them.
    sampler_factory : callable
        ``sampler_factory(params)`` returns the DRBG sample source (see :mod:`bolt.hdl.sampler`).
    gcm_factory : callable or None
        Passed to :class:`~bolt.hdl.pages.PageEngine`.
    hbm_latency : int
        The HBM latency each step's budget allows for (see :data:`HBM_LATENCY`).
    """

    def __init__(self, params: Params, *, sampler_factory=None, gcm_factory=None,
                 hbm_latency: int = HBM_LATENCY):
        self._p = params
        self._sampler_factory = sampler_factory
        self._gcm_factory = gcm_factory
        self._latency = hbm_latency
        self.hbm_map = HbmMap(params)
        super().__init__({
            "cmd": In(stream.Signature(command_layout(params))),
            "resp": Out(stream.Signature(response_layout(params))),
            "host": Out(AxiSignature(address_width=ADDRESS_BITS)),
            "hbm": Out(AxiSignature(address_width=self.hbm_map.address_width)).array(
                self.hbm_map.ports),
            "overruns": Out(16),
            "idle": Out(1),
        })

    @property
    def params(self) -> Params:
        return self._p

    def elaborate(self, platform):
        m = Module()
        # Every register is reset from a registered copy of ``rst``: the usual care for a
        # reset arriving from outside the design, and in Verilator it keeps the whole
        # next-state logic out of the input-change region it re-evaluates at every input
        # write (a third of the simulation time before).
        m.domains.core = ClockDomain("core", local=True)
        registered_reset = Signal(init=1, reset_less=True)
        m.d.sync += registered_reset.eq(ResetSignal("sync"))
        m.d.comb += [ClockSignal("core").eq(ClockSignal("sync")),
                     ResetSignal("core").eq(registered_reset)]
        m.submodules.core = DomainRenamer("core")(AccessControl(
            ports=self, params=self._p, hbm_map=self.hbm_map, hbm_latency=self._latency,
            sampler_factory=self._sampler_factory, gcm_factory=self._gcm_factory))
        return m


def pass_through(m, outer, inner, name: str) -> None:
    """Connect member ``name`` of a wrapper ``outer`` to the same member of the design
    ``inner`` it wraps (a plain port or an interface such as a stream or an AXI4 port, or an
    array of interfaces such as the HBM ports)."""
    member = outer.signature.members[name]
    if member.is_port:
        if member.flow == Out:
            m.d.comb += getattr(outer, name).eq(getattr(inner, name))
        else:
            m.d.comb += getattr(inner, name).eq(getattr(outer, name))
    else:
        pairs = [(getattr(outer, name), getattr(inner, name))]
        for _ in member.dimensions:
            pairs = [pair for outers, inners in pairs for pair in zip(outers, inners)]
        for outer_interface, inner_interface in pairs:
            wiring.connect(m, wiring.flipped(outer_interface), inner_interface)


# -- packing of commands and responses, for testbenches and the host driver ------------------------

@functools.lru_cache(maxsize=None)
def _field_table(layout: data.StructLayout) -> tuple[tuple[str, int, int], ...]:
    """``(name, offset, width)`` of each field: a driver packs a command and unpacks a response
    per access, and walking the layout's Amaranth objects each time cost the simulation
    process a tenth of its Python time."""
    return tuple((name, field.offset, Shape.cast(field.shape).width) for name, field in layout)


def pack_fields(layout: data.StructLayout, fields: dict) -> int:
    """The integer of a ``layout`` value with ``fields`` (missing ones 0); a field that does not
    fit its width is a ValueError."""
    word = 0
    for name, offset, width in _field_table(layout):
        value = int(fields.get(name, 0))
        if not 0 <= value < (1 << width):
            raise ValueError(f"{name}={value} does not fit in {width} bits")
        word |= value << offset
    return word


def unpack_fields(layout: data.StructLayout, word: int) -> dict:
    """Every field of ``layout`` read out of the integer ``word``."""
    return {name: (word >> offset) & ((1 << width) - 1)
            for name, offset, width in _field_table(layout)}


def pack_command(params: Params, op: int, key: bytes = b"", value: bytes = b"", *,
                 master_key: bytes = bytes(16), salt: bytes = bytes(15)) -> int:
    """The ``cmd`` payload of one command (keys and values as little-endian byte vectors)."""
    return pack_fields(command_layout(params), {
        "op": int(op), "klen": len(key),
        "key": int.from_bytes(key.ljust(params.key_size, b"\0"), "little"),
        "vlen": len(value),
        "value": int.from_bytes(value.ljust(params.value_size, b"\0"), "little"),
        "master_key": int.from_bytes(master_key, "big"), "salt": int.from_bytes(salt, "big"),
    })


class Cycles(NamedTuple):
    """The cycle stamps of one response, counted from the command's acceptance."""

    total: int       #: to the response
    reads_at: int    #: to its first page read request (0: it read no page)
    data_at: int     #: to its last page beat in (0: none)
    idle_at: int = 0  #: to the back being idle again (the driver's count)
    ready_at: int = 0  #: to the end of its HBM reads, the flushes' frames (0: it read no page)
    taken_at: int = 0  #: to the back taking it from the front (the PRF and draws done)
    #: to the core's response, where the answer is the sealed channel's (0: ``total``)
    responded_at: int = 0


def unpack_response(params: Params, word: int):
    """``(Response, Cycles)`` of one ``resp`` payload."""
    from bolt.protocol import Response
    f = unpack_fields(response_layout(params), word)
    status = Status(f["status"])
    value = (f["value"].to_bytes(params.value_size, "little")[:f["vlen"]]
             if f["has_value"] else None)
    page = f["page"] if status == Status.INTEGRITY else None
    return Response(status, value, page), Cycles(f["cycles"], f["reads_at"], f["data_at"],
                                                   ready_at=f["ready_at"],
                                                   taken_at=f["taken_at"])

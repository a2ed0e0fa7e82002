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
    read request and ``data_at`` to the last page beat in (:class:`Cycles`).
``host`` (``Out(AxiSignature)``)
    The host-memory AXI4 master (:class:`bolt.hdl.pages.HostAxiBridge`): whole pages, split at
    4 KB boundaries. It is the only path to the host.
``hbm`` (``Out(AxiSignature)``)
    The trusted HBM, laid out by :class:`bolt.hdl.hbm.HbmMap`: every structure sized by N.
``overruns`` (``Out(16)``)
    Steps whose HBM responses came later than their fixed budget (:class:`~bolt.hdl.hbm.HbmMaster`).

Timing
------
Every Access runs the same steps whatever its op, key, value, hit or miss and pending items:
draw, PRF, lookup; the page reads of ``x`` and ``y`` that are host bins, both at once (reads
first, algorithm §12) on two page engines; gather and decisions while they travel; the key's
item out of page ``x``; the response; then, before the next command, the flushes, both page
writes and the re-placement. Each HBM step issues the same requests every time (a write the data would skip
carries no byte strobes) and ends a fixed number of cycles after it began, given HBM answers
within ``hbm_latency`` cycles. The only branches are on whether ``x`` and ``y`` are host bins
(both visible in the trace) and on an integrity failure (which the trace also shows); the
touches wait for the host, whose timing the host already knows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from amaranth.hdl import (Cat, ClockDomain, ClockSignal, DomainRenamer, Module, Mux,
                          ResetSignal, Shape, Signal)
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from bolt.params import Params
from bolt.protocol import HBM, HOST, PENDING, Cmd, Op, Status

from .aes import Aes128
from .hbm import (AxiSignature, HbmMap, HbmMaster, MAX_BURST_BEATS, bin_record_layout,
                  frame_record_layout)
from .lookup import Lookup
from .pages import ADDRESS_BITS, HostAxiBridge, PageEngine, PagePortArbiter, bswap

__all__ = ["RtlAccelerator", "Cmd", "Cycles", "command_layout", "response_layout", "HBM_LATENCY",
           "pass_through",
           "pack_command", "unpack_response", "pack_fields", "unpack_fields"]

#: Cycles an HBM read may take from its request to its first beat (about 100 ns at 300 MHz,
#: the U55C's HBM under light load) before a step's fixed schedule is overrun.
HBM_LATENCY = 32


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


def response_layout(params: Params) -> data.StructLayout:
    return data.StructLayout({
        "status": 3,
        "has_value": 1,
        "vlen": 16,
        "value": 8 * params.value_size,
        "page": 32,
        "cycles": 32,
        "reads_at": 32,      # cycle of the first page read request (0: none)
        "data_at": 32,       # cycle of the last page beat in
    })


@dataclass(frozen=True)
class _Read:
    addr: object
    beats: int


@dataclass(frozen=True)
class _Write:
    addr: object
    data: object
    enable: object = 1
    beats: int = 1
    zero: bool = False


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
            "hbm": Out(AxiSignature(address_width=self.hbm_map.address_width)),
            "overruns": Out(16),
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
        m.submodules.core = DomainRenamer("core")(self._elaborate_core())
        return m

    def _elaborate_core(self):
        p = self._p
        hm = self.hbm_map
        m = Module()
        K, S = p.hbm_bins, p.slots
        ks = p.key_size

        # -- sub-components --------------------------------------------------------------------
        m.submodules.lookup = lookup = Lookup(p, hm)
        # Two page engines: an access reads both of its pages before it writes either
        # (algorithm §12), and decrypts and encrypts them side by side.
        m.submodules.pages_a = pages_a = PageEngine(p, self._gcm_factory)
        m.submodules.pages_b = pages_b = PageEngine(p, self._gcm_factory)
        m.submodules.page_port = page_port = PagePortArbiter(p)
        m.submodules.host_bridge = bridge = HostAxiBridge(p)
        m.submodules.hbm = hbm = HbmMaster(hm)
        m.submodules.aes = aes = Aes128(pipelined=False)
        from .sampler import make_sampler
        m.submodules.sampler = sampler = make_sampler(p, self._sampler_factory)
        wiring.connect(m, pages_a.host, page_port.a)
        wiring.connect(m, pages_b.host, page_port.b)
        wiring.connect(m, page_port.host, bridge.page)
        wiring.connect(m, wiring.flipped(self.host), bridge.axi)
        wiring.connect(m, wiring.flipped(self.hbm), hbm.axi)
        m.d.comb += [self.overruns.eq(hbm.overruns), hbm.rdata.ready.eq(1),
                     lookup.beat.valid.eq(hbm.rdata.valid),
                     lookup.beat.payload.eq(hbm.rdata.payload)]

        entry_l = lookup.entry_layout
        frame_l, bin_l, slot_l = frame_record_layout(p), bin_record_layout(p), pages_a.slot_layout
        lshape = range(p.slots + 1)
        fb = p.frame_bits
        element = hbm.element
        as_frame = frame_l(element[:frame_l.size])
        as_bin = bin_l(element[:bin_l.size])
        as_load = element[:Shape.cast(lshape).width]
        as_counter = element[:64]
        as_frame_number = element[:fb]

        # -- registers ----------------------------------------------------------------------------
        cmd = Signal(command_layout(p))
        page_key, drbg_key, index_key = Signal(128), Signal(128), Signal(128)
        r, y, c1, c2, x, nb = (Signal(range(p.bins), name=n)
                               for n in ("r", "y", "c1", "c2", "x", "nb"))
        n_drawn = Signal(3)
        mac = Signal(128)
        mac_block = Signal(range(8))
        found = Signal()
        entry = Signal(entry_l)
        pos, free_pos = Signal.like(lookup.pos), Signal.like(lookup.free_pos)
        free_ok = Signal()
        load_c1, load_c2, load_x, load_nb = (Signal(lshape, name=n)
                                             for n in ("load_c1", "load_c2", "load_x", "load_nb"))
        bin_x, bin_y, bin_cur, bin_nb = (Signal(bin_l, name=n)
                                         for n in ("bin_x", "bin_y", "bin_cur", "bin_nb"))
        key_frame = Signal(frame_l)
        counter_x, counter_y, counter = Signal(64), Signal(64), Signal(64)
        counter_a = Signal(64)       # the counter page a's write goes out under
        stack_top = Signal(fb)
        top = Signal(range(p.frames + 1))      # frames on the free stack (in HBM)
        fresh = Signal(range(p.frames + 1))    # frames never used since Setup: fresh, fresh+1...
        fits, take, full, replace, taken = Signal(), Signal(), Signal(), Signal(), Signal()
        taken_vlen, taken_value = Signal(16), Signal(8 * p.value_size)
        status = Signal(3)
        has_value = Signal()
        out_vlen, out_value = Signal(16), Signal(8 * p.value_size)
        err_page = Signal(32)
        items = Signal(range(p.capacity + 1))
        setup_bound = Signal()
        cycles = Signal(32)
        touching = Signal(range(p.bins))
        second = Signal()            # the touch on engine b (an access's second page)
        first = Signal(range(p.bins))   # the bin of the access's first page (on engine a)
        two = Signal()               # both x and y are host bins
        a_in, b_in = Signal(), Signal()  # the engine's load or store is finished
        reads_at, data_at = Signal(32), Signal(32)
        resume = Signal()            # after the response: the page writes and re-placement
        derive = Signal(2)
        page_number = Signal(range(p.host_bins + 1))
        flushed_slot = Signal(S * p.slot_bits)
        flushed_ipos = Signal(S * len(pos))
        clear_bursts = hm.clear_end // 4096
        k = Signal(range(max(clear_bursts, 4 * S + 8) + 1))   # the step's next request

        def is_host(b):
            return b >= K

        def host_page(b):
            """The host page of bin ``b`` (page 0 for an HBM bin: a request that only keeps
            the schedule)."""
            return Mux(b >= K, b - K, 0)[:max(1, (p.host_bins - 1).bit_length())]

        kind, loc = entry.kind, entry.loc
        m.d.sync += cycles.eq(cycles + 1)
        m.d.comb += [lookup.key.eq(cmd.key), lookup.klen.eq(cmd.klen),
                     lookup.bucket1.eq(mac[:len(lookup.bucket1)]),
                     lookup.bucket2.eq(mac[64:64 + len(lookup.bucket2)]),
                     pages_a.key.eq(page_key), pages_b.key.eq(page_key),
                     sampler.key.eq(drbg_key)]

        # The slot ports of the engine being touched (a, or b for the second page).
        pages = _SlotPorts(slot_l, p.slots)
        m.d.comb += [pages.slot_rd.eq(Mux(second, pages_b.slot_rd, pages_a.slot_rd)),
                     pages.slot_used.eq(Mux(second, pages_b.slot_used, pages_a.slot_used))]
        for engine, selected in ((pages_a, ~second), (pages_b, second)):
            m.d.comb += [engine.slot_rd_idx.eq(pages.slot_rd_idx),
                         engine.slot_wr_idx.eq(pages.slot_wr_idx),
                         engine.slot_wr.eq(pages.slot_wr),
                         engine.slot_wr_en.eq(pages.slot_wr_en & selected)]
        # Measurement only: when the access's first page read left and its last page beat
        # came in (the latency projection replaces the simulated host link by a real one).
        host_page_port = bridge.page
        with m.If(host_page_port.rd_req.valid & host_page_port.rd_req.ready & (reads_at == 0)):
            m.d.sync += reads_at.eq(cycles)
        with m.If(host_page_port.rd_data.valid & host_page_port.rd_data.ready):
            m.d.sync += data_at.eq(cycles)

        # The PRF message: klen ‖ key, zero padded to whole blocks (CBC-MAC under the index key).
        nmsg = -(-(1 + ks) // 16)
        message = Signal(128 * nmsg)
        m.d.comb += message.eq(Cat(cmd.klen, cmd.key))
        msg_block = Signal(128)
        with m.Switch(mac_block):
            for j in range(nmsg):
                with m.Case(j):
                    m.d.comb += msg_block.eq(bswap(message[128 * j:128 * (j + 1)]))

        def new_value(layout, **fields):
            v = Signal(layout)
            m.d.comb += [getattr(v, name).eq(value) for name, value in fields.items()]
            return v

        def slot_record(klen, key, vlen, value):
            return new_value(slot_l, flag=1, klen=klen, key=key,
                             vlen_be=Cat(vlen[8:16], vlen[0:8]), value=value)

        slot_vlen = Cat(pages.slot_rd.vlen_be[8:16], pages.slot_rd.vlen_be[0:8])

        # -- the fixed-schedule HBM steps ----------------------------------------------------
        def enter(state):
            """Go to the HBM step ``state``: its requests from the first, its budget from now."""
            m.next = state
            m.d.sync += k.eq(0)
            m.d.comb += hbm.begin.eq(1)

        def issue(segments):
            """Drive the step's requests, one after another: ``segments`` is a list of
            ``(count, request(i))``. Returns the condition that the step is over."""
            start, budget = 0, self._latency + 4
            for count, make in segments:
                index = (k - start)[:len(k)]
                request = make(index)
                cond = (k >= start) & (k < start + count)
                with m.If(cond):
                    if isinstance(request, _Read):
                        m.d.comb += [hbm.rd.valid.eq(1), hbm.rd.payload.addr.eq(request.addr),
                                     hbm.rd.payload.beats.eq(request.beats)]
                        with m.If(hbm.rd.ready):
                            m.d.sync += k.eq(k + 1)
                    else:
                        m.d.comb += [hbm.wr.valid.eq(1), hbm.wr.payload.addr.eq(request.addr),
                                     hbm.wr.payload.beats.eq(request.beats),
                                     hbm.wr.payload.data.eq(request.data),
                                     hbm.wr.payload.enable.eq(request.enable),
                                     hbm.wr.payload.zero.eq(request.zero)]
                        with m.If(hbm.wr.ready):
                            m.d.sync += k.eq(k + 1)
                start += count
                budget += count * (2 * request.beats + 2)
            m.d.comb += hbm.budget.eq(budget)
            return (k == start) & hbm.done

        def arrived(i):
            return hbm.element_valid & (hbm.element_index == i)

        def read_into(reads):
            """Issue one read per ``(region, index, register, view)`` and keep each element,
            seen through ``view``, in its register. Returns the condition that the step is
            over."""
            over = issue([(1, lambda i, region=region, index=index: read(region, index))
                          for region, index, _, _ in reads])
            for n, (_, _, register, view) in enumerate(reads):
                with m.If(arrived(n)):
                    m.d.sync += register.eq(view)
            return over

        regions = hm.regions
        index_r, loads_r, bins_r = regions["index"], regions["loads"], regions["bins"]
        staging_r, frames_r = regions["staging"], regions["frames"]
        stack_r, counters_r = regions["stack"], regions["counters"]

        def read(region, i):
            return _Read(region.address(i), region.element_beats)

        def write(region, i, value, enable=1):
            return _Write(region.address(i), value, enable, region.element_beats)

        stack_below_top = Mux(top != 0, top - 1, 0)
        free_count = (p.frames - fresh) + top
        # The frame an allocation takes: the top of the free stack, else a fresh one.
        alloc_frame = Mux(top != 0, stack_top, fresh[:fb])

        def respond():
            m.next = "RESP"

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    m.d.sync += [cmd.eq(self.cmd.payload), cycles.eq(1), has_value.eq(0),
                                 out_vlen.eq(0), out_value.eq(0), err_page.eq(0),
                                 status.eq(Status.ABSENT), mac.eq(0), mac_block.eq(0),
                                 second.eq(0), taken.eq(0), derive.eq(0),
                                 reads_at.eq(0), data_at.eq(0), resume.eq(0)]
                    with m.Switch(self.cmd.payload.op):
                        with m.Case(Cmd.GET, Cmd.PUT, Cmd.DELETE):
                            m.d.sync += n_drawn.eq(0)
                            m.next = "DRAW"
                        with m.Case(Cmd.SETUP_ITEM):
                            m.d.sync += n_drawn.eq(2)
                            m.next = "DRAW"
                        with m.Case(Cmd.SETUP_BEGIN):
                            m.next = "SB_KEY"
                        with m.Case(Cmd.SETUP_END):
                            m.d.sync += page_number.eq(0)
                            enter("SE_READ")
                        with m.Default():
                            m.next = "RESP"

            # -- step 1: draws (r, y, c1, c2 != c1; Setup: c1, c2) ---------------------------
            with m.State("DRAW"):
                m.d.comb += sampler.o.ready.eq(1)
                with m.If(sampler.o.valid):
                    sample = sampler.o.payload
                    with m.Switch(n_drawn):
                        with m.Case(0):
                            m.d.sync += [r.eq(sample), n_drawn.eq(1)]
                        with m.Case(1):
                            m.d.sync += [y.eq(sample), n_drawn.eq(2)]
                        with m.Case(2):
                            m.d.sync += [c1.eq(sample), n_drawn.eq(3)]
                        with m.Case(3):
                            with m.If(sample != c1):
                                m.d.sync += c2.eq(sample)
                                m.next = "PRF_SEND"

            # -- the index PRF: CBC-MAC of (klen ‖ key) under the index key -------------------
            with m.State("PRF_SEND"):
                m.d.comb += [aes.i_stream.valid.eq(1), aes.i_stream.payload.eq(mac ^ msg_block)]
                with m.If(aes.i_stream.ready):
                    m.next = "PRF_WAIT"
            with m.State("PRF_WAIT"):
                m.d.comb += aes.o_stream.ready.eq(1)
                with m.If(aes.o_stream.valid):
                    m.d.sync += [mac.eq(aes.o_stream.payload), mac_block.eq(mac_block + 1)]
                    with m.If(mac_block == nmsg - 1):
                        m.d.comb += lookup.start.eq(1)
                        enter("LOOKUP")
                    with m.Else():
                        m.next = "PRF_SEND"

            # -- step 2: the index lookup --------------------------------------------------------
            with m.State("LOOKUP"):
                m.d.comb += [hbm.rd.valid.eq(lookup.rd.valid),
                             hbm.rd.payload.eq(lookup.rd.payload),
                             lookup.rd.ready.eq(hbm.rd.ready),
                             hbm.budget.eq(self._latency + 4 + 3 * 2 + 2 * lookup.beats)]
                with m.If(lookup.done & hbm.done):
                    m.d.sync += [found.eq(lookup.found), entry.eq(lookup.entry),
                                 pos.eq(lookup.pos), free_ok.eq(lookup.free_ok),
                                 free_pos.eq(lookup.free_pos),
                                 x.eq(Mux(lookup.found, lookup.entry.bin, r))]
                    with m.If(cmd.op == Cmd.SETUP_ITEM):
                        enter("SI_READ")
                    with m.Else():
                        m.next = "T_LOAD"

            # -- step 3 begins: both page reads leave now (algorithm §12), x's first ----------
            with m.State("T_LOAD"):
                # Engine a reads the first host page, b (if both are host bins) y. They decrypt
                # once the gather has their counters: the host round trip hides the gather.
                host_x, host_y = is_host(x), is_host(y)
                m.d.comb += [pages_a.load.eq(host_x | host_y),
                             pages_a.page.eq(host_page(Mux(host_x, x, y))),
                             pages_b.load.eq(host_x & host_y), pages_b.page.eq(host_page(y))]
                m.d.sync += [first.eq(Mux(host_x, x, y)), two.eq(host_x & host_y)]
                enter("GATHER")

            # -- everything the decisions need, read at once ------------------------------------
            with m.State("GATHER"):
                own_frame = Mux(found & (kind != HOST), loc, 0)[:fb]
                over = read_into([
                    (loads_r, c1, load_c1, as_load),
                    (loads_r, c2, load_c2, as_load),
                    (loads_r, x, load_x, as_load),
                    (bins_r, host_page(x), bin_x, as_bin),
                    (bins_r, host_page(y), bin_y, as_bin),
                    (frames_r, own_frame, key_frame, as_frame),
                    (counters_r, host_page(x), counter_x, as_counter),
                    (counters_r, host_page(y), counter_y, as_counter),
                ])
                with m.If(over):
                    m.next = "DECIDE"

            # -- decisions taken before the touches (reference model: _placement_fits) ---------
            with m.State("DECIDE"):
                la = load_c1 - (found & (c1 == x))
                lb = load_c2 - (found & (c2 == x))
                is_put = cmd.op == Cmd.PUT
                rep = is_put | ((cmd.op == Cmd.GET) & found)
                ful = is_put & ~found & (items >= p.capacity)
                loads_ok = (la < S) | (lb < S)
                freed = Signal(range(2 * p.frames + 2))
                m.d.comb += freed.eq(
                    (found & (kind != HOST))
                    + Mux(is_host(x), bin_x.count, 0)
                    + Mux(is_host(y) & (y != x), bin_y.count, 0)
                    - (found & (kind == PENDING)))
                frames_ok = (free_count + freed) >= 1
                index_ok = found | free_ok
                fit = Signal()
                m.d.comb += fit.eq(rep & ~ful & loads_ok & frames_ok & index_ok)
                tk = Signal()
                m.d.comb += tk.eq(found & ((cmd.op == Cmd.DELETE) | fit))
                use_c1 = la <= lb
                m.d.sync += [replace.eq(rep), full.eq(ful), fits.eq(fit), take.eq(tk),
                             nb.eq(Mux(use_c1, c1, c2)),
                             load_nb.eq(Mux(use_c1, load_c1, load_c2)),
                             touching.eq(first), counter.eq(Mux(is_host(x), counter_x, counter_y)),
                             a_in.eq(0), b_in.eq(~two)]
                m.d.comb += [pages_a.decrypt.eq(is_host(x) | is_host(y)),
                             pages_a.counter.eq(Mux(is_host(x), counter_x, counter_y)),
                             pages_b.decrypt.eq(two), pages_b.counter.eq(counter_y)]
                # The key's own pending entry leaves the eviction list of x now (algorithm §3, step 2).
                unlinked = _unlink(m, bin_l, bin_x, loc[:fb], S)
                with m.If(~is_host(x)):
                    m.d.sync += bin_cur.eq(bin_y)
                with m.Elif(tk & (kind == PENDING)):
                    m.d.sync += bin_cur.eq(unlinked)
                with m.Else():
                    m.d.sync += bin_cur.eq(bin_x)
                with m.If(is_host(x) | is_host(y)):
                    m.next = "T_LOAD_WAIT"
                with m.Else():
                    m.next = "RESULT"

            # -- step 3: both pages in and verified; the key's item out of page x; the answer
            # leaves; then the flushes of x and y, the page writes and the re-placement ---------
            with m.State("T_LOAD_WAIT"):
                with m.If(pages_a.done):
                    m.d.sync += a_in.eq(1)
                with m.If(pages_b.done):
                    m.d.sync += b_in.eq(1)
                # Nothing is written unless both pages verify: a failure changes nothing.
                with m.If(a_in & b_in):
                    with m.If(~pages_a.ok):
                        m.d.sync += [status.eq(Status.INTEGRITY), err_page.eq(host_page(first))]
                        m.next = "RESP"
                    with m.Elif(two & ~pages_b.ok):
                        m.d.sync += [status.eq(Status.INTEGRITY), err_page.eq(host_page(y))]
                        m.next = "RESP"
                    with m.Elif(is_host(x)):
                        m.next = "T_TAKE"
                    with m.Else():
                        m.next = "RESULT"
            with m.State("T_TAKE"):
                # The key's item leaves its slot of page x.
                m.d.comb += pages.slot_rd_idx.eq(loc)
                slot = pages.slot_rd
                holds = (slot.flag != 0) & (slot.klen == cmd.klen) & (slot.key == cmd.key)
                with m.If(take & (kind == HOST)):
                    m.d.comb += [pages.slot_wr_idx.eq(loc), pages.slot_wr.eq(0),
                                 pages.slot_wr_en.eq(holds)]
                    m.d.sync += [taken.eq(1), taken_vlen.eq(slot_vlen), taken_value.eq(slot.value)]
                with m.If(take & (kind == HOST) & ~holds):
                    m.d.sync += [status.eq(Status.INTEGRITY), err_page.eq(host_page(x)),
                                 taken.eq(0)]
                    m.next = "RESP"
                with m.Else():
                    m.next = "RESULT"

            # -- the touch's flush: every pending item of the bin into the lowest free slots -----
            with m.State("FLUSH_READ"):
                over = issue([(S, lambda i: read(
                    frames_r, Mux(i < bin_cur.count, bin_cur.frames[i], 0)))])
                free_slot = Signal(range(S))
                for s in reversed(range(S)):
                    with m.If(~pages.slot_used[s]):
                        m.d.comb += free_slot.eq(s)
                record = as_frame
                with m.If(hbm.element_valid & (hbm.element_index < bin_cur.count)):
                    i = hbm.element_index
                    m.d.comb += [pages.slot_wr_en.eq(1), pages.slot_wr_idx.eq(free_slot),
                                 pages.slot_wr.eq(slot_record(record.klen, record.key,
                                                              record.vlen, record.value))]
                    m.d.sync += [flushed_slot.word_select(i, p.slot_bits).eq(free_slot),
                                 flushed_ipos.word_select(i, len(pos)).eq(record.ipos)]
                with m.If(over):
                    enter("FLUSH_WRITE")
            with m.State("FLUSH_WRITE"):
                def index_update(i):
                    slot_index = flushed_slot.word_select(i, p.slot_bits)
                    m.d.comb += pages.slot_rd_idx.eq(slot_index)
                    flushed = new_value(entry_l, valid=1, kind=HOST, klen=pages.slot_rd.klen,
                                        key=pages.slot_rd.key, bin=touching, loc=slot_index)
                    return write(index_r, flushed_ipos.word_select(i, len(pos)), flushed,
                                 i < bin_cur.count)

                over = issue([
                    (S, index_update),
                    (S, lambda i: write(stack_r, top + i, bin_cur.frames[i], i < bin_cur.count)),
                    (1, lambda i: write(bins_r, host_page(touching), 0)),
                    (1, lambda i: write(counters_r, host_page(touching), counter + 1)),
                ])
                with m.If(over):
                    m.d.sync += [top.eq(top + bin_cur.count), bin_cur.count.eq(0)]
                    with m.If(two & ~second):
                        # On to y, on engine b: under x's next counter when y == x, whose
                        # second touch works on the first's result.
                        m.d.sync += [counter_a.eq(counter + 1), touching.eq(y), second.eq(1),
                                     counter.eq(Mux(y == x, counter + 1, counter_y))]
                        with m.If(y != x):
                            m.d.sync += bin_cur.eq(bin_y)
                        m.next = "T_FORWARD"
                    with m.Else():
                        with m.If(~second):
                            m.d.sync += counter_a.eq(counter + 1)
                        m.next = "T_STORE"
            with m.State("T_FORWARD"):
                # y == x: engine b read the page before a's write; it takes a's result instead.
                m.d.comb += [pages_b.page_wr.eq(pages_a.page_rd), pages_b.page_wr_en.eq(y == x)]
                enter("FLUSH_READ")
            with m.State("T_STORE"):
                # Both writes start together: a's page goes out first (the port's order), b's
                # is encrypted beside it.
                m.d.comb += [pages_a.store.eq(1), pages_a.page.eq(host_page(first)),
                             pages_a.counter.eq(counter_a),
                             pages_b.store.eq(two), pages_b.page.eq(host_page(y)),
                             pages_b.counter.eq(counter + 1)]
                m.d.sync += [a_in.eq(0), b_in.eq(~two)]
                m.next = "T_STORE_WAIT"
            with m.State("T_STORE_WAIT"):
                with m.If(pages_a.done):
                    m.d.sync += a_in.eq(1)
                with m.If(pages_b.done):
                    m.d.sync += b_in.eq(1)
                with m.If(a_in & b_in):
                    m.next = "T_STORE_RESPONSE"
            with m.State("T_STORE_RESPONSE"):
                # The pages are written once the host has answered every burst of them.
                with m.If(~bridge.writes_pending):
                    enter("REPLACE_READ")

            # -- step 4: the key's value ------------------------------------------------------
            with m.State("RESULT"):
                with m.If(found & ((kind != HOST) | ~take)):
                    m.d.sync += [out_vlen.eq(key_frame.vlen), out_value.eq(key_frame.value),
                                 has_value.eq(kind != HOST)]
                with m.If(take & (kind == HOST)):
                    m.d.sync += [out_vlen.eq(taken_vlen), out_value.eq(taken_value),
                                 has_value.eq(1)]
                with m.If(full):
                    m.d.sync += [status.eq(Status.FULL), has_value.eq(0)]
                with m.Elif(replace & ~fits):
                    m.d.sync += status.eq(Status.BOUND)
                with m.Elif(found):
                    m.d.sync += status.eq(Status.FOUND)
                with m.Else():
                    m.d.sync += [status.eq(Status.ABSENT), has_value.eq(0)]
                # The answer is known: it leaves now; the flushes, the page writes (posted) and
                # the re-placement follow before the next command is taken.
                m.d.sync += resume.eq(1)
                m.next = "RESP"

            # -- steps 5 and 6: result and re-placement --------------------------------------------
            with m.State("REPLACE_READ"):
                over = read_into([(bins_r, host_page(nb), bin_nb, as_bin),
                                  (stack_r, stack_below_top, stack_top, as_frame_number)])
                with m.If(over):
                    enter("REPLACE_WRITE")
            with m.State("REPLACE_WRITE"):
                own_freed = take & (kind != HOST)
                frame = Mux(own_freed, loc[:fb], alloc_frame)
                target = Mux(found, pos, free_pos)
                is_put = cmd.op == Cmd.PUT
                new_load_x = load_x - take + (fits & (nb == x))
                record = new_value(frame_l, vlen=Mux(is_put, cmd.vlen, out_vlen),
                                   value=Mux(is_put, cmd.value, out_value), klen=cmd.klen,
                                   key=cmd.key, ipos=target)
                placed = new_value(entry_l, valid=1, kind=Mux(is_host(nb), PENDING, HBM),
                                   klen=cmd.klen, key=cmd.key, bin=nb, loc=frame)
                appended = Signal(bin_l)
                m.d.comb += [appended.eq(bin_nb), appended.count.eq(bin_nb.count + 1),
                             appended.frames[bin_nb.count].eq(frame)]
                over = issue([
                    (1, lambda i: write(loads_r, x, new_load_x)),
                    (1, lambda i: write(loads_r, nb, Mux(nb == x, new_load_x, load_nb + fits))),
                    (1, lambda i: write(frames_r, frame, record, fits)),
                    (1, lambda i: write(index_r, target, Mux(fits, placed.as_value(), 0),
                                        fits | take)),
                    (1, lambda i: write(bins_r, host_page(nb), appended, fits & is_host(nb))),
                    (1, lambda i: write(stack_r, top, loc[:fb], own_freed & ~fits)),
                ])
                with m.If(over):
                    with m.If(fits):
                        with m.If(~own_freed):
                            _allocate(m, top, fresh)
                        with m.If(~found):
                            m.d.sync += items.eq(items + 1)
                    with m.Elif(take):   # DELETE of a present key
                        m.d.sync += items.eq(items - 1)
                        with m.If(own_freed):
                            m.d.sync += top.eq(top + 1)
                    m.next = "IDLE"

            # -- Setup ------------------------------------------------------------------------------
            with m.State("SB_KEY"):
                m.d.comb += [aes.key_stream.valid.eq(1), aes.key_stream.payload.eq(cmd.master_key)]
                with m.If(aes.key_stream.ready):
                    m.next = "SB_SEND"
            with m.State("SB_SEND"):
                m.d.comb += [aes.i_stream.valid.eq(1),
                             aes.i_stream.payload.eq(Cat(cmd.salt, (derive + 1)[:8]))]
                with m.If(aes.i_stream.ready):
                    m.next = "SB_WAIT"
            with m.State("SB_WAIT"):
                m.d.comb += aes.o_stream.ready.eq(1)
                with m.If(aes.o_stream.valid):
                    m.d.sync += derive.eq(derive + 1)
                    with m.Switch(derive):
                        with m.Case(0):
                            m.d.sync += page_key.eq(aes.o_stream.payload)
                            m.next = "SB_SEND"
                        with m.Case(1):
                            m.d.sync += drbg_key.eq(aes.o_stream.payload)
                            m.next = "SB_SEND"
                        with m.Case(2):
                            m.d.sync += index_key.eq(aes.o_stream.payload)
                            m.next = "SB_INDEX_KEY"
            with m.State("SB_INDEX_KEY"):
                m.d.comb += [aes.key_stream.valid.eq(1), aes.key_stream.payload.eq(index_key)]
                with m.If(aes.key_stream.ready):
                    m.d.comb += [sampler.restart.eq(1), pages_a.rekey.eq(1), pages_b.rekey.eq(1)]
                    m.d.sync += [items.eq(0), setup_bound.eq(0), top.eq(0), fresh.eq(0)]
                    enter("SB_CLEAR")
            with m.State("SB_CLEAR"):
                # The clear sequencer: zeros over the index, loads, eviction lists and staging.
                over = issue([(clear_bursts, lambda i: _Write(
                    i * 4096, 0, 1, MAX_BURST_BEATS, zero=True))])
                with m.If(over):
                    m.next = "RESP"

            with m.State("SI_READ"):
                over = read_into([(loads_r, c1, load_c1, as_load),
                                  (loads_r, c2, load_c2, as_load)])
                with m.If(over):
                    enter("SI_WRITE")
            with m.State("SI_WRITE"):
                # Setup: place one item by the two-choice rule (reference model: setup()).
                use_c1 = load_c1 <= load_c2
                target_bin = Mux(use_c1, c1, c2)
                target_load = Mux(use_c1, load_c1, load_c2)
                host = is_host(target_bin)
                ok = Signal()
                m.d.comb += ok.eq((target_load < S) & free_ok & (host | (fresh < p.frames))
                                  & ~setup_bound)
                placed = new_value(entry_l, valid=1, kind=Mux(host, HOST, HBM), klen=cmd.klen,
                                   key=cmd.key, bin=target_bin,
                                   loc=Mux(host, target_load, fresh))
                record = new_value(frame_l, vlen=cmd.vlen, value=cmd.value, klen=cmd.klen,
                                   key=cmd.key, ipos=free_pos)
                over = issue([
                    (1, lambda i: write(loads_r, target_bin, target_load + 1, ok)),
                    (1, lambda i: write(index_r, free_pos, placed, ok)),
                    (1, lambda i: write(staging_r, host_page(target_bin) * S + target_load,
                                        slot_record(cmd.klen, cmd.key, cmd.vlen, cmd.value),
                                        ok & host)),
                    (1, lambda i: write(frames_r, fresh, record, ok & ~host)),
                ])
                with m.If(over):
                    with m.If(ok):
                        m.d.sync += items.eq(items + 1)
                        with m.If(~host):
                            m.d.sync += fresh.eq(fresh + 1)
                    with m.Else():
                        m.d.sync += setup_bound.eq(1)
                    m.next = "RESP"

            with m.State("SE_READ"):
                # Setup end: page `page_number` from the staging area, under counter 1.
                over = issue([
                    (S, lambda i: read(staging_r, page_number * S + i)),
                    (1, lambda i: write(counters_r, page_number, 1)),
                ])
                with m.If(hbm.element_valid):
                    m.d.comb += [pages.slot_wr_en.eq(1), pages.slot_wr_idx.eq(hbm.element_index),
                                 pages.slot_wr.eq(element[:slot_l.size])]
                with m.If(over):
                    m.next = "SE_STORE"
            with m.State("SE_STORE"):
                m.d.comb += [pages_a.store.eq(1), pages_a.counter.eq(1),
                             pages_a.page.eq(page_number)]
                m.next = "SE_WAIT"
            with m.State("SE_WAIT"):
                with m.If(pages_a.done):
                    m.next = "SE_RESPONSE"
            with m.State("SE_RESPONSE"):
                with m.If(~bridge.writes_pending):
                    m.d.sync += page_number.eq(page_number + 1)
                    with m.If(page_number == p.host_bins - 1):
                        m.d.sync += status.eq(Mux(setup_bound, Status.BOUND, Status.ABSENT))
                        m.next = "RESP"
                    with m.Else():
                        enter("SE_READ")

            with m.State("RESP"):
                m.d.comb += [self.resp.valid.eq(1),
                             self.resp.payload.status.eq(status),
                             self.resp.payload.has_value.eq(has_value),
                             self.resp.payload.vlen.eq(Mux(has_value, out_vlen, 0)),
                             self.resp.payload.value.eq(Mux(has_value, out_value, 0)),
                             self.resp.payload.page.eq(err_page),
                             self.resp.payload.cycles.eq(cycles),
                             self.resp.payload.reads_at.eq(reads_at),
                             self.resp.payload.data_at.eq(data_at)]
                with m.If(self.resp.ready):
                    with m.If(~resume):
                        m.next = "IDLE"
                    with m.Elif(is_host(x) | is_host(y)):
                        enter("FLUSH_READ")
                    with m.Else():
                        enter("REPLACE_READ")
        return m


def pass_through(m, outer, inner, name: str) -> None:
    """Connect member ``name`` of a wrapper ``outer`` to the same member of the design
    ``inner`` it wraps (a plain port or an interface such as a stream or an AXI4 port)."""
    member = outer.signature.members[name]
    if member.is_port:
        if member.flow == Out:
            m.d.comb += getattr(outer, name).eq(getattr(inner, name))
        else:
            m.d.comb += getattr(inner, name).eq(getattr(outer, name))
    else:
        wiring.connect(m, wiring.flipped(getattr(outer, name)), getattr(inner, name))


class _SlotPorts:
    """The slot ports of :class:`~bolt.hdl.pages.PageEngine`, for the engine being touched."""

    def __init__(self, slot_layout, slots):
        self.slot_rd_idx = Signal(range(slots), name="slot_rd_idx")
        self.slot_rd = Signal(slot_layout, name="slot_rd")
        self.slot_used = Signal(slots, name="slot_used")
        self.slot_wr_en = Signal(name="slot_wr_en")
        self.slot_wr_idx = Signal(range(slots), name="slot_wr_idx")
        self.slot_wr = Signal(slot_layout, name="slot_wr")


def _allocate(m, top, fresh):
    """Take a frame: the top of the free stack, else a fresh one."""
    with m.If(top != 0):
        m.d.sync += top.eq(top - 1)
    with m.Else():
        m.d.sync += fresh.eq(fresh + 1)


def _unlink(m, layout, pending, frame, slots):
    """``pending`` (a bin's list) without ``frame``, the later entries moved up one."""
    result = Signal(layout)
    seen = Signal(slots + 1)
    m.d.comb += [seen[0].eq(0), result.count.eq(pending.count - 1)]
    for i in range(slots):
        m.d.comb += seen[i + 1].eq(seen[i] | ((i < pending.count) & (pending.frames[i] == frame)))
        later = pending.frames[i + 1] if i + 1 < slots else 0
        m.d.comb += result.frames[i].eq(Mux(seen[i + 1], later, pending.frames[i]))
    return result


# -- packing of commands and responses, for testbenches and the host driver ------------------------

def pack_fields(layout: data.StructLayout, fields: dict) -> int:
    """The integer of a ``layout`` value with ``fields`` (missing ones 0); a field that does not
    fit its width is a ValueError."""
    word = 0
    for name, field in layout:
        value = int(fields.get(name, 0))
        width = Shape.cast(field.shape).width
        if not 0 <= value < (1 << width):
            raise ValueError(f"{name}={value} does not fit in {width} bits")
        word |= value << field.offset
    return word


def unpack_fields(layout: data.StructLayout, word: int) -> dict:
    """Every field of ``layout`` read out of the integer ``word``."""
    return {name: (word >> field.offset) & ((1 << Shape.cast(field.shape).width) - 1)
            for name, field in layout}


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
    idle_at: int = 0  #: to when it takes the next command (the driver's count)


def unpack_response(params: Params, word: int):
    """``(Response, Cycles)`` of one ``resp`` payload."""
    from bolt.protocol import Response
    f = unpack_fields(response_layout(params), word)
    status = Status(f["status"])
    value = (f["value"].to_bytes(params.value_size, "little")[:f["vlen"]]
             if f["has_value"] else None)
    page = f["page"] if status == Status.INTEGRITY else None
    return Response(status, value, page), Cycles(f["cycles"], f["reads_at"], f["data_at"])

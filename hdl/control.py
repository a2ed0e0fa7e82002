"""The accelerator's control: Setup and Access (algorithm §§3, 4 and 12) as one FSM whose
states are grouped into the algorithm's steps, over units that are components of their own.

Every HBM step goes out on a fixed schedule (:meth:`AccessControl.issue`): the same requests
every time, ended a fixed number of cycles after it began, so an access's cycles depend only on
which of ``x`` and ``y`` are host bins (see :mod:`bolt.hdl.accelerator`).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal, Value
from amaranth.lib import data, wiring

from bolt.params import Params
from bolt.protocol import HBM, HOST, PENDING, Cmd, Status

from .aes import Aes128
from .hbm import (BEAT_BITS, FRAME_COPIES, HbmMap, HbmMaster, MAX_BURST_BEATS,
                  WRITE_QUEUE_DEPTH, Region,
                  bin_record_layout, bin_record_matches, bin_record_without,
                  frame_record_layout, page_map_layout)
from .lookup import Lookup
from .pages import HostAxiBridge, PageEngine, PagePortArbiter
from .sampler import make_sampler
from .flush import Flush
from .front import CommandFront
from .replace import Replacement
from .scan import one_hot_select
from .touch import Take

__all__ = ["AccessControl", "step_cycles"]


class AccessControl(Elaboratable):
    """The accelerator's control: Setup and Access as one FSM over its units, one command at
    a time, behind a :class:`~bolt.hdl.front.CommandFront` that takes the next command and
    prepares it (PRF, draws) while the access before it runs.

    Its states are grouped into the algorithm's steps, one method each, in the order an access
    runs them: :meth:`_accept` (the front's prepared command taken), :meth:`_lookup`,
    :meth:`_page_reads`, :meth:`_gather`, :meth:`_decide`, :meth:`_touch`, :meth:`_result`, the
    response (:meth:`_respond`), then :meth:`_flush` (which carries the re-placement's requests,
    :meth:`_replacement`) and :meth:`_page_writes`, or :meth:`_replace` when no page is
    touched; and Setup's :meth:`_setup_begin`, :meth:`_setup_item`,
    :meth:`_setup_end`. The units it drives are components of their own, each tested alone:
    :class:`~bolt.hdl.lookup.Lookup`, the touch's :class:`~bolt.hdl.touch.Take`, a
    :class:`~bolt.hdl.flush.Flush` for each page, the :class:`~bolt.hdl.replace.Replacement`,
    two :class:`~bolt.hdl.pages.PageEngine`, the
    :class:`~bolt.hdl.hbm.HbmMaster` that runs the fixed-schedule HBM steps, the
    :class:`~bolt.hdl.pages.HostAxiBridge`, an AES core for the PRF and key derivation, and the
    DRBG sampler.

    Parameters
    ----------
    ports : RtlAccelerator
        The component whose ports (``cmd``, ``resp``, ``host``, ``hbm``, ``overruns``) this
        drives.
    params : Params
        The public parameters.
    hbm_map : HbmMap
        Where each structure lies in HBM.
    hbm_latency : int
        The HBM latency each step's budget allows for.
    sampler_factory, gcm_factory : callable or None
        As for :class:`~bolt.hdl.accelerator.RtlAccelerator`.
    """

    def __init__(self, *, ports, params: Params, hbm_map: HbmMap, hbm_latency: int,
                 sampler_factory=None, gcm_factory=None):
        self.ports = ports
        self.p = params
        self.hm = hbm_map
        self.latency = hbm_latency
        self._sampler_factory = sampler_factory
        self._gcm_factory = gcm_factory

    def elaborate(self, platform):
        self.m = m = Module()
        self._units()
        self._early = []
        self._steps, self._requests = [], []      # for :meth:`_choose`, from :meth:`issue`
        self._registers()
        self._datapath()
        self.replacement_reads, self.replacement_writes, self.replaced = self._replacement()
        self._stack_pushes()
        with m.FSM():
            self._accept()
            self._lookup()
            self._page_reads()
            self._gather()
            self._decide()
            self._touch()
            self._flush()
            self._page_writes()
            self._result()
            self._replace()
            self._setup_begin()
            self._setup_item()
            self._setup_end()
            self._respond()
        self._choose()
        m.d.sync += self._early
        return m

    def _units(self):
        m, p = self.m, self.p
        m.submodules.lookup = self.lookup = Lookup(p, self.hm)
        # Two page engines: an access reads both of its pages before it writes either
        # (algorithm §12), and decrypts and encrypts them side by side.
        m.submodules.pages_a = self.pages_a = PageEngine(p, self._gcm_factory)
        m.submodules.pages_b = self.pages_b = PageEngine(p, self._gcm_factory)
        m.submodules.page_port = page_port = PagePortArbiter(p)
        m.submodules.host_bridge = self.bridge = HostAxiBridge(p)
        # One HbmMaster per HBM port (the lookup reads the index on its ports; the control
        # keeps each element it reads as it arrives on its region's port: :meth:`read_into`).
        self.hbms = [HbmMaster(self.hm, port=port) for port in range(self.hm.ports)]
        for port, master in enumerate(self.hbms):
            m.submodules[f"hbm{port}" if port else "hbm"] = master
        m.submodules.aes = self.aes = Aes128(pipelined=False)
        # Every block sent to the AES core is waited for (the front's WAIT, SB_WAIT), its
        # output taken as it comes: ready from the state register would put the state's
        # decoding before the core's `i_stream.ready`, which the next state waits on.
        m.d.comb += self.aes.o_stream.ready.eq(1)
        m.submodules.sampler = self.sampler = make_sampler(p, self._sampler_factory)
        # The front takes the next command and prepares it (PRF, draws) while the access
        # before it runs; it has the AES core but while Setup derives its keys.
        m.submodules.front = self.front = front = CommandFront(
            params=p, command_layout=self.ports.cmd.payload.shape())
        wiring.connect(m, wiring.flipped(self.ports.cmd), front.cmd)
        wiring.connect(m, self.sampler.o, front.draws)
        self.key_block = Signal(128)        # a Setup key derivation's block (SB_SEND)
        self.key_block_valid = Signal()
        m.d.comb += [self.aes.i_stream.valid.eq(front.block.valid | self.key_block_valid),
                     self.aes.i_stream.payload.eq(Mux(self.key_block_valid, self.key_block,
                                                      front.block.payload)),
                     front.block.ready.eq(self.aes.i_stream.ready),
                     front.result.valid.eq(self.aes.o_stream.valid),
                     front.result.payload.eq(self.aes.o_stream.payload)]
        m.submodules.take = self.taker = Take(params=p)
        # Each page's flush, the frames it puts in held from their read (while the pages
        # travel, the lists being known at the decisions) to the fill.
        m.submodules.flush_a = self.flush_a = Flush(params=p)
        m.submodules.flush_b = self.flush_b = Flush(params=p)
        m.submodules.replacement = self.replacement = Replacement(params=p)
        for unit, pages in ((self.taker, self.pages_a), (self.flush_a, self.pages_a),
                            (self.flush_b, self.pages_b)):
            m.d.comb += [unit.page.rd.eq(pages.slot_rd), unit.page.used.eq(pages.slot_used)]
        wiring.connect(m, self.pages_a.host, page_port.a)
        wiring.connect(m, self.pages_b.host, page_port.b)
        wiring.connect(m, page_port.host, self.bridge.page)
        wiring.connect(m, wiring.flipped(self.ports.host), self.bridge.axi)
        for port, master in enumerate(self.hbms):
            wiring.connect(m, wiring.flipped(self.ports.hbm[port]), master.axi)
            m.d.comb += master.rdata.ready.eq(1)
        for port in range(self.hm.index_ports):
            master = self.hbms[port]
            m.d.comb += [self.lookup.beat[port].valid.eq(master.rdata.valid),
                         self.lookup.beat[port].payload.eq(master.rdata.payload)]
        m.d.comb += self.ports.overruns.eq(sum(master.overruns for master in self.hbms))
        #: Every port's step is over.
        self.hbm_done = Cat(*[master.done for master in self.hbms]).all()

        # The HBM element just read, seen as each region's record.
        self.entry_l = self.lookup.entry_layout
        self.frame_l, self.bin_l = frame_record_layout(p), bin_record_layout(p)
        self.slot_l = self.pages_a.slot_layout
        self.lshape = range(p.slots + 1)
        self.map_l = page_map_layout(p)
        self.stack_hbm = self.hbms[self.hm.stack_port]

    def _registers(self):
        p, S, fb = self.p, self.p.slots, self.p.frame_bits
        self.cmd = Signal(self.ports.cmd.payload.shape())
        # A Setup's keys are changing: the front takes nothing (its PRF and draws need them).
        self.keys_changing = Signal()
        self.taken_at = Signal(32)        # measurement only: the back took the command
        self.page_key, self.drbg_key, self.index_key = (
            Signal(128, name=n) for n in ("page_key", "drbg_key", "index_key"))
        self.r, self.y, self.c1, self.c2, self.x, self.nb = (
            Signal(range(p.bins), name=n) for n in ("r", "y", "c1", "c2", "x", "nb"))
        self.mac = Signal(128)
        self.found = Signal()
        self.entry = Signal(self.entry_l)
        self.pos = Signal.like(self.lookup.pos, name="pos")
        self.free_pos = Signal.like(self.lookup.free_pos, name="free_pos")
        self.free_ok = Signal()
        self.load_c1, self.load_c2, self.load_x, self.load_nb = (
            Signal(self.lshape, name=n) for n in ("load_c1", "load_c2", "load_x", "load_nb"))
        self.bin_x, self.bin_y, self.bin_nb = (
            Signal(self.bin_l, name=n) for n in ("bin_x", "bin_y", "bin_nb"))
        # The eviction lists the flushes empty into engine a's and b's pages: the first host
        # page's (x's without the key's own entry, or y's) and y's (empty when y == x: x's
        # flush has emptied it).
        self.pending_a, self.pending_b = (
            Signal(self.bin_l, name=n) for n in ("pending_a", "pending_b"))
        self.key_frame = Signal(self.frame_l)
        # The maps of pages x and y (which index position each slot holds, for the slots that
        # flushes filled).
        self.map_x, self.map_y = (Signal(self.map_l, name=n) for n in ("map_x", "map_y"))
        self.counter_x, self.counter_y, self.counter = (
            Signal(64, name=n) for n in ("counter_x", "counter_y", "counter"))
        # What the re-placement sees after a touch's flushes (:meth:`_flush_read` sets them,
        # REPLACE_READ clears them): whether they pushed frames on the free stack and the last
        # one pushed, and whether nb is a flushed bin (its list is empty now).
        self.pushed_any, self.nb_flushed = Signal(name="pushed_any"), Signal(name="nb_flushed")
        self.last_pushed = Signal(fb)
        # The counters pages a and b are written under.
        self.counter_a, self.counter_b = (Signal(64, name=n) for n in ("counter_a", "counter_b"))
        self.stack_top = Signal(fb)
        self.top = Signal(range(p.frames + 1))      # frames on the free stack (in HBM)
        self.fresh = Signal(range(p.frames + 1))    # frames never used since Setup
        self.fits, self.take, self.full, self.replace = (
            Signal(name=n) for n in ("fits", "take", "full", "replace"))
        self.taken_vlen = Signal(16)
        self.taken_value = Signal(8 * p.value_size)
        self.status = Signal(3)
        self.has_value = Signal()
        self.out_vlen = Signal(16)
        self.out_value = Signal(8 * p.value_size)
        self.err_page = Signal(32)
        self.items = Signal(range(p.capacity + 1))
        self.setup_bound = Signal()
        self.cycles = Signal(32)
        self.first = Signal(range(p.bins))   # the bin of the access's first page (engine a)
        self.two = Signal()               # both x and y are host bins
        self.x_host, self.y_host = Signal(name="x_host"), Signal(name="y_host")  # host bins?
        # Engine a's (b's) load or store is finished.
        self.a_in, self.b_in = (Signal(name=n) for n in ("a_in", "b_in"))
        self.reads_at, self.data_at, self.ready_at = (
            Signal(32, name=n) for n in ("reads_at", "data_at", "ready_at"))
        self.resume = Signal()            # after the response: the page writes and re-placement
        self.derive = Signal(2)
        # A key is offered to the AES core (SB_KEY, SB_INDEX_KEY): its `key_stream.valid`, from
        # a register, as the core's `i_stream.ready` depends on it.
        self.key_offered = Signal()
        self.m.d.comb += self.aes.key_stream.valid.eq(self.key_offered)
        self.page_number = Signal(range(p.host_bins + 1))
        # `page_number` is the last host page: a register, the compare as wide as the page
        # number kept out of SE_RESPONSE's next state.
        self.last_page = Signal()
        self.forwarded = Signal(range(S + 2))   # slots copied from engine a to b
        self.flushes = [
            _Flush(self.pages_a, self.flush_a, self.pending_a, self.first, self.counter_a),
            _Flush(self.pages_b, self.flush_b, self.pending_b, self.y, self.counter_b)]
        self.m.d.comb += [f.unit.count.eq(f.pending.count) for f in self.flushes]
        # The step's next request.
        self.k = Signal(range(max(*(c.count for c in self.hm.clears), _CHOSEN_ONE_HOT) + 1))
        self.k_hot = Signal(_CHOSEN_ONE_HOT + 1, init=1)   # k in one-hot, for a step that fits
        # The request pipeline (:meth:`issue`): a step's request is chosen into `chosen` (its
        # region and element index), its byte address computed into `request` the next cycle,
        # and offered to its port's HbmMaster from there, so that no path runs from the step's
        # registers through the choice and the address arithmetic to the AXI port in one cycle.
        self.request_regions = [*self.hm.regions.values(), *self.hm.clears]
        fields = {"valid": 1, "write": 1, "beats": range(1, MAX_BURST_BEATS + 1),
                  "data": BEAT_BITS * self.hm.max_element_beats, "enable": 1, "zero": 1,
                  "streamed": 1, "first": 8}
        self.request_fields = tuple(fields)    # what `request` takes from `chosen` as it is
        index_bits = max((r.count - 1).bit_length() for r in self.request_regions)
        self.chosen = Signal(data.StructLayout({
            **fields, "region": range(len(self.request_regions)), "index": max(1, index_bits)}))
        self.request = Signal(data.StructLayout({**fields, "addr": self.hm.address_width,
                                                 "port": range(self.hm.ports)}))
        self.advance = Signal()      # the pipeline moves on: `request` is empty or taken now
        self.settling = Signal()     # a step's first cycle: its :meth:`early` values settle
        self.choosing = Signal()     # a step's request may be chosen (:meth:`issue`)

    def _datapath(self):
        """What every state sees: the lookup's inputs, the PRF's message blocks, the cycle
        stamps."""
        m, p = self.m, self.p
        lookup, pages_a, pages_b = self.lookup, self.pages_a, self.pages_b
        self.kind, self.loc = self.entry.kind, self.entry.loc
        m.d.sync += self.cycles.eq(self.cycles + 1)
        m.d.comb += [lookup.key.eq(self.cmd.key), lookup.klen.eq(self.cmd.klen),
                     lookup.bucket1.eq(self.mac[:len(lookup.bucket1)]),
                     lookup.bucket2.eq(self.mac[64:64 + len(lookup.bucket2)]),
                     pages_a.key.eq(self.page_key), pages_b.key.eq(self.page_key),
                     self.sampler.key.eq(self.drbg_key)]

        # Measurement only: when the access's first page read left and its last page beat
        # came in (the latency projection replaces the simulated host link by a real one).
        host_page_port = self.bridge.page
        with m.If(host_page_port.rd_req.valid & host_page_port.rd_req.ready
                  & (self.reads_at == 0)):
            m.d.sync += self.reads_at.eq(self.cycles)
        with m.If(host_page_port.rd_data.valid & host_page_port.rd_data.ready):
            m.d.sync += self.data_at.eq(self.cycles)

        self._request_pipeline()

        regions = self.hm.regions
        self.index_r, self.loads_r, self.bins_r = (regions["index"], regions["loads"],
                                                   regions["bins"])
        self.staging_r = regions["staging"]
        self.stack_r, self.counters_r = regions["stack"], regions["counters"]
        self.maps_r = regions["maps"]
        self.stack_below_top = Mux(self.top != 0, self.top - 1, 0)
        # Bins compared with x (set by the lookup, long before the decisions and touches).
        self.c1_is_x, self.c2_is_x, self.y_is_x = (self.early(b == self.x)
                                                   for b in (self.c1, self.c2, self.y))
        # x's eviction list without the key's frame, for the decisions, in two register stages
        # (which entries match, then the list without the first): the list arrives in the
        # gather at least three elements before the last on its port (:meth:`_gather`).
        frame = self.loc[:p.frame_bits]
        matches = self.early(bin_record_matches(self.bin_x, frame))
        self.unlinked = self.early(bin_record_without(m, self.bin_x, frame, matches))
        # The maps the fills begin from: engine a's page (x, or y if x is no host bin) less
        # the key's slot if the key is taken out of page x, and y's (for y == x, engine b's
        # map is not written). From a register: set at the decisions, it holds long before the
        # fill, and the taken slot's compare stays out of the map writes' request choice.
        taken_slot = self.take & (self.kind == HOST) & self.x_host
        map_a = Signal(self.map_l, name="map_a")
        for s, entry in enumerate(self.map_x):
            m.d.comb += map_a[s].eq(
                Mux(self.x_host, Mux(taken_slot & (self.loc == s), 0, entry), self.map_y[s]))
        m.d.comb += [self.flush_a.map_in.eq(self.early(map_a)),
                     self.flush_b.map_in.eq(self.map_y)]

    def _request_pipeline(self):
        """The second stage of the request pipeline (the first is in :meth:`issue`): the
        chosen request's byte address, and the request offered to HbmMaster."""
        m, chosen, request = self.m, self.chosen, self.request
        reading, writing = request.valid & ~request.write, request.valid & request.write
        taken = []
        for port, hbm in enumerate(self.hbms):
            here = request.port == port
            if port < self.hm.index_ports:
                # The lookup's bucket reads share an index port, whatever the state: they go
                # out only in the lookup's step, when no request waits here, so the port's
                # read request is an OR of the two, not a choice by the state register.
                lookup_rd = self.lookup.rd[port]
                m.d.comb += [hbm.rd.valid.eq((reading & here) | lookup_rd.valid),
                             hbm.rd.payload.addr.eq(Mux(lookup_rd.valid,
                                                        lookup_rd.payload.addr, request.addr)),
                             hbm.rd.payload.beats.eq(Mux(lookup_rd.valid,
                                                         lookup_rd.payload.beats,
                                                         request.beats)),
                             lookup_rd.ready.eq(hbm.rd.ready)]
            else:
                m.d.comb += [hbm.rd.valid.eq(reading & here),
                             hbm.rd.payload.addr.eq(request.addr),
                             hbm.rd.payload.beats.eq(request.beats)]
            m.d.comb += [hbm.wr.valid.eq(writing & here), hbm.wr.payload.addr.eq(request.addr),
                         hbm.wr.payload.beats.eq(request.beats),
                         hbm.wr.payload.data.eq(request.data),
                         hbm.wr.payload.enable.eq(request.enable),
                         hbm.wr.payload.zero.eq(request.zero),
                         hbm.wr.payload.streamed.eq(request.streamed),
                         hbm.wr.payload.first.eq(request.first)]
            taken.append(here & ((reading & hbm.rd.ready) | (writing & hbm.wr.ready)))
        m.d.comb += self.advance.eq(~request.valid | Cat(*taken).any())
        # Every index write reaches the lookup too, which keeps the overflow area on chip.
        lookup, index_region = self.lookup, self.request_regions.index(self.hm.regions["index"])
        m.d.comb += [lookup.write.eq(self.advance & chosen.valid & chosen.write & chosen.enable
                                     & (chosen.region == index_region)),
                     lookup.write_pos.eq(chosen.index),
                     lookup.write_entry.eq(chosen.data[:self.entry_l.size])]
        with m.If(self.advance):
            m.d.sync += [request[name].eq(chosen[name]) for name in self.request_fields]
            m.d.sync += chosen.valid.eq(0)    # unless the step's :meth:`issue` chooses one
            with m.Switch(chosen.region):
                for n, region in enumerate(self.request_regions):
                    with m.Case(n):
                        m.d.sync += [request.addr.eq(region.address(chosen.index)),
                                     request.port.eq(region.port(chosen.index))]
        m.d.sync += self.settling.eq(0)      # unless a step is entered (:meth:`enter`)
        with m.If(self.settling):
            m.d.sync += [self.k.eq(0), self.k_hot.eq(1)]    # the step's requests from the first
        m.d.comb += self.choosing.eq(self.advance & ~self.settling)

    # -- helpers --------------------------------------------------------------------------------
    def is_host(self, b):
        return b >= self.p.hbm_bins

    def host_page(self, b):
        """The host page of bin ``b`` (page 0 for an HBM bin: a request that only keeps the
        schedule)."""
        return Mux(b >= self.p.hbm_bins, b - self.p.hbm_bins,
                   0)[:max(1, (self.p.host_bins - 1).bit_length())]

    def early(self, value):
        """``value`` from a register, a cycle late. For what a step's requests are made of:
        their choice begins in the step's second cycle (:meth:`issue`), so a value of the
        registers the step began with is ready by then, and the choice's cycle holds no more
        of its logic than a multiplexer. ``value`` must not change during the step."""
        shape = value.shape()
        register = Signal(shape)
        self._early.append(register.eq(value))
        return register

    @staticmethod
    def new_value(layout, **fields):
        """A value of ``layout`` made of ``fields`` (the others 0), each extended or truncated
        as an assignment would. An expression, not a signal driven where it is made: one
        driven in an FSM state would be 0 outside it, so decoded from the state register on
        its way into any request."""
        parts = []
        for name, field in layout:
            value = Value.cast(fields.pop(name, 0))
            if len(value) < field.width:
                fill = value[-1] if value.shape().signed else Const(0, 1)
                value = Cat(value, fill.replicate(field.width - len(value)))
            parts.append(value[:field.width])
        assert not fields, f"no such field: {fields}"
        return layout(Cat(*parts))

    def slot_record(self, klen, key, vlen, value):
        """A page slot holding the item."""
        return self.new_value(self.slot_l, flag=1, klen=klen, key=key,
                              vlen_be=Cat(vlen[8:16], vlen[0:8]), value=value)

    # -- the fixed-schedule HBM steps ----------------------------------------------------------
    def enter(self, state):
        """Go to the HBM step ``state``: its requests from the first, its budget from now."""
        m = self.m
        m.next = state
        m.d.sync += self.settling.eq(1)
        m.d.comb += [hbm.begin.eq(1) for hbm in self.hbms]

    def issue(self, segments, *, hold=None):
        """Drive the step's requests, one after another: ``segments`` is a list of
        ``(count, request(i))``. Returns the condition that the step is over.

        From the step's second cycle on (the first lets its :meth:`early` values settle),
        request ``k`` is chosen (its region, element index and fields) whenever the pipeline
        advances; its address is computed the cycle after (:meth:`_request_pipeline`) and it is
        offered the cycle after that. A step of up to :data:`_CHOSEN_ONE_HOT` requests tells
        them apart by a bit of ``k_hot`` (k in one-hot) each, its index ``i`` a constant; a
        longer one (the clear) is a single segment, ``i`` counted. Every step's requests are
        chosen by one multiplexer (:meth:`_choose`). ``hold``, ``(k, condition, cycles)``,
        keeps request ``k`` from being chosen while ``condition`` holds, which it does for at
        most ``cycles`` cycles from the step's beginning (the step's budget allows for them).
        """
        return self._issue(segments, hold=hold)[0]

    def _issue(self, segments, *, hold=None):
        """:meth:`issue`, and the step's requests in order."""
        m, k = self.m, self.k
        total = sum(count for count, _ in segments)
        # Whether the FSM was in this step's state a cycle ago (the step's first cycle chooses
        # nothing): a register, where the state's own decoding would add its levels to every
        # request's choice.
        here = Signal(name=f"step_{len(self._steps)}")
        m.d.comb += here.eq(1)          # driven in the step's state only
        was_here = self.early(here)
        if total > _CHOSEN_ONE_HOT:
            (count, make), = segments        # the clear: one counted segment
            assert hold is None
            # Whether k < count, in a register (a compare as wide as k would come before the
            # choice): set as the step begins, updated as k counts.
            left = Signal(name=f"step_{len(self._steps)}_left")
            with m.If(self.settling):
                m.d.sync += left.eq(1)
            with m.Elif(self.choosing & left):
                m.d.sync += left.eq(k < count - 1)
            request = self._request(was_here & left, make(k))
            requests = [request] * count
            done = ~left
        else:
            # k never passes the step's total; `k_hot` is k in one-hot.
            start, requests = 0, []
            for count, make in segments:
                for i in range(count):
                    requests.append(self._request(was_here & self.k_hot[start + i], make(i)))
                start += count
            left, done = ~self.k_hot[total], self.k_hot[total]
        choosing = was_here & left
        if hold is not None:
            held_k, condition, _ = hold
            choosing &= ~(self.k_hot[held_k] & condition)
        self._steps.append(choosing)
        # An index write's port is its entry's, which is secret: the budget counts all of a
        # step's index writes on one port.
        index = self.hm.regions["index"]
        queues = ["index" if request.region is index else request.region.ports[0]
                  for request in requests]
        # Every port's queue holds what the step sends it (a step on one port alone may wait
        # in the pipeline: nothing else waits behind it).
        assert len(set(queues)) == 1 or max(map(queues.count, queues)) <= WRITE_QUEUE_DEPTH
        # A read after a write on its port could overtake it (writes wait in a queue).
        for queue in set(queues):
            writes = [isinstance(request, _Write)
                      for request, on in zip(requests, queues) if on == queue]
            assert writes == sorted(writes), "a port's reads come before its writes"
        budget = self.latency + 4 + _PIPELINE_CYCLES + step_cycles(
            [(queue, 2 * request.budget_beats + 2) for queue, request in zip(queues, requests)],
            hold=None if hold is None else (hold[0], hold[2]))
        m.d.comb += [hbm.budget.eq(budget) for hbm in self.hbms]
        # HbmMaster's `done` counts the requests it has accepted: the one in `request` is
        # the pipeline's to wait for.
        return done & ~self.chosen.valid & ~self.request.valid & self.hbm_done, requests

    def _request(self, when, request):
        """Note ``request`` as the one to choose ``when`` (:meth:`_choose`)."""
        is_write = isinstance(request, _Write)
        # The control reads single-port regions (:meth:`read_into`); its streamed writes are
        # the stack's pushes (:meth:`_stack_pushes`).
        if is_write and request.first is not None:
            assert request.region.ports == (self.hm.stack_port,)
        elif not is_write:
            assert len(request.region.ports) == 1
        fields = {"write": is_write, "region": self.request_regions.index(request.region),
                  "index": request.index, "beats": request.beats}
        if is_write:
            fields.update(data=request.data, enable=request.enable, zero=request.zero,
                          streamed=request.first is not None,
                          first=0 if request.first is None else request.first)
        self._requests.append((when, fields))
        return request

    def _choose(self):
        """The pipeline's first stage: whenever it advances, the request of the step's state
        and ``k`` (noted by :meth:`issue`) into ``chosen``, and ``k`` on to the step's next.
        One AND-OR over every step's requests, whose conditions exclude each other: as deep as
        the widest field's OR tree, where a multiplexer per state over one per request was
        two trees deep, the state's over the request's, and the deepest path of the core."""
        m, chosen = self.m, self.chosen
        names = ("write", "region", "index", "beats", "data", "enable", "zero", "streamed",
                 "first")
        with m.If(self.choosing):
            # A request's condition holds only while its step has requests left, so with no
            # step choosing, every field's AND-OR is 0: the same values written as constants,
            # which spares the simulation (Verilator evaluates the inner block only when
            # entered) the whole AND-OR, over a thousand bits, in every cycle outside a step's
            # requests.
            with m.If(Cat(*self._steps).any()):
                m.d.sync += [chosen.valid.eq(1), self.k.eq(self.k + 1),
                             self.k_hot.eq(self.k_hot << 1)]
                for name in names:
                    m.d.sync += chosen[name].eq(one_hot_select(
                        [(when, fields[name]) for when, fields in self._requests
                         if name in fields]))
            with m.Else():
                m.d.sync += [chosen[name].eq(0) for name in names]

    def arrived(self, i, port):
        """The step's ``i``-th element on HBM port ``port`` is on that port's ``element`` now."""
        hbm = self.hbms[port]
        return hbm.element_valid & (hbm.element_index == i)

    def read_into(self, requests, *, arrivals=None):
        """Issue the step's ``requests`` in order: each a read ``(region, index, register)``
        whose element is kept in ``register`` as it arrives, or a segment ``(count,
        request(i))`` as for :meth:`issue`. Returns the condition that the step is over;
        ``arrivals``, if a dict, gets for each kept register (by ``id``: a register of a
        layout is a view, which does not hash) the condition that its element is arriving."""
        segments, kept = [], {}
        for request in requests:
            if len(request) == 3:
                region, index, register = request
                kept[len(segments)] = register
                request = (1, lambda i, region=region, index=index: self.read(region, index))
            segments.append(request)
        over, made = self._issue(segments)
        # Each port numbers the elements it returns, in the order it was asked for them.
        numbers, first = {}, 0
        for n, (count, _) in enumerate(segments):
            for request in made[first:first + count]:
                if isinstance(request, _Read):
                    port, = request.region.ports
                    number = numbers[port] = numbers.get(port, -1) + 1
                    if n in kept:
                        register = kept[n]
                        element = self.hbms[port].element[:len(Value.cast(register))]
                        arriving = self.arrived(number, port)
                        with self.m.If(arriving):
                            self.m.d.sync += register.eq(element)
                        if arrivals is not None:
                            arrivals[id(register)] = arriving
            first += count
        return over

    @staticmethod
    def read(region, i):
        return _Read(region, i)

    @staticmethod
    def write(region, i, value, enable=1):
        return _Write(region, i, value, enable)

    def frame_writes(self, frame, record, enable=1):
        """The segment that writes ``record`` as frame ``frame``: to every copy of the frames,
        as each flush reads from copies of its own (:meth:`HbmMap.frame_copy
        <bolt.hdl.hbm.HbmMap.frame_copy>`)."""
        return (FRAME_COPIES, lambda i: self.write(self.hm.frame_copies[i], frame, record,
                                                   enable))

    # -- the steps, one method each (the FSM's states) ------------------------------------------

    def _accept(self):
        """The back takes the front's prepared command (:class:`~bolt.hdl.front.CommandFront`)
        the cycle it is idle, and clears what the previous one left; a Setup's first command
        holds the front until its keys are in."""
        m, prepared = self.m, self.front.prepared
        cmd = prepared.payload.cmd
        m.d.comb += self.front.hold.eq(self.keys_changing)
        with m.State("IDLE"):
            m.d.comb += self.ports.idle.eq(1)
            with m.If(prepared.valid):
                m.d.comb += prepared.ready.eq(1)
                offered = prepared.payload
                # The stamps count from the front's acceptance.
                m.d.sync += [self.cmd.eq(cmd), self.cycles.eq(offered.age + 1),
                             self.taken_at.eq(offered.age), self.mac.eq(offered.mac),
                             self.r.eq(offered.r), self.y.eq(offered.y),
                             self.y_host.eq(self.is_host(offered.y)),
                             self.c1.eq(offered.c1), self.c2.eq(offered.c2),
                             self.has_value.eq(0), self.out_vlen.eq(0), self.out_value.eq(0),
                             self.err_page.eq(0), self.status.eq(Status.ABSENT),
                             self.derive.eq(0),
                             self.reads_at.eq(0), self.data_at.eq(0), self.ready_at.eq(0),
                             self.resume.eq(0)]
                with m.Switch(cmd.op):
                    with m.Case(Cmd.GET, Cmd.PUT, Cmd.DELETE, Cmd.SETUP_ITEM):
                        m.d.comb += self.lookup.start.eq(1)
                        self.enter("LOOKUP")
                    with m.Case(Cmd.SETUP_BEGIN):
                        m.d.sync += [self.key_offered.eq(1), self.keys_changing.eq(1)]
                        m.next = "SB_KEY"
                    with m.Case(Cmd.SETUP_END):
                        m.d.sync += [self.page_number.eq(0),
                                     self.last_page.eq(self.p.host_bins == 1)]
                        self.enter("SE_READ")
                    with m.Default():
                        m.next = "RESP"

    def _lookup(self):
        """Step 2: the index lookup (:class:`~bolt.hdl.lookup.Lookup`), one HBM step."""
        m = self.m
        with m.State("LOOKUP"):
            # Every index port carries its share of both buckets, side by side.
            budget = self.latency + 4 + 2 * (self.lookup.requests + self.lookup.beats)
            assert self.lookup.scan_cycles <= budget     # the overflow's scan costs no cycle
            m.d.comb += [hbm.budget.eq(budget) for hbm in self.hbms]
            x = Mux(self.lookup.found, self.lookup.entry.bin, self.r)
            with m.If(self.lookup.done & self.hbm_done):
                m.d.sync += [self.found.eq(self.lookup.found), self.entry.eq(self.lookup.entry),
                             self.pos.eq(self.lookup.pos), self.free_ok.eq(self.lookup.free_ok),
                             self.free_pos.eq(self.lookup.free_pos),
                             self.x.eq(x), self.x_host.eq(self.is_host(x))]
                with m.If(self.cmd.op == Cmd.SETUP_ITEM):
                    self.enter("SI_READ")
                with m.Else():
                    m.next = "T_LOAD"

    def _page_reads(self):
        """Step 3 begins: both page reads leave now (algorithm §12), x's first."""
        m = self.m
        with m.State("T_LOAD"):
            # Engine a reads the first host page, b (if both are host bins) y. They decrypt
            # once the gather has their counters: the host round trip hides the gather.
            host_x, host_y = self.x_host, self.y_host
            m.d.comb += [self.pages_a.load.eq(host_x | host_y),
                         self.pages_a.page.eq(self.host_page(Mux(host_x, self.x, self.y))),
                         self.pages_b.load.eq(host_x & host_y),
                         self.pages_b.page.eq(self.host_page(self.y))]
            m.d.sync += [self.first.eq(Mux(host_x, self.x, self.y)), self.two.eq(host_x & host_y)]
            self.enter("GATHER")

    def _gather(self):
        """Everything the decisions need, read from HBM in one step."""
        m, fb = self.m, self.p.frame_bits
        with m.State("GATHER"):
            own_frame = self.early(Mux(self.found & (self.kind != HOST), self.loc, 0)[:fb])
            page_x, page_y = self.early(self.host_page(self.x)), self.early(self.host_page(self.y))
            # Five ports side by side, the lists port's first: x's list and map each have a
            # read after them on their port, whose step ends only once that read is in, so
            # there is a cycle for the map's lookup (below) and two for the list's edit
            # (`unlinked`) before the decisions, however the ports' answers interleave.
            arrivals = {}
            over = self.read_into([
                (self.bins_r, page_x, self.bin_x),
                (self.bins_r, page_y, self.bin_y),
                (self.maps_r, page_x, self.map_x),
                (self.maps_r, page_y, self.map_y),
                (self.loads_r, self.c1, self.load_c1),
                (self.loads_r, self.c2, self.load_c2),
                (self.loads_r, self.x, self.load_x),
                (self.hm.frame_copies[0], own_frame, self.key_frame),
                (self.counters_r, page_x, self.counter_x),
                (self.counters_r, page_y, self.counter_y),
            ], arrivals=arrivals)
            # A cycle after x's map is in, an item that a flush put into page x is located
            # there: its entry still says PENDING.
            map_x_in = Signal()
            m.d.sync += map_x_in.eq(arrivals[id(self.map_x)])
            with m.If(map_x_in):
                self._locate_flushed()
            with m.If(over):
                m.next = "DECIDE"

    def _locate_flushed(self):
        """The key's entry says PENDING(x, frame), but a flush has put the item into page x
        since: x's map holds the entry's index position in one slot, and the entry becomes
        HOST(x, that slot) (algorithm §3, step 3's index update, made here)."""
        m, S = self.m, self.p.slots
        at = [self.map_x[s].used & (self.map_x[s].ipos == self.pos) for s in range(S)]
        with m.If(self.found & (self.kind == PENDING) & Cat(*at).any()):
            m.d.sync += [self.entry.kind.eq(HOST),
                         self.entry.loc.eq(one_hot_select([(at[s], s) for s in range(S)]))]

    def _decide(self):
        """The decisions, all taken before the touches change anything."""
        m, p, S = self.m, self.p, self.p.slots
        with m.State("DECIDE"):
            host_x, host_y = self.x_host, self.y_host
            la = self.load_c1 - (self.found & self.c1_is_x)
            lb = self.load_c2 - (self.found & self.c2_is_x)
            is_put = self.cmd.op == Cmd.PUT
            rep = is_put | ((self.cmd.op == Cmd.GET) & self.found)
            ful = is_put & ~self.found & (self.items >= p.capacity)
            loads_ok = (la < S) | (lb < S)
            # A frame is left if the free stack or the fresh frames hold one, or the access
            # frees one (the key's own frame if the key is in HBM, a pending item of a touched
            # page's flush): an OR, not the sum of those frames compared with 1.
            frames_ok = ((self.top != 0) | (self.fresh != p.frames)
                         | (self.found & (self.kind == HBM))
                         | (host_x & (self.bin_x.count != 0))
                         | (host_y & ~self.y_is_x & (self.bin_y.count != 0)))
            index_ok = self.found | self.free_ok
            fit = Signal()
            m.d.comb += fit.eq(rep & ~ful & loads_ok & frames_ok & index_ok)
            tk = Signal()
            m.d.comb += tk.eq(self.found & ((self.cmd.op == Cmd.DELETE) | fit))
            use_c1 = la <= lb
            first_counter = Mux(host_x, self.counter_x, self.counter_y)
            m.d.sync += [self.replace.eq(rep), self.full.eq(ful), self.fits.eq(fit),
                         self.take.eq(tk), self.nb.eq(Mux(use_c1, self.c1, self.c2)),
                         self.load_nb.eq(Mux(use_c1, self.load_c1, self.load_c2)),
                         self.counter.eq(first_counter),
                         self.a_in.eq(0), self.b_in.eq(~self.two)]
            m.d.comb += [self.pages_a.decrypt.eq(host_x | host_y),
                         self.pages_a.counter.eq(first_counter),
                         self.pages_b.decrypt.eq(self.two), self.pages_b.counter.eq(self.counter_y)]
            # The key's own pending entry leaves the eviction list of x now (algorithm §3, step 2).
            unlinked = self.unlinked
            with m.If(~host_x):
                m.d.sync += self.pending_a.eq(self.bin_y)
            with m.Elif(tk & (self.kind == PENDING)):
                m.d.sync += self.pending_a.eq(unlinked)
            with m.Else():
                m.d.sync += self.pending_a.eq(self.bin_x)
            m.d.sync += [self.pending_b.eq(self.bin_y),
                         self.pending_b.count.eq(Mux(self.y_is_x, 0, self.bin_y.count))]
            # The flushes' frames are read while the pages travel.
            with m.If(self.two):
                self.enter("FRAME_READ_2")
            with m.Elif(host_x | host_y):
                self.enter("FRAME_READ_1")
            with m.Else():
                m.next = "RESULT"

    def _touch(self):
        """Step 3: both pages in and verified; the key's item out of page x
        (:class:`~bolt.hdl.touch.Take`)."""
        m, taker = self.m, self.taker
        taking = self.take & (self.kind == HOST)
        with m.State("T_LOAD_WAIT"):
            # The key's slot is read in the cycle the take is requested, the page's last of
            # waiting (the page's reads are synchronous).
            m.d.comb += [taker.request.payload.slot.eq(self.loc),
                         taker.request.payload.klen.eq(self.cmd.klen),
                         taker.request.payload.key.eq(self.cmd.key),
                         taker.request.payload.take.eq(taking),
                         self.pages_a.slot_rd_idx.eq(taker.page.rd_idx)]
            with m.If(self.pages_a.done):
                m.d.sync += self.a_in.eq(1)
            with m.If(self.pages_b.done):
                m.d.sync += self.b_in.eq(1)
            # Nothing is written unless both pages verify: a failure changes nothing.
            with m.If(self.a_in & self.b_in):
                with m.If(~self.pages_a.ok):
                    m.d.sync += [self.status.eq(Status.INTEGRITY),
                                 self.err_page.eq(self.host_page(self.first))]
                    m.next = "RESP"
                with m.Elif(self.two & ~self.pages_b.ok):
                    m.d.sync += [self.status.eq(Status.INTEGRITY),
                                 self.err_page.eq(self.host_page(self.y))]
                    m.next = "RESP"
                with m.Elif(self.x_host):
                    # The take is idle: its last result was taken in T_TAKE.
                    m.d.comb += taker.request.valid.eq(1)
                    m.next = "T_TAKE"
                with m.Else():
                    m.next = "RESULT"
        with m.State("T_TAKE"):
            # The key's slot is checked (a cycle), then its item leaves it as the result is
            # taken (the next).
            m.d.comb += [taker.result.ready.eq(1),
                         self.pages_a.slot_wr_en.eq(taker.page.wr_en),
                         self.pages_a.slot_wr_idx.eq(taker.page.wr_idx),
                         self.pages_a.slot_wr.eq(taker.page.wr)]
            taken = taker.result.payload
            with m.If(taker.result.valid):
                with m.If(taking & ~taken.holds):
                    m.d.sync += [self.status.eq(Status.INTEGRITY),
                                 self.err_page.eq(self.host_page(self.x))]
                    m.next = "RESP"
                with m.Else():
                    with m.If(taking):
                        m.d.sync += [self.taken_vlen.eq(taken.vlen),
                                     self.taken_value.eq(taken.value)]
                    m.next = "RESULT"

    def _flush(self):
        """The touches' flushes: each touched bin's pending items into the lowest free slots
        of its page. Their frames are read right after the decisions, while the pages travel
        (``FRAME_READ_1`` or ``_2``, one step for both pages); after the response one write
        step (``FLUSH_WRITE_1`` or ``_2``) puts them into the pages and writes everything the
        flushes change, the page writes beside it."""
        for pages in (1, 2):
            self._frame_reads(self.flushes[:pages])
            self._flush_write(self.flushes[:pages])

    def _frame_reads(self, flushes):
        """The flushes' frame reads: ``slots`` per page, each flush's from its own copies of
        the frames, slot ``i`` from copy ``i mod FRAME_BANKS`` (:meth:`HbmMap.frame_copy
        <bolt.hdl.hbm.HbmMap.frame_copy>`), into the bank of its :class:`~bolt.hdl.flush.Flush`
        that the copy's port feeds, the pages' reads interleaved so that every copy's port
        starts at once. Beside them the re-placement's reads, and engine a's flush's stack
        pushes, on the stack's port after its read: they write above the stack's top, which
        moves over them only in the write step, once the touches have verified (an integrity
        failure leaves them unread); engine b's go out in the write step, where the stack's
        port is free. Then the pages are awaited (``T_LOAD_WAIT``)."""
        m, S = self.m, self.p.slots
        with m.State(f"FRAME_READ_{len(flushes)}"):
            list_read, stack_read = self.replacement_reads
            frame_reads = [
                (1, lambda _, i=i, n=n, pending=f.pending: self.read(
                    self.hm.frame_copy(n, i), Mux(i < pending.count, pending.frames[i], 0)))
                for i in range(S) for n, f in enumerate(flushes)]
            over = self.read_into([stack_read, *self._stack_pushes_of(0, self.top),
                                   *frame_reads, list_read])
            for n, f in enumerate(flushes):
                for bank, hold in enumerate(f.unit.hold):
                    hbm = self.hbms[self.hm.frame_copy(n, bank).ports[0]]
                    m.d.comb += [hold.valid.eq(hbm.element_valid),
                                 hold.payload.row.eq(hbm.element_index),
                                 hold.payload.frame.eq(hbm.element[:self.frame_l.size])]
            self._stored()
            with m.If(over):
                m.d.sync += self.ready_at.eq(self.cycles)
                m.next = "T_LOAD_WAIT"

    def _flush_begin(self, flushes):
        """On the way into the flushes' write step (the touches have verified and the answer
        is out): what the flushes change on chip, and what the re-placement then sees: the
        stack's height over both lists' frames (engine a's pushed in the frame reads' step,
        b's in the write step, before the re-placement's push), the pages' next
        counters (y == x: x's next but one, its page's second write), the last frame pushed
        (b's last if it has any, else a's last), whether any was, and whether nb's list is
        now empty."""
        m = self.m
        last_pushed = 0
        for f in flushes:
            count = f.pending.count
            last_pushed = Mux(count != 0, f.pending.frames[(count - 1)[:len(count)]],
                              last_pushed)
        next_counters = [self.counter + 1,
                         Mux(self.y_is_x, self.counter + 2, self.counter_y + 1)]
        m.d.sync += [f.counter.eq(c) for f, c in zip(flushes, next_counters)]
        m.d.comb += [f.unit.start.eq(1) for f in flushes]
        m.d.sync += [self.top.eq(self.top + sum(f.pending.count for f in flushes)),
                     self.last_pushed.eq(last_pushed),
                     self.pushed_any.eq(Cat(*[f.pending.count != 0 for f in flushes]).any()),
                     self.nb_flushed.eq(Cat(*[self.nb == f.bin for f in flushes]).any()),
                     self.forwarded.eq(0)]

    def _flush_write(self, flushes):
        """The flushes' writes. The step's first ``slots + 1`` cycles put the buffered frames
        into the lowest free slots of their pages (both engines side by side, a slot a cycle)
        while its first requests go out: each bin's emptied list and its page's next write
        counter, the re-placement's writes, on the stack and lists the flushes leave (the
        freed frames are on the stack already, above its old top: :meth:`_frame_reads`), then,
        once the fill is over, each page's map (which slot holds which flushed item's index
        position: their index entries are not written). The page writes start once the pages
        are filled (after the copy between the engines, with two pages) and run beside the
        step."""
        m, S = self.m, self.p.slots
        with m.State(f"FLUSH_WRITE_{len(flushes)}"):
            early = self.early
            clears, counter_writes, map_writes = [], [], []
            for n, f in enumerate(flushes):
                page = early(self.host_page(f.bin))
                clears.append((1, lambda i, page=page: self.write(self.bins_r, page, 0)))
                counter_writes.append((1, lambda i, page=page, f=f: self.write(
                    self.counters_r, page, f.counter)))
                # y == x: engine b's flush is empty and its page a copy of a's, whose map a
                # writes.
                map_writes.append((1, lambda i, page=page, f=f, n=n: self.write(
                    self.maps_r, page, f.unit.map_out, 1 if n == 0 else ~self.y_is_x)))
            # Engine b's list is pushed on the free stack first, below the stack's top as the
            # flushes have moved it (and below the re-placement's push). The re-placement's
            # writes do not wait for the fill; the maps are the fill's.
            pushes = [] if len(flushes) == 1 else self._stack_pushes_of(
                1, self.top - flushes[1].pending.count)
            before_maps = pushes + clears + counter_writes + self.replacement_writes
            filling = Cat(*[f.unit.busy for f in flushes]).any()
            over = self.issue(before_maps + map_writes,
                              hold=(sum(count for count, _ in before_maps), filling,
                                    self.flush_a.fill_cycles + 1))

            # The fill (:class:`~bolt.hdl.flush.Flush`, begun on the way in): each buffer's
            # frames into its page, a slot a cycle, while the first requests go out.
            for f in flushes:
                m.d.comb += [f.pages.slot_wr_en.eq(f.unit.page.wr_en),
                             f.pages.slot_wr_idx.eq(f.unit.page.wr_idx),
                             f.pages.slot_wr.eq(f.unit.page.wr)]

            if len(flushes) == 2:
                # y == x: engine b read the page before a's write; it takes a's flushed page
                # instead, a slot a cycle (read from a, written into b the next), and its own
                # flush was empty. The copy runs, without its writes, for y != x as well, so
                # that its cycles do not say which. The page writes start after it.
                k = self.forwarded
                with m.If(~self.flush_a.busy):
                    m.d.comb += [self.pages_a.slot_rd_idx.eq(k),
                                 self.pages_b.slot_wr_idx.eq(k - 1),
                                 self.pages_b.slot_wr.eq(self.pages_a.slot_rd),
                                 self.pages_b.slot_wr_en.eq(self.y_is_x & (k != 0) & (k <= S))]
                    with m.If(k != S + 1):
                        m.d.sync += k.eq(k + 1)
                store = ~self.flush_a.busy & (k == S)
            else:
                store = self.flush_a.done
            with m.If(store):
                self._store_pages()
            self._stored()
            with m.If(over):
                self.replaced()
                m.next = "T_STORE_WAIT"

    def _stack_pushes_of(self, n, at):
        """Flush ``n``'s list pushed on the free stack from element ``at`` (engine a's list
        first, then b's, the order the reference model frees them in): one burst of ``slots``
        stack elements, streamed (:meth:`_stack_pushes`), split where it crosses a 4 KB page;
        the second part, when it would be empty, is one beat that writes nothing. ``at`` is
        of the registers the step begins with."""
        S, early = self.p.slots, self.early
        per_page = MAX_BURST_BEATS // self.stack_r.element_beats
        room = per_page - at % per_page
        part, at = early(Mux(room < S, room, S)), early(at)
        return [
            (1, lambda i: _Write(self.stack_r, at, first=n * S, streamed_beats=part,
                                 streamed_budget=S)),
            (1, lambda i: _Write(self.stack_r, at + part, enable=part != S, first=n * S + part,
                                 streamed_beats=Mux(part == S, 1, S - part),
                                 streamed_budget=1))]

    def _stack_pushes(self):
        """The streamed stack pushes' beats: beat ``n * slots + i`` is frame ``i`` of flush
        ``n``'s list, written if the list has it."""
        m, S, hbm = self.m, self.p.slots, self.stack_hbm
        for n, f in enumerate(self.flushes):
            i = (hbm.wbeat - n * S)[:max(1, (S - 1).bit_length())]
            with m.If((hbm.wbeat >= n * S) & (hbm.wbeat < (n + 1) * S)):
                m.d.comb += [hbm.wbeat_data.eq(f.pending.frames[i]),
                             hbm.wbeat_enable.eq(i < f.pending.count)]

    def _store_pages(self):
        """Both page writes start, posted: a's page goes out first (the port's order), b's
        is encrypted beside it."""
        m = self.m
        m.d.comb += [self.pages_a.store.eq(1),
                     self.pages_a.page.eq(self.host_page(self.first)),
                     self.pages_a.counter.eq(self.counter_a),
                     self.pages_b.store.eq(self.two),
                     self.pages_b.page.eq(self.host_page(self.y)),
                     self.pages_b.counter.eq(self.counter_b)]
        m.d.sync += [self.a_in.eq(0), self.b_in.eq(~self.two)]

    def _stored(self):
        """Note each engine's page as stored when it is."""
        m = self.m
        with m.If(self.pages_a.done):
            m.d.sync += self.a_in.eq(1)
        with m.If(self.pages_b.done):
            m.d.sync += self.b_in.eq(1)

    def _page_writes(self):
        """The end of both page writes (begun in the flushes' write step)."""
        m = self.m
        with m.State("T_STORE_WAIT"):
            self._stored()
            with m.If(self.a_in & self.b_in):
                m.next = "T_STORE_RESPONSE"
        with m.State("T_STORE_RESPONSE"):
            # The pages are written once the host has answered every burst of them.
            with m.If(~self.bridge.writes_pending):
                m.next = "IDLE"

    def _result(self):
        """Step 4: the key's value and the status; the answer leaves before the writes."""
        m = self.m
        with m.State("RESULT"):
            with m.If(self.found & ((self.kind != HOST) | ~self.take)):
                m.d.sync += [self.out_vlen.eq(self.key_frame.vlen),
                             self.out_value.eq(self.key_frame.value),
                             self.has_value.eq(self.kind != HOST)]
            with m.If(self.take & (self.kind == HOST)):
                m.d.sync += [self.out_vlen.eq(self.taken_vlen),
                             self.out_value.eq(self.taken_value), self.has_value.eq(1)]
            with m.If(self.full):
                m.d.sync += [self.status.eq(Status.FULL), self.has_value.eq(0)]
            with m.Elif(self.replace & ~self.fits):
                m.d.sync += self.status.eq(Status.BOUND)
            with m.Elif(self.found):
                m.d.sync += self.status.eq(Status.FOUND)
            with m.Else():
                m.d.sync += [self.status.eq(Status.ABSENT), self.has_value.eq(0)]
            # The answer is known: it leaves now; the flushes, the page writes (posted) and
            # the re-placement follow before the next command leaves the front.
            m.d.sync += self.resume.eq(1)
            m.next = "RESP"

    def _replace(self):
        """Steps 5 and 6 of an access that touches no page: the key's re-placement into bin
        nb in two steps of its own (after a touch, the flushes' steps carry it)."""
        m = self.m
        with m.State("REPLACE_READ"):
            m.d.sync += [self.pushed_any.eq(0), self.nb_flushed.eq(0)]
            over = self.read_into(self.replacement_reads)
            with m.If(over):
                self.enter("REPLACE_WRITE")
        with m.State("REPLACE_WRITE"):
            with m.If(self.issue(self.replacement_writes)):
                self.replaced()
                m.next = "IDLE"

    def _replacement(self):
        """Steps 5 and 6: the key's re-placement into bin nb
        (:class:`~bolt.hdl.replace.Replacement`), on the free stack and nb's list as the
        touches' flushes leave them. Returns its reads (bin nb's eviction list and the
        frame on top of the free stack, for :meth:`read_into`), its writes (for
        :meth:`issue`), and what to do once they are over (the stack's height, fresh frames,
        item count)."""
        m, fb = self.m, self.p.frame_bits
        early = self.early
        reads = [(self.bins_r, early(self.host_page(self.nb)), self.bin_nb),
                 (self.stack_r, early(self.stack_below_top), self.stack_top)]
        # What the re-placement is made of: registers that hold through its steps.
        cmd, r = self.cmd, self.replacement
        m.d.comb += [r.put.eq(cmd.op == Cmd.PUT), r.found.eq(self.found), r.take.eq(self.take),
                     r.fits.eq(self.fits), r.kind.eq(self.kind), r.loc.eq(self.loc),
                     r.pos.eq(self.pos), r.free_pos.eq(self.free_pos),
                     r.klen.eq(cmd.klen), r.key.eq(cmd.key),
                     r.put_vlen.eq(cmd.vlen), r.put_value.eq(cmd.value),
                     r.old_vlen.eq(self.out_vlen), r.old_value.eq(self.out_value),
                     r.x.eq(self.x), r.load_x.eq(self.load_x),
                     r.nb.eq(self.nb), r.load_nb.eq(self.load_nb),
                     r.top.eq(self.top), r.fresh.eq(self.fresh), r.stack_top.eq(self.stack_top),
                     r.pushed_any.eq(self.pushed_any), r.last_pushed.eq(self.last_pushed),
                     r.nb_list.eq(self.bin_nb), r.nb_flushed.eq(self.nb_flushed)]
        frame, record = early(r.frame), early(r.record)
        writes = [
            (1, lambda i: self.write(self.loads_r, self.x, early(r.new_load_x))),
            (1, lambda i: self.write(self.loads_r, self.nb, early(r.new_load_nb))),
            self.frame_writes(frame, record, r.frame_write),
            (1, lambda i: self.write(self.index_r, early(r.ipos), early(r.entry),
                                     r.entry_write)),
            (1, lambda i: self.write(self.bins_r, early(self.host_page(self.nb)), early(r.list),
                                     early(r.list_write))),
            (1, lambda i: self.write(self.stack_r, self.top, self.loc[:fb], early(r.push))),
        ]

        def replaced():
            with m.If(r.allocate):
                _allocate(m, self.top, self.fresh)
            with m.If(r.push):
                m.d.sync += self.top.eq(self.top + 1)
            with m.If(self.fits & ~self.found):
                m.d.sync += self.items.eq(self.items + 1)
            with m.Elif(~self.fits & self.take):   # DELETE of a present key
                m.d.sync += self.items.eq(self.items - 1)
        return reads, writes, replaced

    def _setup_begin(self):
        """Setup begins: the subkeys, the DRBG restart, the clear of every structure."""
        m = self.m
        with m.State("SB_KEY"):
            m.d.comb += self.aes.key_stream.payload.eq(self.cmd.master_key)
            with m.If(self.aes.key_stream.ready):
                m.d.sync += self.key_offered.eq(0)
                m.next = "SB_SEND"
        with m.State("SB_SEND"):
            m.d.comb += [self.key_block_valid.eq(1),
                         self.key_block.eq(Cat(self.cmd.salt, (self.derive + 1)[:8]))]
            with m.If(self.aes.i_stream.ready):
                m.next = "SB_WAIT"
        with m.State("SB_WAIT"):
            with m.If(self.aes.o_stream.valid):
                m.d.sync += self.derive.eq(self.derive + 1)
                with m.Switch(self.derive):
                    with m.Case(0):
                        m.d.sync += self.page_key.eq(self.aes.o_stream.payload)
                        m.next = "SB_SEND"
                    with m.Case(1):
                        m.d.sync += self.drbg_key.eq(self.aes.o_stream.payload)
                        m.next = "SB_SEND"
                    with m.Case(2):
                        m.d.sync += [self.index_key.eq(self.aes.o_stream.payload),
                                     self.key_offered.eq(1)]
                        m.next = "SB_INDEX_KEY"
        with m.State("SB_INDEX_KEY"):
            m.d.comb += self.aes.key_stream.payload.eq(self.index_key)
            with m.If(self.aes.key_stream.ready):
                # The front may take the next command: the index key and the DRBG are new.
                m.d.sync += [self.key_offered.eq(0), self.keys_changing.eq(0)]
                # The lookup empties its overflow area in a few cycles of the clear step.
                m.d.comb += [self.sampler.restart.eq(1), self.pages_a.rekey.eq(1),
                             self.pages_b.rekey.eq(1), self.lookup.clear.eq(1)]
                m.d.sync += [self.items.eq(0), self.setup_bound.eq(0), self.top.eq(0),
                             self.fresh.eq(0)]
                self.enter("SB_CLEAR_0")
        for port, clear in enumerate(self.hm.clears):
            with m.State(f"SB_CLEAR_{port}"):
                # The clear sequencer: zeros over the index, loads, eviction lists and staging,
                # a step for each HBM port.
                over = self.issue([(clear.count, lambda i, clear=clear: _Write(clear, i,
                                                                               zero=True))])
                with m.If(over):
                    if port + 1 < len(self.hm.clears):
                        self.enter(f"SB_CLEAR_{port + 1}")
                    else:
                        m.next = "RESP"

    def _setup_item(self):
        """Setup: one item placed by the two-choice rule."""
        m, p, S = self.m, self.p, self.p.slots
        with m.State("SI_READ"):
            over = self.read_into([(self.loads_r, self.c1, self.load_c1),
                                   (self.loads_r, self.c2, self.load_c2)])
            with m.If(over):
                self.enter("SI_WRITE")
        with m.State("SI_WRITE"):
            # The reference model's setup(): the less loaded of c1, c2.
            cmd = self.cmd
            use_c1 = self.load_c1 <= self.load_c2
            target_bin = Mux(use_c1, self.c1, self.c2)
            target_load = Mux(use_c1, self.load_c1, self.load_c2)
            host = self.is_host(target_bin)
            early = self.early
            ok = early((target_load < S) & self.free_ok & (host | (self.fresh < p.frames))
                       & ~self.setup_bound)
            placed = self.new_value(self.entry_l, valid=1, kind=Mux(host, HOST, HBM),
                                    klen=cmd.klen, key=cmd.key, bin=target_bin,
                                    loc=Mux(host, target_load, self.fresh))
            record = self.new_value(self.frame_l, vlen=cmd.vlen, value=cmd.value, klen=cmd.klen,
                                    key=cmd.key, ipos=self.free_pos)
            host = early(host)
            over = self.issue([
                (1, lambda i: self.write(self.loads_r, early(target_bin), early(target_load + 1),
                                         ok)),
                (1, lambda i: self.write(self.index_r, self.free_pos, early(placed), ok)),
                (1, lambda i: self.write(self.staging_r,
                                         early(self.host_page(target_bin) * S + target_load),
                                         self.slot_record(cmd.klen, cmd.key, cmd.vlen, cmd.value),
                                         ok & host)),
                self.frame_writes(self.fresh, record, ok & ~host),
            ])
            with m.If(over):
                with m.If(ok):
                    m.d.sync += self.items.eq(self.items + 1)
                    with m.If(~host):
                        m.d.sync += self.fresh.eq(self.fresh + 1)
                with m.Else():
                    m.d.sync += self.setup_bound.eq(1)
                m.next = "RESP"

    def _setup_end(self):
        """Setup ends: every host page from the staging area, under counter 1."""
        m, p, S = self.m, self.p, self.p.slots
        with m.State("SE_READ"):
            # Page `page_number` from the staging area, under counter 1.
            first_slot = self.early(self.page_number * S)
            over = self.issue([
                (S, lambda i: self.read(self.staging_r, first_slot + i)),
                (1, lambda i: self.write(self.counters_r, self.page_number, 1)),
            ])
            staging = self.hbms[self.staging_r.ports[0]]
            with m.If(staging.element_valid):
                m.d.comb += [self.pages_a.slot_wr_en.eq(1),
                             self.pages_a.slot_wr_idx.eq(staging.element_index),
                             self.pages_a.slot_wr.eq(staging.element[:self.slot_l.size])]
            with m.If(over):
                m.next = "SE_STORE"
        with m.State("SE_STORE"):
            m.d.comb += [self.pages_a.store.eq(1), self.pages_a.counter.eq(1),
                         self.pages_a.page.eq(self.page_number)]
            m.next = "SE_WAIT"
        with m.State("SE_WAIT"):
            with m.If(self.pages_a.done):
                m.next = "SE_RESPONSE"
        with m.State("SE_RESPONSE"):
            with m.If(~self.bridge.writes_pending):
                m.d.sync += [self.page_number.eq(self.page_number + 1),
                             self.last_page.eq(self.page_number == p.host_bins - 2)]
                with m.If(self.last_page):
                    m.d.sync += self.status.eq(Mux(self.setup_bound, Status.BOUND, Status.ABSENT))
                    m.next = "RESP"
                with m.Else():
                    self.enter("SE_READ")

    def _respond(self):
        """The response; after an access, its touches and re-placement follow."""
        m = self.m
        with m.State("RESP"):
            m.d.comb += [self.ports.resp.valid.eq(1),
                         self.ports.resp.payload.status.eq(self.status),
                         self.ports.resp.payload.has_value.eq(self.has_value),
                         self.ports.resp.payload.vlen.eq(Mux(self.has_value, self.out_vlen, 0)),
                         self.ports.resp.payload.value.eq(Mux(self.has_value, self.out_value, 0)),
                         self.ports.resp.payload.page.eq(self.err_page),
                         self.ports.resp.payload.cycles.eq(self.cycles),
                         self.ports.resp.payload.reads_at.eq(self.reads_at),
                         self.ports.resp.payload.data_at.eq(self.data_at),
                         self.ports.resp.payload.ready_at.eq(self.ready_at),
                         self.ports.resp.payload.taken_at.eq(self.taken_at)]
            with m.If(self.ports.resp.ready):
                with m.If(~self.resume):
                    m.next = "IDLE"
                with m.Elif(self.two):
                    self._flush_begin(self.flushes)
                    self.enter("FLUSH_WRITE_2")
                with m.Elif(self.x_host | self.y_host):
                    self._flush_begin(self.flushes[:1])
                    self.enter("FLUSH_WRITE_1")
                with m.Else():
                    self.enter("REPLACE_READ")


def step_cycles(requests, *, hold=None):
    """The cycles a step's requests take at the HBM's assumed pace, from the step's first
    choice to the last one's response, but for the fixed cycles (latency and pipeline).

    ``requests`` are ``(queue, cycles)`` in the order the step sends them: each queue (an
    HBM port, or all of a step's index writes, whose port is secret) serves its requests in
    order, ``cycles`` each (:meth:`AccessControl.issue` allows ``2 · beats + 2``); request
    ``k`` is chosen ``k`` cycles in at the earliest, and with ``hold = (k, cycles)`` request
    ``k`` and every one after it not before ``cycles``. Writes wait in their port's queue, not
    in the control's pipeline, so a busy port holds up no other; with every request on one
    port this is the sum of their cycles."""
    free = {}
    for k, (queue, cycles) in enumerate(requests):
        # Held, request `hold[0]` is chosen at `hold[1]`, and those after it a cycle apart.
        ready = k if hold is None or k < hold[0] else k + max(0, hold[1] - hold[0])
        free[queue] = max(ready, free.get(queue, 0)) + cycles
    return max(free.values())


#: Cycles from a step's beginning to its first request offered to HbmMaster (the settling
#: cycle and the two pipeline stages of :meth:`AccessControl.issue`), which each step's budget
#: allows for.
_PIPELINE_CYCLES = 3
#: The most requests of a step that :meth:`AccessControl.issue` tells apart by a bit of
#: ``k_hot`` each (its index ``i`` a constant); a longer step counts them.
_CHOSEN_ONE_HOT = 128


@dataclass(frozen=True)
class _Read:
    """A read of element ``index`` of ``region``."""
    region: Region
    index: object

    @property
    def beats(self):
        return self.region.element_beats

    budget_beats = beats


@dataclass(frozen=True)
class _Write:
    """A write of element ``index`` of ``region`` (no byte strobes unless ``enable``; all
    zeros if ``zero``). A streamed write (``first`` given) is a burst of ``beats`` elements
    of one beat, each taken as it goes out (:attr:`HbmMaster.wbeat <bolt.hdl.hbm.HbmMaster>`
    numbers them from ``first``); the step's budget allows ``budget_beats`` for it."""
    region: Region
    index: object
    data: object = 0
    enable: object = 1
    zero: bool = False
    first: object = None
    streamed_beats: object = None
    streamed_budget: int = 0

    @property
    def beats(self):
        return self.region.element_beats if self.first is None else self.streamed_beats

    @property
    def budget_beats(self):
        return self.region.element_beats if self.first is None else self.streamed_budget


@dataclass(frozen=True)
class _Flush:
    """One page's flush: its engine, its :class:`~bolt.hdl.flush.Flush`, the eviction list it
    empties, its bin, and the counter its page is written under."""
    pages: PageEngine
    unit: Flush
    pending: Signal
    bin: Signal
    counter: Signal


def _allocate(m, top, fresh):
    """Take a frame: the top of the free stack, else a fresh one."""
    with m.If(top != 0):
        m.d.sync += top.eq(top - 1)
    with m.Else():
        m.d.sync += fresh.eq(fresh + 1)

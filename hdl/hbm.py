"""The accelerator's trusted memory behind AXI4 master ports (algorithm §11).

Every structure whose size grows with N lives in HBM, reached through AXI4 memory-mapped
master ports with 512-bit data (each an HBM pseudo-channel of the Alveo U55C).
:class:`HbmMap` lays the structures out from :class:`~bolt.params.Params` and says which port
holds each element: the index is striped over :data:`INDEX_PORTS` ports (entry ``i`` on port
``i mod INDEX_PORTS``), so that a lookup reads its two buckets on every port side by side;
the other structures are spread over ports of their own, the value frames in copies, so that
each step's reads and writes run on several ports side by side. :class:`HbmMaster` (one per port)
turns the control's element reads and writes into AXI4 bursts, queueing writes so that a busy
port holds up no other, and closes each step of an access on a fixed schedule: a step ends
when its responses are in *and* its cycle budget has passed, so the cycles of a step never
depend on what it read, provided HBM answers within the budget (``overruns`` counts the steps
where it did not).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from bolt.params import BEAT_BYTES, Params

from .scan import prefix_or

__all__ = ["AxiSignature", "Region", "HbmMap", "HbmMaster", "BEAT_BITS", "AXI_BURST_INCR",
           "MAX_BURST_BEATS", "INDEX_PORTS", "FRAME_BANKS", "FRAME_COPIES", "WRITE_QUEUE_DEPTH",
           "hbm_map",
           "frame_record_layout", "bin_record_layout", "bin_record_matches",
           "bin_record_without", "index_entry_layout", "page_map_layout"]

BEAT_BITS = 8 * BEAT_BYTES
AXI_BURST_INCR = 1
#: Beats of one burst that fills a 4 KB page of the AXI address space (bursts never cross one).
MAX_BURST_BEATS = 4096 // BEAT_BYTES
#: Width of a step's cycle budget: Setup's clear step takes millions of cycles at N = 2^20 (a
#: 16-bit budget, capped, made every cycle of it past 65,535 count as an overrun).
BUDGET_BITS = 32
#: ``AxSIZE`` of a full 64-byte beat.
BEAT_SIZE_CODE = (BEAT_BYTES - 1).bit_length()
#: HBM ports (pseudo-channels) the index is striped over, a power of two: a lookup's two
#: buckets are read on all of them at once, so its step's budget is that of a ``1 /
#: INDEX_PORTS`` share of the beats (the U55C has 32 pseudo-channels; the other structures are
#: on the next twelve: :class:`HbmMap`).
INDEX_PORTS = 4
#: Copies of the value frames a flush reads its list's frames from, a slot from each in turn
#: (a power of two): its ``slots`` frame reads take ``1 / FRAME_BANKS`` of the time on one
#: port, and :class:`~bolt.hdl.flush.Flush` holds them in as many banks.
FRAME_BANKS = 4
#: Copies of the value frames in all, each on a port of its own: a bank's for each flush.
FRAME_COPIES = 2 * FRAME_BANKS
#: Writes an :class:`HbmMaster` holds, queued, beyond the one going out: at least as many as a
#: step of an access sends to one port (five at most: the lists port in the write step after
#: two touches), so that the control's requests to other ports never wait behind them
#: (:meth:`~bolt.hdl.control.AccessControl.issue` checks it).
WRITE_QUEUE_DEPTH = 32


class AxiSignature(wiring.Signature):
    """An AXI4 memory-mapped master port (``Out`` on the master), INCR bursts of full beats.

    Every member is a plain signal named as in the AXI specification (``awaddr``, ``wdata``,
    ``rvalid``...), so a Verilog top level shows ``<port>__awaddr`` and cocotb bus models bind
    to it by prefix.
    """

    def __init__(self, *, address_width: int, data_width: int = BEAT_BITS, id_width: int = 1):
        super().__init__({
            "awid": Out(id_width), "awaddr": Out(address_width), "awlen": Out(8),
            "awsize": Out(3), "awburst": Out(2), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wlast": Out(1),
            "wvalid": Out(1), "wready": In(1),
            "bid": In(id_width), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "arid": Out(id_width), "araddr": Out(address_width), "arlen": Out(8),
            "arsize": Out(3), "arburst": Out(2), "arvalid": Out(1), "arready": In(1),
            "rid": In(id_width), "rdata": In(data_width), "rresp": In(2), "rlast": In(1),
            "rvalid": In(1), "rready": Out(1),
        })


# -- the element layouts of the HBM structures -----------------------------------------------------

def index_entry_layout(params: Params) -> data.StructLayout:
    """One index entry: valid, kind (HBM/PENDING/HOST), key length, key (little-endian bytes),
    bin, frame or slot. Its width is ``params.index_entry_bits``."""
    layout = data.StructLayout({
        "valid": 1, "kind": 2, "klen": 8, "key": 8 * params.key_size,
        "bin": params.bin_bits, "loc": max(params.frame_bits, params.slot_bits),
    })
    assert layout.size == params.index_entry_bits
    return layout


def index_bucket_stride(params: Params) -> int:
    """Index positions from one bucket's start to the next: the bucket depth rounded up to a
    power of two. Striped over a power of two of ports, a bucket's entries on a port are then
    a run of beats inside an aligned power-of-two block of beats, which no 4 KB boundary
    crosses: a bucket is one AXI4 burst on each port, and a burst must not cross 4 KB."""
    return 1 << (params.index_bucket_depth - 1).bit_length()


def index_positions(params: Params) -> int:
    """Index positions in all: the buckets (each :func:`index_bucket_stride` apart, the
    positions past a bucket's depth unused), then the overflow area."""
    return params.index_buckets * index_bucket_stride(params) + params.index_overflow_entries


def index_position_bits(params: Params) -> int:
    """An index position: the entry's number in the index region (buckets, then overflow)."""
    return max(1, (index_positions(params) - 1).bit_length())


def frame_record_layout(params: Params) -> data.StructLayout:
    """A value frame with the item's key and index position beside the value, so that a
    pending item (an eviction-buffer entry) is flushed from one read."""
    return data.StructLayout({
        "vlen": 16, "value": 8 * params.value_size, "klen": 8, "key": 8 * params.key_size,
        "ipos": index_position_bits(params),
    })


def page_map_layout(params: Params) -> data.ArrayLayout:
    """A host page's map: for each slot, whether it holds an item a flush put there (``used``)
    and that item's index position (``ipos``). A flushed item's index entry keeps saying
    PENDING(bin, frame); the map of its bin's page says it is in the page, and in which slot
    (the control looks the entry's position up in it), so that a flush writes one map, not an
    index entry per item."""
    return data.ArrayLayout(data.StructLayout({"used": 1, "ipos": index_position_bits(params)}),
                            params.slots)


def bin_record_layout(params: Params) -> data.StructLayout:
    """A host bin's eviction-buffer list: its pending frames in FIFO order. A bin never holds
    more than ``slots`` items (pending ones included), so the list is an array of that size."""
    return data.StructLayout({
        "count": range(params.slots + 1),
        "frames": data.ArrayLayout(params.frame_bits, params.slots),
    })


def bin_record_matches(pending, frame):
    """Which entries of the bin record ``pending`` are listed and equal to ``frame``, a bit
    each."""
    frames = pending.frames
    return Cat(*[(i < pending.count) & (frames[i] == frame) for i in range(len(frames))])


def bin_record_without(m: Module, pending, frame, matches=None):
    """The bin record ``pending`` without its first listed entry equal to ``frame``, the
    entries after it moved up one (the last becomes 0) and the count one less. Whether an
    entry moves is a prefix OR of the matches before it (:func:`~bolt.hdl.scan.prefix_or`),
    not a ripple through the list. ``matches``, if given, is :func:`bin_record_matches` of
    the same record and frame (say, from a register)."""
    result = Signal(pending.shape())
    frames = pending.frames
    if matches is None:
        matches = bin_record_matches(pending, frame)
    matches = [matches[i] for i in range(len(frames))]
    m.d.comb += result.count.eq(pending.count - 1)
    for i, moved in enumerate(prefix_or(matches)):
        later = frames[i + 1] if i + 1 < len(frames) else 0
        m.d.comb += result.frames[i].eq(Mux(moved, later, frames[i]))
    return result


@dataclass(frozen=True)
class Region:
    """``count`` elements of ``element_bits`` bits, each in ``element_beats`` whole beats,
    striped over the HBM ports ``ports``: element ``i`` is on port ``ports[i mod len(ports)]``
    at byte address ``base + (i div len(ports)) · stride`` there (``base`` a multiple of 4 KB,
    the same on every port; ``len(ports)`` a power of two)."""

    name: str
    base: int
    count: int
    element_bits: int
    ports: tuple[int, ...] = (0,)

    def __post_init__(self):
        assert len(self.ports) & (len(self.ports) - 1) == 0

    @property
    def element_beats(self) -> int:
        return -(-self.element_bits // BEAT_BITS)

    @property
    def stride(self) -> int:
        return self.element_beats * BEAT_BYTES

    @property
    def stripe_shift(self) -> int:
        """log2 of the ports: an element number's low bits choose its port."""
        return (len(self.ports) - 1).bit_length()

    @property
    def size(self) -> int:
        """Bytes on each of its ports, rounded up to whole 4 KB pages."""
        per_port = -(-self.count // len(self.ports))
        return -(-per_port * self.stride // 4096) * 4096

    @property
    def end(self) -> int:
        return self.base + self.size

    def port(self, index):
        """The port of element ``index`` (an int or an Amaranth value)."""
        if len(self.ports) == 1:
            return self.ports[0]
        if isinstance(index, int):
            return self.ports[index % len(self.ports)]
        assert self.ports == tuple(range(len(self.ports)))
        return index[:self.stripe_shift]

    def address(self, index):
        """The byte address of element ``index`` (an int or an Amaranth value) on its port."""
        return self.base + (index >> self.stripe_shift) * self.stride


class HbmMap:
    """The HBM address map of one parameter set: its :attr:`regions`, each from ``base`` on
    its ports, and the :attr:`ports` it spreads over.

    A step's requests go out one a cycle, but each port serves its own one after another, so
    what one step reads is spread over ports that serve it side by side (the step's budget is
    per port: :func:`~bolt.hdl.control.step_cycles`). Which port a read goes to is public: its
    region's, a lookup's on every index port, a flush's frame read by its place in the step.

    - The index is striped over ports ``0 .. index_ports - 1`` (:data:`INDEX_PORTS`), from
      address 0 on each, so a lookup reads its two buckets on all of them at once.
    - The **data port** (:attr:`data_port`): the loads, then Setup's staging area.
    - The **lists port** (:attr:`lists_port`): the eviction lists, then the page maps (a gather
      reads two of each).
    - The **counters port** (:attr:`counters_port`): the pages' write counters.
    - The **frame ports** (:attr:`frame_ports`, :data:`FRAME_COPIES` of them): one copy each
      of the value frames, every frame written to all of them. A flush reads its list's
      frames from its own :data:`FRAME_BANKS` copies, slot ``i`` from copy ``i mod
      FRAME_BANKS`` (:meth:`frame_copy`), so the two flushes of an access read theirs on all
      the frame ports side by side, however the frames are numbered.
    - The **stack port** (:attr:`stack_port`): the free stack, whose pushes are bursts of
      ``slots`` beats.

    An index write's port is its entry's way, which is secret, so a step's budget counts all
    its index writes on one index port. The regions that Setup zeroes (index, loads, eviction
    lists, page maps, staging area) come first on their ports: :attr:`clears` are the zero
    bursts that cover them, a region of 4 KB bursts per port that has any.
    """

    #: The regions Setup zeroes.
    CLEARED = ("index", "loads", "bins", "maps", "staging")

    def __init__(self, params: Params, *, index_ports: int = INDEX_PORTS):
        from .pages import slot_layout
        p = params
        self.index_ports = index_ports
        self.data_port = index_ports
        self.lists_port = index_ports + 1
        self.counters_port = index_ports + 2
        self.frame_ports = tuple(range(index_ports + 3, index_ports + 3 + FRAME_COPIES))
        self.stack_port = self.frame_ports[-1] + 1
        self.ports = self.stack_port + 1
        frame_bits = frame_record_layout(p).size
        layouts = [
            ("index", index_positions(p), p.index_entry_bits, tuple(range(index_ports))),
            ("loads", p.bins, p.load_bits, (self.data_port,)),
            ("staging", p.host_bins * p.slots, slot_layout(p).size, (self.data_port,)),
            ("bins", p.host_bins, bin_record_layout(p).size, (self.lists_port,)),
            ("maps", p.host_bins, page_map_layout(p).size, (self.lists_port,)),
            ("counters", p.host_bins, 64, (self.counters_port,)),
            *[(f"frames{copy}", p.frames, frame_bits, (port,))
              for copy, port in enumerate(self.frame_ports)],
            ("stack", p.frames, p.frame_bits, (self.stack_port,)),
        ]
        ends = [0] * self.ports
        self.regions: dict[str, Region] = {}
        for name, count, bits, ports in layouts:
            region = Region(name, ends[ports[0]], count, bits, ports)
            self.regions[name] = region
            for port in ports:
                ends[port] = region.end
        #: The value frames' copies, one per frame port.
        self.frame_copies = tuple(self.regions[f"frames{copy}"] for copy in range(FRAME_COPIES))
        #: Bytes used on each port.
        self.port_sizes = ends
        self.size = sum(self.port_sizes)
        #: The end of what Setup clears on each port (0: nothing; the counters are written at
        #: Setup's end, the frames before they are read, the stack only read below its top).
        self.clear_ends = [0] * self.ports
        for region in self.regions.values():
            if region.name in self.CLEARED:
                for port in region.ports:
                    assert self.clear_ends[port] == region.base    # cleared ones come first
                    self.clear_ends[port] = region.end
        self.clears = [Region(f"clear{port}", 0, end // 4096, 8 * 4096, (port,))
                       for port, end in enumerate(self.clear_ends) if end]
        self.address_width = max(12, (max(self.port_sizes) - 1).bit_length())
        #: Widest element in beats: the width of a write request's data.
        self.max_element_beats = max(r.element_beats for r in self.regions.values())
        assert p.index_bucket_depth <= MAX_BURST_BEATS     # a bucket is one burst
        # A bucket's run on each port stays inside 64 beats (4 KB).
        assert index_ports <= index_bucket_stride(p) <= 64 * index_ports

    def frame_copy(self, flush: int, slot: int) -> Region:
        """The copy of the frames that flush ``flush`` (0: engine a's page, 1: b's) reads its
        list's ``slot``-th frame from."""
        return self.frame_copies[flush * FRAME_BANKS + slot % FRAME_BANKS]

    def __getattr__(self, name):
        try:
            return self.__dict__["regions"][name]
        except KeyError:
            raise AttributeError(name) from None

    def element_beats_on(self, port: int) -> int:
        """The widest element on ``port``, in beats."""
        return max(r.element_beats for r in self.regions.values() if port in r.ports)

    def table(self) -> list[tuple[str, str, int, int, int, int]]:
        """(name, ports, base, elements, beats per element, bytes on each port) of every
        region."""
        return [(r.name, ",".join(map(str, r.ports)), r.base, r.count, r.element_beats, r.size)
                for r in self.regions.values()]


def hbm_map(params: Params) -> HbmMap:
    return HbmMap(params)


class HbmMaster(wiring.Component):
    """Element reads and writes of the control on HBM port ``port`` of the map, as AXI4
    bursts on ``axi``, and the fixed-time end of each step there.

    Members
    -------
    rd : ``In(stream)``: ``addr`` (bytes), ``beats``
        A read burst; its beats come back on ``rdata`` in request order (one ID).
    rdata : ``Out(stream)``: ``data``, ``last``
        Read beats; ``last`` ends a request's burst. Also assembled: ``element`` holds the
        beats of the current burst (up to the port's widest element), valid for one cycle with
        ``element_valid`` at its last beat, which is the ``element_index``-th burst completed
        since ``begin``.
    wr : ``In(stream)``: ``addr``, ``beats``, ``data``, ``enable``, ``zero``, ``streamed``, ``first``
        A write burst: ``data`` (the port's widest element, lowest beat first), or zeros if
        ``zero``; with ``enable`` low the burst carries no byte strobes (same timing, writes
        nothing). A ``streamed`` burst takes each beat from ``wbeat_data`` instead (strobed if
        ``wbeat_enable`` too), as the beat goes out: beat ``j`` is numbered ``first + j`` on
        ``wbeat``, so a burst of any length up to :data:`MAX_BURST_BEATS` needs no register
        of its width. Queued (up to ``write_queue`` of them) behind the one going out, so
        that a client sending to several ports is not held up here while this port is busy.
    wbeat : ``Out``, wbeat_data : ``In(BEAT_BITS)``, wbeat_enable : ``In(1)``
        The number of the streamed write's beat going out, and its data and strobe.
    begin : ``In(1)``, ``budget`` : ``In``
        ``begin`` starts a step; ``done`` is high once every request accepted has its
        response (a request still offered is the client's to wait for) and ``budget`` cycles
        have passed since ``begin``. ``budget`` is read in the step's first cycle (the one
        after ``begin``) and must be at least 2; the step's elements are numbered from its
        third cycle on. ``done`` comes from registers only.
    overruns : ``Out(16)``
        Steps whose responses came after their budget (the schedule was not met).
    """

    def __init__(self, hbm: HbmMap, *, port: int = 0, write_queue: int = WRITE_QUEUE_DEPTH):
        self._map = hbm
        self._write_queue = write_queue
        self._element_beats = hbm.element_beats_on(port)
        aw = hbm.address_width
        wide = BEAT_BITS * self._element_beats
        super().__init__({
            "axi": Out(AxiSignature(address_width=aw)),
            "rd": In(stream.Signature(data.StructLayout({"addr": aw, "beats": range(1, 65)}))),
            "rdata": Out(stream.Signature(data.StructLayout({"data": BEAT_BITS, "last": 1}))),
            "element": Out(wide),
            "element_valid": Out(1),
            "element_index": Out(8),
            "wr": In(stream.Signature(data.StructLayout({
                "addr": aw, "beats": range(1, 65), "data": wide, "enable": 1, "zero": 1,
                "streamed": 1, "first": 8}))),
            "wbeat": Out(8),
            "wbeat_data": In(BEAT_BITS),
            "wbeat_enable": In(1),
            "begin": In(1),
            "budget": In(BUDGET_BITS),
            "done": Out(1),
            "overruns": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        axi = self.axi
        wide_beats = self._element_beats

        # Reads: the request is the AR beat; R goes straight to the client.
        m.d.comb += [axi.arid.eq(0), axi.araddr.eq(self.rd.payload.addr),
                     axi.arlen.eq(self.rd.payload.beats - 1), axi.arsize.eq(BEAT_SIZE_CODE),
                     axi.arburst.eq(AXI_BURST_INCR), axi.arvalid.eq(self.rd.valid),
                     self.rd.ready.eq(axi.arready),
                     self.rdata.valid.eq(axi.rvalid), self.rdata.payload.data.eq(axi.rdata),
                     self.rdata.payload.last.eq(axi.rlast), axi.rready.eq(self.rdata.ready)]
        reads_out = Signal(8)
        read_in = self.rdata.valid & self.rdata.ready
        read_done = read_in & self.rdata.payload.last
        m.d.sync += reads_out.eq(reads_out + (self.rd.valid & self.rd.ready) - read_done)

        beat = Signal(range(MAX_BURST_BEATS + 1))
        element = Signal.like(self.element)
        m.d.comb += self.element.eq(element)
        with m.If(read_in):
            m.d.sync += beat.eq(beat + 1)
            for i in range(wide_beats):
                with m.If(beat == i):
                    m.d.sync += element.word_select(i, BEAT_BITS).eq(self.rdata.payload.data)
            with m.If(self.rdata.payload.last):
                m.d.sync += [beat.eq(0), self.element_valid.eq(1)]
        with m.If(~(read_in & self.rdata.payload.last)):
            m.d.sync += self.element_valid.eq(0)
        with m.If(self.element_valid):
            m.d.sync += self.element_index.eq(self.element_index + 1)

        # Writes: queued; AW and the W beats of one request at a time; B counted. `queued`
        # counts the requests taken and not yet begun (the queue's own count lags a cycle).
        m.submodules.write_queue = queue = SyncFIFOBuffered(
            width=len(self.wr.payload.as_value()), depth=self._write_queue)
        queued = Signal(range(self._write_queue + 2))
        w_busy, aw_pending = Signal(), Signal()
        w_beat = Signal(range(MAX_BURST_BEATS + 1))
        w = Signal.like(self.wr.payload)
        queueing = self.wr.valid & self.wr.ready
        m.d.comb += [queue.w_data.eq(self.wr.payload), queue.w_en.eq(self.wr.valid),
                     self.wr.ready.eq(queue.w_rdy),
                     queue.r_en.eq(~w_busy & ~aw_pending),
                     axi.awid.eq(0), axi.awaddr.eq(w.addr), axi.awlen.eq(w.beats - 1),
                     axi.awsize.eq(BEAT_SIZE_CODE), axi.awburst.eq(AXI_BURST_INCR),
                     axi.awvalid.eq(aw_pending),
                     axi.wvalid.eq(w_busy), axi.wlast.eq(w_beat == w.beats - 1),
                     axi.wstrb.eq(Mux(w.enable & (~w.streamed | self.wbeat_enable),
                                      (1 << len(axi.wstrb)) - 1, 0)),
                     axi.bready.eq(1), self.wbeat.eq(w.first + w_beat)]
        with m.If(w.streamed):
            m.d.comb += axi.wdata.eq(self.wbeat_data)
        with m.Elif(~w.zero):
            with m.Switch(w_beat):
                for i in range(wide_beats):
                    with m.Case(i):
                        m.d.comb += axi.wdata.eq(w.data.word_select(i, BEAT_BITS))
        writes_out = Signal(8)
        accepted = queue.r_rdy & queue.r_en
        m.d.sync += queued.eq(queued + queueing - accepted)
        with m.If(accepted):
            m.d.sync += [w.eq(queue.r_data), w_busy.eq(1), aw_pending.eq(1), w_beat.eq(0)]
        with m.If(axi.awvalid & axi.awready):
            m.d.sync += aw_pending.eq(0)
        with m.If(axi.wvalid & axi.wready):
            m.d.sync += w_beat.eq(w_beat + 1)
            with m.If(axi.wlast):
                m.d.sync += w_busy.eq(0)
        m.d.sync += writes_out.eq(writes_out + accepted - (axi.bvalid & axi.bready))

        # The step's fixed end. `begin` and the budget are taken a cycle after the control
        # offers them, from registers: offered, they come out of the control's next-state
        # logic and its multiplexer over its states, whose depth would otherwise come before
        # the timer's reset, the 32-bit compares and the overrun count. In a step's first
        # cycle (`first`) the timer would be 0, below every step's budget, so a step can
        # neither end nor overrun then: that cycle needs neither, and the timer starts there
        # at 1, as it would have been a cycle later. No step's element arrives before its
        # third cycle, after `element_index` is reset.
        timer = Signal(BUDGET_BITS)
        budget, first = Signal(BUDGET_BITS), Signal()
        m.d.sync += first.eq(self.begin)
        idle = ((reads_out == 0) & (writes_out == 0) & (queued == 0) & ~w_busy & ~aw_pending
                & ~self.rd.valid & ~self.wr.valid)
        with m.If(~first & (timer == budget) & ~idle):
            m.d.sync += self.overruns.eq(self.overruns + 1)
        # `done` is a gate of three registers, each set a cycle ahead: the control's next
        # state waits on it, so its compares and counts must not come before the control's
        # own logic. `reached` is `timer >= budget` (the budget, at least 2, is above the
        # timer's 1 in the cycle after `first`); `quiet` says that every request accepted has
        # its response and every write beat is out, from the counts as they will be.
        reached, quiet = Signal(), Signal(init=1)
        with m.If(first):
            m.d.sync += [budget.eq(self.budget), timer.eq(1), self.element_index.eq(0),
                         reached.eq(0)]
        with m.Else():
            with m.If(timer != 2**BUDGET_BITS - 1):
                m.d.sync += timer.eq(timer + 1)
            m.d.sync += reached.eq(timer + 1 >= budget)
        read_asked = self.rd.valid & self.rd.ready
        write_answered = axi.bvalid & axi.bready

        def none_left(count, more, fewer):
            """``count`` of the next cycle is 0."""
            return ((count == 0) & (more == fewer)) | ((count == 1) & fewer & ~more)

        w_sent, aw_sent = axi.wvalid & axi.wready & axi.wlast, axi.awvalid & axi.awready
        m.d.sync += quiet.eq(none_left(reads_out, read_asked, read_done)
                             & none_left(queued, queueing, accepted)
                             & none_left(writes_out, accepted, write_answered) & ~accepted
                             & ~(w_busy & ~w_sent) & ~(aw_pending & ~aw_sent))
        m.d.comb += self.done.eq(quiet & reached & ~first)
        return m

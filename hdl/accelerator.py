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
    ``vlen``/``value``, ``page`` (for INTEGRITY), and ``cycles``, the cycles from the command's
    acceptance to the response being offered (measurement only).
``host`` (``Out(HostPortSignature)``)
    The host-memory master port (:class:`bolt.hdl.pages.HostPortSignature`): whole-page read and
    write bursts of 64-byte beats. It is the only path to the host.

Timing
------
Every Access runs the same sequence of steps whatever its op, key, value, hit or miss and
pending items; the only branches are on whether ``x`` and ``y`` are host bins (both visible in
its trace) and on an integrity failure (which the trace also shows: the touch writes nothing).
Each step takes a fixed number of cycles, given the host's response latency and the DRBG
sample buffer (filled ahead from public randomness).
"""

from __future__ import annotations

from amaranth.hdl import (Cat, ClockDomain, ClockSignal, Const, DomainRenamer, Module,
                          ResetSignal, Shape, Signal)
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bolt.params import Params
from bolt.protocol import HBM, HOST, PENDING, Cmd, Op, Status

from .aes import Aes128
from .eviction import EvictionBuffer, EvictionOp
from .frames import FramePool
from .index import Index
from .pages import HostPortSignature, PageEngine, bswap

__all__ = ["RtlAccelerator", "Cmd", "command_layout", "response_layout", "HostPortSignature",
           "pack_command", "unpack_response", "pack_fields", "unpack_fields"]


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
    })


class RtlAccelerator(wiring.Component):
    """The BOLT accelerator for one :class:`~bolt.params.Params`.

    Parameters
    ----------
    params : Params
        The public parameters; every memory is sized from them.
    sampler_factory : callable
        ``sampler_factory(params)`` returns the DRBG sample source (see :mod:`bolt.hdl.random`).
    gcm_factory : callable or None
        Passed to :class:`~bolt.hdl.pages.PageEngine`.
    """

    def __init__(self, params: Params, *, sampler_factory=None, gcm_factory=None):
        self._p = params
        self._sampler_factory = sampler_factory
        self._gcm_factory = gcm_factory
        super().__init__({
            "cmd": In(stream.Signature(command_layout(params))),
            "resp": Out(stream.Signature(response_layout(params))),
            "host": Out(HostPortSignature()),
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
        m = Module()
        K, M, B = p.hbm_bins, p.bins, p.host_bins
        ks, vs = p.key_size, p.value_size

        # -- sub-components --------------------------------------------------------------------
        m.submodules.index = index = Index(p)
        m.submodules.frames = frames = FramePool(p)
        m.submodules.evict = ev = EvictionBuffer(p, index.position_layout)
        m.submodules.pages = pages = PageEngine(p, self._gcm_factory)
        m.submodules.aes = aes = Aes128(pipelined=False)
        from .sampler import make_sampler
        m.submodules.sampler = sampler = make_sampler(p, self._sampler_factory)
        wiring.connect(m, wiring.flipped(self.host), pages.host)

        # -- trusted memories kept here: loads, write counters, Setup staging -----------------
        lshape = range(p.slots + 2)
        m.submodules.loads = loads = Memory(shape=lshape, depth=M, init=[])
        load_a, load_b = loads.read_port(domain="comb"), loads.read_port(domain="comb")
        load_w = loads.write_port()
        m.submodules.counters = counters = Memory(shape=64, depth=B, init=[])
        ctr_r, ctr_w = counters.read_port(domain="comb"), counters.write_port()
        slot_layout = pages.slot_layout
        m.submodules.staging = staging = Memory(
            shape=data.ArrayLayout(slot_layout, p.slots), depth=B, init=[])
        stage_r, stage_w = staging.read_port(domain="comb"), staging.write_port(granularity=1)

        # -- registers ----------------------------------------------------------------------------
        cmd = Signal(command_layout(p))
        page_key, drbg_key, index_key = Signal(128), Signal(128), Signal(128)
        r, y, c1, c2 = (Signal(range(M), name=n) for n in ("r", "y", "c1", "c2"))
        n_drawn = Signal(3)
        mac = Signal(128)
        mac_block = Signal(range(8))
        found = Signal()
        entry = Signal(index.entry_layout)
        pos = Signal(index.position_layout)
        free_ok = Signal()
        free_pos = Signal(index.position_layout)
        x = Signal(range(M))
        l1, l2 = Signal(lshape), Signal(lshape)
        fits, take, full, replace = Signal(), Signal(), Signal(), Signal()
        taken = Signal()
        taken_vlen, taken_value = Signal(16), Signal(8 * vs)
        status = Signal(3)
        has_value = Signal()
        out_vlen, out_value = Signal(16), Signal(8 * vs)
        err_page = Signal(32)
        items = Signal(range(p.capacity + 1))
        setup_bound = Signal()
        cycles = Signal(32)
        step = Signal(range(max(M, B, p.slots, 4) + 1))
        touching = Signal(range(M))     # the bin being touched
        second = Signal()               # touching y
        derive = Signal(2)

        is_host = lambda b: b >= K  # noqa: E731
        host_page = lambda b: (b - K)[:32]  # noqa: E731

        # Defaults of the sub-components' inputs.
        m.d.comb += [
            index.key.eq(cmd.key), index.klen.eq(cmd.klen),
            index.bucket1.eq(mac[:len(index.bucket1)]),
            index.bucket2.eq(mac[64:64 + len(index.bucket2)]),
            pages.key.eq(page_key), pages.page.eq(host_page(touching)),
            sampler.key.eq(drbg_key),
            ctr_r.addr.eq(host_page(touching)),
            pages.counter.eq(ctr_r.data),
        ]

        m.d.sync += cycles.eq(cycles + 1)
        kind = entry.kind
        loc = entry.loc

        # The PRF message: klen ‖ key, zero padded to whole blocks (CBC-MAC under the index key).
        nmsg = -(-(1 + ks) // 16)
        message = Signal(128 * nmsg)
        m.d.comb += message.eq(Cat(cmd.klen, cmd.key))
        msg_block = Signal(128)
        with m.Switch(mac_block):
            for j in range(nmsg):
                with m.Case(j):
                    m.d.comb += msg_block.eq(bswap(message[128 * j:128 * (j + 1)]))

        def encode_slot(klen, key, vlen, value):
            s = Signal(slot_layout)
            m.d.comb += [s.flag.eq(1), s.klen.eq(klen), s.key.eq(key),
                         s.vlen_be.eq(Cat(vlen[8:16], vlen[0:8])), s.value.eq(value)]
            return s

        slot_vlen = Cat(pages.slot_rd.vlen_be[8:16], pages.slot_rd.vlen_be[0:8])

        def respond(m_):
            m_.next = "RESP"

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    m.d.sync += [cmd.eq(self.cmd.payload), cycles.eq(1), has_value.eq(0),
                                 out_vlen.eq(0), out_value.eq(0), err_page.eq(0),
                                 status.eq(Status.ABSENT), mac.eq(0), mac_block.eq(0),
                                 second.eq(0), taken.eq(0), step.eq(0), derive.eq(0)]
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
                            m.next = "SE_LOAD"
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
                        m.next = "LOOKUP"
                    with m.Else():
                        m.next = "PRF_SEND"

            # -- step 2: index lookup (fixed cycles) -------------------------------------------
            with m.State("LOOKUP"):
                m.d.comb += index.start.eq(1)
                m.next = "LOOKUP_WAIT"
            with m.State("LOOKUP_WAIT"):
                with m.If(index.done):
                    m.d.sync += [found.eq(index.found), entry.eq(index.entry), pos.eq(index.pos),
                                 free_ok.eq(index.free_ok), free_pos.eq(index.free_pos)]
                    with m.If(index.found):
                        m.d.sync += x.eq(index.entry.bin)
                    with m.Else():
                        m.d.sync += x.eq(r)
                    with m.If(cmd.op == Cmd.SETUP_ITEM):
                        m.next = "SI_PLACE"
                    with m.Else():
                        m.next = "DECIDE"

            # -- decisions taken before the touches (reference model: _placement_fits) ---------
            with m.State("DECIDE"):
                m.d.comb += [load_a.addr.eq(c1), load_b.addr.eq(c2),
                             ev.bin.eq(host_page(x)), ev.bin2.eq(host_page(y))]
                la = load_a.data - (found & (c1 == x))
                lb = load_b.data - (found & (c2 == x))
                is_put = cmd.op == Cmd.PUT
                rep = is_put | ((cmd.op == Cmd.GET) & found)
                ful = is_put & ~found & (items >= p.capacity)
                loads_ok = (la < p.slots) | (lb < p.slots)
                freed = (Signal(range(2 * p.frames + 2), name="freed"))
                m.d.comb += freed.eq(
                    (found & (kind != HOST))
                    + Mux_(is_host(x), ev.count, 0)
                    + Mux_(is_host(y) & (y != x), ev.count2, 0)
                    - (found & (kind == PENDING)))
                frames_ok = (frames.free_count + freed) >= 1
                index_ok = found | free_ok
                fit = rep & ~ful & loads_ok & frames_ok & index_ok
                m.d.sync += [l1.eq(la), l2.eq(lb), replace.eq(rep), full.eq(ful), fits.eq(fit),
                             take.eq(found & ((cmd.op == Cmd.DELETE) | fit)),
                             touching.eq(x)]
                with m.If(is_host(x)):
                    m.next = "T_LOAD"
                with m.Elif(is_host(y)):
                    m.d.sync += [touching.eq(y), second.eq(1)]
                    m.next = "T_LOAD"
                with m.Else():
                    m.next = "FIN1"

            # -- step 3: touch a host bin ---------------------------------------------------------
            with m.State("T_LOAD"):
                m.d.comb += pages.load.eq(1)
                m.next = "T_LOAD_WAIT"
            with m.State("T_LOAD_WAIT"):
                with m.If(pages.done):
                    with m.If(~pages.ok):
                        m.d.sync += [status.eq(Status.INTEGRITY), err_page.eq(host_page(touching))]
                        with m.If(second):
                            m.next = "RESTORE"
                        with m.Else():
                            m.next = "RESP"
                    with m.Elif(second):
                        m.d.sync += step.eq(0)
                        m.next = "T_FLUSH"
                    with m.Else():
                        m.next = "T_UNLINK"
            with m.State("T_UNLINK"):
                # The key's own pending entry leaves the eviction buffer of x.
                m.d.comb += [ev.bin.eq(host_page(x)), ev.frame.eq(loc)]
                with m.If(take & (kind == PENDING)):
                    m.d.comb += ev.op.eq(EvictionOp.UNLINK)
                m.next = "T_TAKE"
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
                    m.d.sync += step.eq(0)
                    m.next = "T_FLUSH"
            with m.State("T_FLUSH"):
                # One cycle per slot: an empty slot takes the oldest pending item, if any.
                m.d.comb += [pages.slot_rd_idx.eq(step), ev.bin.eq(host_page(touching))]
                fill = (pages.slot_rd.flag == 0) & ev.head_valid
                m.d.comb += [frames.rd_frame.eq(ev.head_frame), index.rd_pos.eq(ev.head_ipos)]
                item = index.rd_entry
                value = frames.rd_value
                new_slot = encode_slot(item.klen, item.key, value.vlen, value.value)
                with m.If(fill):
                    m.d.comb += [
                        ev.op.eq(EvictionOp.POP),
                        pages.slot_wr_en.eq(1), pages.slot_wr_idx.eq(step),
                        pages.slot_wr.eq(new_slot),
                        index.wr_en.eq(1), index.wr_pos.eq(ev.head_ipos),
                        index.wr_entry.eq(item), index.wr_entry.kind.eq(HOST),
                        index.wr_entry.bin.eq(touching), index.wr_entry.loc.eq(step),
                        frames.free.eq(1), frames.free_frame.eq(ev.head_frame),
                    ]
                m.d.sync += step.eq(step + 1)
                with m.If(step == p.slots - 1):
                    m.next = "T_STORE"
            with m.State("T_STORE"):
                m.d.comb += [pages.store.eq(1), pages.counter.eq(ctr_r.data + 1),
                             ctr_w.addr.eq(host_page(touching)),
                             ctr_w.data.eq(ctr_r.data + 1), ctr_w.en.eq(1)]
                m.next = "T_STORE_WAIT"
            with m.State("T_STORE_WAIT"):
                with m.If(pages.done):
                    with m.If(~second & is_host(y)):
                        m.d.sync += [touching.eq(y), second.eq(1)]
                        m.next = "T_LOAD"
                    with m.Else():
                        m.next = "FIN1"

            # -- integrity failure at y after x was touched: the key's item stays pending in x -
            with m.State("RESTORE"):
                m.d.comb += [ev.bin.eq(host_page(x)), ev.ipos.eq(pos)]
                with m.If(take & (kind == PENDING) & is_host(x)):
                    m.d.comb += [ev.op.eq(EvictionOp.APPEND), ev.frame.eq(loc)]
                with m.Elif(take & (kind == HOST) & taken & (frames.free_count != 0)):
                    m.d.comb += [ev.op.eq(EvictionOp.APPEND), ev.frame.eq(frames.alloc_frame),
                                 frames.alloc.eq(1), frames.wr_en.eq(1),
                                 frames.wr_frame.eq(frames.alloc_frame),
                                 frames.wr_value.vlen.eq(taken_vlen),
                                 frames.wr_value.value.eq(taken_value),
                                 index.wr_en.eq(1), index.wr_pos.eq(pos),
                                 index.wr_entry.eq(entry), index.wr_entry.kind.eq(PENDING),
                                 index.wr_entry.loc.eq(frames.alloc_frame)]
                m.next = "RESP"

            # -- step 4: the key's value; free its frame; its bin's load ----------------------
            with m.State("FIN1"):
                m.d.comb += [frames.rd_frame.eq(loc), load_a.addr.eq(x)]
                with m.If(found & ((kind != HOST) | ~take)):
                    m.d.sync += [out_vlen.eq(frames.rd_value.vlen),
                                 out_value.eq(frames.rd_value.value),
                                 has_value.eq(kind != HOST)]
                with m.If(take & (kind == HOST)):
                    m.d.sync += [out_vlen.eq(taken_vlen), out_value.eq(taken_value),
                                 has_value.eq(1)]
                with m.If(take):
                    m.d.comb += [load_w.addr.eq(x), load_w.data.eq(load_a.data - 1),
                                 load_w.en.eq(1)]
                    with m.If(kind != HOST):
                        m.d.comb += [frames.free.eq(1), frames.free_frame.eq(loc)]
                m.next = "FIN2"

            # -- steps 5 and 6: result and re-placement --------------------------------------------
            with m.State("FIN2"):
                nb = Signal(range(M))
                m.d.comb += nb.eq(Mux_(l1 <= l2, c1, c2))
                m.d.comb += [load_a.addr.eq(nb), ev.bin.eq(host_page(nb))]
                target = Signal(index.position_layout)
                m.d.comb += target.eq(Mux_(found, pos, free_pos))
                f = frames.alloc_frame
                new_vlen = Mux_(cmd.op == Cmd.PUT, cmd.vlen, out_vlen)
                new_value = Mux_(cmd.op == Cmd.PUT, cmd.value, out_value)
                with m.If(fits):
                    m.d.comb += [
                        load_w.addr.eq(nb), load_w.data.eq(load_a.data + 1), load_w.en.eq(1),
                        frames.alloc.eq(1), frames.wr_en.eq(1), frames.wr_frame.eq(f),
                        frames.wr_value.vlen.eq(new_vlen), frames.wr_value.value.eq(new_value),
                        index.wr_en.eq(1), index.wr_pos.eq(target),
                        index.wr_entry.valid.eq(1), index.wr_entry.klen.eq(cmd.klen),
                        index.wr_entry.key.eq(cmd.key), index.wr_entry.bin.eq(nb),
                        index.wr_entry.loc.eq(f),
                    ]
                    with m.If(is_host(nb)):
                        m.d.comb += [index.wr_entry.kind.eq(PENDING), ev.op.eq(EvictionOp.APPEND),
                                     ev.frame.eq(f), ev.ipos.eq(target)]
                    with m.Else():
                        m.d.comb += index.wr_entry.kind.eq(HBM)
                    with m.If(~found):
                        m.d.sync += items.eq(items + 1)
                with m.Elif(take):   # DELETE of a present key
                    m.d.comb += [index.wr_en.eq(1), index.wr_pos.eq(pos), index.wr_entry.eq(0)]
                    m.d.sync += items.eq(items - 1)
                with m.If(full):
                    m.d.sync += [status.eq(Status.FULL), has_value.eq(0)]
                with m.Elif(replace & ~fits):
                    m.d.sync += status.eq(Status.BOUND)
                with m.Elif(found):
                    m.d.sync += status.eq(Status.FOUND)
                with m.Else():
                    m.d.sync += [status.eq(Status.ABSENT), has_value.eq(0)]
                m.next = "RESP"

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
                    m.next = "SB_CLEAR"
            with m.State("SB_CLEAR"):
                m.d.comb += [index.clear.eq(1), frames.clear.eq(1), ev.clear.eq(1),
                             sampler.restart.eq(1)]
                m.d.sync += [step.eq(0), items.eq(0), setup_bound.eq(0)]
                m.next = "SB_CLEAR_WAIT"
            with m.State("SB_CLEAR_WAIT"):
                m.d.comb += [load_w.addr.eq(step), load_w.data.eq(0), load_w.en.eq(step < M),
                             ctr_w.addr.eq(step), ctr_w.data.eq(0), ctr_w.en.eq(step < B),
                             stage_w.addr.eq(step), stage_w.data.eq(0),
                             stage_w.en.eq(Mux_(step < B, (1 << p.slots) - 1, 0))]
                with m.If(step < max(M, B)):
                    m.d.sync += step.eq(step + 1)
                with m.Elif(~index.busy & ~frames.busy & ~ev.busy):
                    m.next = "RESP"

            with m.State("SI_PLACE"):
                # Setup: place one item by the two-choice rule (reference model: setup()).
                m.d.comb += [load_a.addr.eq(c1), load_b.addr.eq(c2)]
                use1 = load_a.data <= load_b.data
                nb = Mux_(use1, c1, c2)
                lnb = Mux_(use1, load_a.data, load_b.data)
                f = frames.alloc_frame
                ok = (lnb < p.slots) & free_ok & (is_host(nb) | (frames.free_count != 0))
                with m.If(ok & ~setup_bound):
                    m.d.comb += [load_w.addr.eq(nb), load_w.data.eq(lnb + 1), load_w.en.eq(1),
                                 index.wr_en.eq(1), index.wr_pos.eq(free_pos),
                                 index.wr_entry.valid.eq(1), index.wr_entry.klen.eq(cmd.klen),
                                 index.wr_entry.key.eq(cmd.key), index.wr_entry.bin.eq(nb)]
                    m.d.sync += items.eq(items + 1)
                    with m.If(is_host(nb)):
                        m.d.comb += [index.wr_entry.kind.eq(HOST), index.wr_entry.loc.eq(lnb),
                                     stage_w.addr.eq(host_page(nb)),
                                     stage_w.en.eq(1 << lnb[:len(Const(p.slots))])]
                        record = encode_slot(cmd.klen, cmd.key, cmd.vlen, cmd.value)
                        for s in range(p.slots):
                            m.d.comb += stage_w.data[s].eq(record)
                    with m.Else():
                        m.d.comb += [index.wr_entry.kind.eq(HBM), index.wr_entry.loc.eq(f),
                                     frames.alloc.eq(1), frames.wr_en.eq(1),
                                     frames.wr_frame.eq(f), frames.wr_value.vlen.eq(cmd.vlen),
                                     frames.wr_value.value.eq(cmd.value)]
                with m.Else():
                    m.d.sync += setup_bound.eq(1)
                m.next = "RESP"

            with m.State("SE_LOAD"):
                # Setup end: page `step` from the staging area, under counter 1.
                m.d.comb += [stage_r.addr.eq(step), pages.page_wr_en.eq(1),
                             pages.page_wr.eq(stage_r.data),
                             ctr_w.addr.eq(step), ctr_w.data.eq(1), ctr_w.en.eq(1)]
                m.d.sync += touching.eq(step + K)
                m.next = "SE_STORE"
            with m.State("SE_STORE"):
                m.d.comb += [pages.store.eq(1), pages.counter.eq(1)]
                m.next = "SE_WAIT"
            with m.State("SE_WAIT"):
                with m.If(pages.done):
                    m.d.sync += step.eq(step + 1)
                    with m.If(step == B - 1):
                        m.d.sync += status.eq(Mux_(setup_bound, Status.BOUND, Status.ABSENT))
                        m.next = "RESP"
                    with m.Else():
                        m.next = "SE_LOAD"

            with m.State("RESP"):
                m.d.comb += [self.resp.valid.eq(1),
                             self.resp.payload.status.eq(status),
                             self.resp.payload.has_value.eq(has_value),
                             self.resp.payload.vlen.eq(Mux_(has_value, out_vlen, 0)),
                             self.resp.payload.value.eq(Mux_(has_value, out_value, 0)),
                             self.resp.payload.page.eq(err_page),
                             self.resp.payload.cycles.eq(cycles)]
                with m.If(self.resp.ready):
                    m.next = "IDLE"
        return m


def Mux_(sel, a, b):
    from amaranth.hdl import Mux
    return Mux(sel, a, b)


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


def unpack_response(params: Params, word: int):
    """``(Response, cycles)`` of one ``resp`` payload."""
    from bolt.protocol import Response
    f = unpack_fields(response_layout(params), word)
    status = Status(f["status"])
    value = (f["value"].to_bytes(params.value_size, "little")[:f["vlen"]]
             if f["has_value"] else None)
    page = f["page"] if status == Status.INTEGRITY else None
    return Response(status, value, page), f["cycles"]

"""The page touch engine: moves one host page between the host-memory master port and an
on-chip plaintext page buffer, through AES-128-GCM (algorithm §5).

``load`` reads page ``p`` (one read request, ``page_beats`` beats) and, once ``decrypt`` gives
its counter, decrypts it under the nonce ``p ‖ counter`` and checks its tag (the request leaves
before the counter is known, so the host round trip hides the work that finds it); ``store`` encrypts the buffer under ``p ‖ counter`` and
writes the page (one write request, ``page_beats`` beats: ciphertext, tag, zero padding). In
between, the accelerator edits slots of the plaintext buffer through the slot ports. Every load
and store takes a fixed number of cycles, given the host's response latency.

GCM runs beside the bursts rather than after or before them: decryption starts when the read
request is accepted and takes each group of blocks (:data:`PAGE_GCM_LANES` blocks a cycle) as
soon as its beat is in; the write request goes out when encryption starts and each beat as
soon as its ciphertext (or, for the last, the tag) is ready. With two blocks a cycle GCM
keeps up with a page arriving at 12 GB/s (2.5 blocks a cycle at 300 MHz), so a load ends a
few cycles after its last beat, and a touch costs about one GCM pass per direction, not a
pass plus a burst.

Both pages wait in RAMs with synchronous read ports (LUTRAM or BRAM on the card), not in
flip-flops: the sealed page as beats, the plaintext as slots in a few banks (slot ``s`` in
bank ``s mod banks``), so that the group of blocks GCM reads or writes in a cycle, which may
span slots, is one word of each bank. Only the slots' flags are kept in flip-flops as well,
for the control's choice of a free slot.
"""

from __future__ import annotations

import math

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bolt.params import BEAT_BYTES, TAG_BYTES, Params

__all__ = ["HostPortSignature", "HostAxiBridge", "PageEngine", "PagePortArbiter", "SlotPortSignature",
           "slot_layout", "bswap", "page_blocks", "ADDRESS_BITS", "BLOCKS_PER_BEAT",
           "PAGE_GCM_LANES"]

#: Width of a host byte address on the master port.
ADDRESS_BITS = 48
#: GCM blocks (16 bytes) in one 64-byte beat of the host port.
BLOCKS_PER_BEAT = BEAT_BYTES // 16
#: GCM blocks a page engine's GCM takes per cycle (a divisor of :data:`BLOCKS_PER_BEAT`). The
#: host link brings a page at about 2.5 blocks a cycle (12 GB/s at 300 MHz): with one block a
#: cycle, decryption ended some 40 cycles after a page's last beat and every answer waited for
#: it; with two it follows the beats, for a second AES pipeline and GHASH multiplier per engine.
PAGE_GCM_LANES = 2


def page_blocks(params: Params) -> int:
    """GCM blocks of a page plaintext (the last one may be partial)."""
    return -(-params.page_plaintext_bytes // 16)


class HostPortSignature(wiring.Signature):
    """The accelerator's only path to host memory (master side; ``Out`` in the accelerator).

    ``rd_req``: ``Out(stream(48))`` byte address of a page to read (``page · page_stride``);
    ``rd_data``: ``In(stream(512))`` the page's ``page_beats`` beats, in address order;
    ``wr_req``: ``Out(stream(48))`` byte address of a page to write;
    ``wr_data``: ``Out(stream(512))`` its ``page_beats`` beats, in address order, after the
    request (the page engine sends the request when encryption starts and the beats, without
    gaps, near its end). A beat is the 512-bit value ``int.from_bytes(beat, "little")`` (AXI
    byte order).
    Requests are served in order; a read issued after a write's last beat sees the write.
    """

    def __init__(self):
        super().__init__({
            "rd_req": Out(stream.Signature(ADDRESS_BITS)),
            "rd_data": In(stream.Signature(8 * BEAT_BYTES)),
            "wr_req": Out(stream.Signature(ADDRESS_BITS)),
            "wr_data": Out(stream.Signature(8 * BEAT_BYTES)),
        })


def slot_layout(params: Params) -> data.StructLayout:
    """A slot plaintext as little-endian bytes: flag, key length, key, value length (its two
    bytes big-endian, as the page format stores them: use :func:`bswap`), value."""
    layout = data.StructLayout({
        "flag": 8,
        "klen": 8,
        "key": 8 * params.key_size,
        "vlen_be": 16,
        "value": 8 * params.value_size,
    })
    assert layout.size == 8 * params.slot_bytes
    return layout


class SlotPortSignature(wiring.Signature):
    """A page buffer's slots as a unit that edits them sees them (``Out`` in the unit), the
    page engine's slot ports (:class:`PageEngine`) under shorter names.

    ``rd_idx``/``rd``: a synchronous read, ``rd`` the slot ``rd_idx`` named the cycle before;
    ``used``: which slots hold an item (their flag is set), as of the last write;
    ``wr_en``, ``wr_idx``, ``wr``: a write of one slot.
    """

    def __init__(self, params: Params):
        layout = slot_layout(params)
        super().__init__({
            "rd_idx": Out(range(params.slots)), "rd": In(layout), "used": In(params.slots),
            "wr_en": Out(1), "wr_idx": Out(range(params.slots)), "wr": Out(layout),
        })


def bswap(value):
    """Reverse the byte order of a value of a whole number of bytes."""
    n = len(value) // 8
    return Cat(*[value[8 * i:8 * i + 8] for i in reversed(range(n))])


class PageEngine(wiring.Component):
    """Load and store whole host pages through GCM into a slot-addressable plaintext buffer.

    Parameters
    ----------
    params : Params
    gcm_factory : callable or None
        ``gcm_factory(params, lanes)`` returns the GCM core (:class:`~bolt.hdl.gcm.Gcm`'s
        interface); None for :class:`~bolt.hdl.gcm.Gcm` itself.
    lanes : int
        GCM blocks per cycle, a divisor of :data:`BLOCKS_PER_BEAT` (:data:`PAGE_GCM_LANES`).

    Members
    -------
    host : ``Out(HostPortSignature())``
    load, store : ``In(1)``
        Pulse (while ``busy`` is low) to load page ``page`` or to store it under ``counter``,
        with ``key`` the page key.
    decrypt : ``In(1)``
        Pulse once after ``load`` to decrypt the page under ``counter`` (before or after its
        beats are in).
    rekey : ``In(1)``
        Pulse (while idle) after a new ``key``: GCM prepares it now, so no later load or store
        takes longer for being the first under that key. ``done`` pulses when finished; after a load, ``ok`` says whether
        the tag verified.
    slot_rd_idx, slot_rd : synchronous read of a slot of the plaintext buffer: ``slot_rd`` is
        the slot ``slot_rd_idx`` named the cycle before (while no store is running).
    slot_used : which slots hold an item (their flag is set), as of the last write.
    slot_wr_en, slot_wr_idx, slot_wr : synchronous write of one slot.
    """

    def __init__(self, params: Params, gcm_factory=None, *, lanes: int = PAGE_GCM_LANES):
        if BLOCKS_PER_BEAT % lanes:
            raise ValueError(f"lanes must divide {BLOCKS_PER_BEAT}, not {lanes}")
        self._p = params
        self._gcm_factory = gcm_factory
        self._lanes = lanes
        self.slot_layout = slot_layout(params)
        super().__init__({
            "host": Out(HostPortSignature()),
            "load": In(1),
            "decrypt": In(1),
            "rekey": In(1),
            "store": In(1),
            "page": In(32),
            "counter": In(64),
            "key": In(128),
            "busy": Out(1),
            "done": Out(1),
            "ok": Out(1),
            "slot_rd_idx": In(range(params.slots)),
            "slot_rd": Out(self.slot_layout),
            "slot_used": Out(params.slots),
            "slot_wr_en": In(1),
            "slot_wr_idx": In(range(params.slots)),
            "slot_wr": In(self.slot_layout),
        })

    def elaborate(self, platform):
        p, lanes = self._p, self._lanes
        m = Module()
        pt_bytes = p.page_plaintext_bytes
        groups_per_beat = BLOCKS_PER_BEAT // lanes

        # The sealed page (ciphertext, tag, padding) is a RAM of beats: a load writes the host's
        # beats and GCM reads its groups of blocks, a store the other way round. The plaintext
        # is the slot banks (:class:`_PlaintextBanks`).
        m.submodules.plaintext = plaintext = _PlaintextBanks(p, group_bytes=16 * lanes)
        m.submodules.sealed = sealed = Memory(shape=8 * BEAT_BYTES, depth=p.page_beats, init=[])
        sealed_wr = sealed.write_port(granularity=128)
        sealed_rd = sealed.read_port()
        tag_in = Signal(8 * TAG_BYTES)    # the loaded page's tag, kept from its beats
        beat = Signal(range(p.page_beats + 1))
        beats_stored = Signal.like(beat)  # beats of a load the RAM returns (one cycle behind)
        page, counter, key = Signal(32), Signal(64), Signal(128)   # latched at load/store
        with m.If(~self.busy & (self.load | self.store)):
            m.d.sync += [page.eq(self.page), counter.eq(self.counter), key.eq(self.key)]
        start_decrypt, prepare_key = Signal(), Signal()
        m.d.sync += [start_decrypt.eq(self.decrypt), prepare_key.eq(self.rekey)]
        with m.If(self.rekey):
            m.d.sync += key.eq(self.key)
        with m.If(self.decrypt):
            m.d.sync += counter.eq(self.counter)
        ok = Signal()
        m.d.comb += self.ok.eq(ok)

        m.d.comb += [plaintext.slot_rd_idx.eq(self.slot_rd_idx),
                     self.slot_rd.eq(plaintext.slot_rd), self.slot_used.eq(plaintext.slot_used),
                     plaintext.slot_wr_en.eq(self.slot_wr_en),
                     plaintext.slot_wr_idx.eq(self.slot_wr_idx),
                     plaintext.slot_wr.eq(self.slot_wr)]

        host = self.host
        m.d.comb += [host.rd_req.payload.eq(page * p.page_stride),
                     host.wr_req.payload.eq(page * p.page_stride)]
        m.d.sync += [self.done.eq(0), beats_stored.eq(beat)]

        # The GCM pass: decryption reads the sealed groups from the RAM and writes the
        # plaintext groups into the buffer; encryption the other way round.
        gcm = _GcmPass(p, self._gcm_factory, lanes=lanes)
        m.submodules.gcm = gcm
        decrypting = Signal()
        group_bits = (groups_per_beat - 1).bit_length()
        # The group's place in the beat the RAM returns.
        in_beat = gcm.i_index[:group_bits] if group_bits else 0
        m.d.comb += [gcm.key.eq(key), gcm.page.eq(page), gcm.counter.eq(counter),
                     gcm.tag_in.eq(tag_in),
                     gcm.i_group.eq(Mux(decrypting,
                                        sealed_rd.data.word_select(in_beat, 128 * lanes),
                                        plaintext.group_rd)),
                     # A store reads the plaintext's groups; otherwise the control its slots.
                     plaintext.group_reading.eq(self.busy & ~decrypting),
                     plaintext.group_rd_idx.eq(gcm.i_next),
                     plaintext.group_wr.eq(gcm.o_group),
                     plaintext.group_wr_idx.eq(gcm.groups_out),
                     # Decryption follows the read burst: the blocks of the beats the RAM
                     # already returns, the tag once the last beat is in.
                     gcm.blocks_ready.eq(beats_stored * BLOCKS_PER_BEAT),
                     gcm.tag_ready.eq(beat == p.page_beats)]
        with m.If(gcm.o_valid):
            with m.If(decrypting):
                m.d.comb += plaintext.group_wr_en.eq(1)
            with m.Else():
                out_beat_place = gcm.groups_out[:group_bits] if group_bits else 0
                m.d.comb += [sealed_wr.addr.eq(gcm.groups_out // groups_per_beat),
                             sealed_wr.data.eq(Cat(*[gcm.o_group] * groups_per_beat)),
                             sealed_wr.en.eq(Const((1 << lanes) - 1, BLOCKS_PER_BEAT)
                                             << (lanes * out_beat_place))]

        # The beats that hold the tag and the zero padding: the ciphertext bytes from the RAM,
        # the tag from GCM, zero beyond (the RAM holds no initial values).
        out_beat = Signal(8 * BEAT_BYTES)
        m.d.comb += out_beat.eq(sealed_rd.data)
        for b in range(pt_bytes // BEAT_BYTES, p.page_beats):
            lo, hi = b * BEAT_BYTES, (b + 1) * BEAT_BYTES
            stream = [sealed_rd.data[8 * (i - lo):8 * (i - lo + 1)] if i < pt_bytes
                      else gcm.tag_out[8 * (i - pt_bytes):8 * (i - pt_bytes + 1)]
                      if i < pt_bytes + TAG_BYTES else Const(0, 8) for i in range(lo, hi)]
            with m.If(beat == b):
                m.d.comb += out_beat.eq(Cat(*stream))

        # The write burst follows encryption: beats wholly of ciphertext once the RAM returns
        # their groups, the beat holding the tag (and the zero padding) once the pass is
        # finished. The burst starts late enough to run without gaps (GCM makes a group a
        # cycle, the burst takes a beat of `g` groups a cycle: beat b leaves b cycles after the
        # start and needs (b + 1) * g groups, the last one the tag), which a host bridge
        # handles best and costs no cycle: the last beat waits for the tag either way.
        groups_stored = Signal.like(gcm.groups_out)     # groups the RAM returns
        m.d.sync += groups_stored.eq(gcm.groups_out)
        ngroups = plaintext.groups
        ciphertext_beats = pt_bytes // BEAT_BYTES
        burst_start_groups = max(
            (groups_per_beat - 1) * (ciphertext_beats - 1) + groups_per_beat + 1,
            ngroups + _GcmPass.TAG_LATENCY - (p.page_beats - 1))
        beat_ready = Signal()
        m.d.comb += host.wr_data.payload.eq(out_beat)
        with m.If(beat < ciphertext_beats):
            m.d.comb += beat_ready.eq(groups_stored >= (beat + 1) * groups_per_beat)
        with m.Else():
            m.d.comb += beat_ready.eq(gcm.finished)
        burst_open = (gcm.groups_out >= min(burst_start_groups, ngroups)) | gcm.finished

        # The RAM's read address: the group GCM takes next cycle, or the beat the burst sends.
        m.d.comb += sealed_rd.addr.eq(Mux(decrypting, gcm.i_next // groups_per_beat, beat))
        # Decryption takes each group as soon as its beat is in (and the counter is known).
        m.d.comb += [gcm.start_decrypt.eq(start_decrypt), gcm.load_key.eq(prepare_key)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.busy.eq(0)
                with m.If(self.load):
                    m.d.sync += [decrypting.eq(1), beat.eq(0), beats_stored.eq(0)]
                    m.next = "RD_REQ"
                with m.Elif(self.store):
                    m.d.sync += decrypting.eq(0)
                    m.next = "ENC_START"
            with m.State("ENC_START"):
                m.d.comb += [self.busy.eq(1), gcm.start_encrypt.eq(1)]
                m.next = "WR_REQ"
            with m.State("RD_REQ"):
                m.d.comb += [self.busy.eq(1), host.rd_req.valid.eq(1)]
                with m.If(host.rd_req.ready):
                    m.next = "RD_DATA"
            with m.State("RD_DATA"):
                m.d.comb += [self.busy.eq(1), host.rd_data.ready.eq(1)]
                with m.If(host.rd_data.valid):
                    m.d.comb += [sealed_wr.addr.eq(beat), sealed_wr.data.eq(host.rd_data.payload),
                                 sealed_wr.en.eq(2**BLOCKS_PER_BEAT - 1)]
                    m.d.sync += beat.eq(beat + 1)
                    for b in range(pt_bytes // BEAT_BYTES, p.page_beats):
                        with m.If(beat == b):
                            for i in range(max(pt_bytes, b * BEAT_BYTES),
                                           min(pt_bytes + TAG_BYTES, (b + 1) * BEAT_BYTES)):
                                j = i - b * BEAT_BYTES
                                m.d.sync += tag_in[8 * (i - pt_bytes):8 * (i - pt_bytes + 1)].eq(
                                    host.rd_data.payload[8 * j:8 * (j + 1)])
                    with m.If(beat == p.page_beats - 1):
                        m.next = "DEC"
            with m.State("DEC"):
                m.d.comb += self.busy.eq(1)
                with m.If(gcm.done):
                    m.d.sync += [ok.eq(gcm.tag_ok), self.done.eq(1)]
                    m.next = "IDLE"
            with m.State("WR_REQ"):
                m.d.comb += [self.busy.eq(1), host.wr_req.valid.eq(1)]
                with m.If(host.wr_req.ready):
                    m.d.sync += beat.eq(0)
                    m.d.comb += sealed_rd.addr.eq(0)
                    m.next = "WR_DATA"
            with m.State("WR_DATA"):
                m.d.comb += [self.busy.eq(1), host.wr_data.valid.eq(beat_ready & burst_open)]
                with m.If(host.wr_data.valid & host.wr_data.ready):
                    m.d.sync += beat.eq(beat + 1)
                    m.d.comb += sealed_rd.addr.eq(beat + 1)
                    with m.If(beat == p.page_beats - 1):
                        m.d.sync += self.done.eq(1)
                        m.next = "IDLE"
        return m


class _PlaintextBanks(wiring.Component):
    """A page plaintext in RAM: slot ``s`` is word ``s // banks`` of bank ``s % banks``, with
    write enables of lanes of a few bytes, and a register of the slots' flags.

    GCM reads and writes the page a **group** of ``group_bytes`` at a time (``lanes`` blocks of
    16 bytes). A group spans at most ``banks`` consecutive slots, so it is one word of each
    bank: a group write rotates the group to each slot's alignment, repeats it along the word
    and writes the group's bytes alone; a group read reads the words of those slots and takes
    the group's bytes out of them (zero beyond the page). Every access is a single cycle, the
    same for every group and slot, and reads are synchronous: ``slot_rd`` and ``group_rd`` are
    what ``slot_rd_idx`` or ``group_rd_idx`` named the cycle before (the latter while
    ``group_reading``). Group and slot writes never coincide.
    """

    def __init__(self, params: Params, *, group_bytes: int = 16):
        self._p = params
        self._group = group_bytes
        #: Banks: a power of two no smaller than the slots a group can span.
        self.banks = 1 << (-(-(group_bytes - 1) // params.slot_bytes)).bit_length()
        groups = self.groups
        layout = slot_layout(params)
        super().__init__({
            "slot_rd_idx": In(range(params.slots)), "slot_rd": Out(layout),
            "slot_wr_en": In(1), "slot_wr_idx": In(range(params.slots)), "slot_wr": In(layout),
            "slot_used": Out(params.slots),
            "group_reading": In(1), "group_rd_idx": In(range(groups + 1)),
            "group_rd": Out(8 * group_bytes),
            "group_wr_en": In(1), "group_wr_idx": In(range(groups + 1)),
            "group_wr": In(8 * group_bytes),
        })

    @property
    def groups(self) -> int:
        return -(-self._p.page_plaintext_bytes // self._group)

    def _spans(self):
        """For each group: ``(group, first slot, {bank: slot})``, the slots it has bytes of."""
        p, sb, g = self._p, self._p.slot_bytes, self._group
        for group in range(self.groups):
            first = g * group // sb
            last = min((g * group + g - 1) // sb, p.slots - 1)
            yield group, first, {s % self.banks: s for s in range(first, last + 1)}

    def elaborate(self, platform):
        p, g = self._p, self._group
        m = Module()
        sb, banks, pt_bytes = p.slot_bytes, self.banks, p.page_plaintext_bytes
        # Write enables cover lanes of `lane` bytes: every slot and every group starts on a
        # multiple of it. Byte enables would be the same writes; Verilator tests and commits
        # each enable bit at every clock, a tenth of the simulation time with 84-byte slots.
        lane = math.gcd(sb, g)
        depth = -(-p.slots // banks)
        bank_bits = banks.bit_length() - 1
        rams, reads, writes = [], [], []
        for b in range(banks):
            ram = Memory(shape=8 * sb, depth=depth, init=[])
            m.submodules[f"bank{b}"] = ram
            rams.append(ram)
            writes.append(ram.write_port(granularity=8 * lane))
            reads.append(ram.read_port())
        used = Signal(p.slots)
        m.d.comb += self.slot_used.eq(used)

        # Reads: a slot from its bank, or the words of the slots the next group spans.
        slot_bank = Signal(range(banks))
        m.d.sync += slot_bank.eq(self.slot_rd_idx[:bank_bits])
        m.d.comb += self.slot_rd.eq(Cat(*[r.data for r in reads]).word_select(slot_bank, 8 * sb))
        group_first = Signal(range(banks))       # the group's first slot's bank, next cycle
        group_offset = Signal(range(sb))         # its first byte's place in that slot
        first_next, offset_next = Signal.like(group_first), Signal.like(group_offset)
        m.d.sync += [group_first.eq(first_next), group_offset.eq(offset_next)]
        for b, r in enumerate(reads):
            m.d.comb += r.addr.eq(self.slot_rd_idx >> bank_bits)
        with m.If(self.group_reading):
            with m.Switch(self.group_rd_idx):
                for group, first, slots in self._spans():
                    with m.Case(group):
                        m.d.comb += [first_next.eq(first % banks),
                                     offset_next.eq(g * group - first * sb)]
                        m.d.comb += [reads[b].addr.eq(s // banks) for b, s in slots.items()]
        # The spanned slots in order from the first, then the group's bytes out of them.
        in_order = Signal(8 * sb * banks)
        with m.Switch(group_first):
            for f in range(banks):
                with m.Case(f):
                    m.d.comb += in_order.eq(Cat(*[reads[(f + i) % banks].data
                                                  for i in range(banks)]))
        group = in_order.bit_select(group_offset * 8, 8 * g)
        # Zero beyond the page: only the last group (a partial one) has bytes there.
        last_group = self.groups - 1
        tail = pt_bytes - g * last_group
        was_last = Signal()
        m.d.sync += was_last.eq(self.group_rd_idx == last_group)
        m.d.comb += self.group_rd.eq(Mux(was_last, group[:8 * tail], group))

        # Writes: a slot, or a group into each slot it spans. Byte q of slot s is page byte
        # s · slot_bytes + q, so a bank's word takes the group rotated by that slot's start
        # modulo the group's size and repeated along it, and the enables pick the group's bytes.
        rotation = [Signal(range(g), name=f"rotation{b}") for b in range(banks)]
        twice = Cat(self.group_wr, self.group_wr)
        for b in range(banks):
            rotated = twice.bit_select(8 * rotation[b], 8 * g)
            repeated = Cat(*[rotated[8 * (q % g):8 * (q % g) + 8] for q in range(sb)])
            m.d.comb += writes[b].data.eq(Mux(self.slot_wr_en, self.slot_wr, repeated))
        with m.If(self.slot_wr_en):
            with m.Switch(self.slot_wr_idx):
                for s in range(p.slots):
                    with m.Case(s):
                        m.d.comb += [writes[s % banks].addr.eq(s // banks),
                                     writes[s % banks].en.eq((1 << (sb // lane)) - 1)]
                        m.d.sync += used[s].eq(self.slot_wr.flag != 0)
        with m.Elif(self.group_wr_en):
            with m.Switch(self.group_wr_idx):
                for group, first, slots in self._spans():
                    with m.Case(group):
                        for b, s in slots.items():
                            start = s * sb
                            lo, hi = max(g * group, start), min(g * group + g, start + sb)
                            m.d.comb += [writes[b].addr.eq(s // banks),
                                         rotation[b].eq(start % g),
                                         writes[b].en.eq(((1 << ((hi - lo) // lane)) - 1)
                                                         << ((lo - start) // lane))]
                            if lo == start:     # the group holds the slot's flag
                                flag = self.group_wr.word_select(start % g, 8)
                                m.d.sync += used[s].eq(flag != 0)
        return m


class _GcmPass(wiring.Component):
    """AES-128-GCM over one page plaintext (no associated data), nonce ``page ‖ counter``, a
    group of ``lanes`` blocks at a time.

    ``start_encrypt`` or ``start_decrypt`` starts a pass; ``load_key`` (while idle) loads
    ``key`` into GCM ahead of the first pass under it. The pass reads its input group
    ``i_index`` on ``i_group``; ``i_next`` is the group it reads the next cycle (the address
    for a RAM with a synchronous read). When decrypting, only the first ``blocks_ready`` blocks
    are there so far (a multiple of ``lanes``), and ``tag_in`` once ``tag_ready``. Each output
    group appears on ``o_group`` with ``o_valid``, as group ``groups_out`` (which then counts
    it).
    ``tag_out`` (the computed tag), ``tag_ok`` (it equals ``tag_in``; decrypting) and
    ``finished`` rise together and stay until the next start; ``done`` pulses then. Groups
    are little-endian byte vectors; a GCM block is their 16 bytes as a big-endian int
    (``docs/design.md``), hence the byte swaps. Wraps :class:`bolt.hdl.gcm.Gcm`
    (``factory(params, lanes)`` may supply another engine with its interface).
    """

    #: Cycles from the last output group to ``finished`` (GHASH of the last group and the
    #: length block, the result).
    TAG_LATENCY = 3

    def __init__(self, params: Params, factory, *, lanes: int):
        self._p = params
        self._factory = factory
        self._lanes = lanes
        blocks = page_blocks(params)
        groups = -(-blocks // lanes)
        super().__init__({
            "key": In(128), "page": In(32), "counter": In(64),
            "start_encrypt": In(1), "start_decrypt": In(1), "load_key": In(1),
            "i_index": Out(range(groups + 1)), "i_next": Out(range(groups + 1)),
            "i_group": In(128 * lanes), "tag_in": In(128),
            "blocks_ready": In(range(BLOCKS_PER_BEAT * params.page_beats + 1)), "tag_ready": In(1),
            "o_group": Out(128 * lanes), "o_valid": Out(1), "tag_out": Out(128),
            "groups_out": Out(range(groups + 1)), "tag_ok": Out(1), "finished": Out(1),
            "done": Out(1),
        })

    def elaborate(self, platform):
        p, lanes = self._p, self._lanes
        m = Module()
        if self._factory is not None:
            gcm = self._factory(p, lanes)
        else:
            from .gcm import Gcm
            gcm = Gcm(plaintext_bytes=p.page_plaintext_bytes, lanes=lanes)
        m.submodules.gcm = gcm
        nblk, ngroups = gcm.blocks, gcm.groups

        def swapped(group):
            """Each block of ``group`` byte-swapped in place."""
            return Cat(*[bswap(group.word_select(j, 128)) for j in range(lanes)])

        loaded = Signal()
        loaded_key = Signal(128)
        decrypt = Signal()
        i_idx = self.i_index
        o_idx = self.groups_out
        m.d.comb += [self.i_next.eq(i_idx),
                     self.o_group.eq(swapped(gcm.o_stream.payload)),
                     gcm.key_stream.payload.eq(self.key),
                     gcm.start_stream.payload.nonce.eq(Cat(self.counter, self.page)),
                     gcm.start_stream.payload.decrypt.eq(decrypt),
                     gcm.i_stream.payload.eq(swapped(self.i_group)),
                     gcm.tag_stream.payload.eq(bswap(self.tag_in))]
        m.d.sync += self.done.eq(0)
        # GCM's output groups come only in DATA, after its inputs, and are taken as they come:
        # a ready decoded from the state register would run through GCM's pipeline stall
        # into its `i_stream.ready` and `o_stream.valid`, and on into the page RAM's write.
        m.d.comb += [gcm.o_stream.ready.eq(1), self.o_valid.eq(gcm.o_stream.valid)]
        with m.If(gcm.o_stream.valid):
            m.d.sync += o_idx.eq(o_idx + 1)
        # Whether group i_idx's blocks are all in (decrypting): `blocks_ready` counts whole
        # beats' blocks, a multiple of `lanes`, so a group is in once its first block is.
        group_in = i_idx * lanes < self.blocks_ready

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start_encrypt | self.start_decrypt):
                    m.d.sync += [decrypt.eq(self.start_decrypt), i_idx.eq(0), o_idx.eq(0),
                                 self.finished.eq(0)]
                    m.d.comb += self.i_next.eq(0)
                    # The page key is loaded once after each Setup's key derivation.
                    with m.If(~loaded | (loaded_key != self.key)):
                        m.next = "KEY"
                    with m.Else():
                        m.next = "START"
                with m.Elif(self.load_key & (~loaded | (loaded_key != self.key))):
                    m.next = "KEY_ONLY"
            with m.State("KEY_ONLY"):
                m.d.comb += gcm.key_stream.valid.eq(1)
                with m.If(gcm.key_stream.ready):
                    m.d.sync += [loaded.eq(1), loaded_key.eq(self.key)]
                    m.next = "IDLE"
            with m.State("KEY"):
                m.d.comb += gcm.key_stream.valid.eq(1)
                with m.If(gcm.key_stream.ready):
                    m.d.sync += [loaded.eq(1), loaded_key.eq(self.key)]
                    m.next = "START"
            with m.State("START"):
                m.d.comb += gcm.start_stream.valid.eq(1)
                with m.If(gcm.start_stream.ready):
                    m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += [
                    gcm.i_stream.valid.eq((i_idx < ngroups) & (~decrypt | group_in)),
                    gcm.tag_stream.valid.eq(decrypt & self.tag_ready),
                    gcm.result_stream.ready.eq(1)]
                with m.If(gcm.i_stream.valid & gcm.i_stream.ready):
                    m.d.sync += i_idx.eq(i_idx + 1)
                    m.d.comb += self.i_next.eq(i_idx + 1)
                with m.If(gcm.result_stream.valid):
                    m.d.sync += [self.tag_out.eq(bswap(gcm.result_stream.payload.tag)),
                                 self.tag_ok.eq(~gcm.result_stream.payload.mismatch),
                                 self.finished.eq(1), self.done.eq(1)]
                    m.next = "IDLE"
        return m


class PagePortArbiter(wiring.Component):
    """Two page engines on one host port, as the reads-first order of an access uses them.

    Read requests go out in order, ``a``'s first when both ask in the same cycle, and the read
    data returns in request order (the host serves reads in order), so each page's beats go to
    the engine that asked for it. Write requests likewise, ``a`` first; a write's beats follow
    its request (the host takes the next write request only after the last beat). The control
    starts ``a``'s load and store no later than ``b``'s, so ``a``'s page is read and written first.
    """

    def __init__(self, params: Params):
        self._p = params
        super().__init__({
            "a": In(HostPortSignature()),
            "b": In(HostPortSignature()),
            "host": Out(HostPortSignature()),
        })

    def elaborate(self, platform):
        p = self._p
        m = Module()
        a, b, host = self.a, self.b, self.host

        # Reads: who asked, in order (at most two pages outstanding), and beats of the head.
        owners = Signal(2)                  # owners[0] is the head: 0 for a, 1 for b
        waiting = Signal(range(3))
        beat = Signal(range(p.page_beats))
        request_b = ~a.rd_req.valid
        m.d.comb += [host.rd_req.valid.eq(a.rd_req.valid | b.rd_req.valid),
                     host.rd_req.payload.eq(Mux(request_b, b.rd_req.payload, a.rd_req.payload)),
                     a.rd_req.ready.eq(host.rd_req.ready & (waiting < 2)),
                     b.rd_req.ready.eq(host.rd_req.ready & request_b & (waiting < 2)),
                     a.rd_data.payload.eq(host.rd_data.payload),
                     b.rd_data.payload.eq(host.rd_data.payload)]
        head_b = owners[0]
        with m.If(waiting != 0):
            m.d.comb += [a.rd_data.valid.eq(host.rd_data.valid & ~head_b),
                         b.rd_data.valid.eq(host.rd_data.valid & head_b),
                         host.rd_data.ready.eq(Mux(head_b, b.rd_data.ready, a.rd_data.ready))]
        with m.If(waiting == 2):
            m.d.comb += host.rd_req.valid.eq(0)
        asked = host.rd_req.valid & host.rd_req.ready
        popped = Signal()
        with m.If(host.rd_data.valid & host.rd_data.ready):
            m.d.sync += beat.eq(beat + 1)
            with m.If(beat == p.page_beats - 1):
                m.d.sync += beat.eq(0)
                m.d.comb += popped.eq(1)
        queue = Mux(popped, owners[1], owners)   # after the pop, before the push
        depth = waiting - popped
        with m.If(asked):
            m.d.sync += [owners.eq(Mux(depth == 0, request_b, Cat(queue[0], request_b))),
                         waiting.eq(depth + 1)]
        with m.Else():
            m.d.sync += [owners.eq(queue), waiting.eq(depth)]

        # Writes: the last engine whose request the host took sends its beats.
        writer_b = Signal()
        write_b = ~a.wr_req.valid
        m.d.comb += [host.wr_req.valid.eq(a.wr_req.valid | b.wr_req.valid),
                     host.wr_req.payload.eq(Mux(write_b, b.wr_req.payload, a.wr_req.payload)),
                     a.wr_req.ready.eq(host.wr_req.ready),
                     b.wr_req.ready.eq(host.wr_req.ready & write_b),
                     host.wr_data.valid.eq(Mux(writer_b, b.wr_data.valid, a.wr_data.valid)),
                     host.wr_data.payload.eq(Mux(writer_b, b.wr_data.payload,
                                                 a.wr_data.payload)),
                     a.wr_data.ready.eq(host.wr_data.ready & ~writer_b),
                     b.wr_data.ready.eq(host.wr_data.ready & writer_b)]
        with m.If(host.wr_req.valid & host.wr_req.ready):
            m.d.sync += writer_b.eq(write_b)
        return m


class HostAxiBridge(wiring.Component):
    """The page engine's host streams as an AXI4 master, as the card's host-memory bridge
    presents host memory.

    A page moves as INCR bursts of 64-byte beats, one per piece of the page that lies in one
    4 KB page of the address space (AXI bursts never cross 4 KB), ID 0 for reads and for
    writes, so responses come back in order. ``writes_pending`` is high until every burst of
    the page write has its write response: the control issues no read before that, so a read
    of the page just written sees the new bytes.
    """

    def __init__(self, params: Params):
        self._p = params
        from .hbm import AxiSignature
        super().__init__({
            "page": In(HostPortSignature()),
            "axi": Out(AxiSignature(address_width=ADDRESS_BITS)),
            "writes_pending": Out(1),
        })

    def elaborate(self, platform):
        from .hbm import AXI_BURST_INCR, BEAT_SIZE_CODE
        p = self._p
        m = Module()
        axi, page = self.axi, self.page

        def piece_beats(address, left):
            """Beats of the next piece: up to the next 4 KB boundary."""
            to_boundary = (4096 - address[:12]) >> 6
            return Mux(left < to_boundary, left, to_boundary)

        # Read requests: split into pieces; data goes straight through.
        ar_addr, ar_left = Signal(ADDRESS_BITS), Signal(range(p.page_beats + 1))
        ar_beats = Signal(range(p.page_beats + 1))
        m.d.comb += [ar_beats.eq(piece_beats(ar_addr, ar_left)),
                     page.rd_req.ready.eq(ar_left == 0),
                     axi.arid.eq(0), axi.araddr.eq(ar_addr), axi.arlen.eq(ar_beats - 1),
                     axi.arsize.eq(BEAT_SIZE_CODE), axi.arburst.eq(AXI_BURST_INCR),
                     axi.arvalid.eq(ar_left != 0),
                     page.rd_data.valid.eq(axi.rvalid), page.rd_data.payload.eq(axi.rdata),
                     axi.rready.eq(page.rd_data.ready)]
        with m.If(page.rd_req.valid & page.rd_req.ready):
            m.d.sync += [ar_addr.eq(page.rd_req.payload), ar_left.eq(p.page_beats)]
        with m.If(axi.arvalid & axi.arready):
            m.d.sync += [ar_addr.eq(ar_addr + (ar_beats << 6)), ar_left.eq(ar_left - ar_beats)]

        # Write requests: the same pieces on AW; W beats end each piece with ``wlast``.
        aw_addr, aw_left = Signal(ADDRESS_BITS), Signal(range(p.page_beats + 1))
        aw_beats = Signal(range(p.page_beats + 1))
        w_addr, w_left = Signal(ADDRESS_BITS), Signal(range(p.page_beats + 1))
        w_beats, w_count = Signal(range(p.page_beats + 1)), Signal(range(p.page_beats + 1))
        m.d.comb += [aw_beats.eq(piece_beats(aw_addr, aw_left)),
                     w_beats.eq(piece_beats(w_addr, w_left)),
                     page.wr_req.ready.eq((aw_left == 0) & (w_left == 0)),
                     axi.awid.eq(0), axi.awaddr.eq(aw_addr), axi.awlen.eq(aw_beats - 1),
                     axi.awsize.eq(BEAT_SIZE_CODE), axi.awburst.eq(AXI_BURST_INCR),
                     axi.awvalid.eq(aw_left != 0),
                     axi.wvalid.eq(page.wr_data.valid & (w_left != 0)),
                     axi.wdata.eq(page.wr_data.payload),
                     axi.wstrb.eq((1 << len(axi.wstrb)) - 1),
                     axi.wlast.eq(w_count == w_beats - 1),
                     page.wr_data.ready.eq(axi.wready & (w_left != 0)),
                     axi.bready.eq(1)]
        with m.If(page.wr_req.valid & page.wr_req.ready):
            m.d.sync += [aw_addr.eq(page.wr_req.payload), aw_left.eq(p.page_beats),
                         w_addr.eq(page.wr_req.payload), w_left.eq(p.page_beats),
                         w_count.eq(0)]
        with m.If(axi.awvalid & axi.awready):
            m.d.sync += [aw_addr.eq(aw_addr + (aw_beats << 6)), aw_left.eq(aw_left - aw_beats)]
        with m.If(axi.wvalid & axi.wready):
            m.d.sync += w_count.eq(w_count + 1)
            with m.If(axi.wlast):
                m.d.sync += [w_count.eq(0), w_addr.eq(w_addr + (w_beats << 6)),
                             w_left.eq(w_left - w_beats)]
        responses_due = Signal(range(2 * p.page_beats + 1))
        m.d.sync += responses_due.eq(responses_due + (axi.awvalid & axi.awready)
                                     - (axi.bvalid & axi.bready))
        m.d.comb += self.writes_pending.eq((aw_left != 0) | (w_left != 0) | (responses_due != 0))
        return m

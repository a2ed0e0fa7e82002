"""The sealed client channel in hardware: opens command frames, seals response frames.

:class:`Channel` sits in front of the accelerator core's ``cmd``/``resp`` streams and follows
the rules of the reference endpoint (:class:`bolt.channel.ChannelEndpoint`) byte for byte; the
frame formats are those of :mod:`bolt.channel.frames`, their lengths come from
:class:`~bolt.params.Params`. :class:`SealedAccelerator` is the core behind its channel.

It has two AES-128-GCM cores of its own (:class:`~.gcm.Gcm`): one opens command frames under
the client-to-accelerator key, one seals responses under the other. The page engine's GCM is
not shared: it is sized for a page, each channel core for its frame, and each keeps its key (and
its ``H``) loaded for the whole session instead of reloading per frame (about 22 cycles each
time). Cost per access: one GCM pass per frame, ``blocks + 15`` cycles each (21 + 20 at the
defaults), plus a few cycles of control; see :attr:`Channel.access_cycles`. The response's
pass starts while the core runs the command (its nonce is the next response number, known
then), so its counter blocks are encrypted before the answer comes: only the data groups, the
tag and a few cycles of control follow the answer.

Interfaces
----------
``frames_in`` (``In(stream)``, :func:`frame_in_layout`)
    One command frame as the host delivered it into the on-chip mailbox: ``data``, its first
    ``command_frame_bytes`` bytes (byte ``i`` in bits ``8i+7..8i``), and ``length``, how many
    bytes the host sent. A length other than ``command_frame_bytes`` is a failed frame.
``frames_out`` (``Out(stream)``)
    The response frame, ``8 * response_frame_bytes`` bits, bytes as above.
``key_port`` (``In(stream)``, :data:`KEY_PORT_LAYOUT`)
    The security monitor's on-chip path: a session's two frame keys
    (``int.from_bytes(key, "big")``) and the sequence numbers it continues from (0 and 0 for a
    new session). The channel holds one session; the monitor keeps a table of sessions (one per
    client) and reloads the slot with another session's keys and numbers when the host switches
    to it, which abandons a Setup in progress, as the reference endpoint does.
``session_state`` (``Out``, :data:`SESSION_STATE_LAYOUT`)
    To the monitor only: whether the installed session is still open (a failed frame closes it)
    and its next two sequence numbers, which the monitor saves before it switches sessions.
``cmd``, ``resp``
    To and from the accelerator core (:func:`~.accelerator.command_layout`,
    :func:`~.accelerator.response_layout`).
``stamps`` (``Out``, :data:`STAMPS_LAYOUT`; :class:`SealedAccelerator` only)
    Measurement only, as the core's own cycle stamps: the stamps of the core's last response
    (counted from its command's acceptance), the cycles from the acceptance of the frame that
    carried that command to the core's (``opened``), and whether the core has answered since
    the last frame was taken (``answered``: not for a frame the channel refused). Timing is
    the host's to see anyway (the frames' timing); this port carries no key, value or
    outcome.
"""

from __future__ import annotations

from amaranth.hdl import (Cat, ClockDomain, ClockSignal, Const, DomainRenamer, Module,
                          ResetSignal, Signal)
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from bolt.params import FRAME_OP_BYTES, TAG_BYTES, Params
from bolt.protocol import Cmd, Status

from .accelerator import (CYCLE_STAMPS, RtlAccelerator, command_layout, pass_through,
                          response_layout)
from .gcm import BLOCK_BYTES, Gcm
from .pages import bswap

__all__ = ["Channel", "SealedAccelerator", "KEY_PORT_LAYOUT", "SESSION_STATE_LAYOUT",
           "STAMPS_LAYOUT", "frame_in_layout",
           "TO_ACCELERATOR", "TO_CLIENT"]

#: The nonce's direction field (as in :mod:`bolt.channel.frames`).
TO_ACCELERATOR, TO_CLIENT = 1, 2

KEY_PORT_LAYOUT = data.StructLayout({"command_key": 128, "response_key": 128,
                                     "command_sequence": 64, "response_sequence": 64})
SESSION_STATE_LAYOUT = data.StructLayout({"open": 1, "command_sequence": 64,
                                          "response_sequence": 64})
#: :class:`SealedAccelerator`'s measurement port: ``answered``, the core has answered since
#: the last frame was taken; ``opened``, the cycles from that frame's acceptance to its
#: command's acceptance by the core; the rest, the core's last response's cycle stamps (as in
#: :func:`~.accelerator.response_layout`).
STAMPS_LAYOUT = data.StructLayout({"answered": 1, "opened": 32, **CYCLE_STAMPS})


def frame_in_layout(params: Params) -> data.StructLayout:
    return data.StructLayout({"data": 8 * params.command_frame_bytes, "length": 16})


def _blocks(plaintext_bytes: int) -> int:
    return -(-plaintext_bytes // BLOCK_BYTES)


def _byte(value, i):
    return value[8 * i:8 * i + 8]


class Channel(wiring.Component):
    """Opens command frames, runs them on the core, seals the answers (see the module doc).

    Parameters
    ----------
    params : Params
        The public parameters (frame lengths, field widths).
    """

    def __init__(self, params: Params):
        self._p = params
        super().__init__({
            "frames_in": In(stream.Signature(frame_in_layout(params))),
            "frames_out": Out(stream.Signature(8 * params.response_frame_bytes)),
            "key_port": In(stream.Signature(KEY_PORT_LAYOUT)),
            "session_state": Out(SESSION_STATE_LAYOUT),
            "cmd": Out(stream.Signature(command_layout(params))),
            "resp": In(stream.Signature(response_layout(params))),
        })

    @property
    def access_cycles(self) -> int:
        """Cycles an access spends in the channel besides the core's, without stalls: accept,
        open (one GCM pass), parse, hand to the core, then from its answer: the response's
        data groups and tag (its pass began while the core ran), offer the frame."""
        p = self._p
        return _blocks(p.command_plaintext_bytes) + 15 + _blocks(p.response_plaintext_bytes) + 10

    def elaborate(self, platform):
        p = self._p
        ks, vs = p.key_size, p.value_size
        pc, pr = p.command_plaintext_bytes, p.response_plaintext_bytes
        nbc, nbr = _blocks(pc), _blocks(pr)
        chunk = pc - FRAME_OP_BYTES
        m = Module()
        m.submodules.opener = opener = Gcm(plaintext_bytes=pc)
        m.submodules.sealer = sealer = Gcm(plaintext_bytes=pr)

        # -- state ------------------------------------------------------------------------------
        frame = Signal(8 * p.command_frame_bytes)
        plaintext = Signal(128 * nbc)
        response = Signal(128 * nbr)      # response plaintext, zero padded to whole blocks
        sealed = Signal(128 * nbr)        # its ciphertext
        tag = Signal(128)
        block = Signal(range(max(nbc, nbr) + 1))
        session = Signal()                # keys installed and not closed by a failure
        closing = Signal()                # the frame being answered ends the session
        set_up = Signal()                 # a Setup has completed (accesses allowed)
        setup_open = Signal()             # between the last SETUP_BEGIN and SETUP_END
        item_bad = Signal()               # a SETUP_ITEM of this Setup had a bad length field
        key_frames = Signal(range(p.setup_key_frames + 1))
        material = Signal(8 * chunk * p.setup_key_frames)
        command_sequence, response_sequence = Signal(64), Signal(64)
        keys_sent = Signal(2)             # command key, response key accepted
        seal_started = Signal()           # the response's pass began while the core ran

        # -- the command's fields (command plaintext, bytes little-endian) ----------------------
        op = _byte(plaintext, 0)
        key_length = _byte(plaintext, 1)
        key = plaintext[16:16 + 8 * ks]
        value_length = Cat(_byte(plaintext, 3 + ks), _byte(plaintext, 2 + ks))
        value = plaintext[8 * (4 + ks):8 * (4 + ks + vs)]
        malformed = (key_length > ks) | (value_length > vs)

        def answer(status, vlen=0, val=0, page=0):
            """Set the response plaintext: status ‖ vlen (BE) ‖ value ‖ page (BE)."""
            return response.eq(Cat(Const(0, 8) | status, bswap(Const(0, 16) | vlen),
                                   Const(0, 8 * vs) | val, bswap(Const(0, 32) | page)))

        def start_pass(gcm, sequence, direction, *, decrypt, then):
            """Offer ``gcm`` a pass under the nonce ``direction ‖ sequence``; on to ``then``."""
            m.d.comb += [gcm.start_stream.valid.eq(1),
                         gcm.start_stream.payload.nonce.eq(Cat(sequence, Const(direction, 32))),
                         gcm.start_stream.payload.decrypt.eq(decrypt)]
            with m.If(gcm.start_stream.ready):
                m.next = then

        def block_in(source, count, name):
            """Block ``block`` of the ``count`` 128-bit blocks of ``source``, byte-swapped for
            GCM (the frames are little-endian, GCM's blocks big-endian)."""
            selected = Signal(128, name=name)
            with m.Switch(block):
                for j in range(count):
                    with m.Case(j):
                        m.d.comb += selected.eq(bswap(source[128 * j:128 * (j + 1)]))
            return selected

        def store_block_out(gcm, target, count):
            """Store GCM's output block into block ``block`` of ``target``; count it."""
            with m.If(gcm.o_stream.valid):
                m.d.sync += block.eq(block + 1)
                with m.Switch(block):
                    for j in range(count):
                        with m.Case(j):
                            m.d.sync += target[128 * j:128 * (j + 1)].eq(
                                bswap(gcm.o_stream.payload))

        core_command = Signal(command_layout(p))
        keys = Signal(KEY_PORT_LAYOUT)
        m.d.comb += [self.session_state.open.eq(session),
                     self.session_state.command_sequence.eq(command_sequence),
                     self.session_state.response_sequence.eq(response_sequence)]
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [self.key_port.ready.eq(1),
                             self.frames_in.ready.eq(~self.key_port.valid)]
                with m.If(self.key_port.valid):
                    installed = self.key_port.payload
                    m.d.sync += [keys.eq(installed), keys_sent.eq(0), session.eq(1),
                                 command_sequence.eq(installed.command_sequence),
                                 response_sequence.eq(installed.response_sequence),
                                 key_frames.eq(0), setup_open.eq(0)]
                    m.next = "KEYS_LOAD"
                with m.Elif(self.frames_in.valid):
                    m.d.sync += [frame.eq(self.frames_in.payload.data), block.eq(0),
                                 closing.eq(0)]
                    with m.If(~session):
                        m.next = "NO_SESSION"
                    with m.Elif(self.frames_in.payload.length != p.command_frame_bytes):
                        m.next = "FAIL"
                    with m.Else():
                        m.next = "OPEN_START"

            with m.State("KEYS_LOAD"):
                m.d.comb += [opener.key_stream.payload.eq(keys.command_key),
                             opener.key_stream.valid.eq(~keys_sent[0]),
                             sealer.key_stream.payload.eq(keys.response_key),
                             sealer.key_stream.valid.eq(~keys_sent[1])]
                sent = keys_sent | Cat(opener.key_stream.ready, sealer.key_stream.ready)
                m.d.sync += keys_sent.eq(sent)
                with m.If(sent == 0b11):
                    m.next = "IDLE"

            with m.State("NO_SESSION"):
                m.d.comb += [self.frames_out.valid.eq(1), self.frames_out.payload.eq(0)]
                with m.If(self.frames_out.ready):
                    m.next = "IDLE"

            # -- open the command frame ----------------------------------------------------------
            with m.State("OPEN_START"):
                start_pass(opener, command_sequence, TO_ACCELERATOR, decrypt=1, then="OPEN")
            with m.State("OPEN"):
                in_block = block_in(Cat(frame, Const(0, 128)), nbc, "in_block")
                m.d.comb += [opener.i_stream.payload.eq(in_block),
                             opener.i_stream.valid.eq(block < nbc),
                             opener.o_stream.ready.eq(1),
                             opener.tag_stream.payload.eq(
                                 bswap(frame[8 * pc:8 * (pc + TAG_BYTES)])),
                             opener.tag_stream.valid.eq(1),
                             opener.result_stream.ready.eq(1)]
                store_block_out(opener, plaintext, nbc)
                with m.If(opener.result_stream.valid):
                    with m.If(opener.result_stream.payload.mismatch):
                        m.next = "FAIL"
                    with m.Else():
                        m.d.sync += command_sequence.eq(command_sequence + 1)
                        m.next = "DISPATCH"

            # -- run it -------------------------------------------------------------------------
            with m.State("DISPATCH"):
                fields = dict(klen=key_length, key=key, vlen=value_length, value=value)
                with m.Switch(op):
                    with m.Case(Cmd.GET, Cmd.PUT, Cmd.DELETE):
                        with m.If(malformed | ~set_up):
                            m.next = "REFUSE"
                        with m.Else():
                            m.d.sync += core_command.eq(0)
                            m.d.sync += [core_command.op.eq(op)] + [
                                getattr(core_command, n).eq(v) for n, v in fields.items()]
                            m.next = "CORE_SEND"
                    with m.Case(Cmd.SETUP_BEGIN):
                        with m.Switch(key_frames):
                            for k in range(p.setup_key_frames):
                                with m.Case(k):
                                    m.d.sync += material[8 * chunk * k:8 * chunk * (k + 1)].eq(
                                        plaintext[8 * FRAME_OP_BYTES:8 * pc])
                        with m.If(key_frames == p.setup_key_frames - 1):
                            m.d.sync += [key_frames.eq(0), set_up.eq(0), setup_open.eq(1),
                                         item_bad.eq(0), core_command.eq(0),
                                         core_command.op.eq(Cmd.SETUP_BEGIN)]
                            m.next = "SETUP_KEYS"
                        with m.Else():
                            m.d.sync += key_frames.eq(key_frames + 1)
                            m.next = "IDLE"
                    with m.Case(Cmd.SETUP_ITEM):
                        with m.If(~setup_open):
                            m.next = "REFUSE"
                        with m.Elif(malformed):
                            m.d.sync += item_bad.eq(1)
                            m.next = "IDLE"
                        with m.Else():
                            m.d.sync += core_command.eq(0)
                            m.d.sync += [core_command.op.eq(Cmd.SETUP_ITEM)] + [
                                getattr(core_command, n).eq(v) for n, v in fields.items()]
                            m.next = "CORE_SEND"
                    with m.Case(Cmd.SETUP_END):
                        m.d.sync += setup_open.eq(0)
                        with m.If(~setup_open | item_bad):
                            m.next = "REFUSE"
                        with m.Else():
                            m.d.sync += [core_command.eq(0),
                                         core_command.op.eq(Cmd.SETUP_END)]
                            m.next = "CORE_SEND"
                    with m.Default():
                        m.next = "REFUSE"
            with m.State("SETUP_KEYS"):
                # master key ‖ salt, as the core takes them (big-endian integers).
                m.d.sync += [core_command.master_key.eq(bswap(material[:128])),
                             core_command.salt.eq(bswap(material[128:248]))]
                m.next = "CORE_SEND"

            # While the core runs a command that is answered, the response's pass begins: the
            # sealer encrypts its counter blocks under the next response number and holds them
            # until the answer's blocks come. Nothing else starts the sealer or loads its key
            # before that pass ends (keys load in IDLE only).
            answered = (core_command.op != Cmd.SETUP_BEGIN) & (core_command.op != Cmd.SETUP_ITEM)

            def begin_seal():
                """Offer the response's pass; returns whether it has begun (now or before)."""
                with m.If(answered & ~seal_started):
                    m.d.comb += [sealer.start_stream.valid.eq(1),
                                 sealer.start_stream.payload.nonce.eq(
                                     Cat(response_sequence, Const(TO_CLIENT, 32))),
                                 sealer.start_stream.payload.decrypt.eq(0)]
                    with m.If(sealer.start_stream.ready):
                        m.d.sync += seal_started.eq(1)
                return seal_started | (sealer.start_stream.valid & sealer.start_stream.ready)

            with m.State("CORE_SEND"):
                m.d.comb += [self.cmd.valid.eq(1), self.cmd.payload.eq(core_command)]
                begin_seal()
                with m.If(self.cmd.ready):
                    m.next = "CORE_WAIT"
            with m.State("CORE_WAIT"):
                m.d.comb += self.resp.ready.eq(1)
                sealing = begin_seal()
                reply = self.resp.payload
                with m.If(self.resp.valid):
                    m.d.sync += [answer(reply.status, reply.vlen, reply.value, reply.page),
                                 block.eq(0)]
                    with m.Switch(core_command.op):
                        with m.Case(Cmd.SETUP_BEGIN, Cmd.SETUP_ITEM):
                            m.next = "IDLE"       # not answered
                        with m.Case(Cmd.SETUP_END):
                            m.d.sync += set_up.eq(reply.status == Status.ABSENT)
                    with m.If(answered):
                        # The pass has begun unless the sealer was still busy.
                        with m.If(sealing):
                            m.next = "SEAL"
                        with m.Else():
                            m.next = "SEAL_START"

            with m.State("REFUSE"):
                m.d.sync += [answer(Status.REFUSED), block.eq(0)]
                m.next = "SEAL_START"
            with m.State("FAIL"):
                m.d.sync += [answer(Status.CHANNEL), block.eq(0), closing.eq(1),
                             setup_open.eq(0), key_frames.eq(0)]
                m.next = "SEAL_START"

            # -- seal the response -----------------------------------------------------------------
            with m.State("SEAL_START"):
                start_pass(sealer, response_sequence, TO_CLIENT, decrypt=0, then="SEAL")
            with m.State("SEAL"):
                out_block = block_in(response, nbr, "out_block")
                m.d.comb += [sealer.i_stream.payload.eq(out_block),
                             sealer.i_stream.valid.eq(block < nbr),
                             sealer.o_stream.ready.eq(1),
                             sealer.result_stream.ready.eq(1)]
                store_block_out(sealer, sealed, nbr)
                with m.If(sealer.result_stream.valid):
                    m.d.sync += [tag.eq(bswap(sealer.result_stream.payload.tag)),
                                 response_sequence.eq(response_sequence + 1),
                                 seal_started.eq(0)]
                    m.next = "EMIT"
            with m.State("EMIT"):
                m.d.comb += [self.frames_out.valid.eq(1),
                             self.frames_out.payload.eq(Cat(sealed[:8 * pr], tag))]
                with m.If(self.frames_out.ready):
                    with m.If(closing):
                        m.d.sync += session.eq(0)
                    m.next = "IDLE"
        return m


#: The ports of the sealed accelerator that are the channel's (the rest are the core's).
_CHANNEL_PORTS = ("frames_in", "frames_out", "key_port", "session_state")


class SealedAccelerator(wiring.Component):
    """The accelerator core (:class:`~.accelerator.RtlAccelerator`) behind its
    :class:`Channel`: the host reaches it only through ``frames_in``/``frames_out``, the
    security monitor through ``key_port`` and ``session_state``; every other port of the core
    (its memory ports) is passed through unchanged.

    Parameters
    ----------
    params : Params
        The public parameters.
    core_factory : callable
        ``core_factory(params)`` builds the core (default :class:`RtlAccelerator`).
    """

    def __init__(self, params: Params, *, core_factory=RtlAccelerator):
        self._p = params
        self._core = core_factory(params)
        self._channel = Channel(params)
        members = {name: member for name, member in self._core.signature.members.items()
                   if name not in ("cmd", "resp")}
        members.update({name: self._channel.signature.members[name]
                        for name in _CHANNEL_PORTS})
        members["stamps"] = Out(STAMPS_LAYOUT)
        super().__init__(members)

    @property
    def params(self) -> Params:
        return self._p

    @property
    def channel(self) -> Channel:
        return self._channel

    def elaborate(self, platform):
        m = Module()
        # As in the core: the channel's registers reset from a registered copy of rst, which
        # keeps their next-state logic out of Verilator's input-change region.
        m.domains.channel = ClockDomain("channel", local=True)
        registered_reset = Signal(init=1, reset_less=True)
        m.d.sync += registered_reset.eq(ResetSignal("sync"))
        m.d.comb += [ClockSignal("channel").eq(ClockSignal("sync")),
                     ResetSignal("channel").eq(registered_reset)]
        channel, core = self._channel, self._core
        m.submodules.channel = DomainRenamer("channel")(channel)
        m.submodules.core = core
        wiring.connect(m, channel.cmd, core.cmd)
        wiring.connect(m, core.resp, channel.resp)
        wiring.connect(m, wiring.flipped(self.key_port), channel.key_port)
        # The core answers before its page writes and re-placement are done (reads first,
        # algorithm §12), and its front takes the next command meanwhile: the next frame is
        # taken once the front is free, so that its opening, like the core's PRF, runs beside
        # the writes. Its host events still come after this access's (the core's back takes
        # one command at a time).
        front_free = core.cmd.ready
        m.d.comb += [channel.frames_in.payload.eq(self.frames_in.payload),
                     channel.frames_in.valid.eq(self.frames_in.valid & front_free),
                     self.frames_in.ready.eq(channel.frames_in.ready & front_free)]
        wiring.connect(m, channel.frames_out, wiring.flipped(self.frames_out))
        m.d.comb += self.session_state.eq(channel.session_state)
        self._stamps(m)
        for name in self.signature.members:
            if name not in (*_CHANNEL_PORTS, "stamps"):
                pass_through(m, self, core, name)
        return m

    def _stamps(self, m):
        """The measurement port: the core's stamps reach the host's side only here, as the
        frames carry none (the latency projection needs them through the channel too)."""
        core, stamps = self._core, self.stamps
        since_frame = Signal(32)    # cycles since the last frame was taken (1 the cycle after)
        m.d.channel += since_frame.eq(since_frame + 1)
        with m.If(self.frames_in.valid & self.frames_in.ready):
            m.d.channel += [since_frame.eq(1), stamps.answered.eq(0)]
        with m.If(core.cmd.valid & core.cmd.ready):
            m.d.channel += stamps.opened.eq(since_frame)
        # The channel takes a frame only when idle, never while it awaits the core's answer:
        # the clear and the set of `answered` never meet in a cycle.
        with m.If(core.resp.valid & core.resp.ready):
            m.d.channel += stamps.answered.eq(1)
            m.d.channel += [stamps[name].eq(core.resp.payload[name]) for name in CYCLE_STAMPS]

"""hdl/channel.py in Amaranth's simulator, against the reference endpoint: the same frames in,
the same frame bytes out, and the same commands handed to the core.

The core is a stub on both sides (the RTL's ``cmd``/``resp`` and the endpoint's accelerator):
it answers FOUND with the key as the value for GET, ABSENT for everything else, and records
what it was asked, so the test sees exactly what crossed the channel.
"""

import os
import random

from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from bolt.channel import ChannelEndpoint
from bolt.channel.frames import (TO_ACCELERATOR, FrameCipher, FrameFormat, setup_key_commands)
from bolt.hdl.channel import Channel
from bolt.params import Params
from bolt.protocol import Cmd, Op, Response, Status

from tests.conftest import MASTER_KEY, SALT

P = Params(capacity=256, key_size=8, value_size=16, load=4, hbm_fraction=0.25)


def stub_answer(op, key):
    if op == Op.GET:
        return Response(Status.FOUND, key)
    return Response(Status.ABSENT)


class StubAccelerator:
    """The endpoint's side of the stub core."""

    def __init__(self, log):
        self.log = log

    def access(self, op, key, value):
        self.log.append((int(op), key, value or b""))
        return stub_answer(op, key)

    def setup(self, items, *, salt, master_key):
        self.log.append(("setup", master_key, salt, list(items)))


def frames_for_the_test(rng):
    """A session's command frames: refused access, Setup, accesses, an altered frame and one
    after it; plus a frame of the wrong length in a second session."""
    command = FrameCipher(COMMAND_KEY, TO_ACCELERATOR)
    fmt = FrameFormat(P)
    seal = lambda op, key=b"", value=b"": command.seal(fmt.pack_command(op, key, value))  # noqa
    frames = [seal(Op.GET, b"early")]
    frames += [command.seal(pt) for pt in setup_key_commands(P, MASTER_KEY, SALT)]
    frames += [seal(Cmd.SETUP_ITEM, b"k%d" % i, b"v" * i) for i in range(3)]
    frames.append(seal(Cmd.SETUP_END))
    for _ in range(4):
        key = rng.randbytes(rng.randrange(1, P.key_size + 1))
        frames.append(seal(rng.choice(list(Op)), key, rng.randbytes(rng.randrange(17))))
    frames.append(seal(99))                                       # unknown op: REFUSED
    altered = bytearray(seal(Op.GET, b"x"))
    altered[3] ^= 0x10
    frames += [bytes(altered), seal(Op.GET, b"after")]            # CHANNEL, then zeros
    return frames


COMMAND_KEY, RESPONSE_KEY = os.urandom(16), os.urandom(16)


def reference(frames_by_session):
    log = []
    endpoint = ChannelEndpoint(P, lambda master_key, salt, items: log.append(
        ("setup", master_key, salt, list(dict(items).items()))) or StubAccelerator(log))
    answers = []
    for frames in frames_by_session:
        endpoint.install_keys(COMMAND_KEY, RESPONSE_KEY)
        answers.append(endpoint.exchange(frames))
    return answers, log


def rtl(frames_by_session, *, core_cycles=1, sealing=None):
    """The channel's answers and the stub core's log; ``sealing``, if a list, gets the cycles
    from each answer the core gives to the response frame's offer."""
    dut = Channel(P)
    answers, log = [], []
    top = Module()
    top.submodules.dut = dut
    cycle = Signal(32)
    top.d.sync += cycle.eq(cycle + 1)
    answered_at = []
    sim = Simulator(top)
    sim.add_clock(1e-8)

    async def core(ctx):
        """The stub core: takes a command, answers ``core_cycles`` cycles later."""
        ctx.set(dut.cmd.ready, 1)
        setup = None
        while True:
            await ctx.tick()
            if not ctx.get(dut.cmd.valid):
                continue
            f = {name: ctx.get(getattr(dut.cmd.payload, name))
                 for name in ("op", "klen", "key", "vlen", "value", "master_key", "salt")}
            key = f["key"].to_bytes(P.key_size, "little")[:f["klen"]]
            value = f["value"].to_bytes(P.value_size, "little")[:f["vlen"]]
            op = f["op"]
            status, answer_value = Status.ABSENT, b""
            if op == Cmd.SETUP_BEGIN:
                setup = ("setup", f["master_key"].to_bytes(16, "big"),
                         f["salt"].to_bytes(15, "big"), [])
            elif op == Cmd.SETUP_ITEM:
                setup[3].append((key, value))
            elif op == Cmd.SETUP_END:
                log.append(setup)
            else:
                log.append((op, key, value if op == Op.PUT else b""))
                response = stub_answer(op, key)
                status, answer_value = response.status, response.value or b""
            await ctx.tick().repeat(core_cycles)
            ctx.set(dut.resp.payload.status, status)
            ctx.set(dut.resp.payload.has_value, bool(answer_value))
            ctx.set(dut.resp.payload.vlen, len(answer_value))
            ctx.set(dut.resp.payload.value, int.from_bytes(answer_value, "little"))
            ctx.set(dut.resp.valid, 1)
            while not ctx.get(dut.resp.ready):
                await ctx.tick()
            if op not in (Cmd.SETUP_BEGIN, Cmd.SETUP_ITEM):     # answered by a frame
                answered_at.append(ctx.get(cycle))
            await ctx.tick()
            ctx.set(dut.resp.valid, 0)

    async def host(ctx):
        ctx.set(dut.frames_out.ready, 1)
        for frames in frames_by_session:
            ctx.set(dut.key_port.payload.command_key, int.from_bytes(COMMAND_KEY, "big"))
            ctx.set(dut.key_port.payload.response_key, int.from_bytes(RESPONSE_KEY, "big"))
            ctx.set(dut.key_port.valid, 1)
            await ctx.tick()
            ctx.set(dut.key_port.valid, 0)
            session = []
            for frame in frames:
                while not ctx.get(dut.frames_in.ready):
                    await ctx.tick()
                ctx.set(dut.frames_in.payload.data,
                        int.from_bytes(frame[:P.command_frame_bytes], "little"))
                ctx.set(dut.frames_in.payload.length, len(frame))
                ctx.set(dut.frames_in.valid, 1)
                await ctx.tick()
                ctx.set(dut.frames_in.valid, 0)
                # Until the channel is ready for the next frame, collect what it answers.
                for _ in range(500):
                    if ctx.get(dut.frames_out.valid):
                        session.append(ctx.get(dut.frames_out.payload).to_bytes(
                            P.response_frame_bytes, "little"))
                        if sealing is not None and answered_at:
                            sealing.append(ctx.get(cycle) - answered_at.pop())
                    if ctx.get(dut.frames_in.ready):
                        break
                    await ctx.tick()
                else:
                    raise AssertionError("the channel never came back to idle")
            answers.append(session)

    sim.add_testbench(core, background=True)
    sim.add_testbench(host)
    sim.run()
    return answers, log


def test_rtl_channel_answers_byte_for_byte_as_the_reference_endpoint():
    rng = random.Random(4)
    first = frames_for_the_test(rng)
    # A second session: a frame of the wrong length, then an access under the new keys.
    command = FrameCipher(COMMAND_KEY, TO_ACCELERATOR)
    second = [command.seal(FrameFormat(P).pack_command(Op.GET, b"k1"))[:-1]]
    sessions = [first, second]
    want, want_log = reference(sessions)
    got, got_log = rtl(sessions)
    assert got == want
    assert got_log == want_log
    # The sequence seen: REFUSED before Setup, no answers to Setup's key and item frames.
    assert len(want[0]) == len(first) - P.setup_key_frames - 3
    assert want[0][-1] == bytes(P.response_frame_bytes)           # after the session closed
    assert want_log[0] == ("setup", MASTER_KEY, SALT,
                           [(b"k%d" % i, b"v" * i) for i in range(3)])


def test_the_answer_is_sealed_in_its_data_groups_and_tag_once_the_core_answers():
    """The response's pass begins while the core runs the command: after a slow core's answer
    only the response's data groups, the tag and a few cycles of control remain (a whole pass
    is ``blocks + 15`` cycles), the same for every answer; the frames are the reference's."""
    from bolt.hdl.channel import _blocks

    rng = random.Random(5)
    frames = frames_for_the_test(rng)[:-3]        # refused, Setup, then accesses
    sealing = []
    got, _ = rtl([frames], core_cycles=60, sealing=sealing)
    want, _ = reference([frames])
    assert got == want
    # Setup's end and the four accesses reach the core and are answered.
    assert len(sealing) == 5
    groups = _blocks(P.response_plaintext_bytes)
    assert set(sealing) == {sealing[0]}
    assert sealing[0] <= groups + 6 < groups + 15


def test_a_session_resumes_from_the_sequence_numbers_the_monitor_loads():
    """The monitor reloads a session into the one key slot with the numbers it had saved: the
    channel opens the next frame and seals the answer under them, reports them back, and reports
    the session closed after a failed frame."""
    from bolt.channel.frames import TO_CLIENT

    dut = Channel(P)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    fmt = FrameFormat(P)
    command, response = FrameCipher(COMMAND_KEY, TO_ACCELERATOR), FrameCipher(RESPONSE_KEY,
                                                                              TO_CLIENT)
    command.sequence, response.sequence = 5, 3
    early = command.seal(fmt.pack_command(Op.GET, b"k"))   # sealed at command sequence 5
    states, answers = [], []

    def state(ctx):
        s = dut.session_state
        return (ctx.get(s.open), ctx.get(s.command_sequence), ctx.get(s.response_sequence))

    async def host(ctx):
        ctx.set(dut.frames_out.ready, 1)
        ctx.set(dut.key_port.payload.command_key, int.from_bytes(COMMAND_KEY, "big"))
        ctx.set(dut.key_port.payload.response_key, int.from_bytes(RESPONSE_KEY, "big"))
        ctx.set(dut.key_port.payload.command_sequence, 5)
        ctx.set(dut.key_port.payload.response_sequence, 3)
        ctx.set(dut.key_port.valid, 1)
        await ctx.tick()
        ctx.set(dut.key_port.valid, 0)
        for frame in (early, early):            # the second is a replay: it fails
            while not ctx.get(dut.frames_in.ready):
                await ctx.tick()
            states.append(state(ctx))
            ctx.set(dut.frames_in.payload.data, int.from_bytes(frame, "little"))
            ctx.set(dut.frames_in.payload.length, len(frame))
            ctx.set(dut.frames_in.valid, 1)
            await ctx.tick()
            ctx.set(dut.frames_in.valid, 0)
            for _ in range(500):
                if ctx.get(dut.frames_out.valid):
                    answers.append(ctx.get(dut.frames_out.payload).to_bytes(
                        P.response_frame_bytes, "little"))
                    break
                await ctx.tick()
        for _ in range(500):
            if ctx.get(dut.frames_in.ready):
                break
            await ctx.tick()
        states.append(state(ctx))

    sim.add_testbench(host)
    sim.run()
    assert states[0] == (1, 5, 3)
    assert fmt.unpack_response(response.open(answers[0])).status == Status.REFUSED
    assert states[1] == (1, 6, 4)
    assert fmt.unpack_response(response.open(answers[1])).status == Status.CHANNEL
    assert states[2][0] == 0                    # closed: the monitor drops it for good

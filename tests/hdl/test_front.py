"""The front stage (:class:`bolt.hdl.front.CommandFront`) in Amaranth's simulator, on the
iterative AES core it shares with Setup in the accelerator: each command's index MAC equals a
CBC-MAC by pycryptodome, its draws are the sampler's in order (c2 drawn again while it equals
c1), it holds one command at a time and none while held, and its age counts from acceptance."""

from __future__ import annotations

import random

from amaranth.hdl import Module
from amaranth.sim import Simulator
from Crypto.Cipher import AES

from bolt.hdl.accelerator import command_layout, pack_command
from bolt.hdl.aes import Aes128
from bolt.hdl.front import CommandFront
from bolt.params import Params
from bolt.protocol import Cmd, Op

P = Params(capacity=1024, value_size=8)


def _index_mac(index_key: bytes, key: bytes) -> int:
    """CBC-MAC of klen ‖ key, zero padded to whole blocks (the accelerator's index PRF)."""
    blocks = -(-(1 + P.key_size) // 16)
    message = (bytes([len(key)]) + key).ljust(16 * blocks, b"\0")
    return int.from_bytes(AES.new(index_key, AES.MODE_CBC, iv=bytes(16)).encrypt(message)[-16:],
                          "big")


def _bench(commands, draws, *, hold_cycles=0, take_after=0):
    """Run ``commands`` (``(op, key)``) through a front keyed with a random index key; the
    sampler offers ``draws`` in order, the back takes each prepared command ``take_after``
    cycles after it is offered, ``hold`` is high for the first ``hold_cycles`` cycles.
    Returns the index key, the prepared payloads as taken, the cycles each command was
    accepted and taken, and the draws left."""
    index_key = random.Random(len(commands)).randbytes(16)
    layout = command_layout(P)
    dut = CommandFront(params=P, command_layout=layout)
    aes = Aes128(pipelined=False)
    m = Module()
    m.submodules.front, m.submodules.aes = dut, aes
    m.d.comb += [aes.i_stream.valid.eq(dut.block.valid), aes.i_stream.payload.eq(dut.block.payload),
                 dut.block.ready.eq(aes.i_stream.ready), aes.o_stream.ready.eq(1),
                 dut.result.valid.eq(aes.o_stream.valid),
                 dut.result.payload.eq(aes.o_stream.payload)]
    draws = list(draws)
    taken, accepted, takes = [], [], []
    sim = Simulator(m)
    sim.add_clock(1e-6)

    async def bench(ctx):
        ctx.set(aes.key_stream.payload, int.from_bytes(index_key, "big"))
        ctx.set(aes.key_stream.valid, 1)
        await ctx.tick().until(aes.key_stream.ready)
        ctx.set(aes.key_stream.valid, 0)
        ctx.set(dut.hold, hold_cycles > 0)
        cycle, sent, waited = 0, 0, 0
        while len(taken) < len(commands):
            if cycle == hold_cycles:
                ctx.set(dut.hold, 0)
            if sent < len(commands):
                op, key = commands[sent]
                ctx.set(dut.cmd.payload.as_value(), pack_command(P, op, key))
                ctx.set(dut.cmd.valid, 1)
            ctx.set(dut.draws.valid, bool(draws))
            ctx.set(dut.draws.payload, draws[0] if draws else 0)
            offered = ctx.get(dut.prepared.valid)
            waited = waited + 1 if offered else 0
            ctx.set(dut.prepared.ready, offered and waited > take_after)
            if ctx.get(dut.cmd.valid) and ctx.get(dut.cmd.ready):
                accepted.append(cycle)
                sent += 1
            if ctx.get(dut.draws.valid) and ctx.get(dut.draws.ready):
                draws.pop(0)
            if offered and waited > take_after:
                taken.append(ctx.get(dut.prepared.payload))
                takes.append(cycle)
                waited = 0
            await ctx.tick()
            ctx.set(dut.cmd.valid, 0)
            cycle += 1
            assert cycle < 5000, "the front stalled"

    sim.add_testbench(bench)
    sim.run()
    return index_key, taken, accepted, takes, draws


def test_each_command_gets_its_index_mac_and_draws_in_order():
    rng = random.Random(1)
    keys = [rng.randbytes(rng.randint(1, P.key_size)) for _ in range(4)]
    commands = [(Op.GET, keys[0]), (Op.PUT, keys[1]), (Cmd.SETUP_ITEM, keys[2]),
                (Op.DELETE, keys[3])]
    # r, y, c1, then c2 equal to c1 once (drawn again); the Setup item only c1, c2.
    draws = [5, 6, 7, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]
    index_key, taken, accepted, takes, left = _bench(commands, draws, take_after=30)
    for (op, key), got in zip(commands, taken):
        assert got.cmd.op == op and got.cmd.klen == len(key)
        assert got.mac == _index_mac(index_key, key)
    assert [(got.r, got.y, got.c1, got.c2) for got in taken[:2]] == [(5, 6, 7, 8), (9, 10, 11, 12)]
    # The Setup item draws c1 and c2 only, keeping r and y as they were.
    assert (taken[2].r, taken[2].y, taken[2].c1, taken[2].c2) == (9, 10, 13, 14)
    assert (taken[3].r, taken[3].y, taken[3].c1, taken[3].c2) == (15, 16, 17, 18)
    assert left == []
    # One command at a time: the next is accepted only after the one before was taken; the
    # age counts the cycles from acceptance to the take.
    for n in range(1, len(commands)):
        assert accepted[n] > takes[n - 1]
    assert [got.age for got in taken] == [t - a for a, t in zip(accepted, takes)]


def test_a_command_with_nothing_to_prepare_is_offered_at_once_and_hold_takes_nothing():
    commands = [(Cmd.SETUP_BEGIN, b""), (Cmd.SETUP_END, b""), (Op.GET, b"k")]
    _, taken, accepted, takes, _ = _bench(commands, [1, 2, 3, 4], hold_cycles=12)
    assert accepted[0] == 12                 # held until then
    assert [got.cmd.op for got in taken] == [Cmd.SETUP_BEGIN, Cmd.SETUP_END, Op.GET]
    assert takes[0] == accepted[0] + 1 and takes[1] == accepted[1] + 1
    # A GET waits for its MAC: two blocks on the iterative core (1 + 10 + 10 cycles).
    assert takes[2] - accepted[2] == 1 + 2 * 10


def test_the_mac_matches_for_every_key_length():
    rng = random.Random(2)
    commands = [(Op.GET, rng.randbytes(n)) for n in (1, 14, 15, 16, P.key_size)]
    index_key, taken, *_ = _bench(commands, [3, 4, 5, 6] * len(commands))
    assert [got.mac for got in taken] == [_index_mac(index_key, key) for _, key in commands]

"""AES-128 encryption core with key expansion (FIPS-197), as an Amaranth component.

Data convention (``docs/design.md``): a 16-byte block or key travels as a 128-bit value equal to
``int.from_bytes(block, "big")``, so byte 0 of the block is in bits 127..120. AES byte ``k`` of
the state (row ``k % 4``, column ``k // 4``) is therefore bits ``127 - 8k .. 120 - 8k``.

Two area/speed points share one component, :class:`Aes128`:

* ``pipelined=True``: one AES round per pipeline stage, 10 stages, one block per cycle. The 11
  round keys are expanded once, when a key is loaded (10 cycles), into registers. 160 S-boxes
  for the rounds (read synchronously: the S-box read register is the stage register) plus 4 for
  the key expansion.
* ``pipelined=False``: one round per cycle on one state register, round keys computed on the fly
  (16 + 4 S-boxes, read combinationally); the first AddRoundKey is made as the block is
  loaded and the last round's result is offered as it is computed. 10 cycles per block, for
  the DRBG, the subkey derivation and the index PRF where area matters more than speed.

The S-box is a 256 x 8 ROM (:class:`amaranth.lib.memory.Memory`), which maps to LUTs or block
ROM on an FPGA and simulates fast in Verilator.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["SBOX", "RCON", "Aes128", "sub_word", "shift_rows", "mix_columns", "next_round_key",
           "expand_key", "encrypt_block"]


def _gf_mul(a: int, b: int) -> int:
    product = 0
    while b:
        if b & 1:
            product ^= a
        a = ((a << 1) ^ 0x11B) if a & 0x80 else (a << 1)
        b >>= 1
    return product


def _make_sbox() -> tuple[int, ...]:
    inverse = [0] * 256
    for a in range(1, 256):
        for b in range(1, 256):
            if _gf_mul(a, b) == 1:
                inverse[a] = b
                break
    table = []
    for a in range(256):
        x = inverse[a]
        s = x
        for shift in range(1, 5):
            s ^= ((x << shift) | (x >> (8 - shift))) & 0xFF
        table.append(s ^ 0x63)
    return tuple(table)


#: The AES S-box (FIPS-197 figure 7).
SBOX = _make_sbox()
assert SBOX[0x00] == 0x63 and SBOX[0x53] == 0xED and SBOX[0xFF] == 0x16

#: Round constants for rounds 1..10 (index 0 unused).
RCON = (0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1B, 0x36)

#: Number of rounds of AES-128.
ROUNDS = 10


# -- a bit-exact software model of the datapath below (used by the tests of the tests) ---------

def expand_key(key: int) -> list[int]:
    """The 11 round keys of a 128-bit key, each a 128-bit int in the block convention."""
    keys = [key]
    for r in range(1, ROUNDS + 1):
        keys.append(_next_round_key_int(keys[-1], RCON[r]))
    return keys


def _next_round_key_int(rk: int, rcon: int) -> int:
    w = [(rk >> (96 - 32 * i)) & 0xFFFFFFFF for i in range(4)]
    t = ((w[3] << 8) | (w[3] >> 24)) & 0xFFFFFFFF
    t = int.from_bytes(bytes(SBOX[b] for b in t.to_bytes(4, "big")), "big") ^ (rcon << 24)
    out = []
    for i in range(4):
        t ^= w[i]
        out.append(t)
    return (out[0] << 96) | (out[1] << 64) | (out[2] << 32) | out[3]


def encrypt_block(key: int, block: int) -> int:
    """Software AES-128 on the 128-bit convention (a check of the structure the RTL uses)."""
    keys = expand_key(key)
    s = list((block ^ keys[0]).to_bytes(16, "big"))
    for r in range(1, ROUNDS + 1):
        s = [SBOX[b] for b in s]
        s = [s[(k % 4) + 4 * ((k // 4 + k % 4) % 4)] for k in range(16)]
        if r != ROUNDS:
            mixed = []
            for c in range(4):
                a = s[4 * c:4 * c + 4]
                for row in range(4):
                    mixed.append(_gf_mul(a[row], 2) ^ _gf_mul(a[(row + 1) % 4], 3)
                                 ^ a[(row + 2) % 4] ^ a[(row + 3) % 4])
            s = mixed
        s = list((int.from_bytes(bytes(s), "big") ^ keys[r]).to_bytes(16, "big"))
    return int.from_bytes(bytes(s), "big")


# -- combinational building blocks --------------------------------------------------------------

def _byte(value, k):
    """AES byte ``k`` (0 = most significant) of a 128-bit or 32-bit value."""
    top = len(value) - 8 * k
    return value[top - 8:top]


def _from_bytes(parts):
    """A value whose byte 0 (most significant) is ``parts[0]``."""
    return Cat(*reversed(parts))


def _sbox_rom(m: Module, name: str) -> Memory:
    rom = Memory(shape=8, depth=256, init=SBOX)
    m.submodules[name] = rom
    return rom


def sub_bytes_comb(m: Module, value, *, name: str):
    """SubBytes of ``value`` (any whole number of bytes) through combinational ROM reads."""
    n = len(value) // 8
    out = []
    for k in range(n):
        port = _sbox_rom(m, f"{name}_sbox{k}").read_port(domain="comb")
        m.d.comb += port.addr.eq(_byte(value, k))
        out.append(port.data)
    result = Signal(len(value), name=f"{name}_sb")
    m.d.comb += result.eq(_from_bytes(out))
    return result


def sub_word(m: Module, word, *, name: str):
    """SubWord of a 32-bit value."""
    return sub_bytes_comb(m, word, name=name)


def shift_rows_source(k: int) -> int:
    """ShiftRows: output byte ``k = r + 4c`` is input byte ``r + 4((c + r) mod 4)``."""
    return (k % 4) + 4 * ((k // 4 + k % 4) % 4)


def shift_rows(state):
    """ShiftRows of a 128-bit state."""
    return _from_bytes([_byte(state, shift_rows_source(k)) for k in range(16)])


def _xtime(byte):
    """xtime (multiplication by x in GF(2^8)) of a byte: shifted up, ``0x1B`` folded in for
    the bit shifted out."""
    return Cat(Const(0, 1), byte[:7]) ^ Mux(byte[7], 0x1B, 0)


def mix_row(column, row: int):
    """Row ``row`` of MixColumns of ``column``, a list of its four bytes (row 0 first):
    ``2 a_r + 3 a_(r+1) + a_(r+2) + a_(r+3)``."""
    following = column[(row + 1) % 4]
    return (_xtime(column[row]) ^ _xtime(following) ^ following ^ column[(row + 2) % 4]
            ^ column[(row + 3) % 4])


def mix_column(m: Module, column, *, name: str):
    """MixColumns of one 32-bit column (row 0 in bits 31..24)."""
    rows = [_byte(column, row) for row in range(4)]
    result = Signal(32, name=name)
    m.d.comb += result.eq(_from_bytes([mix_row(rows, row) for row in range(4)]))
    return result


def mix_columns(m: Module, state, *, name: str):
    """MixColumns of a 128-bit state, a column at a time (column 0 in bits 127..96)."""
    return Cat(*reversed([mix_column(m, state[96 - 32 * c:128 - 32 * c], name=f"{name}_c{c}")
                          for c in range(4)]))


def next_round_key(m: Module, rk, rcon, *, name: str):
    """The round key after ``rk`` (128 bits), with ``rcon`` an 8-bit value."""
    w = [rk[96 - 32 * i:128 - 32 * i] for i in range(4)]
    rot = Cat(w[3][24:32], w[3][0:24])                      # RotWord: bytes (1, 2, 3, 0)
    t = sub_word(m, rot, name=name) ^ Cat(Const(0, 24), rcon)
    out = []
    for i in range(4):
        t = t ^ w[i]
        out.append(t)
    result = Signal(128, name=f"{name}_next")
    m.d.comb += result.eq(Cat(out[3], out[2], out[1], out[0]))
    return result


class Aes128(wiring.Component):
    """AES-128 encryption (FIPS-197) with its key expansion.

    Parameters
    ----------
    pipelined : bool
        ``True``: 10-stage round pipeline, one block per cycle. ``False``: one round per cycle,
        one block per 10 cycles.

    Members
    -------
    key_stream : :py:`In(stream.Signature(128))`
        Loads a key (128-bit, ``int.from_bytes(key, "big")``). Accepted only when no block is in
        flight: load the key, then send blocks. While a key is offered, no block is accepted. Pipelined: the 11 round keys are expanded in the
        10 cycles after the key is accepted; blocks are accepted again after that. Iterative:
        the key is stored in one cycle. Blocks sent after a key load use that key until the next.
    i_stream : :py:`In(stream.Signature(128))`
        Plaintext blocks. Not accepted before the first key load.
    o_stream : :py:`Out(stream.Signature(128))`
        Ciphertext blocks, one per plaintext block, in order.

    Latency and throughput
    ----------------------
    Pipelined: a block accepted at cycle ``t`` is offered on ``o_stream`` at cycle ``t + 10``;
    one block per cycle; a stall of ``o_stream`` holds the whole pipeline (``i_stream.ready``
    falls in the same cycle). Iterative: accepted at ``t``, offered at ``t + 10`` (the last
    round's result straight from its logic, then from the state register while ``o_stream``
    is not ready); a new block is accepted in the cycle its predecessor leaves, so 10 cycles
    per block.
    """

    def __init__(self, *, pipelined: bool = True):
        self._pipelined = bool(pipelined)
        super().__init__({
            "key_stream": In(stream.Signature(128)),
            "i_stream": In(stream.Signature(128)),
            "o_stream": Out(stream.Signature(128)),
        })

    @property
    def pipelined(self) -> bool:
        return self._pipelined

    @property
    def latency(self) -> int:
        """Cycles from a block's acceptance to its ciphertext being offered."""
        return ROUNDS

    @property
    def cycles_per_block(self) -> int:
        return 1 if self._pipelined else ROUNDS

    def elaborate(self, platform):
        if self._pipelined:
            return self._elaborate_pipelined()
        return self._elaborate_iterative()

    def _elaborate_pipelined(self):
        m = Module()

        # Key expansion: one round key per cycle into round_keys[1..10].
        round_keys = [Signal(128, name=f"rk{r}") for r in range(ROUNDS + 1)]
        key_loaded = Signal()
        expanding = Signal()
        step = Signal(range(ROUNDS + 2))            # round key being computed (1..10)
        current = Signal(128)                       # the last round key computed
        rcon = Signal(8)
        m.d.comb += rcon.eq(Const(0, 8))
        with m.Switch(step):
            for r in range(1, ROUNDS + 1):
                with m.Case(r):
                    m.d.comb += rcon.eq(RCON[r])
        following = next_round_key(m, current, rcon, name="kexp")

        valid = Signal(ROUNDS)                      # valid[r-1]: stage r holds a block
        advance = Signal()
        m.d.comb += advance.eq(~valid[-1] | self.o_stream.ready)

        m.d.comb += self.key_stream.ready.eq(~expanding & (valid == 0))
        with m.If(self.key_stream.valid & self.key_stream.ready):
            m.d.sync += [round_keys[0].eq(self.key_stream.payload),
                         current.eq(self.key_stream.payload),
                         step.eq(1), expanding.eq(1), key_loaded.eq(0)]
        with m.Elif(expanding):
            m.d.sync += current.eq(following)
            with m.Switch(step):
                for r in range(1, ROUNDS + 1):
                    with m.Case(r):
                        m.d.sync += round_keys[r].eq(following)
            m.d.sync += step.eq(step + 1)
            with m.If(step == ROUNDS):
                m.d.sync += [expanding.eq(0), key_loaded.eq(1)]

        # Round pipeline. Stage r registers SubBytes(x_{r-1}) in its S-box read ports.
        m.d.comb += self.i_stream.ready.eq(key_loaded & ~expanding & advance & ~self.key_stream.valid)
        accept = self.i_stream.valid & self.i_stream.ready
        with m.If(advance):
            m.d.sync += valid.eq(Cat(accept, valid[:-1]))

        # The state travels as its 16 bytes (AES byte k: row k % 4 of column k // 4). Each
        # S-box port's address is its own expression of the previous stage's S-box registers
        # (ShiftRows, MixColumns and AddRoundKey of that byte), read by that port alone, and a
        # port reads only when its stage takes a block: the same gates as whole columns', but
        # Verilator then evaluates a stage's logic only inside its ports' enable, so an idle
        # pipeline costs the simulation next to nothing. (An empty stage keeps its last bytes;
        # nothing takes them, as its `valid` bit is clear.)
        first = Signal(128, name="x0")
        m.d.comb += first.eq(self.i_stream.payload ^ round_keys[0])
        state = [_byte(first, k) for k in range(16)]
        for r in range(1, ROUNDS + 1):
            taking = accept if r == 1 else valid[r - 2]
            sboxed = []
            for k in range(16):
                port = _sbox_rom(m, f"r{r}_sbox{k}").read_port(domain="sync")
                m.d.comb += [port.addr.eq(state[k]), port.en.eq(advance & taking)]
                sboxed.append(port.data)
            shifted = [sboxed[shift_rows_source(k)] for k in range(16)]
            if r != ROUNDS:
                shifted = [mix_row(shifted[k - k % 4:k - k % 4 + 4], k % 4) for k in range(16)]
            state = [byte ^ _byte(round_keys[r], k) for k, byte in enumerate(shifted)]
        x = _from_bytes(state)

        m.d.comb += [self.o_stream.payload.eq(x), self.o_stream.valid.eq(valid[-1])]
        return m

    def _elaborate_iterative(self):
        m = Module()

        key = Signal(128)
        key_loaded = Signal()
        state = Signal(128)
        round_key = Signal(128)                     # key of the round computed this cycle
        rnd = Signal(range(ROUNDS + 1))             # 0: idle; 1..10: computing round rnd
        done = Signal()                             # `state` holds a ciphertext not yet taken

        rcon = Signal(8)
        m.d.comb += rcon.eq(Const(0, 8))
        with m.Switch(rnd):
            for r in range(1, ROUNDS + 1):
                with m.Case(r):
                    m.d.comb += rcon.eq(RCON[r])
        this_key = next_round_key(m, round_key, rcon, name="kexp")
        sb = sub_bytes_comb(m, state, name="round")
        sr = Signal(128)
        m.d.comb += sr.eq(shift_rows(sb))
        after = Signal(128)
        with m.If(rnd == ROUNDS):
            m.d.comb += after.eq(sr ^ this_key)
        with m.Else():
            m.d.comb += after.eq(mix_columns(m, sr, name="mix") ^ this_key)

        # The ciphertext is offered as the last round computes it, and kept in `state` (`done`)
        # if it is not taken then.
        last = rnd == ROUNDS
        leaving = (done | last) & self.o_stream.ready
        idle = ((rnd == 0) & ~done) | leaving
        m.d.comb += [
            self.key_stream.ready.eq((rnd == 0) & ~done),
            self.i_stream.ready.eq(key_loaded & idle & ~self.key_stream.valid),
            self.o_stream.valid.eq(done | last),
            self.o_stream.payload.eq(Mux(done, state, after)),
        ]
        with m.If(leaving):
            m.d.sync += done.eq(0)
        with m.If(self.key_stream.valid & self.key_stream.ready):
            m.d.sync += [key.eq(self.key_stream.payload), key_loaded.eq(1)]
        with m.If(self.i_stream.valid & self.i_stream.ready):
            m.d.sync += [state.eq(self.i_stream.payload ^ key), round_key.eq(key), rnd.eq(1)]
        with m.Elif(rnd != 0):
            m.d.sync += [state.eq(after), round_key.eq(this_key)]
            with m.If(last):
                m.d.sync += [rnd.eq(0), done.eq(~self.o_stream.ready)]
            with m.Else():
                m.d.sync += rnd.eq(rnd + 1)
        return m

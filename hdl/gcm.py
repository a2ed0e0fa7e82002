"""AES-128-GCM over one page of fixed length (algorithm §5), as an Amaranth component.

The page is ``plaintext_bytes`` long (``Params.page_plaintext_bytes``), has no associated data,
and uses a 96-bit nonce (``page index (4 B, BE) ‖ write counter (8 B, BE)``,
:func:`bolt.crypto.page_nonce`), so ``J0 = nonce ‖ 0x00000001`` and block ``i`` (from 0) is
encrypted with the counter block ``nonce ‖ (i + 2)``.

Area/speed point: the accelerator opens an access's pages while they arrive over the host
link, at about 2.5 blocks a cycle (12 GB/s at 300 MHz), so GCM runs at one *group* of ``lanes``
blocks per cycle (the page engines use two, :data:`bolt.hdl.pages.PAGE_GCM_LANES`; the sealed
channel's small frames one): a fully pipelined AES-128 (:class:`~.aes.Aes128` with
``pipelined=True``) per lane makes the keystream, and GHASH multiplies by the powers of ``H``
with a full-width 128 x 128 GF(2^128) multiplier per lane every cycle (a carry-less product,
depth 1 AND + 8 XOR levels, then a fold by the fixed polynomial, 3 XOR levels; the lanes'
products are XORed). The ciphertext is registered before it enters GHASH, so the
multipliers' paths start at registers and end at ``Y``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .aes import Aes128

__all__ = ["Gcm", "gf128_mul", "gf128_mul_int", "StartLayout", "ResultLayout"]

BLOCK_BYTES = 16

#: ``start_stream`` payload: the 96-bit nonce in bits 0..95 and ``decrypt`` in bit 96.
StartLayout = data.StructLayout({"nonce": 96, "decrypt": 1})
#: ``result_stream`` payload: the computed tag in bits 0..127 and ``mismatch`` in bit 128.
ResultLayout = data.StructLayout({"tag": 128, "mismatch": 1})


def gf128_mul_int(x: int, y: int) -> int:
    """GCM's multiplication in GF(2^128) on 128-bit ints in the block convention (SP 800-38D
    algorithm 1); the software model of :func:`gf128_mul`."""
    r = 0xE1 << 120
    z, v = 0, y
    for i in range(128):
        if (x >> (127 - i)) & 1:
            z ^= v
        v = (v >> 1) ^ r if v & 1 else v >> 1
    return z


def _xor_tree(values):
    """The XOR of ``values`` as a balanced tree (its depth is the ceiling of log2 of their
    number)."""
    if len(values) == 1:
        return values[0]
    half = len(values) // 2
    return _xor_tree(values[:half]) ^ _xor_tree(values[half:])


#: Width of the pieces of the carry-less product (see :func:`gf128_mul`).
_PIECE = 32


def gf128_mul(m: Module, a, b, *, name: str = "gfmul"):
    """A combinational GCM multiplier: returns a 128-bit signal equal to ``a · b`` in GF(2^128).

    GCM puts the coefficient of ``x^i`` in bit ``127 - i`` of a block. The carry-less product
    of the blocks as they are is then the product of the polynomials with its bits reversed
    (the coefficient of ``x^k`` in bit ``254 - k``), so no bit is reversed: the product is
    reduced modulo ``x^128 + x^7 + x^2 + x + 1`` in that reflected order, where multiplying
    by ``x`` shifts right.

    The carry-less product is written as 16 products of 32-bit pieces of the operands, each
    a balanced XOR tree of 32 partial products (a piece of ``b`` shifted, ANDed with one bit
    of ``a``), XORed together word by word: the same AND and XOR gates as one tree per
    product bit (1 AND and 8 XOR levels), grouped so that Verilator evaluates them as 64-bit
    word operations instead of gathering single bits, several times faster to simulate.
    """
    a_bits, b_bits = Signal(128, name=f"{name}_a"), Signal(128, name=f"{name}_b")
    m.d.comb += [a_bits.eq(a), b_bits.eq(b)]
    pieces = 128 // _PIECE
    # sums[s]: the products of piece j of a and piece l of b with j + l = s, at bit 32 s.
    sums = []
    for s in range(2 * pieces - 1):
        terms = []
        for j in range(max(0, s - pieces + 1), min(s, pieces - 1) + 1):
            a_piece = a_bits[_PIECE * j:_PIECE * (j + 1)]
            b_piece = b_bits[_PIECE * (s - j):_PIECE * (s - j + 1)]
            piece = Signal(2 * _PIECE - 1, name=f"{name}_piece{j}_{s - j}")
            m.d.comb += piece.eq(_xor_tree([Mux(a_piece[i], b_piece << i, 0)
                                            for i in range(_PIECE)]))
            terms.append(piece)
        total = Signal(2 * _PIECE - 1, name=f"{name}_sum{s}")
        m.d.comb += total.eq(_xor_tree(terms))
        sums.append(total)
    # Word w of the product: the low half of sums[w] and the high half of sums[w - 1].
    words = [_xor_tree(([sums[w][:_PIECE]] if w < len(sums) else [])
                       + ([sums[w - 1][_PIECE:]] if w > 0 else []))
             for w in range(2 * pieces)]
    product = Signal(256, name=f"{name}_product")   # bit 254 - k: the coefficient of x^k
    m.d.comb += product.eq(Cat(*words))
    low = product[127:255]                           # x^0 .. x^127, in block order
    # x^128 .. x^254 in a 136-bit reflected word (x^(128 + j) in bit 135 - j), folded by
    # x^128 = x^7 + x^2 + x + 1: x^0 .. x^127 land in bits 135..8, x^128 .. x^133 in bits 7..2.
    high = Signal(136, name=f"{name}_high")
    m.d.comb += high.eq(Cat(Const(0, 9), product[:127]))
    fold = Signal(136, name=f"{name}_fold")
    m.d.comb += fold.eq(high ^ (high >> 1) ^ (high >> 2) ^ (high >> 7))
    top = Signal(128, name=f"{name}_top")            # x^128 .. x^133 of the fold, folded again
    m.d.comb += top.eq(Cat(Const(0, 120), fold[:8]))
    result = Signal(128, name=name)
    m.d.comb += result.eq(low ^ fold[8:] ^ top ^ (top >> 1) ^ (top >> 2) ^ (top >> 7))
    return result


class Gcm(wiring.Component):
    """AES-128-GCM encryption, and decryption with tag verification, of one page at a time,
    ``lanes`` blocks per cycle.

    Parameters
    ----------
    plaintext_bytes : int
        Bytes of every page (``Params.page_plaintext_bytes``); need not be a multiple of 16.
    lanes : int
        Blocks per transfer and per cycle: a **group** of ``lanes`` consecutive blocks, block
        ``i`` of the page in lane ``i mod lanes`` of group ``i div lanes``. Each lane has a
        pipelined AES-128 of its own (the cores run in lockstep) and a GHASH multiplier.

    Members
    -------
    key_stream : :py:`In(stream.Signature(128))`
        The page key. Accepted only between pages. Loading it expands the AES round keys
        (10 cycles), computes ``H = AES_K(0^128)`` (about 12 more) and, with more than one
        lane, the powers of ``H`` up to ``H^lanes`` (a cycle each); pages are accepted after.
    start_stream : :py:`In(stream.Signature(StartLayout))`
        Starts a page: ``nonce`` (96 bits, ``int.from_bytes(nonce12, "big")``) and ``decrypt``
        (0 encrypt, 1 decrypt). Accepted only when the previous page's result has been taken and
        a key is loaded. As a flat Verilog vector: ``nonce | decrypt << 96``.
    i_stream : :py:`In(stream.Signature(128 * lanes))`
        The page's ``ceil(plaintext_bytes / 16)`` blocks in groups, in order, lane 0 in the
        low 128 bits: plaintext when encrypting, ciphertext when decrypting. The last block
        carries its ``plaintext_bytes % 16`` bytes (if not 0) in its most significant bytes;
        its remaining low bytes, and the lanes of the last group past the page, are ignored.
    o_stream : :py:`Out(stream.Signature(128 * lanes))`
        As many groups, in order: ciphertext when encrypting, plaintext when decrypting; the
        unused low bytes of the last block and the lanes past the page are zero. When
        decrypting, the plaintext is released before the tag is checked: the consumer must keep
        it on chip and drop it on a mismatch.
    tag_stream : :py:`In(stream.Signature(128))`
        Decrypt only: the received 16-byte tag. Taken when the page's result is delivered (it
        may be offered at any time during the page); never taken when encrypting.
    result_stream : :py:`Out(stream.Signature(ResultLayout))`
        One per page, after its last ``o_stream`` group: ``tag``, the computed tag (the page's
        tag when encrypting) and ``mismatch``, 1 when decrypting and the computed tag differs
        from the received one (always 0 when encrypting). Flat: ``tag | mismatch << 128``.

    Timing
    ------
    One group per cycle. Without stalls a page takes ``groups + 15`` cycles from the
    ``start_stream`` transfer to the next ``start_stream`` transfer (:attr:`cycles_per_page`):
    one cycle to issue ``J0``, the 10-cycle AES latency, 1 cycle for ``E(J0)``, ``groups``
    cycles of data, 2 cycles to fold the last group and the length block into GHASH and 1 for
    the result.

    GHASH takes a group in one step, ``Y <- (Y + X_0) H^k + X_1 H^(k-1) + ... + X_(k-1) H``
    for a group of ``k`` blocks (``k = lanes`` but in a shorter last group): ``lanes``
    multipliers side by side whose products are XORed, each operand from a register, so the
    path from ``Y`` back to ``Y`` is that XOR, ``log2(lanes)`` levels, longer than with one
    lane.
    """

    def __init__(self, *, plaintext_bytes: int, lanes: int = 1):
        if plaintext_bytes < 1:
            raise ValueError(f"plaintext_bytes must be at least 1, not {plaintext_bytes}")
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, not {lanes}")
        self._plaintext_bytes = int(plaintext_bytes)
        self._lanes = int(lanes)
        super().__init__({
            "key_stream": In(stream.Signature(128)),
            "start_stream": In(stream.Signature(StartLayout)),
            "i_stream": In(stream.Signature(128 * lanes)),
            "o_stream": Out(stream.Signature(128 * lanes)),
            "tag_stream": In(stream.Signature(128)),
            "result_stream": Out(stream.Signature(ResultLayout)),
        })

    @property
    def plaintext_bytes(self) -> int:
        return self._plaintext_bytes

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def blocks(self) -> int:
        return -(-self._plaintext_bytes // BLOCK_BYTES)

    @property
    def groups(self) -> int:
        """Transfers of a page: ``lanes`` blocks each, the last possibly fewer."""
        return -(-self.blocks // self._lanes)

    @property
    def cycles_per_page(self) -> int:
        """Cycles from one ``start_stream`` transfer to the next, without stalls."""
        return self.groups + 15

    def elaborate(self, platform):
        m = Module()
        lanes, blocks, groups = self._lanes, self.blocks, self.groups
        # The cores see the same handshakes every cycle (only their blocks differ), so they
        # stay in lockstep: core 0's ready and valid stand for all of them.
        cores = []
        for j in range(lanes):
            core = Aes128(pipelined=True)
            m.submodules[f"aes{j}" if lanes > 1 else "aes"] = core
            cores.append(core)
        aes = cores[0]

        last_bytes = self._plaintext_bytes - BLOCK_BYTES * (blocks - 1)
        last_mask = ((1 << (8 * last_bytes)) - 1) << (128 - 8 * last_bytes)
        length_block = 8 * self._plaintext_bytes        # len(A) = 0 ‖ len(C) in bits
        last_group_blocks = blocks - lanes * (groups - 1)

        powers = [Signal(128, name=f"h{k + 1}") for k in range(lanes)]   # H^1 .. H^lanes
        h = powers[0]
        h_ready = Signal()
        nonce = Signal(96)
        decrypt = Signal()
        counter = Signal(32)                             # next counter block's low word
        to_issue = Signal(range(groups + 2))             # issues left: J0, then the groups
        have_ej0 = Signal()
        ej0 = Signal(128)                                # E(J0), masks the tag
        index = Signal(range(groups + 1))                # data group being processed
        y = Signal(128)                                  # the GHASH accumulator
        gh_in = [Signal(128, name=f"gh_in{j}") for j in range(lanes)]     # registered inputs
        gh_power = [Signal(128, name=f"gh_power{j}") for j in range(lanes)]
        gh_valid = Signal()
        power_step = Signal(range(lanes + 1))            # the power of H being made

        # GHASH: one group per cycle on the registered inputs.
        products = [gf128_mul(m, (y ^ gh_in[0]) if j == 0 else gh_in[j], gh_power[j],
                              name=f"ghash{j}" if lanes > 1 else "ghash")
                    for j in range(lanes)]
        m.d.sync += gh_valid.eq(0)
        with m.If(gh_valid):
            m.d.sync += y.eq(_xor_tree(products))

        def ghash_group(group, count):
            """Register GHASH's inputs for a group of ``count`` blocks (lanes past it zero)."""
            for j in range(lanes):
                if j < count:
                    m.d.sync += [gh_in[j].eq(group.word_select(j, 128)),
                                 gh_power[j].eq(powers[count - 1 - j])]
                else:
                    m.d.sync += gh_in[j].eq(0)
            m.d.sync += gh_valid.eq(1)

        # Keystream join: E(counter) of each lane with the input group.
        is_last = index == groups - 1
        mask = Signal(128 * lanes)
        m.d.comb += mask.eq(Const(2**(128 * lanes) - 1, 128 * lanes))
        with m.If(is_last):
            m.d.comb += mask.eq(Cat(*[Const(2**128 - 1 if j < last_group_blocks - 1
                                            else last_mask if j == last_group_blocks - 1
                                            else 0, 128) for j in range(lanes)]))
        masked_in = self.i_stream.payload & mask
        keystream = Cat(*[core.o_stream.payload for core in cores])
        out_group = Signal(128 * lanes)
        m.d.comb += out_group.eq((self.i_stream.payload ^ keystream) & mask)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [
                    *[core.key_stream.payload.eq(self.key_stream.payload) for core in cores],
                    *[core.key_stream.valid.eq(self.key_stream.valid) for core in cores],
                    self.key_stream.ready.eq(aes.key_stream.ready),
                    self.start_stream.ready.eq(h_ready & ~self.key_stream.valid),
                ]
                with m.If(self.key_stream.valid & self.key_stream.ready):
                    m.d.sync += h_ready.eq(0)
                    m.next = "HASH_KEY"
                with m.Elif(self.start_stream.valid & self.start_stream.ready):
                    m.d.sync += [
                        nonce.eq(self.start_stream.payload.nonce),
                        decrypt.eq(self.start_stream.payload.decrypt),
                        counter.eq(1),
                        to_issue.eq(groups + 1),
                        have_ej0.eq(0),
                        index.eq(0),
                        y.eq(0),
                    ]
                    m.next = "RUN"

            with m.State("HASH_KEY"):
                # Issue the zero block (accepted once the round keys are expanded), take H.
                issued = Signal()
                for core in cores:
                    m.d.comb += [core.i_stream.payload.eq(0), core.i_stream.valid.eq(~issued),
                                 core.o_stream.ready.eq(1)]
                with m.If(aes.i_stream.valid & aes.i_stream.ready):
                    m.d.sync += issued.eq(1)
                with m.If(aes.o_stream.valid):
                    m.d.sync += [h.eq(aes.o_stream.payload), issued.eq(0)]
                    if lanes > 1:
                        # H^2 .. H^lanes on lane 0's multiplier: (0 + H^k) H, a cycle each.
                        m.d.sync += [y.eq(0), gh_in[0].eq(aes.o_stream.payload),
                                     gh_power[0].eq(aes.o_stream.payload), power_step.eq(1)]
                        m.next = "POWERS"
                    else:
                        m.d.sync += h_ready.eq(1)
                        m.next = "IDLE"

            if lanes > 1:
                with m.State("POWERS"):
                    with m.Switch(power_step):
                        for k in range(1, lanes):
                            with m.Case(k):
                                m.d.sync += powers[k].eq(products[0])
                    m.d.sync += [gh_in[0].eq(products[0]), power_step.eq(power_step + 1)]
                    with m.If(power_step == lanes - 1):
                        m.d.sync += h_ready.eq(1)
                        m.next = "IDLE"

            with m.State("RUN"):
                # J0 first (every lane computes E(J0); lane 0's is kept), then a group of
                # counter blocks per issue, lane j's the j-th.
                for j, core in enumerate(cores):
                    first = to_issue == groups + 1
                    m.d.comb += [core.i_stream.payload.eq(
                                     Cat(Mux(first, counter, (counter + j)[:32]), nonce)),
                                 core.i_stream.valid.eq(to_issue != 0)]
                with m.If(aes.i_stream.valid & aes.i_stream.ready):
                    m.d.sync += to_issue.eq(to_issue - 1)
                    with m.If(to_issue == groups + 1):
                        m.d.sync += counter.eq(counter + 1)
                    with m.Else():
                        m.d.sync += counter.eq(counter + lanes)
                with m.If(~have_ej0):
                    for core in cores:
                        m.d.comb += core.o_stream.ready.eq(1)
                    with m.If(aes.o_stream.valid):
                        m.d.sync += [ej0.eq(aes.o_stream.payload), have_ej0.eq(1)]
                with m.Else():
                    m.d.comb += [
                        self.o_stream.payload.eq(out_group),
                        self.o_stream.valid.eq(aes.o_stream.valid & self.i_stream.valid),
                        self.i_stream.ready.eq(aes.o_stream.valid & self.o_stream.ready),
                    ]
                    for core in cores:
                        m.d.comb += core.o_stream.ready.eq(self.i_stream.valid
                                                           & self.o_stream.ready)
                    with m.If(self.o_stream.valid & self.o_stream.ready):
                        m.d.sync += index.eq(index + 1)
                        with m.If(is_last):
                            ghash_group(Mux(decrypt, masked_in, out_group), last_group_blocks)
                            m.next = "LENGTH"
                        with m.Else():
                            ghash_group(Mux(decrypt, masked_in, out_group), lanes)

            with m.State("LENGTH"):
                # GHASH takes the last data group this cycle and the length block the next.
                ghash_group(Const(length_block, 128 * lanes), 1)
                m.next = "FOLD"

            with m.State("FOLD"):
                m.next = "RESULT"

            with m.State("RESULT"):
                tag = y ^ ej0
                m.d.comb += [
                    self.result_stream.payload.tag.eq(tag),
                    self.result_stream.payload.mismatch.eq(
                        decrypt & (tag != self.tag_stream.payload)),
                    self.result_stream.valid.eq(~decrypt | self.tag_stream.valid),
                    self.tag_stream.ready.eq(decrypt & self.result_stream.ready),
                ]
                with m.If(self.result_stream.valid & self.result_stream.ready):
                    m.next = "IDLE"
        return m

"""cocotb testbench of :class:`bolt.hdl.gcm.Gcm` (pycryptodome's AES-GCM is the oracle).

Environment: ``GCM_BYTES`` (the build's ``plaintext_bytes``, required), ``GCM_CYCLES`` (the
build's ``cycles_per_page``, required), ``GCM_LANES`` (the build's ``lanes``, 1 if unset),
``GCM_KEYS`` and ``GCM_PAGES_PER_KEY`` (random pages,
half encrypted and half decrypted), ``GCM_FLIPS`` (tampered pages), ``GCM_STALL`` (stall chance
on every stream), ``GCM_SEED``. A ``GCM_BYTES=64`` build also runs the McGrew–Viega GCM test
case 3 (the 64-byte, 96-bit IV, no-AAD vector of the GCM specification).

Blocks travel as ``int.from_bytes(block16, "big")``, ``lanes`` of them a transfer (the first in
the low bits); the last, partial block of a page carries its bytes in the most significant
bytes (its low bytes are zero on ``o_stream`` and ignored on ``i_stream``, as are the lanes of
the last transfer past the page, which the testbench fills with noise).
"""

from __future__ import annotations

import os
import random

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge
from Crypto.Cipher import AES

from bolt.sim.streams import (CycleCounter, StreamSink, StreamSource, env_float, env_int,
                              start_clock_and_reset)

BYTES = int(os.environ["GCM_BYTES"])
CYCLES_PER_PAGE = int(os.environ["GCM_CYCLES"])
BLOCKS = -(-BYTES // 16)
PAD_BITS = 8 * (16 * BLOCKS - BYTES)        # ignored low bits of the last input block
LANES = int(os.environ.get("GCM_LANES", "1"))
GROUPS = -(-BLOCKS // LANES)


def to_blocks(data: bytes) -> list[int]:
    """A page's bytes as 128-bit blocks; the last one zero padded on the right."""
    assert len(data) == BYTES
    padded = data + bytes(16 * BLOCKS - len(data))
    return [int.from_bytes(padded[16 * i:16 * i + 16], "big") for i in range(BLOCKS)]


def from_blocks(blocks: list[int]) -> bytes:
    return b"".join(b.to_bytes(16, "big") for b in blocks)[:BYTES]


def to_groups(blocks: list[int], rng) -> list[int]:
    """Blocks as transfers of ``LANES``; the lanes past the page hold noise."""
    padded = blocks + [rng.getrandbits(128) for _ in range(GROUPS * LANES - len(blocks))]
    return [sum(b << (128 * j) for j, b in enumerate(padded[i:i + LANES]))
            for i in range(0, len(padded), LANES)]


def from_groups(groups: list[int]) -> list[int]:
    """Transfers of ``LANES`` blocks as blocks."""
    return [(g >> (128 * j)) & (2**128 - 1) for g in groups for j in range(LANES)]


def reference(key: bytes, nonce: bytes, plaintext: bytes) -> tuple[bytes, bytes]:
    return AES.new(key, AES.MODE_GCM, nonce=nonce).encrypt_and_digest(plaintext)


class Page:
    """One page operation and what the testbench expects of it."""

    def __init__(self, nonce: bytes, decrypt: bool, data: list[int], tag: int | None,
                 expect_out: list[int], expect_tag: int, expect_mismatch: bool):
        self.nonce, self.decrypt, self.data, self.tag = nonce, decrypt, data, tag
        self.expect_out, self.expect_tag = expect_out, expect_tag
        self.expect_mismatch = expect_mismatch

    @property
    def start(self) -> int:
        return int.from_bytes(self.nonce, "big") | (int(self.decrypt) << 96)


def encrypt_page(key: bytes, nonce: bytes, plaintext: bytes) -> Page:
    ciphertext, tag = reference(key, nonce, plaintext)
    return Page(nonce, False, to_blocks(plaintext), None, to_blocks(ciphertext),
                int.from_bytes(tag, "big"), False)


def decrypt_page(key: bytes, nonce: bytes, plaintext: bytes, *, flip_data: int | None = None,
                 flip_tag: int | None = None, pad_noise: int = 0) -> Page:
    """Decrypt of the page's true ciphertext, with bit ``flip_data`` of the ciphertext (bit 0 =
    most significant bit of byte 0) or bit ``flip_tag`` of the tag flipped, and ``pad_noise`` in
    the ignored low bits of the last block."""
    ciphertext, tag = reference(key, nonce, plaintext)
    received = bytearray(ciphertext)
    if flip_data is not None:
        received[flip_data // 8] ^= 0x80 >> (flip_data % 8)
    tag_int = int.from_bytes(tag, "big")
    if flip_tag is not None:
        tag_int ^= 1 << (127 - flip_tag)
    blocks = to_blocks(bytes(received))
    blocks[-1] |= pad_noise
    # The RTL decrypts the received ciphertext whatever its tag, and computes the tag over it.
    plain = AES.new(key, AES.MODE_CTR, nonce=nonce, initial_value=2).decrypt(bytes(received))
    computed = reference(key, nonce, plain)[1]
    return Page(nonce, True, blocks, tag_int, to_blocks(plain), int.from_bytes(computed, "big"),
                flip_data is not None or flip_tag is not None)


async def load_key(dut, key: bytes, *, stall: float, rng) -> None:
    await StreamSource(dut, "key_stream", stall=stall, rng=rng).send([int.from_bytes(key, "big")])


async def run_pages(dut, pages: list[Page], *, stall: float, rng) -> None:
    """Send every page back to back (one source per input stream), collect and check."""
    starts = StreamSource(dut, "start_stream", stall=stall, rng=rng)
    inputs = StreamSource(dut, "i_stream", stall=stall, rng=rng)
    tags = StreamSource(dut, "tag_stream", stall=stall, rng=rng)
    outputs = StreamSink(dut, "o_stream", stall=stall, rng=rng)
    results = StreamSink(dut, "result_stream", stall=stall, rng=rng)
    starts.start(p.start for p in pages)
    inputs.start(g for p in pages for g in to_groups(p.data, rng))
    tag_task = tags.start(p.tag for p in pages if p.decrypt)
    out_task = outputs.start(GROUPS * len(pages))
    got_results = await results.receive(len(pages))
    got_out = from_groups(await out_task)
    await tag_task
    for i, page in enumerate(pages):
        out = got_out[GROUPS * LANES * i:GROUPS * LANES * (i + 1)]
        assert not any(out[BLOCKS:]), f"page {i}: lanes past the page are not zero"
        out = out[:BLOCKS]
        tag, mismatch = got_results[i] & (2**128 - 1), got_results[i] >> 128
        what = f"page {i} ({'decrypt' if page.decrypt else 'encrypt'}, nonce {page.nonce.hex()})"
        assert out == page.expect_out, (
            f"{what}: data differ at blocks "
            f"{[k for k in range(BLOCKS) if out[k] != page.expect_out[k]]}")
        assert tag == page.expect_tag, f"{what}: tag {tag:032x} != {page.expect_tag:032x}"
        assert mismatch == int(page.expect_mismatch), f"{what}: mismatch {mismatch}"


def _stall() -> float:
    return env_float("GCM_STALL", 0.3)


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def random_pages_with_stalls(dut):
    """Encrypt and decrypt random pages under random keys and nonces, random stalls on all six
    streams: ciphertext, plaintext and tags equal pycryptodome's, no mismatch."""
    await start_clock_and_reset(dut)
    rng = random.Random(env_int("GCM_SEED", 1))
    stall = _stall()
    count = 0
    for _ in range(env_int("GCM_KEYS", 3)):
        key = rng.randbytes(16)
        await load_key(dut, key, stall=stall, rng=rng)
        pages = []
        for i in range(env_int("GCM_PAGES_PER_KEY", 6)):
            nonce, plaintext = rng.randbytes(12), rng.randbytes(BYTES)
            if i % 2:
                # Decrypt, with junk in the ignored low bytes of the last block.
                pad = rng.getrandbits(PAD_BITS) if PAD_BITS else 0
                pages.append(decrypt_page(key, nonce, plaintext, pad_noise=pad))
                assert pages[-1].expect_out == to_blocks(plaintext)
            else:
                pages.append(encrypt_page(key, nonce, plaintext))
        # Edge cases: all-zero and all-one pages and nonces.
        pages.append(encrypt_page(key, bytes(12), bytes(BYTES)))
        pages.append(decrypt_page(key, b"\xff" * 12, b"\xff" * BYTES))
        await run_pages(dut, pages, stall=stall, rng=rng)
        count += len(pages)
    dut._log.info("%d pages of %d bytes match pycryptodome", count, BYTES)


@cocotb.test(timeout_time=100, timeout_unit="ms")
async def tampering_always_detected(dut):
    """Decrypt with one flipped bit, anywhere in the ciphertext or the tag: the mismatch flag
    rises every time; junk in the ignored bits of the last block changes nothing."""
    await start_clock_and_reset(dut)
    rng = random.Random(env_int("GCM_SEED", 1) + 100)
    stall = _stall()
    key = rng.randbytes(16)
    await load_key(dut, key, stall=stall, rng=rng)
    trials = env_int("GCM_FLIPS", 60)
    pages = []
    flipped_data = flipped_tag = 0
    for i in range(trials):
        nonce, plaintext = rng.randbytes(12), rng.randbytes(BYTES)
        if i % 3 == 2:
            pages.append(decrypt_page(key, nonce, plaintext, flip_tag=rng.randrange(128)))
            flipped_tag += 1
        else:
            # Bits of the first and last byte are included deliberately.
            bit = [0, 8 * BYTES - 1][i] if i < 2 else rng.randrange(8 * BYTES)
            pages.append(decrypt_page(key, nonce, plaintext, flip_data=bit))
            flipped_data += 1
        if PAD_BITS and i % 5 == 0:
            pages.append(decrypt_page(key, nonce, plaintext,
                                      pad_noise=1 << rng.randrange(PAD_BITS)))
    assert sum(p.expect_mismatch for p in pages) == trials
    await run_pages(dut, pages, stall=stall, rng=rng)
    dut._log.info("%d ciphertext and %d tag bit flips all detected", flipped_data, flipped_tag)


@cocotb.test(timeout_time=10, timeout_unit="ms")
async def cycles_per_page(dut):
    """No stalls: consecutive pages start exactly ``Gcm.cycles_per_page`` cycles apart, for
    encryption and decryption alike; report the key load time too."""
    await start_clock_and_reset(dut)
    rng = random.Random(7)
    key = rng.randbytes(16)
    counter = CycleCounter(dut.clk)
    starts: list[int] = []
    key_taken: list[int] = []

    async def monitor():
        while True:
            await ReadOnly()
            if dut.start_stream__valid.value and dut.start_stream__ready.value:
                starts.append(counter.cycles)
            if dut.key_stream__valid.value and dut.key_stream__ready.value:
                key_taken.append(counter.cycles)
            await RisingEdge(dut.clk)

    cocotb.start_soon(monitor())
    await load_key(dut, key, stall=0.0, rng=rng)
    pages = []
    for i in range(6):
        nonce, plaintext = rng.randbytes(12), rng.randbytes(BYTES)
        pages.append(decrypt_page(key, nonce, plaintext) if i >= 3
                     else encrypt_page(key, nonce, plaintext))
    await run_pages(dut, pages, stall=0.0, rng=rng)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    dut._log.info("%d blocks per page, %d a cycle: start-to-start gaps %s (cycles_per_page "
                  "%d); key taken to first page start: %d cycles",
                  BLOCKS, LANES, gaps, CYCLES_PER_PAGE, starts[0] - key_taken[0])
    assert len(starts) == len(pages), starts
    assert gaps == [CYCLES_PER_PAGE] * (len(pages) - 1), gaps


if BYTES == 64:
    @cocotb.test(timeout_time=5, timeout_unit="ms")
    async def mcgrew_viega_test_case_3(dut):
        """GCM specification (McGrew & Viega), test case 3: AES-128, 96-bit IV, 64-byte
        plaintext, no AAD; then decrypt it back, and with a flipped tag bit."""
        await start_clock_and_reset(dut)
        rng = random.Random(3)
        key = bytes.fromhex("feffe9928665731c6d6a8f9467308308")
        iv = bytes.fromhex("cafebabefacedbaddecaf888")
        plaintext = bytes.fromhex(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
            "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255")
        ciphertext = bytes.fromhex(
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
            "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985")
        tag = int("4d5c2af327cd64a62cf35abd2ba6fab4", 16)
        good = Page(iv, True, to_blocks(ciphertext), tag, to_blocks(plaintext), tag, False)
        bad = Page(iv, True, to_blocks(ciphertext), tag ^ 1, to_blocks(plaintext), tag, True)
        encrypt = Page(iv, False, to_blocks(plaintext), None, to_blocks(ciphertext), tag, False)
        await load_key(dut, key, stall=0.0, rng=rng)
        await run_pages(dut, [encrypt, good, bad], stall=0.3, rng=rng)

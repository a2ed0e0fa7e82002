"""Keys, page format and randomness of algorithm §§5 and 6, in software.

pycryptodome is the crypto reference. The hot path seals and opens pages with OpenSSL's
AES-GCM (through ``cryptography``), which is an order of magnitude faster per page; the tests
check that both produce identical bytes.
"""

from __future__ import annotations

import functools
import hashlib
import os
import struct
import threading
from dataclasses import dataclass
from itertools import repeat

import numpy as np
from Crypto.Cipher import AES
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import SaltReuseError

__all__ = [
    "SALT_BYTES", "MASTER_KEY_BYTES", "master_key_or_new", "claim_test_salt", "Subkeys", "derive_subkeys", "new_salt", "page_nonce",
    "PageCipher", "Drbg", "uniform_mask",
]

MASTER_KEY_BYTES = 16
SALT_BYTES = 15
PAGE_KEY_INDEX, DRBG_KEY_INDEX, INDEX_KEY_INDEX = 1, 2, 3


def master_key_or_new(master_key: bytes | None) -> bytes:
    """``master_key`` checked (16 bytes), or a new one from the OS when it is None."""
    if master_key is None:
        return os.urandom(MASTER_KEY_BYTES)
    if not isinstance(master_key, (bytes, bytearray)) or len(master_key) != MASTER_KEY_BYTES:
        raise ValueError(f"master_key must be {MASTER_KEY_BYTES} bytes")
    return bytes(master_key)


@dataclass(frozen=True)
class Subkeys:
    page: bytes
    drbg: bytes
    index: bytes


def new_salt() -> bytes:
    return os.urandom(SALT_BYTES)


# Digests of the (master key, salt) pairs given from outside that this process has set up.
_test_pairs: set[bytes] = set()
_test_pairs_lock = threading.Lock()


def claim_test_salt(master_key: bytes | None, salt) -> bytes:
    """Check a Setup salt given from outside (for reproducible tests only) and refuse a
    (master key, salt) pair this process has already set up.

    Reusing a pair would reuse GCM nonces (every page counter restarts at 1) and let the host
    replay the other Setup's pages. Another process cannot be checked: reusing a pair across
    processes has the same effect. With no master key (drawn from the OS) the pair is new.
    """
    if not isinstance(salt, (bytes, bytearray, memoryview)):
        raise TypeError(f"a test salt must be {SALT_BYTES} bytes, not {type(salt).__name__}")
    salt = bytes(salt)
    if len(salt) != SALT_BYTES:
        raise ValueError(f"a test salt must be {SALT_BYTES} bytes, not {len(salt)}")
    if master_key is not None:
        digest = hashlib.sha256(bytes(master_key) + salt).digest()
        with _test_pairs_lock:
            if digest in _test_pairs:
                raise SaltReuseError(
                    "this (master key, salt) pair was already set up in this process; a second "
                    "Setup with it would reuse GCM nonces and accept the first one's pages: "
                    "draw a new salt (or pass none)")
            _test_pairs.add(digest)
    return salt


def derive_subkeys(master_key: bytes, salt: bytes) -> Subkeys:
    """``K_i = AES-128-ECB(master, i ‖ salt)`` for i = 1 (page), 2 (DRBG), 3 (index)."""
    if len(master_key) != MASTER_KEY_BYTES:
        raise ValueError(f"master key must be {MASTER_KEY_BYTES} bytes, not {len(master_key)}")
    if len(salt) != SALT_BYTES:
        raise ValueError(f"salt must be {SALT_BYTES} bytes, not {len(salt)}")
    ecb = AES.new(master_key, AES.MODE_ECB)
    page, drbg, index = (ecb.encrypt(bytes([i]) + salt)
                         for i in (PAGE_KEY_INDEX, DRBG_KEY_INDEX, INDEX_KEY_INDEX))
    return Subkeys(page=page, drbg=drbg, index=index)


_NONCE = struct.Struct(">IQ")


def page_nonce(page: int, counter: int) -> bytes:
    """12-byte GCM nonce: page index (4 bytes BE) ‖ write counter (8 bytes BE)."""
    return _NONCE.pack(page, counter)


class PageCipher:
    """AES-128-GCM of whole page plaintexts under the page key, no associated data; nonces as
    :func:`page_nonce` (packed in place: every access seals and opens up to four pages)."""

    def __init__(self, page_key: bytes):
        self._aead = AESGCM(page_key)
        self._encrypt, self._encrypt_into = self._aead.encrypt, self._aead.encrypt_into
        self._decrypt, self._decrypt_into = self._aead.decrypt, self._aead.decrypt_into

    def seal(self, page: int, counter: int, plaintext, into: memoryview | None = None):
        """Ciphertext ‖ 16-byte tag, as new bytes or written ``into`` a buffer of exactly that
        length (the page's host image: no copy of the sealed page on every write)."""
        if into is None:
            return self._encrypt(_NONCE.pack(page, counter), plaintext, None)
        self._encrypt_into(_NONCE.pack(page, counter), plaintext, None, into)
        return into

    def seal_pages(self, counter: int, plaintexts, into: list[memoryview] | None = None):
        """:meth:`seal` of pages 0, 1, ... (the rows of ``plaintexts``) under ``counter``, in
        one pass (Setup's hundred thousand pages: no Python frame per page), as a list of new
        bytes or written ``into`` the buffers of a list."""
        count = len(plaintexts)
        nonces = map(_NONCE.pack, range(count), repeat(counter, count))
        if into is None:
            return list(map(self._encrypt, nonces, plaintexts, repeat(None, count)))
        list(map(self._encrypt_into, nonces, plaintexts, repeat(None, count), into))
        return into

    def open(self, page: int, counter: int, sealed: bytes, into: bytearray | None = None):
        """The plaintext, as new bytes or written ``into`` a buffer of its length (a page
        engine's buffer: no copy to make it editable), or ``None`` if the tag does not
        verify."""
        try:
            if into is None:
                return self._decrypt(_NONCE.pack(page, counter), sealed, None)
            self._decrypt_into(_NONCE.pack(page, counter), sealed, None, into)
            return into
        except InvalidTag:
            return None


@functools.lru_cache(maxsize=64)
def uniform_mask(n: int) -> int:
    """The smallest ``2^k − 1 >= n − 1`` (algorithm §6)."""
    return (1 << max(0, (n - 1).bit_length())) - 1


class Drbg:
    """AES-128-CTR on a 128-bit big-endian counter from 0; each block gives four 32-bit words,
    most significant first (algorithm §6).

    Words are generated in batches; :attr:`words_drawn` counts the words consumed, which is what
    the RTL's DRBG would have produced by then. :meth:`peek_uniform` and :meth:`advance` let a
    bulk caller (Setup) draw many samples at once and then consume exactly the words it used.
    """

    _BATCH_WORDS = 4096

    def __init__(self, key: bytes):
        self._key = key
        self._buffer: list[int] = []
        self._words = np.zeros(0, dtype=np.uint32)   # _buffer as the stream gave it
        self._buffer_start = 0   # stream index of _buffer[0]
        self._position = 0       # index into _buffer of the next word
        self._mask, self._mask_of = 0, None   # uniform_mask(self._mask_of)
        # For n a power of two every word is a sample (w & (n - 1) < n): n -> the buffer's
        # words masked for it, made at the first such draw, so that an access's draws are one
        # slice.
        self._masked: dict[int, list[int]] = {}

    @property
    def words_drawn(self) -> int:
        return self._buffer_start + self._position

    def stream(self, start: int, count: int) -> np.ndarray:
        """Words ``start .. start + count - 1`` of the stream (big-endian uint32), without
        consuming them: bulk users (Setup, the audit's trace engine) then :meth:`advance`."""
        first_block, end_block = start // 4, -(-(start + count) // 4)
        ctr = AES.new(self._key, AES.MODE_CTR, nonce=b"", initial_value=first_block)
        blocks = ctr.encrypt(bytes(16 * (end_block - first_block)))
        return np.frombuffer(blocks, dtype=">u4")[start - 4 * first_block:][:count]

    def _refill(self) -> None:
        """Generate the next batch of words (the buffer is used up)."""
        start = self.words_drawn
        self._words = self.stream(start, self._BATCH_WORDS)
        self._buffer = self._words.tolist()
        self._buffer_start, self._position = start, 0
        self._masked = {}

    def word(self) -> int:
        if self._position == len(self._buffer):
            self._refill()
        w = self._buffer[self._position]
        self._position += 1
        return w

    def words(self, count: int) -> list[int]:
        return [self.word() for _ in range(count)]

    def uniform(self, n: int) -> int:
        """``U(n)``: draw words until ``w & m < n`` with ``m = uniform_mask(n)``; return it."""
        return self.uniforms(n, 1)[0]

    def uniforms(self, n: int, count: int) -> list[int]:
        """``count`` draws of ``U(n)`` in order (an access's first four in one call)."""
        masked = self._masked.get(n)
        if masked is not None:
            position = self._position
            samples = masked[position:position + count]
            if len(samples) == count:
                self._position = position + count
                return samples
        elif n & (n - 1) == 0 < n and self._position < len(self._buffer):
            self._masked[n] = (self._words & (n - 1)).tolist()
            return self.uniforms(n, count)
        return self._uniforms(n, count)

    def _uniforms(self, n: int, count: int) -> list[int]:
        # The general case, and the words at the buffer's end: the mask of the last n is kept,
        # and the buffer is
        # scanned in place rather than by word() per word, its end found by the IndexError
        # (free in CPython 3.11 until raised).
        if n != self._mask_of:
            self._mask, self._mask_of = uniform_mask(n), n
        mask, buffer, position = self._mask, self._buffer, self._position
        samples: list[int] = []
        while True:
            try:
                sample = buffer[position] & mask
            except IndexError:
                self._position = position
                self._refill()
                buffer, position = self._buffer, 0
                continue
            position += 1
            if sample < n:
                samples.append(sample)
                if len(samples) == count:
                    self._position = position
                    return samples

    def peek_uniform(self, n: int, count: int) -> tuple[list[int], np.ndarray]:
        """The next ``count`` samples of ``U(n)`` without consuming them, and for each the
        number of words consumed once it has been drawn (for :meth:`advance`)."""
        samples, ends = self.peek_uniform_array(n, count)
        return samples.tolist(), ends

    def peek_uniform_array(self, n: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`peek_uniform` with the samples as an int64 array (a Setup's two million)."""
        mask, start, chunk = uniform_mask(n), self.words_drawn, 2 * count + 64
        while True:
            words = self.stream(start, chunk).astype(np.uint32) & mask
            accepted = np.flatnonzero(words < n)[:count]
            if len(accepted) == count:
                return words[accepted].astype(np.int64), accepted + 1
            chunk *= 2

    def advance(self, count: int) -> None:
        """Consume ``count`` words."""
        count = int(count)
        position = self._position + count
        if position <= len(self._buffer):
            self._position = position
        else:
            self._buffer, self._buffer_start, self._position = [], self.words_drawn + count, 0
            self._masked = {}

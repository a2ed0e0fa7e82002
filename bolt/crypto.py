"""Keys, page format and randomness of spec sections 5 and 6, in software.

pycryptodome is the crypto reference. The hot path seals and opens pages with OpenSSL's
AES-GCM (through ``cryptography``), which is an order of magnitude faster per page; the tests
check that both produce identical bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from Crypto.Cipher import AES
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "SALT_BYTES", "MASTER_KEY_BYTES", "Subkeys", "derive_subkeys", "new_salt", "page_nonce",
    "PageCipher", "Drbg", "uniform_mask",
]

MASTER_KEY_BYTES = 16
SALT_BYTES = 15
PAGE_KEY_INDEX, DRBG_KEY_INDEX, INDEX_KEY_INDEX = 1, 2, 3


@dataclass(frozen=True)
class Subkeys:
    page: bytes
    drbg: bytes
    index: bytes


def new_salt() -> bytes:
    return os.urandom(SALT_BYTES)


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


def page_nonce(page: int, counter: int) -> bytes:
    """12-byte GCM nonce: page index (4 bytes BE) ‖ write counter (8 bytes BE)."""
    return page.to_bytes(4, "big") + counter.to_bytes(8, "big")


class PageCipher:
    """AES-128-GCM of whole page plaintexts under the page key, no associated data."""

    def __init__(self, page_key: bytes):
        self._aead = AESGCM(page_key)

    def seal(self, page: int, counter: int, plaintext: bytes) -> bytes:
        """Ciphertext ‖ 16-byte tag."""
        return self._aead.encrypt(page_nonce(page, counter), plaintext, None)

    def open(self, page: int, counter: int, sealed: bytes) -> bytes | None:
        """The plaintext, or ``None`` if the tag does not verify."""
        try:
            return self._aead.decrypt(page_nonce(page, counter), sealed, None)
        except InvalidTag:
            return None


def uniform_mask(n: int) -> int:
    """The smallest ``2^k − 1 >= n − 1`` (spec section 6)."""
    return (1 << max(0, (n - 1).bit_length())) - 1


class Drbg:
    """AES-128-CTR on a 128-bit big-endian counter from 0; each block gives four 32-bit words,
    most significant first (spec section 6).

    Words are generated in batches; :attr:`words_drawn` counts the words consumed, which is what
    the RTL's DRBG would have produced by then.
    """

    _BATCH_BLOCKS = 1024

    def __init__(self, key: bytes):
        self._ctr = AES.new(key, AES.MODE_CTR, nonce=b"", initial_value=0)
        self._buffer: list[int] = []
        self._position = 0
        self.words_drawn = 0

    def _refill(self) -> None:
        stream = self._ctr.encrypt(bytes(16 * self._BATCH_BLOCKS))
        self._buffer = np.frombuffer(stream, dtype=">u4").tolist()
        self._position = 0

    def word(self) -> int:
        if self._position == len(self._buffer):
            self._refill()
        w = self._buffer[self._position]
        self._position += 1
        self.words_drawn += 1
        return w

    def words(self, count: int) -> list[int]:
        return [self.word() for _ in range(count)]

    def uniform(self, n: int) -> int:
        """``U(n)``: draw words until ``w & m < n`` with ``m = uniform_mask(n)``; return it."""
        mask = uniform_mask(n)
        while True:
            sample = self.word() & mask
            if sample < n:
                return sample

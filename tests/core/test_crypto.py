"""Known answers for the DRBG and the page format, computed independently with pycryptodome."""

import os

import numpy as np
from Crypto.Cipher import AES

import bolt
from bolt.crypto import Drbg, PageCipher, derive_subkeys, page_nonce, uniform_mask
from bolt.model.pages import decode_slot

from tests.conftest import MASTER_KEY, SALT, unique_salt


def ecb_counter_words(key: bytes, blocks: int) -> list[int]:
    ecb = AES.new(key, AES.MODE_ECB)
    stream = b"".join(ecb.encrypt(i.to_bytes(16, "big")) for i in range(blocks))
    return [int.from_bytes(stream[i:i + 4], "big") for i in range(0, len(stream), 4)]


def test_drbg_first_block_is_fips_aes_of_zero():
    # AES-128 of the zero block under the zero key (a well-known answer).
    assert Drbg(bytes(16)).words(4) == [0x66E94BD4, 0xEF8A2C3B, 0x884CFA59, 0xCA342B2E]


def test_drbg_words_equal_aes_ecb_of_the_counter():
    key = os.urandom(16)
    assert Drbg(key).words(4 * 3000) == ecb_counter_words(key, 3000)  # crosses a batch


def test_uniform_rejects_by_the_mask_rule():
    key = os.urandom(16)
    for n in (1, 2, 3, 5, 1000, 8192, 6554):
        words = iter(ecb_counter_words(key, 2000))
        drbg = Drbg(key)
        mask = (1 << max(0, (n - 1).bit_length())) - 1
        assert uniform_mask(n) == mask and mask >= n - 1 and (mask + 1) // 2 < max(n, 1)
        for _ in range(500):
            expected = next(w & mask for w in words if w & mask < n)
            assert drbg.uniform(n) == expected


def test_subkeys_are_aes_ecb_of_index_and_salt():
    ecb = AES.new(MASTER_KEY, AES.MODE_ECB)
    keys = derive_subkeys(MASTER_KEY, SALT)
    assert keys.page == ecb.encrypt(b"\x01" + SALT)
    assert keys.drbg == ecb.encrypt(b"\x02" + SALT)
    assert keys.index == ecb.encrypt(b"\x03" + SALT)


def test_fast_gcm_equals_pycryptodome():
    key = os.urandom(16)
    cipher = PageCipher(key)
    for page, counter, size in [(0, 1, 1092), (7, 2**40 + 3, 100), (2**31, 5, 16 * 9)]:
        plaintext = os.urandom(size)
        reference = AES.new(key, AES.MODE_GCM, nonce=page_nonce(page, counter))
        ciphertext, tag = reference.encrypt_and_digest(plaintext)
        assert cipher.seal(page, counter, plaintext) == ciphertext + tag
        assert cipher.open(page, counter, ciphertext + tag) == plaintext
        assert cipher.open(page, counter + 1, ciphertext + tag) is None


def test_host_pages_decrypt_with_pycryptodome_to_the_documented_layout(small_params):
    p = small_params
    items = {b"k%d" % i: b"value-%d" % i for i in range(100)}
    m = bolt.Map.from_items(items, p.capacity, key_size=p.key_size, value_size=p.value_size,
                            load=p.load, hbm_fraction=p.hbm_fraction, master_key=MASTER_KEY,
                            unsafe_test_salt=(salt := unique_salt()))
    page_key = AES.new(MASTER_KEY, AES.MODE_ECB).encrypt(b"\x01" + salt)
    found = {}
    for page in range(p.host_bins):
        raw = m.host_memory[page * p.page_stride:(page + 1) * p.page_stride]
        assert raw[p.page_sealed_bytes:] == bytes(p.page_stride - p.page_sealed_bytes)
        ciphertext, tag = raw[:p.page_plaintext_bytes], raw[p.page_plaintext_bytes:p.page_sealed_bytes]
        gcm = AES.new(page_key, AES.MODE_GCM, nonce=page.to_bytes(4, "big") + (1).to_bytes(8, "big"))
        plaintext = gcm.decrypt_and_verify(ciphertext, tag)
        used = 0
        for s in range(p.slots):
            slot = plaintext[s * p.slot_bytes:(s + 1) * p.slot_bytes]
            assert slot[0] in (0, 1)
            if slot[0] == 0:
                assert slot == bytes(p.slot_bytes)  # empty slots are all zeros
                continue
            assert s == used  # Setup fills the lowest slots first
            used += 1
            key_length = slot[1]
            assert slot[2 + key_length:2 + p.key_size] == bytes(p.key_size - key_length)
            key, value = decode_slot(p, slot)
            found[key] = value
    in_hbm = {k for k in items if m.backend.locate(k)[1] < p.hbm_bins}
    assert found == {k: v for k, v in items.items() if k not in in_hbm}
    assert len(found) > 0 and len(in_hbm) > 0


def test_bulk_draws_equal_one_at_a_time_draws():
    key = os.urandom(16)
    one, bulk = Drbg(key), Drbg(key)
    for n, count in [(6554, 3000), (3, 100), (8192, 5000), (1000, 1)]:
        samples, ends = bulk.peek_uniform(n, count)
        assert samples == [one.uniform(n) for _ in range(count)]
        bulk.advance(ends[-1])
        assert bulk.words_drawn == one.words_drawn
        assert bulk.word() == one.word()


def test_setup_writes_the_pages_that_one_write_per_page_would(small_params):
    # Setup seals and stores its pages in one pass; the host must see what writing each page
    # under counter 1, in page order, gives: the same bytes and the same trace.
    from bolt.model.pages import HostItems, SealedPages, slot_array
    from bolt.trace import Trace
    p = small_params
    pages, slots = [0, 0, 3, p.host_bins - 1], [0, 1, 0, 0]
    host_items = HostItems(np.array(pages), np.array(slots), [b"a", b"bb", b"k" * p.key_size, b""],
                           [b"1", b"", b"v" * p.value_size, b"x"])
    bulk, one_by_one = (SealedPages(p, bytes(range(16)), Trace()) for _ in range(2))
    bulk.setup(host_items)
    for page, plaintext in enumerate(slot_array(p, host_items)):
        one_by_one.write(page, bytearray(plaintext.tobytes()))
    assert bulk.host.snapshot() == one_by_one.host.snapshot()
    assert list(bulk.host.trace) == list(one_by_one.host.trace)
    assert len(bulk.host.trace) == p.host_bins
    assert bulk.counters == one_by_one.counters == [1] * p.host_bins

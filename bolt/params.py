"""The public parameters of a BOLT map and everything derived from them (algorithm §1).

This module is the single place where the algorithm's open choices are made. The reference model,
the RTL generator, the testbenches and the documentation all read :class:`Params`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields
from decimal import Decimal
from functools import cached_property
from fractions import Fraction

from .crypto import MASTER_KEY_BYTES, SALT_BYTES

__all__ = ["Params", "HbmBudget", "PLACEMENTS", "TWO_CHOICE", "POOL"]

#: Host memory is accessed in bursts of 64-byte beats; a page occupies a whole number of beats.
BEAT_BYTES = 64
#: AES-GCM tag bytes appended to every page.
TAG_BYTES = 16
#: Bytes of one slot's header: flag (1) and key length (1), then after the key the value length (2).
SLOT_FLAG_BYTES = 1
SLOT_KEY_LENGTH_BYTES = 1
SLOT_VALUE_LENGTH_BYTES = 2
#: Bytes of the three subkeys and of the Setup salt kept on chip.
KEY_MATERIAL_BYTES = 3 * 16 + 15
#: Client channel frames (algorithm: the sealed client channel): a command's op byte; a response's status and page
#: fields; the key material a Setup sends sealed (master key 16 ‖ salt 15).
FRAME_OP_BYTES = 1
FRAME_STATUS_BYTES = 1
FRAME_PAGE_BYTES = 4
SETUP_KEY_MATERIAL_BYTES = MASTER_KEY_BYTES + SALT_BYTES
#: Placement rules (algorithm §3 and §13): two-choice re-placement of the accessed key (the
#: default), or a trusted pool of recently accessed items whose displaced holder is re-placed.
TWO_CHOICE = "two-choice"
POOL = "pool"
PLACEMENTS = (TWO_CHOICE, POOL)
#: The largest pool: ``U(P)`` filters 32-bit DRBG words (algorithm §6).
MAX_POOL_SIZE = 2**32
#: Bytes of one page write counter (algorithm §5).
COUNTER_BYTES = 8
#: Entries of the index's overflow area (searched in full on every lookup).
INDEX_OVERFLOW_ENTRIES = 64
#: Overflow entries the RTL lookup compares per cycle, a row of its on-chip overflow memory (a
#: power of two dividing the above): 16 rows are scanned well inside the two bucket reads
#: (at least 40 cycles), at about 60 % of the LUTs of 8 rows of 8.
INDEX_OVERFLOW_LANES = 4
#: Most items per index bucket on average when the map is at capacity.
INDEX_AVERAGE_FILL = 4

# -- the largest supported parameters (checked by Params, refused beyond with a ValueError) ------
#: Bins: ``U(M)`` filters 32-bit DRBG words (algorithm §6), and a host page's index (below
#: B <= M) takes 4 bytes of its GCM nonce (algorithm §5), so M may not exceed 2^32.
MAX_BINS = 2**32
#: Trusted memory: every structure sized by :meth:`Params.hbm_budget` must fit the 16 GiB of
#: HBM of the card the design is built for (Alveo U55C). At the default key, value and load
#: sizes this allows N up to 2^27 (10 GiB); the reference model keeps the same structures in
#: Python, so it needs a few times more host RAM than that.
HBM_BYTES = 16 * 2**30


def _whole_number(name: str, value) -> int:
    """``value`` as an int: any integer type (numpy's too), or an integral Fraction, Decimal or
    float; a clear error for anything else."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, Decimal)):
        raise TypeError(f"{name} must be a whole number, not {type(value).__name__}")
    if isinstance(value, numbers.Integral):
        return int(value)
    if not math.isfinite(value) or value != int(value):
        raise ValueError(f"{name} must be a whole number, not {value}")
    return int(value)


def _real_number(name: str, value) -> float:
    """``value`` as a float: any real number type (numpy's, Fraction, Decimal)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, Decimal)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, not {value}")
    return value


def bits_for(n: int) -> int:
    """Bits needed to store the integers ``0 .. n - 1`` (at least one)."""
    return max(1, (n - 1).bit_length())


def _bytes_for_bits(bits: int) -> int:
    return (bits + 7) // 8


@dataclass(frozen=True)
class HbmBudget:
    """Bytes of trusted HBM / on-chip memory each structure takes (algorithm §2)."""

    index: int
    frames: int
    free_list: int
    eviction_buffer: int
    loads: int
    counters: int
    keys: int
    pool: int = 0      #: the trusted pool's P slots (key and value each); 0 for two-choice

    @property
    def total(self) -> int:
        return (self.index + self.frames + self.free_list + self.eviction_buffer + self.loads
                + self.counters + self.keys + self.pool)

    def items(self):
        rows = [("index", self.index), ("value frames", self.frames),
                ("frame free list", self.free_list), ("eviction buffer", self.eviction_buffer),
                ("bin loads", self.loads), ("page write counters", self.counters),
                ("keys and salt", self.keys)]
        if self.pool:
            rows.append(("pool", self.pool))
        return rows + [("total", self.total)]


@dataclass(frozen=True, kw_only=True)
class Params:
    """Public parameters of a BOLT map (algorithm §1) and the quantities derived from them.

    Parameters
    ----------
    capacity : int
        N, the most items the map may hold (at least 4, so that ``log2(log2(N)) >= 0``).
    key_size : int
        Key bytes; shorter keys are zero-padded and their length kept (1 to 255).
    value_size : int
        V, the most value bytes (1 to 65535).
    load : int
        c, the average number of items per bin.
    hbm_fraction : float
        α, the fraction of bins that live in HBM (0 <= α < 1).
    placement : str
        ``"two-choice"`` (the default: the accessed key is re-placed by two-choice, algorithm
        §3) or ``"pool"`` (a trusted pool of recently accessed items; the item it displaces is
        re-placed instead, algorithm §13).
    pool_size : int, optional
        P, the pool's slots, 1 to N (``"pool"`` only; default M, the number of bins).
    """

    capacity: int = 2**16
    key_size: int = 16
    value_size: int = 64
    load: int = 8
    hbm_fraction: float = 0.2
    placement: str = TWO_CHOICE
    pool_size: int | None = None
    # Derived quantities, filled in by __post_init__ so they are computed once.
    bins: int = field(init=False, repr=False)
    hbm_bins: int = field(init=False, repr=False)

    def __post_init__(self):
        for name in ("capacity", "key_size", "value_size", "load"):
            object.__setattr__(self, name, _whole_number(name, getattr(self, name)))
        object.__setattr__(self, "hbm_fraction", _real_number("hbm_fraction", self.hbm_fraction))
        if self.capacity < 4:
            raise ValueError(f"capacity must be at least 4, not {self.capacity}")
        if not 1 <= self.key_size <= 255:
            raise ValueError(f"key_size must be in 1..255 (one length byte), not {self.key_size}")
        if not 1 <= self.value_size <= 65535:
            raise ValueError(f"value_size must be in 1..65535 (two length bytes), not {self.value_size}")
        if self.load < 1:
            raise ValueError(f"load must be at least 1, not {self.load}")
        if not 0 <= self.hbm_fraction < 1:
            raise ValueError(f"hbm_fraction must be in [0, 1), not {self.hbm_fraction}")
        bins = -(-self.capacity // self.load)
        # Choice: K = floor(α·M) is computed on the decimal value the user wrote (0.29 means
        # 29/100, not the nearest binary float), so model, RTL and docs agree on K exactly.
        hbm_bins = math.floor(Fraction(repr(float(self.hbm_fraction))) * bins)
        if bins < 2:
            raise ValueError(f"capacity / load gives {bins} bin; two-choice needs at least 2")
        if bins - hbm_bins < 1:
            raise ValueError("hbm_fraction leaves no host bin")
        if bins > MAX_BINS:
            raise ValueError(f"capacity / load gives {bins} bins; at most {MAX_BINS} (2^32) are "
                             "supported: U(M) draws 32-bit words and a host page's index takes "
                             "4 bytes of its GCM nonce")
        object.__setattr__(self, "bins", bins)
        object.__setattr__(self, "hbm_bins", hbm_bins)
        object.__setattr__(self, "pool_size", self._checked_pool_size())
        hbm = self.hbm_budget().total
        if hbm > HBM_BYTES:
            raise ValueError(f"capacity={self.capacity} with value_size={self.value_size}, "
                             f"key_size={self.key_size} needs {hbm / 2**30:.1f} GiB of trusted "
                             f"HBM; at most {HBM_BYTES // 2**30} GiB (the card's HBM) is supported")

    def _checked_pool_size(self) -> int:
        """P as stored: 0 (no pool) for two-choice; for the pool, M unless given, in 1..N."""
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {', '.join(map(repr, PLACEMENTS))}, "
                             f"not {self.placement!r}")
        if self.placement == TWO_CHOICE:
            if self.pool_size not in (None, 0):
                raise ValueError(f"pool_size={self.pool_size!r} needs placement='pool' "
                                 "(two-choice placement has no pool)")
            return 0
        if self.pool_size is None:
            return self.bins
        size = _whole_number("pool_size", self.pool_size)
        if not 1 <= size <= min(self.capacity, MAX_POOL_SIZE):
            raise ValueError(f"pool_size must be in 1..{min(self.capacity, MAX_POOL_SIZE)} "
                             f"(at most N items can be pooled), not {size}")
        return size

    def arguments(self) -> dict:
        """The constructor arguments (``Params(**p.arguments()) == p``), e.g. for
        ``bolt.Map(**p.arguments())`` or to pass the parameters to a simulation as JSON.

        ``placement`` and ``pool_size`` appear only for the pool: the two-choice design's
        arguments (hence its attestation measurement and RTL build key) stay the five of
        algorithm §1."""
        arguments = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        if self.placement == TWO_CHOICE:
            del arguments["placement"], arguments["pool_size"]
        return arguments

    @cached_property
    def pooled(self) -> bool:
        """True for the trusted-pool placement of algorithm §13."""
        return self.placement == POOL

    # -- bins and pages ------------------------------------------------------------------------

    @cached_property
    def host_bins(self) -> int:
        """B = M − K, the number of host bins, host bin ``b`` being host page ``b − K``."""
        return self.bins - self.hbm_bins

    @cached_property
    def host_fraction(self) -> float:
        """h = B / M, the exact probability that a uniform bin is a host bin."""
        return self.host_bins / self.bins

    @cached_property
    def loglog(self) -> float:
        return math.log2(math.log2(self.capacity))

    @cached_property
    def bin_load_bound(self) -> float:
        """L = c + log2(log2 N) + 1, the two-choice bound on any bin's load."""
        return self.load + self.loglog + 1

    @cached_property
    def slots(self) -> int:
        """Slots per host page: ceil(L)."""
        return math.ceil(self.bin_load_bound)

    @cached_property
    def slot_bytes(self) -> int:
        return (SLOT_FLAG_BYTES + SLOT_KEY_LENGTH_BYTES + self.key_size + SLOT_VALUE_LENGTH_BYTES
                + self.value_size)

    @cached_property
    def page_plaintext_bytes(self) -> int:
        return self.slots * self.slot_bytes

    @cached_property
    def page_sealed_bytes(self) -> int:
        """Ciphertext and tag of one page."""
        return self.page_plaintext_bytes + TAG_BYTES

    @cached_property
    def page_stride(self) -> int:
        """Bytes between consecutive host pages; also the length of every page read and write."""
        return -(-self.page_sealed_bytes // BEAT_BYTES) * BEAT_BYTES

    @cached_property
    def page_beats(self) -> int:
        return self.page_stride // BEAT_BYTES

    @cached_property
    def host_bytes(self) -> int:
        return self.host_bins * self.page_stride

    # -- the client channel's frames (algorithm: the sealed client channel) -----------------------------------------

    @cached_property
    def command_plaintext_bytes(self) -> int:
        """``op ‖ key length ‖ key ‖ value length (2, BE) ‖ value`` (a slot's layout with the op
        byte in place of the flag)."""
        return (FRAME_OP_BYTES + SLOT_KEY_LENGTH_BYTES + self.key_size + SLOT_VALUE_LENGTH_BYTES
                + self.value_size)

    @cached_property
    def command_frame_bytes(self) -> int:
        """Every sealed command frame: ciphertext and tag."""
        return self.command_plaintext_bytes + TAG_BYTES

    @cached_property
    def response_plaintext_bytes(self) -> int:
        """``status ‖ value length (2, BE) ‖ value ‖ page (4, BE)``."""
        return FRAME_STATUS_BYTES + SLOT_VALUE_LENGTH_BYTES + self.value_size + FRAME_PAGE_BYTES

    @cached_property
    def response_frame_bytes(self) -> int:
        """Every sealed response frame: ciphertext and tag."""
        return self.response_plaintext_bytes + TAG_BYTES

    @cached_property
    def setup_key_frames(self) -> int:
        """SETUP_BEGIN frames that carry the master key and salt, in the bytes after the op."""
        return -(-SETUP_KEY_MATERIAL_BYTES // (self.command_plaintext_bytes - FRAME_OP_BYTES))

    # -- analytical bounds (algorithm §1) ----------------------------------------------------

    @cached_property
    def hbm_items_bound(self) -> float:
        """Items in HBM bins: K·c + L·sqrt(K·ln N)."""
        k = self.hbm_bins
        return k * self.load + self.bin_load_bound * math.sqrt(k * math.log(self.capacity))

    @cached_property
    def eviction_bound(self) -> float:
        """Items waiting in the eviction buffer: (1+α)·B/2 + L·sqrt(B·ln N)."""
        b = self.host_bins
        return ((1 + self.hbm_fraction) * b / 2
                + self.bin_load_bound * math.sqrt(b * math.log(self.capacity)))

    @cached_property
    def frames_bound(self) -> float:
        """Value frames in HBM: the sum of the two bounds above."""
        return self.hbm_items_bound + self.eviction_bound

    @cached_property
    def frames(self) -> int:
        """Value frames in the pool. Choice: floor of the frame bound, never more than N.

        The eviction buffer's entries each hold one frame, so the buffer shares this pool and
        has as many entries; the frame pool running dry is the one "frames or eviction buffer
        exhausted" event.
        """
        return min(self.capacity, math.floor(self.frames_bound))

    # -- the hardware index (algorithm §2; the model accounts its bytes) ---------------------

    @cached_property
    def index_bucket_depth(self) -> int:
        """Entries per index bucket: the average fill (4) plus ceil(log2(log2 N)), the
        two-choice excess over the average; the rare excess beyond goes to the overflow area."""
        return INDEX_AVERAGE_FILL + math.ceil(self.loglog)

    @cached_property
    def index_buckets(self) -> int:
        """A power of two, at least N / 4, so the average fill at capacity is at most 4."""
        return 1 << max(0, (self.capacity - 1).bit_length() - 2)

    @cached_property
    def index_overflow_entries(self) -> int:
        return INDEX_OVERFLOW_ENTRIES

    @cached_property
    def index_overflow_lanes(self) -> int:
        """Overflow entries the RTL compares per cycle (a row of its on-chip overflow memory),
        so a lookup scans the overflow area in ``index_overflow_entries / index_overflow_lanes``
        cycles, beside the two bucket reads."""
        return INDEX_OVERFLOW_LANES

    @cached_property
    def index_entries(self) -> int:
        return self.index_buckets * self.index_bucket_depth + self.index_overflow_entries

    # -- field widths shared by the RTL and the byte accounting --------------------------------

    @cached_property
    def bin_bits(self) -> int:
        return bits_for(self.bins)

    @cached_property
    def frame_bits(self) -> int:
        return bits_for(self.frames)

    @cached_property
    def slot_bits(self) -> int:
        return bits_for(self.slots)

    @cached_property
    def load_bits(self) -> int:
        return bits_for(self.slots + 1)

    @cached_property
    def pool_bits(self) -> int:
        """Bits of a pool slot number (0 without a pool)."""
        return bits_for(self.pool_size) if self.pool_size else 0

    @cached_property
    def index_entry_bits(self) -> int:
        """valid (1) + kind (2) + key length (8) + key + bin + frame-or-slot-or-pool-slot."""
        return (1 + 2 + 8 + 8 * self.key_size + self.bin_bits
                + max(self.frame_bits, self.slot_bits, self.pool_bits))

    def hbm_budget(self) -> HbmBudget:
        """Bytes of each trusted structure, sized from the bounds (never from N worst cases)."""
        frame_pointer = _bytes_for_bits(self.frame_bits)
        return HbmBudget(
            index=self.index_entries * _bytes_for_bits(self.index_entry_bits),
            frames=self.frames * (SLOT_VALUE_LENGTH_BYTES + self.value_size),
            free_list=self.frames * frame_pointer,
            # (key length, key, frame, next entry) per entry, plus head and tail per host bin.
            eviction_buffer=(self.frames * (1 + self.key_size + 2 * frame_pointer)
                             + self.host_bins * 2 * frame_pointer),
            loads=self.bins * _bytes_for_bits(self.load_bits),
            counters=self.host_bins * COUNTER_BYTES,
            keys=KEY_MATERIAL_BYTES,
            # A pool slot holds its item whole, in a host slot's format (flag, key length, key,
            # value length, value): the holder's key is needed to re-place it when displaced.
            pool=self.pool_size * self.slot_bytes,
        )

    def table(self) -> list[tuple[str, str]]:
        """Rows of (name, value) describing these parameters, for ``bolt params``."""
        budget = self.hbm_budget()
        rows = [
            ("capacity N", f"{self.capacity}"),
            ("key size", f"{self.key_size} B"),
            ("value size V", f"{self.value_size} B"),
            ("load c", f"{self.load}"),
            ("HBM fraction α", f"{self.hbm_fraction}"),
            ("placement", self.placement + (f", pool of P = {self.pool_size} items"
                                            if self.pooled else "")),
            ("bins M", f"{self.bins}"),
            ("HBM bins K", f"{self.hbm_bins}"),
            ("host bins B", f"{self.host_bins}"),
            ("host fraction h = B/M", f"{self.host_fraction:.6f}"),
            ("slots per page", f"{self.slots}"),
            ("slot bytes", f"{self.slot_bytes}"),
            ("page stride", f"{self.page_stride} B ({self.page_beats} beats)"),
            ("command frame", f"{self.command_frame_bytes} B"),
            ("response frame", f"{self.response_frame_bytes} B"),
            ("bound: bin load", f"{self.bin_load_bound:.2f}"),
            ("bound: items in HBM bins", f"{self.hbm_items_bound:.1f}"),
            ("bound: eviction buffer", f"{self.eviction_bound:.1f}"),
            ("bound: value frames", f"{self.frames_bound:.1f}"),
            ("value frames allocated", f"{self.frames}"),
            ("index", f"{self.index_buckets} buckets x {self.index_bucket_depth}"
                      f" + {self.index_overflow_entries} overflow"),
        ]
        rows += [(f"HBM: {name}", _format_bytes(size)) for name, size in budget.items()]
        rows.append(("host memory", _format_bytes(self.host_bytes)))
        return rows


def _format_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024

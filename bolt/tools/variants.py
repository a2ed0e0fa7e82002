"""Planted variants: the reference model with one realistic bug each, to prove the audit sees.

Each variant is a :class:`~bolt.model.ReferenceAccelerator` (trace-only pages) changed in one
place, the kind of change an optimisation or a hardware shortcut would make. ``bolt audit
--self-check`` runs conformance on each and requires every one to be flagged; they are
reachable only from here, never through :class:`bolt.Map`.

- ``miss_skips_x``: a miss does not touch its dummy bin x (misses touch fewer pages);
- ``sticky_bin``: a re-placement goes to a bin fixed by the key when it has room;
- ``c1_is_y`` (linkage to an earlier draw): the re-placement's first choice is the y just
  touched, so the key's next access reveals this access's y;
- ``choose_before_decrement`` (linkage through loads): the re-placement compares loads before
  x lost the key, the rule algorithm §8 says hides the x-to-x statistic but not the leak;
- ``pending_hit_skips_x`` (churn): a hit on a key still in the eviction buffer skips the touch
  of x, its value being on chip already;
- ``short_key_skips_y`` (key lengths): keys shorter than 4 bytes skip the touch of y;
- ``max_value_skips_y`` (value lengths): a PUT of a value of exactly V bytes skips y;
- ``setup_skips_empty_pages`` (Setup): Setup writes only the pages that hold an item.
"""

from __future__ import annotations

import hashlib

from ..model import PlainPages, ReferenceAccelerator
from ..protocol import PENDING, Op
from ..trace import WRITE

__all__ = ["VARIANTS", "make_variant"]


class _DrawLog:
    """Wraps a DRBG: remembers this access's draws and can substitute one of them."""

    def __init__(self, drbg):
        self._drbg = drbg
        self.draws: list[int] = []
        self.substitute = None    # function(draw index, draws so far) -> value or None

    def uniform(self, n):
        value = None
        if self.substitute is not None:
            value = self.substitute(len(self.draws), self.draws)
        if value is None:
            value = self._drbg.uniform(n)
        self.draws.append(value)
        return value

    def uniforms(self, n, count):
        return [self.uniform(n) for _ in range(count)]

    def __getattr__(self, name):
        return getattr(self._drbg, name)


class _Variant(ReferenceAccelerator):
    """A reference model (trace-only) whose accesses can see their own draws."""

    def __init__(self, params, *, master_key=None, salt=None, items=()):
        super().__init__(params, master_key=master_key, salt=salt, items=items, crypto=False)

    def setup(self, items, **options):
        super().setup(items, **options)
        self._drbg = _DrawLog(self._drbg)

    def access(self, op, key, value=None):
        self._drbg.draws.clear()
        self._drbg.substitute = None
        self._skip = None                 # a bin whose touch this access skips (once)
        self.before(op, key, value)
        return super().access(op, key, value)

    def before(self, op, key, value) -> None:
        """Decide, before the access runs, what this variant changes in it."""

    def skip_draw(self, index: int) -> None:
        """Skip the (first) touch of the bin drawn as draw ``index`` (0: r, 1: y)."""
        def substitute(count, draws):
            if count == index + 1:
                self._skip = draws[index]
                self._drbg.substitute = None
            return None
        self._drbg.substitute = substitute

    def _touches(self, bin_):
        if bin_ == self._skip:
            self._skip = None
            return False
        return True


class _MissSkipsX(_Variant):
    def before(self, op, key, value):
        if key not in self._state.index:
            self.skip_draw(0)             # r, the miss's x


class _StickyBin(_Variant):
    def _place(self, key, value, nb):
        p = self.params
        sticky = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") % p.bins
        if self._state.loads[sticky] < p.slots - 1:
            nb = sticky
        super()._place(key, value, nb)


class _C1IsY(_Variant):
    def before(self, op, key, value):
        self._drbg.substitute = lambda index, draws: draws[1] if index == 2 else None


class _ChooseBeforeDecrement(_Variant):
    def before(self, op, key, value):
        location = self._state.index.get(key)
        self._x = location[1] if location is not None else None

    def _place(self, key, value, nb):
        draws, loads = self._drbg.draws, self._state.loads
        c1, c2 = draws[2], draws[-1]
        before = [loads[c] + (c == self._x) for c in (c1, c2)]
        super()._place(key, value, c1 if before[0] <= before[1] else c2)


class _PendingHitSkipsX(_Variant):
    def before(self, op, key, value):
        location = self._state.index.get(key)
        if location is not None and location[0] == PENDING:
            self._skip = location[1]


class _ShortKeySkipsY(_Variant):
    def before(self, op, key, value):
        if len(key) < 4:
            self.skip_draw(1)             # y


class _MaxValueSkipsY(_Variant):
    def before(self, op, key, value):
        if op == Op.PUT and len(value) == self.params.value_size:
            self.skip_draw(1)


class _SkipEmptyPages(PlainPages):
    def _record_setup_writes(self, host_items):
        p = self.params
        for page in sorted(set(host_items.pages.tolist())):
            self.trace.record(WRITE, page * p.page_stride, p.page_stride)


class _SetupSkipsEmptyPages(_Variant):
    def setup(self, items, **options):
        self._pages_class = _SkipEmptyPages
        super().setup(items, **options)


#: name -> variant class (constructor as the reference model's, without ``crypto``).
VARIANTS = {
    "miss_skips_x": _MissSkipsX,
    "sticky_bin": _StickyBin,
    "c1_is_y": _C1IsY,
    "choose_before_decrement": _ChooseBeforeDecrement,
    "pending_hit_skips_x": _PendingHitSkipsX,
    "short_key_skips_y": _ShortKeySkipsY,
    "max_value_skips_y": _MaxValueSkipsY,
    "setup_skips_empty_pages": _SetupSkipsEmptyPages,
}


def make_variant(name: str):
    """A design factory ``(params, master_key, salt) -> accelerator`` for variant ``name``."""
    try:
        cls = VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown variant {name!r}; choose from {sorted(VARIANTS)}") from None
    return lambda params, *, master_key, salt: cls(params, master_key=master_key, salt=salt)

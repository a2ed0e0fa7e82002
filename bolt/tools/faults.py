"""Fault campaign: inject host tampering and mid-access exceptions into the reference model, and
check after every fault that no wrong value came back and no item was lost.

Each fault is counted as

- **detected**: an access reported it (``IntegrityError`` naming the faulted page, or the
  exception itself) and returned no value;
- **harmless**: nothing the map returns could change, for a reason stated in :data:`KINDS`;
- **silent**: an access returned a wrong value, or the map's content no longer equals the dict
  oracle. The campaign must count none.

An injected exception counts as detected when it reaches the caller with the map's content as
before, and its whole trusted state and host bytes as before if no page had been written yet;
anything else is silent. ``items lost`` counts keys of the oracle that the map no longer holds
(or holds with another value) once the fault is repaired. After every fault the whole map is compared with the oracle
by :func:`contents`, which reads the trusted state and opens every page directly.
"""

from __future__ import annotations

import contextlib
import random
from collections import Counter
from dataclasses import dataclass, field
from unittest import mock

from ..crypto import PageCipher
from ..map import Map
from ..model import pages as pages_module
from ..model.accelerator import ReferenceAccelerator
from ..model.pages import decode_slot
from ..params import Params
from ..protocol import HBM, HOST, PENDING, POOL, Op, Status
from ..trace import WRITE, HostMemory

__all__ = ["KINDS", "Tally", "InjectedFault", "snapshot", "contents", "run_kind", "campaign",
           "nonce_check"]

#: Fault kinds, each with what it does and (where it can be harmless) why.
KINDS = {
    "ciphertext bit flip": "one bit of a page's ciphertext flipped",
    "tag bit flip": "one bit of a page's 16-byte GCM tag flipped",
    "padding bit flip": "one bit of the zero padding after a page's tag flipped; harmless: the "
                        "padding is outside the sealed bytes, never decrypted, and the page's "
                        "next write rewrites it as zeros",
    "swapped pages": "two host pages exchanged",
    "replayed page": "a page replaced by a copy of itself from an earlier write",
    "truncated store": "the host store cut short inside the last page (its reads then fail)",
    "extended store": "bytes appended to the host store; harmless: the accelerator addresses "
                      "only the B pages, never beyond",
    "exception mid-access": "an exception raised at one call an access makes to its DRBG, "
                            "index, page cipher or host store",
}

#: The campaign's map: 24 host pages, so that every page is touched every few accesses (its
#: pages have zero padding after the tag, for the padding faults).
CAMPAIGN_PARAMS = Params(capacity=128, key_size=8, value_size=16, load=4, hbm_fraction=0.25)


class InjectedFault(Exception):
    """Raised by the campaign inside an access (never by the map itself)."""


@dataclass
class Tally:
    """Outcome counts of one fault kind."""

    faults: int = 0
    detected: int = 0
    harmless: int = 0
    silent: int = 0
    accesses: int = 0
    notes: Counter = field(default_factory=Counter)
    lost_keys: set = field(default_factory=set)

    @property
    def lost(self) -> int:
        """Distinct oracle keys the map failed to hold with their value after some fault."""
        return len(self.lost_keys)


# -- reading the model's state directly (no access, no trace) ---------------------------------

def snapshot(accelerator: ReferenceAccelerator) -> tuple:
    """Every part of the trusted state and the host bytes, as comparable values."""
    state = accelerator._state
    host = _unwrapped(state.pages.host)
    return (dict(state.index), list(state.frames), list(state.free_frames),
            [list(queue) for queue in state.pending], list(state.loads),
            list(state.pages.counters), host.snapshot() if host is not None else None,
            list(state.pool))


def contents(accelerator: ReferenceAccelerator) -> dict[bytes, bytes]:
    """The map's content as its trusted state and host pages hold it, each item read from
    where the index places it; checks the state's invariants on the way (AssertionError)."""
    state, p = accelerator._state, accelerator.params
    k = p.hbm_bins
    pages, opened = state.pages, {}
    cipher, host = _unwrapped(pages._cipher), _unwrapped(pages.host)
    loads = [0] * p.bins
    used_frames = []
    result = {}
    for key, (kind, bin_, where) in state.index.items():
        if kind == POOL:
            assert state.pool[where] is not None and state.pool[where][0] == key, \
                f"pool slot {where} does not hold {key!r}"
            result[key] = state.pool[where][1]
            continue
        loads[bin_] += 1
        if kind == HOST:
            if bin_ not in opened:
                page = bin_ - k
                raw = bytes(host[page * p.page_stride:
                                       page * p.page_stride + p.page_sealed_bytes])
                opened[bin_] = cipher.open(page, pages.counters[page], raw)
            plaintext = opened[bin_]
            assert plaintext is not None, f"page {bin_ - k} of {key!r} does not verify"
            slot = decode_slot(p, plaintext[where * p.slot_bytes:(where + 1) * p.slot_bytes])
            assert slot is not None and slot[0] == key, f"slot {where} does not hold {key!r}"
            result[key] = slot[1]
        else:
            assert (kind == HBM) == (bin_ < k), f"{key!r}: kind {kind} in bin {bin_}"
            if kind == PENDING:
                assert state.pending[bin_ - k].count((key, where)) == 1, f"{key!r} not pending"
            used_frames.append(where)
            result[key] = state.frames[where]
    assert loads == state.loads, "bin loads disagree with the index"
    assert sum(entry is not None for entry in state.pool) == sum(
        kind == POOL for kind, _, _ in state.index.values()), "pool slots disagree with the index"
    pending = [entry for queue in state.pending for entry in queue]
    assert len(pending) == sum(1 for kind, _, _ in state.index.values() if kind == PENDING)
    assert sorted(used_frames + state.free_frames) == list(range(p.frames)), "frames leaked"
    return result


def _unwrapped(part):
    return part._inner if isinstance(part, _Failing) else part


# -- fault injection ------------------------------------------------------------------------

class _Failing:
    """Stands in for one of the accelerator's parts; every call of a method in ``methods``
    counts one step, and the step numbered ``fail_at`` raises :class:`InjectedFault`."""

    def __init__(self, inner, methods, steps):
        self._inner, self._methods, self._steps = inner, methods, steps

    def __getattr__(self, name):
        attribute = getattr(self._inner, name)
        if name not in self._methods:
            return attribute

        def step(*args, **kwargs):
            self._steps.step(f"{type(self._inner).__name__}.{name}")
            return attribute(*args, **kwargs)
        return step


class _FailingIndex(dict):
    def get(self, *args):
        self.steps.step("index.get")
        return super().get(*args)


class _Steps:
    def __init__(self):
        self.count, self.fail_at, self.names = 0, None, []

    def step(self, name):
        self.names.append(name)
        self.count += 1
        if self.count == self.fail_at:
            raise InjectedFault(f"injected at step {self.count} ({name})")


def _instrument(accelerator) -> _Steps:
    """Route the accelerator's DRBG, index, page cipher and host store through step counters."""
    steps = _Steps()
    state = accelerator._state
    accelerator._drbg = _Failing(accelerator._drbg, {"uniform", "uniforms"}, steps)
    index = _FailingIndex(state.index)
    index.steps = steps
    state.index = index
    state.pages._cipher = _Failing(state.pages._cipher, {"seal", "open"}, steps)
    state.pages.host = _Failing(state.pages.host, {"read_in_place", "write_in_place"}, steps)
    return steps


# -- the campaign -----------------------------------------------------------------------------

class _Run:
    """One map, its dict oracle and the random operations of the campaign."""

    def __init__(self, params: Params, seed: int):
        self.params, self.rng = params, random.Random(seed)
        universe = params.capacity
        self.keys = [b"k%d" % i for i in range(universe)]
        self.oracle = {key: self._value() for key in self.rng.sample(self.keys, universe // 2)}
        self.acc = ReferenceAccelerator(params, items=self.oracle.items())
        self.accesses = 0

    def _value(self) -> bytes:
        return bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(
            self.params.value_size + 1)))

    def operation(self):
        key = self.rng.choice(self.keys)
        op = self.rng.choice((Op.GET, Op.GET, Op.PUT, Op.DELETE))
        if op == Op.PUT and key not in self.oracle and len(self.oracle) >= self.params.capacity:
            op = Op.GET
        return op, key, self._value() if op == Op.PUT else None

    def apply(self, op, key, value) -> object:
        """Run one access; check its answer against the oracle; return the Response."""
        self.accesses += 1
        response = self.acc.access(op, key, value)
        if response.status in (Status.FOUND, Status.ABSENT):
            expected = self.oracle.get(key)      # GET: the value; PUT, DELETE: the old one
            if (response.status == Status.FOUND) != (expected is not None) or \
                    response.value != expected:
                raise _Silent(f"{op.name} {key!r}: {response} but the oracle holds {expected!r}")
            if op == Op.PUT:
                self.oracle[key] = value
            elif op == Op.DELETE:
                self.oracle.pop(key, None)
        return response

    def lost(self) -> set[bytes]:
        """Oracle keys the map does not hold with their value (and keys it holds extra)."""
        held = contents(self.acc)
        return {key for key, value in self.oracle.items() if held.get(key) != value} | (
            held.keys() - self.oracle.keys())

    def page_bytes(self, page: int) -> slice:
        stride = self.params.page_stride
        return slice(page * stride, (page + 1) * stride)


class _Silent(Exception):
    pass


def _host_fault(run: _Run, kind: str, tally: Tally, history: dict[int, list[bytes]]) -> None:
    """Apply one host-memory fault, access until it is reported or shown harmless, repair."""
    p, rng, host = run.params, run.rng, run.acc.host_memory
    pages = p.host_bins
    faulted: set[int] = set()
    padding: set[int] = set()          # pages whose padding alone was flipped
    original = host.snapshot()
    if kind in ("ciphertext bit flip", "tag bit flip", "padding bit flip"):
        page = rng.randrange(pages)
        offset = {"ciphertext bit flip": (0, p.page_plaintext_bytes),
                  "tag bit flip": (p.page_plaintext_bytes, p.page_sealed_bytes),
                  "padding bit flip": (p.page_sealed_bytes, p.page_stride)}[kind]
        offset = rng.randrange(*offset)
        host[page * p.page_stride + offset] ^= 1 << rng.randrange(8)
        (faulted if offset < p.page_sealed_bytes else padding).add(page)
    elif kind == "swapped pages":
        a, b = rng.sample(range(pages), 2)
        host[run.page_bytes(a)], host[run.page_bytes(b)] = (original[run.page_bytes(b)],
                                                          original[run.page_bytes(a)])
        faulted |= {a, b}
    elif kind == "replayed page":
        candidates = [page for page in range(pages) if len(history[page]) > 1]
        if not candidates:
            for _ in range(20):
                run.apply(*run.operation())
            return _host_fault(run, kind, tally, _history(run, history))
        page = rng.choice(candidates)
        host[run.page_bytes(page)] = rng.choice(history[page][:-1])
        faulted.add(page)
    tally.faults += 1
    for _ in range(64):
        op, key, value = run.operation()
        start = len(run.acc.trace)
        try:
            response = run.apply(op, key, value)
        except _Silent as error:
            tally.silent += 1
            tally.notes[str(error)[:80]] += 1
            break
        touched = {e.address // p.page_stride for e in run.acc.trace[start:]}
        if response.status == Status.INTEGRITY:
            assert response.page in faulted, (kind, response, faulted)
            tally.detected += 1
            break
        if touched & faulted:
            tally.silent += 1          # a faulted page verified
            tally.notes[f"{kind}: a faulted page verified"] += 1
            break
        if touched & padding:
            tally.harmless += 1        # read past (not sealed) and rewritten as zeros
            break
    else:
        tally.faults -= 1              # never reached: not counted
        tally.notes["fault never reached (not counted)"] += 1
    # Repair: a failed touch changed neither the page nor its counter, so the host's own bytes
    # from before the fault verify again (pages written since are kept).
    for page in faulted:
        host[run.page_bytes(page)] = original[run.page_bytes(page)]
    tally.lost_keys |= run.lost()
    _history(run, history)


def _history(run: _Run, history: dict[int, list[bytes]]) -> dict[int, list[bytes]]:
    """Remember each page's bytes whenever they change (for replays)."""
    host = run.acc.host_memory
    for page in range(run.params.host_bins):
        current = host[run.page_bytes(page)]
        if not history[page] or history[page][-1] != current:
            history[page] = (history[page] + [bytes(current)])[-4:]
    return history


def _store_fault(run: _Run, kind: str, tally: Tally) -> None:
    """Swap in a host store one beat shorter or longer, access a while, restore it."""
    p, pages = run.params, run.acc._state.pages
    store = pages.host
    size = len(store) + (64 if kind == "extended store" else -run.rng.randrange(1, p.page_stride))
    changed = HostMemory(size, store.trace)
    changed[:min(size, len(store))] = store[:min(size, len(store))]
    pages.host = changed
    tally.faults += 1
    outcome = None
    for _ in range(32):
        op, key, value = run.operation()
        try:
            run.apply(op, key, value)
        except IndexError:
            outcome = "detected"
            break
        except _Silent as error:
            outcome = "silent"
            tally.notes[str(error)[:80]] += 1
            break
    keep = min(size, len(store))
    store[:keep] = changed[:keep]
    pages.host = store
    if outcome is None:
        outcome = "harmless" if kind == "extended store" else "not reached"
    if outcome == "not reached":
        tally.faults -= 1
        tally.notes["the cut page was never touched (not counted)"] += 1
    else:
        setattr(tally, outcome, getattr(tally, outcome) + 1)
    tally.lost_keys |= run.lost()


def _exception_fault(run: _Run, tally: Tally, steps: _Steps) -> None:
    """Raise at one step of one access; the access must leave the content as it was, and
    everything else too if it had not written a page yet."""
    op, key, value = run.operation()
    steps.count, steps.fail_at, steps.names = 0, None, []
    # A step number past the access's last step injects nothing (the access then counts as
    # an ordinary one): 4 or more draws, 1 lookup, and read, open, seal, write per touch.
    before = snapshot(run.acc)
    start = len(run.acc.trace)
    steps.fail_at = run.rng.randrange(1, 14)
    try:
        run.apply(op, key, value)
        steps.fail_at = None
        return                         # the access made fewer steps: not a fault
    except InjectedFault:
        pass
    except _Silent as error:
        tally.faults += 1
        tally.silent += 1
        tally.notes[str(error)[:80]] += 1
        return
    finally:
        steps.fail_at = None
    tally.faults += 1
    tally.notes[steps.names[-1]] += 1
    wrote = any(event.kind == WRITE for event in run.acc.trace[start:])
    if not wrote and snapshot(run.acc) != before:
        tally.silent += 1
        tally.notes["state changed before any page write"] += 1
    else:
        tally.detected += 1
    tally.lost_keys |= run.lost()


def run_kind(kind: str, faults: int, *, seed: int = 0, params: Params = CAMPAIGN_PARAMS,
             ops_between: int = 2) -> Tally:
    """Inject ``faults`` faults of ``kind`` into one map, with a few ordinary accesses
    between them; return the tally."""
    if kind not in KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; choose from {sorted(KINDS)}")
    run = _Run(params, seed)
    tally = Tally()
    history = _history(run, {page: [] for page in range(params.host_bins)})
    steps = _instrument(run.acc) if kind == "exception mid-access" else None
    while tally.faults < faults:
        for _ in range(ops_between):
            run.apply(*run.operation())
        if kind == "exception mid-access":
            _exception_fault(run, tally, steps)
        elif kind in ("truncated store", "extended store"):
            _store_fault(run, kind, tally)
        else:
            _host_fault(run, kind, tally, history)
    tally.accesses = run.accesses
    return tally


def campaign(faults_per_kind: int, *, seed: int = 0, kinds=None,
             params: Params = CAMPAIGN_PARAMS) -> dict[str, Tally]:
    """:func:`run_kind` for every kind (or ``kinds``)."""
    return {kind: run_kind(kind, faults_per_kind, seed=seed + n, params=params)
            for n, kind in enumerate(kinds or KINDS)}


# -- nonce uniqueness -------------------------------------------------------------------------

@dataclass
class NonceCount:
    seals: int = 0
    repeats: int = 0
    page_keys: int = 0


@contextlib.contextmanager
def recorded_nonces():
    """Count every page sealing of the reference model in the block, and every (page key,
    nonce) pair that was sealed before."""
    count, seen, key_ids = NonceCount(), set(), {}

    class Recording(PageCipher):
        def __init__(self, page_key):
            super().__init__(page_key)
            self._key_id = key_ids.setdefault(page_key, len(key_ids))

        def seal(self, page, counter, plaintext, into=None):
            nonce = (self._key_id << 96) | (page << 64) | counter
            count.seals += 1
            count.repeats += nonce in seen
            seen.add(nonce)
            return super().seal(page, counter, plaintext, into)

        def seal_pages(self, counter, plaintexts, into=None):   # Setup's pages, each counted
            return [self.seal(page, counter, plaintext, None if into is None else into[page])
                    for page, plaintext in enumerate(plaintexts)]

    with mock.patch.object(pages_module, "PageCipher", Recording):
        yield count
    count.page_keys = len(key_ids)


def nonce_check(*, maps: int, setups: int, accesses: int, master_key: bytes = bytes(16),
                seed: int = 0) -> NonceCount:
    """``maps`` maps under one master key, each set up ``setups`` times (``Map.load``, a fresh
    salt each time) with ``accesses`` random accesses after each Setup; count the seals and any
    repeated (page key, nonce) pair."""
    rng, p = random.Random(seed), CAMPAIGN_PARAMS
    with recorded_nonces() as count:
        for _ in range(maps):
            m = Map(**p.arguments(), master_key=master_key)
            for _ in range(setups):
                m.load({b"k%d" % rng.randrange(p.capacity): b"v" for _ in range(p.capacity // 2)})
                for _ in range(accesses):
                    key = b"k%d" % rng.randrange(p.capacity)
                    if rng.random() < 0.5:
                        m.get(key)
                    elif len(m) < p.capacity:
                        m[key] = b"w"
    return count

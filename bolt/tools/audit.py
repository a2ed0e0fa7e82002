"""Trace-leakage audit: does the host trace tell workloads apart? (GitHub issue 6, algorithm §8)

:func:`audit` runs workloads of equal length (:mod:`bolt.tools.workloads`) on a backend, records
their host traces, turns each trace into per-operation features, and tests them:

- **touch law** (chi-square, per workload): the number of pages an op touches is 0, 1 or 2 with
  probabilities (1-h)^2, 2h(1-h), h^2, h = B/M the *exact* host-bin fraction (algorithm §3);
- **page uniformity** (chi-square, per workload): touched pages are uniform over the B pages;
- **Welch t-tests** (dudect style, flagged at |t| > 4.5) on each feature, between pairs of
  workloads and between every workload and the *ideal simulator* (x and y independent uniform
  bins: the trace an oblivious map would give);
- **trace shape**: every op is 0, 1 or 2 (read, write) pairs of one whole page.

Features, from the trace alone (what the adversary sees):
``touches`` (pages touched by op t), ``page`` (index of each touched page), ``distance``
(|page difference| between consecutive touches), ``repeat_next`` / ``repeat_next2`` (a page of
op t is touched again by op t+1 / t+2), ``x_repeat`` (for consecutive ops that both touch two
pages, whose first page is therefore bin x: the same first page; the "revealed bin repeats" of
algorithm §8).

Every test reports its statistic, threshold, sample size, effect size, the smallest effect the
sample could have detected (80 % power at the threshold), and an estimate of the bits leaked per
operation, and says when a pass only means "too small a sample to see it".

Expectations are declared here, once, from the algorithm and small exploratory runs (see
``docs/audit.md``): the design leaks through load-dependent placement revealed by the next
access (algorithm §8). That leak shows in the ``SECTION8_FEATURES`` of any workload that
re-places present keys, and in every feature of the ``SECTION8_WORKLOADS`` (which re-access a
single item while the other loads stay frozen). Tests in that class are *measured* and reported as
the known leak, never counted as a pass; every other test must pass, or the audit fails.

A deliberately leaky variant (``variant="miss_skips_x"``: a miss does not touch bin x;
``"sticky_bin"``: a re-placement goes to a bin fixed by the key) is reachable only through
``audit(..., variant=...)``, ``bolt audit --self-check`` and the tests, and must be flagged.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass

import numpy as np

from ..model import ReferenceAccelerator
from ..params import Params
from ..protocol import Op, Status
from ..trace import READ, WRITE
from .workloads import WORKLOADS, make_workload

__all__ = ["audit", "AuditError", "trace_touches", "features", "ideal_touches",
           "touch_law_test", "page_uniformity_test", "welch_test", "LEAKY_VARIANTS",
           "DEFAULT_PAIRS", "FEATURES", "T_THRESHOLD", "P_THRESHOLD", "write_report"]

#: dudect's threshold on Welch's |t|.
T_THRESHOLD = 4.5
#: Chi-square tests flag at p below this (about the two-sided tail of |z| > 4.4).
P_THRESHOLD = 1e-5
#: Power at which the smallest detectable effect is stated.
POWER = 0.8

FEATURES = ("touches", "page", "distance", "repeat_next", "repeat_next2", "x_repeat")
#: Features through which the section 8 leak shows: a revealed bin is more (same key again)
#: or less (another present key) likely to be revealed again soon, so the repeat features move
#: and the long-run page counts are more even than independent touches give (page_evenness).
SECTION8_FEATURES = frozenset({"repeat_next", "repeat_next2", "x_repeat", "page_evenness"})
#: Workloads that access the same key again soon: its bins cluster, so the touched-page counts
#: are *over*-dispersed (page_uniformity's upper tail) by the section 8 leak.
SECTION8_REACCESS_WORKLOADS = frozenset({"same_key_twice"})
#: The documented size of the section 8 leak: the revealed bin repeats for the same key at most
#: this many times chance, and for distinct present keys at least 1 / this. A measured ratio
#: whose 95 % interval lies beyond is a leak larger than the known one: the audit fails.
SECTION8_RATIO_BUDGET = 2.0
#: Workloads that re-access one item while every other load stays frozen: its re-placement
#: keeps following the (frozen) least-loaded bins, so every feature may show the section 8 leak
#: (its touched pages are not uniform and, when those bins are mostly HBM or mostly host, its
#: touch law drifts). Measured on small runs first, see docs/audit.md.
SECTION8_WORKLOADS = frozenset({"hot_key"})
#: Workloads none of whose ops re-places a present key: the section 8 leak cannot appear.
NO_REPLACEMENT_WORKLOADS = frozenset({"get_misses", "ideal"})

#: Pairs of workloads compared by Welch t-tests (besides each one against the ideal).
DEFAULT_PAIRS = (
    ("uniform", "hot_key"),
    ("uniform", "scan"),
    ("get_hits", "put_hits"),
    ("get_hits", "get_misses"),
    ("get_hits", "deletes"),
    ("uniform", "get_misses"),
    ("same_key_twice", "get_hits"),   # the open point of algorithm §8
    ("hot_key", "get_misses"),        # algorithm §8's headline pair
)


class AuditError(RuntimeError):
    """The audit could not run (for example: the RTL backend is not available)."""


# -- leaky variants: for the self-check and the tests only -------------------------------------

class _RecordingDrbg:
    """Wraps a DRBG and remembers the draws of the current access (the first is r)."""

    def __init__(self, drbg):
        self._drbg = drbg
        self.draws: list[int] = []

    def uniform(self, n):
        value = self._drbg.uniform(n)
        self.draws.append(value)
        return value

    def __getattr__(self, name):
        return getattr(self._drbg, name)


class _MissSkipsX(ReferenceAccelerator):
    """LEAKY on purpose: a miss does not touch bin x (= r), so misses touch fewer pages."""

    def setup(self, items, *, salt=None):
        super().setup(items, salt=salt)
        self._drbg = _RecordingDrbg(self._drbg)

    def access(self, op, key, value=None):
        self._drbg.draws.clear()
        self._skip_x = key not in self._state.index
        return super().access(op, key, value)

    def _touch(self, bin_, take):
        if self._skip_x and self._drbg.draws and bin_ == self._drbg.draws[0]:
            self._skip_x = False          # only x's touch is skipped, never y's
            return None
        return super()._touch(bin_, take)


class _StickyBin(ReferenceAccelerator):
    """LEAKY on purpose: a re-placement goes to a bin fixed by the key (when it has room)."""

    def _place(self, key, value, nb):
        p = self.params
        sticky = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") % p.bins
        if self._state.loads[sticky] < p.slots - 1:
            nb = sticky
        super()._place(key, value, nb)


#: name -> ReferenceAccelerator subclass that leaks on purpose.
LEAKY_VARIANTS = {"miss_skips_x": _MissSkipsX, "sticky_bin": _StickyBin}


def make_backend(params: Params, *, backend: str = "reference", crypto: bool = False,
                 variant: str | None = None, master_key: bytes, salt: bytes):
    """A fresh accelerator: the reference model (trace-only unless ``crypto``), a leaky
    variant of it, or the RTL simulation."""
    if variant is not None:
        if backend != "reference":
            raise AuditError("leaky variants exist only for the reference model")
        return LEAKY_VARIANTS[variant](params, master_key=master_key, salt=salt, crypto=crypto)
    if backend == "reference":
        return ReferenceAccelerator(params, master_key=master_key, salt=salt, crypto=crypto)
    if backend == "rtl":
        from ..map import BACKENDS
        try:
            return BACKENDS["rtl"](params, master_key=master_key, salt=salt)
        except ImportError as error:
            raise AuditError(f"the RTL backend is not available: {error}") from error
    raise AuditError(f"unknown backend {backend!r}; choose reference or rtl")


# -- traces to features -------------------------------------------------------------------------

@dataclass
class Touches:
    """The pages each op touched, from a trace: ``pages[t] = (first, second)``, -1 if none."""

    counts: np.ndarray        # int8, pages touched by op t (0, 1 or 2 when the shape is right)
    pages: np.ndarray         # int64 (T, 2)
    shape_violations: int     # ops whose events are not (read p, write p) pairs of whole pages


def trace_touches(trace, params: Params) -> Touches:
    stride = params.page_stride
    ops = trace.ops()
    counts = np.zeros(len(ops), np.int8)
    pages = np.full((len(ops), 2), -1, np.int64)
    violations = 0
    for t, events in enumerate(ops):
        n = len(events) // 2
        ok = len(events) % 2 == 0 and n <= 2
        touched = []
        for i in range(0, len(events) - 1, 2):
            read, write = events[i], events[i + 1]
            ok = ok and (read.kind == READ and write.kind == WRITE
                         and read.address == write.address and read.length == stride
                         and write.length == stride and read.address % stride == 0)
            touched.append(read.address // stride)
        violations += not ok
        counts[t] = min(len(touched), 2)
        pages[t, :counts[t]] = touched[:2]
    return Touches(counts, pages, violations)


def ideal_touches(params: Params, length: int, seed: int) -> Touches:
    """The ideal simulator: x and y independent uniform bins, host bins touched in order."""
    rng = np.random.default_rng([seed, 0x1DEA1])
    k = params.hbm_bins
    bins = rng.integers(0, params.bins, size=(length, 2))
    host = bins >= k
    counts = host.sum(axis=1).astype(np.int8)
    pages = np.full((length, 2), -1, np.int64)
    first = np.where(host[:, 0], bins[:, 0], bins[:, 1])
    pages[counts >= 1, 0] = first[counts >= 1] - k
    pages[counts == 2, 1] = bins[counts == 2, 1] - k
    return Touches(counts, pages, 0)


def _shared(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether page sets a[t] and b[t] (rows of two, -1 = none) intersect."""
    return (((a[:, 0] >= 0) & ((a[:, 0] == b[:, 0]) | (a[:, 0] == b[:, 1])))
            | ((a[:, 1] >= 0) & ((a[:, 1] == b[:, 0]) | (a[:, 1] == b[:, 1]))))


def features(touches: Touches) -> dict[str, np.ndarray]:
    """Per-op (or per-touch) samples of every feature in :data:`FEATURES`."""
    counts, pages = touches.counts, touches.pages
    flat = pages[pages >= 0]            # row-major: op order, x's page before y's
    two = counts == 2
    both = two[:-1] & two[1:]
    return {
        "touches": counts.astype(np.int64),
        "page": flat,
        "distance": np.abs(np.diff(flat)),
        "repeat_next": _shared(pages[:-1], pages[1:]).astype(np.int64),
        "repeat_next2": _shared(pages[:-2], pages[2:]).astype(np.int64),
        "x_repeat": (pages[:-1, 0][both] == pages[1:, 0][both]).astype(np.int64),
    }


# -- information estimates ------------------------------------------------------------------------

def _entropy_mm(counts: np.ndarray) -> float:
    """Miller-Madow bias-corrected plug-in entropy, in nats."""
    n = counts.sum()
    if n == 0:
        return 0.0
    q = counts[counts > 0] / n
    return float(-(q * np.log(q)).sum() + (len(q) - 1) / (2 * n))


def _mutual_information_bits(a: np.ndarray, b: np.ndarray) -> float:
    """I(label; value) in bits for a label equally likely a or b, the values discrete:
    bias-corrected plug-in estimate, clipped at 0."""
    if len(a) == 0 or len(b) == 0:
        return 0.0
    top = int(max(a.max(), b.max())) + 1
    ca = np.bincount(a, minlength=top).astype(float)
    cb = np.bincount(b, minlength=top).astype(float)
    mix = ca / ca.sum() + cb / cb.sum()
    mix_counts = mix / 2 * (len(a) + len(b))
    info = _entropy_mm(mix_counts) - (_entropy_mm(ca) + _entropy_mm(cb)) / 2
    return max(0.0, info / math.log(2))


def _binary_mi_bits(p1: float, p0: float) -> float:
    """I(label; bit) in bits, label equally likely, bit ~ Bernoulli(p1) or Bernoulli(p0)."""
    def h(p):
        return 0.0 if p <= 0 or p >= 1 else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))
    return max(0.0, h((p1 + p0) / 2) - (h(p1) + h(p0)) / 2)


def _kl_bits(observed: np.ndarray, expected_p: np.ndarray) -> float:
    """KL(observed || expected) in bits, minus its mean under the null ((k-1)/(2n ln 2)),
    clipped at 0."""
    n = observed.sum()
    q = observed / n
    mask = q > 0
    kl = float((q[mask] * np.log(q[mask] / expected_p[mask])).sum())
    k = int((expected_p > 0).sum())
    return max(0.0, (kl - (k - 1) / (2 * n)) / math.log(2))


# -- the tests ------------------------------------------------------------------------------------

def _chi2_min_w(n: int, df: int) -> float:
    """Cohen's w that a chi-square test at P_THRESHOLD detects with probability POWER."""
    from scipy import optimize, stats
    crit = stats.chi2.isf(P_THRESHOLD, df)
    nc = optimize.brentq(lambda nc: stats.ncx2.sf(crit, df, nc) - POWER, 1e-9, 1e7)
    return math.sqrt(nc / n)


def _chi2_result(observed, expected_p, **info):
    from scipy import stats
    n = int(observed.sum())
    df = len(observed) - 1
    chi2, p = stats.chisquare(observed, expected_p * n)
    w = math.sqrt(chi2 / n) if n else 0.0
    w_min = _chi2_min_w(n, df) if n else math.inf
    return dict(info, statistic_name="chi2", statistic=float(chi2), df=df, p_value=float(p),
                threshold=f"p < {P_THRESHOLD:g} (chi2 > {stats.chi2.isf(P_THRESHOLD, df):.1f})",
                sample_size=n, effect_size_name="Cohen's w = sqrt(chi2/n)", effect_size=w,
                min_detectable_effect=w_min,
                bits_per_op=_kl_bits(observed, expected_p),
                min_detectable_bits_per_op=w_min ** 2 / (2 * math.log(2)),
                flagged=bool(p < P_THRESHOLD))


def touch_law_test(counts: np.ndarray, params: Params, workload: str) -> dict:
    """Chi-square of the pages touched per op against (1-h)^2, 2h(1-h), h^2."""
    h = params.host_fraction
    law = np.array([(1 - h) ** 2, 2 * h * (1 - h), h * h])
    observed = np.bincount(np.clip(counts, 0, 2), minlength=3)[:3].astype(float)
    result = _chi2_result(observed, law, test="touch_law", workloads=[workload],
                          feature="touches")
    result["observed_fractions"] = (observed / max(1, observed.sum())).tolist()
    result["expected_fractions"] = law.tolist()
    return result


def page_uniformity_test(pages: np.ndarray, params: Params, workload: str) -> dict:
    """Chi-square of touched pages against uniform over the B pages. When there are fewer
    than 10 touches per page on average, consecutive pages are grouped into cells."""
    b = params.host_bins
    cells = max(2, min(b, len(pages) // 10))
    cell = pages * cells // b
    observed = np.bincount(cell, minlength=cells).astype(float)
    size = np.bincount(np.arange(b) * cells // b, minlength=cells).astype(float)
    result = _chi2_result(observed, size / b, test="page_uniformity", workloads=[workload],
                          feature="page")
    result["cells"] = cells
    return result


def page_evenness_test(pages: np.ndarray, params: Params, workload: str) -> dict:
    """The lower tail of the page chi-square: are the touched-page counts *more even* than
    independent uniform touches allow (dispersion chi2/df well below 1)?

    Independent uniform touches give chi2 ~ chi2(df), dispersion 1. A process that makes a
    page less likely to be touched again after it was touched (a revealed bin just lost an
    item, algorithm §8) spreads the counts more evenly, over all lags at once.
    Effect size: 1 - dispersion. Bits per op: (z^2 / n) / (8 ln 2), n touches, the Gaussian
    estimate used for the t-tests applied to the statistic's z-score (an estimate at this
    sample; the z-score need not grow linearly with n)."""
    from scipy import stats
    b = params.host_bins
    cells = max(2, min(b, len(pages) // 10))
    observed = np.bincount(pages * cells // b, minlength=cells).astype(float)
    size = np.bincount(np.arange(b) * cells // b, minlength=cells).astype(float)
    n, df = int(observed.sum()), cells - 1
    chi2 = float(stats.chisquare(observed, size / b * n)[0])
    p_low = float(stats.chi2.cdf(chi2, df))
    z = (chi2 - df) / math.sqrt(2 * df)
    z_need = stats.norm.isf(P_THRESHOLD) + stats.norm.ppf(POWER)
    return dict(test="page_evenness", workloads=[workload], feature="page_evenness",
                statistic_name="chi2 (lower tail)", statistic=chi2, df=df, p_value=p_low,
                threshold=f"p < {P_THRESHOLD:g} (chi2 < {stats.chi2.ppf(P_THRESHOLD, df):.1f})",
                sample_size=n, cells=cells, dispersion=chi2 / df, z=z,
                effect_size_name="1 - chi2/df", effect_size=1 - chi2 / df,
                # A process whose statistic is D * chi2(df) is caught with probability POWER
                # when D <= crit / chi2.ppf(POWER, df): the smallest detectable 1 - D.
                min_detectable_effect=1 - stats.chi2.ppf(P_THRESHOLD, df)
                / stats.chi2.ppf(POWER, df),
                bits_per_op=(z * z / n / (8 * math.log(2))) if z < 0 and n else 0.0,
                min_detectable_bits_per_op=z_need ** 2 / max(n, 1) / (8 * math.log(2)),
                flagged=bool(p_low < P_THRESHOLD))


def welch_test(a: np.ndarray, b: np.ndarray, feature: str, names: list[str]) -> dict:
    """dudect-style Welch t-test between two samples of one feature."""
    from scipy import stats
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        # Not applicable (for example no two consecutive two-page ops): never flagged.
        return dict(test="welch", workloads=list(names), feature=feature, statistic_name="t",
                    statistic=math.nan, threshold=f"|t| > {T_THRESHOLD}", sample_size=[na, nb],
                    means=[math.nan, math.nan], effect_size_name="Cohen's d",
                    effect_size=math.nan, min_detectable_effect=math.inf, bits_per_op=math.nan,
                    bits_per_op_mean_shift=math.nan, min_detectable_bits_per_op=math.inf,
                    flagged=False, not_applicable=True)
    ma, mb = (float(a.mean()) if na else 0.0), (float(b.mean()) if nb else 0.0)
    va, vb = (float(a.var(ddof=1)) if na > 1 else 0.0), (float(b.var(ddof=1)) if nb > 1 else 0.0)
    se = math.sqrt(va / na + vb / nb) if na and nb else 0.0
    if se > 0:
        t = (ma - mb) / se
    else:
        t = 0.0 if ma == mb else math.copysign(math.inf, ma - mb)
    sd = math.sqrt((va + vb) / 2)
    d = (ma - mb) / sd if sd > 0 else (0.0 if ma == mb else math.copysign(math.inf, ma - mb))
    z_power = stats.norm.ppf(POWER)
    d_min = (T_THRESHOLD + z_power) * math.sqrt(1 / na + 1 / nb) if na and nb else math.inf
    return dict(test="welch", workloads=list(names), feature=feature, statistic_name="t",
                statistic=float(t), threshold=f"|t| > {T_THRESHOLD}", sample_size=[na, nb],
                means=[ma, mb], effect_size_name="Cohen's d", effect_size=float(d),
                min_detectable_effect=float(d_min),
                bits_per_op=_mutual_information_bits(a, b) if na and nb else 0.0,
                bits_per_op_mean_shift=float(d * d / (8 * math.log(2))) if math.isfinite(d)
                else math.inf,
                min_detectable_bits_per_op=float(d_min ** 2 / (8 * math.log(2))),
                flagged=bool(abs(t) > T_THRESHOLD))


def _expectation(test: dict) -> str:
    """'clean' (must pass) or 'known-leak' (algorithm §8: measured, reported)."""
    names = set(test["workloads"])
    if names & SECTION8_WORKLOADS:
        return "known-leak"
    if test["feature"] in SECTION8_FEATURES and not names <= NO_REPLACEMENT_WORKLOADS:
        return "known-leak"
    if test["test"] == "page_uniformity" and names & SECTION8_REACCESS_WORKLOADS:
        return "known-leak"
    return "clean"


def _verdict(test: dict) -> str:
    if test.get("not_applicable"):
        return "not applicable: fewer than 2 samples"
    small = (f"the sample could only see effects >= {test['min_detectable_effect']:.3g} "
             f"({test['min_detectable_bits_per_op']:.2g} bits/op)")
    if test["expectation"] == "clean":
        return "FAIL: leak detected" if test["flagged"] else f"pass ({small})"
    if test["flagged"]:
        return "known leak (algorithm §8) detected"
    return f"known leak (algorithm §8) not detected at this sample: {small}"


# -- the section 8 measurement ----------------------------------------------------------------

def _section8(touches: Touches, statuses: np.ndarray, same_key: np.ndarray, params: Params):
    """How often the revealed bin x repeats between consecutive ops, relative to chance 1/B.

    Uses the ops that touch two pages (their first page is x, from the trace alone) and the
    ground truth of the workload (same key as the op before; hit or miss) to split the
    transitions t -> t+1 into: same key again, distinct present keys, next op a miss."""
    pages, two = touches.pages, touches.counts == 2
    both = two[:-1] & two[1:]
    repeat = pages[:-1, 0] == pages[1:, 0]
    hit_next = statuses[1:] == Status.FOUND
    hit_prev = statuses[:-1] == Status.FOUND
    same = same_key[1:]
    groups = {"all": both, "same key": both & same & hit_next,
              "distinct present keys": both & ~same & hit_next & hit_prev,
              "next op a miss": both & ~hit_next}
    chance = 1 / params.host_bins
    out = {}
    for name, mask in groups.items():
        n = int(mask.sum())
        k = int(repeat[mask].sum())
        rate = k / n if n else math.nan
        se = math.sqrt(chance * (1 - chance) / n) if n else math.nan
        out[name] = {"transitions": n, "repeats": k, "rate": rate, "chance": chance,
                     "ratio_to_chance": rate / chance if n else math.nan,
                     "ratio_ci95": [(rate - 1.96 * se) / chance, (rate + 1.96 * se) / chance]
                     if n else [math.nan, math.nan],
                     "z_vs_chance": (rate - chance) / se if n else math.nan}
    return out


# -- running workloads --------------------------------------------------------------------------

def _keys_for(seed: int, name: str) -> tuple[bytes, bytes]:
    digest = hashlib.sha256(f"bolt-audit:{seed}:{name}".encode()).digest()
    return digest[:16], digest[16:31]


def run_workload(name: str, params: Params, ops: int, seed: int, *, backend="reference",
                 crypto=False, variant=None, progress=None):
    """Run workload ``name`` on a fresh backend; return its touches, statuses and ground truth."""
    workload = make_workload(name, params, ops, seed)
    master_key, salt = _keys_for(seed, name)
    accelerator = make_backend(params, backend=backend, crypto=crypto, variant=variant,
                               master_key=master_key, salt=salt)
    try:
        accelerator.setup(workload.preload, salt=salt)
        accelerator.trace.clear()
        statuses = np.zeros(ops, np.int8)
        for t, (op, key, value) in enumerate(workload):
            statuses[t] = accelerator.access(op, key, value).status
            if progress is not None and t % 256 == 255:
                progress.update(256)
        if progress is not None:
            progress.update(ops % 256)
        touches = trace_touches(accelerator.trace, params)
    finally:
        close = getattr(accelerator, "close", None)
        if close is not None:
            close()
    if len(touches.counts) != ops:
        raise AuditError(f"{name}: the trace has {len(touches.counts)} operations, not {ops}")
    return touches, statuses, np.array(workload.same_key_as_previous, bool)


def audit(params: Params, *, ops: int = 4096, seed: int = 0, backend: str = "reference",
          crypto: bool = False, variant: str | None = None, workloads=None, pairs=None,
          progress: bool = False) -> dict:
    """Run the audit and return the report (a JSON-ready dict).

    ``variant`` selects a deliberately leaky model (self-check only). ``report["passed"]`` is
    True when no test expected to be clean is flagged and every trace has the right shape.
    """
    started = time.perf_counter()
    names = list(workloads) if workloads is not None else list(WORKLOADS)
    pairs = [pair for pair in (pairs if pairs is not None else DEFAULT_PAIRS)
             if pair[0] in names and pair[1] in names]
    if ops < 16:
        raise AuditError("an audit needs at least 16 operations per workload")
    if variant is not None and variant not in LEAKY_VARIANTS:
        raise AuditError(f"unknown variant {variant!r}; choose from {sorted(LEAKY_VARIANTS)}")
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=ops * len(names), unit="op", desc="audit", smoothing=0.05)
    runs = {}
    try:
        for name in names:
            if bar is not None:
                bar.set_postfix_str(name)
            runs[name] = run_workload(name, params, ops, seed, backend=backend, crypto=crypto,
                                      variant=variant, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    run_seconds = time.perf_counter() - started
    # The RTL (or the full-crypto model) must give the trace-only reference model's trace,
    # op for op, from the same master key, salt and operations (algorithm §§6 and 9).
    reference_mismatch = {}
    if backend != "reference" or crypto:
        for name in names:
            ref = run_workload(name, params, ops, seed, variant=variant)[0]
            got = runs[name][0]
            reference_mismatch[name] = int(((ref.counts != got.counts)
                                            | (ref.pages != got.pages).any(axis=1)).sum())
    ideal = ideal_touches(params, ops, seed)
    feats = {name: features(run[0]) for name, run in runs.items()}
    feats["ideal"] = features(ideal)

    tests = []
    for name in names + ["ideal"]:
        touches = runs[name][0] if name != "ideal" else ideal
        tests.append(touch_law_test(touches.counts, params, name))
        tests.append(page_uniformity_test(feats[name]["page"], params, name))
        tests.append(page_evenness_test(feats[name]["page"], params, name))
    for a, b in list(pairs) + [(name, "ideal") for name in names]:
        for feature in FEATURES:
            tests.append(welch_test(feats[a][feature], feats[b][feature], feature, [a, b]))
    for test in tests:
        test["expectation"] = _expectation(test)
        test["verdict"] = _verdict(test)

    shape = {name: run[0].shape_violations for name, run in runs.items()}
    failures = [t for t in tests if t["expectation"] == "clean" and t["flagged"]]
    known = [t for t in tests if t["expectation"] == "known-leak"]
    section8 = {name: _section8(*run, params) for name, run in runs.items()}
    pooled = {}
    for group in ("same key", "distinct present keys", "next op a miss"):
        n = sum(section8[w][group]["transitions"] for w in names)
        k = sum(section8[w][group]["repeats"] for w in names)
        chance = 1 / params.host_bins
        se = math.sqrt(chance * (1 - chance) / n) if n else math.nan
        pooled[group] = {"transitions": n, "repeats": k,
                         "bits_per_transition": _binary_mi_bits(k / n, chance) if n else math.nan,
                         "ratio_to_chance": (k / n) / chance if n else math.nan,
                         "ratio_ci95": [(k / n - 1.96 * se) / chance, (k / n + 1.96 * se) / chance]
                         if n else [math.nan, math.nan]}
    same, distinct = pooled["same key"], pooled["distinct present keys"]
    budget = {"limit": SECTION8_RATIO_BUDGET,
              "same_key_ci_low": same["ratio_ci95"][0],
              "distinct_keys_ci_high": distinct["ratio_ci95"][1]}
    budget["exceeded"] = bool(budget["same_key_ci_low"] > SECTION8_RATIO_BUDGET
                              or budget["distinct_keys_ci_high"] < 1 / SECTION8_RATIO_BUDGET)
    report = {
        "passed": not failures and not any(shape.values())
        and not any(reference_mismatch.values()) and not budget["exceeded"],
        "ops_differing_from_reference_model": reference_mismatch or None,
        "params": {"capacity": params.capacity, "key_size": params.key_size,
                   "value_size": params.value_size, "load": params.load,
                   "hbm_fraction": params.hbm_fraction, "bins": params.bins,
                   "hbm_bins": params.hbm_bins, "host_bins": params.host_bins,
                   "host_fraction": params.host_fraction},
        "ops_per_workload": ops, "seed": seed, "backend": backend, "crypto": crypto,
        "variant": variant or "real design",
        "thresholds": {"welch_abs_t": T_THRESHOLD, "chi2_p": P_THRESHOLD, "power": POWER},
        "workloads": {name: {"description": WORKLOADS[name][1],
                             "statuses": {s.name: int((runs[name][1] == s).sum())
                                          for s in Status if (runs[name][1] == s).any()},
                             "touch_fractions": (np.bincount(runs[name][0].counts, minlength=3)
                                                 / ops).tolist(),
                             "page_histogram": np.bincount(
                                 feats[name]["page"], minlength=params.host_bins).tolist(),
                             "shape_violations": shape[name]}
                      for name in names},
        "summary": {"tests": len(tests),
                    "clean_tests": sum(t["expectation"] == "clean" for t in tests),
                    "clean_flagged": len(failures),
                    "known_leak_tests": len(known),
                    "known_leak_detected": sum(t["flagged"] for t in known),
                    "failures": [_label(t) for t in failures],
                    "known_leaks_detected": [_label(t) for t in known if t["flagged"]],
                    "largest_clean_abs_t": max((abs(t["statistic"]) for t in tests
                                                if t["test"] == "welch"
                                                and t["expectation"] == "clean"
                                                and not t.get("not_applicable")), default=0.0)},
        "section8": {"per_workload": section8, "pooled": pooled, "budget": budget},
        "tests": tests,
        "seconds": {"run": run_seconds, "total": time.perf_counter() - started},
    }
    return report


def _label(test: dict) -> str:
    return f"{test['test']}[{test['feature']}]({' vs '.join(test['workloads'])})"


# -- output -------------------------------------------------------------------------------------

def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def write_report(report: dict, out: str, *, name: str = "audit", plots: bool = True,
                 touches: dict | None = None) -> list[str]:
    """Write ``<out>/<name>.json`` and PNG plots; return the paths written."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"{name}.json")
    with open(path, "w") as f:
        json.dump(_json_safe(report), f, indent=1)
    written = [path]
    if plots:
        written += _plots(report, out, name)
    return written


def _plots(report: dict, out: str, name: str) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    tag = f"{report['variant']}, {report['ops_per_workload']} ops/workload, seed {report['seed']}"
    # 1. touch-count distributions against the law.
    laws = [t for t in report["tests"] if t["test"] == "touch_law"]
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(laws)
    for i, t in enumerate(laws):
        ax.bar(np.arange(3) + i * width - 0.4 + width / 2, t["observed_fractions"], width,
               label=t["workloads"][0] + (" *" if t["flagged"] else ""))
    ax.scatter(np.arange(3), laws[0]["expected_fractions"], marker="_", s=2000, c="k",
               zorder=3, label="(1-h)², 2h(1-h), h²")
    ax.set_xticks(range(3), ["0 pages", "1 page", "2 pages"])
    ax.set_ylabel("fraction of ops")
    ax.set_title(f"pages touched per op ({tag}); * = flagged")
    ax.legend(fontsize=7, ncol=2)
    written.append(_save(fig, out, f"{name}_touches.png"))
    # 1b. touched-page histograms, relative to uniform.
    fig, ax = plt.subplots(figsize=(10, 4))
    for w, entry in report["workloads"].items():
        hist = np.asarray(entry["page_histogram"], float)
        if hist.sum():
            ax.plot(np.sort(hist / hist.mean())[::-1], label=w, linewidth=1)
    ax.axhline(1, color="k", linewidth=1)
    ax.set_xlabel("host pages, most touched first")
    ax.set_ylabel("touches / mean touches")
    ax.set_title(f"touched-page distribution, sorted (uniform = flat at 1 up to noise) ({tag})",
                 fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    written.append(_save(fig, out, f"{name}_pages.png"))
    # 2. Welch |t| per test.
    welch = [t for t in report["tests"] if t["test"] == "welch"]
    colours = {("clean", False): "tab:green", ("clean", True): "tab:red",
               ("known-leak", False): "tab:gray", ("known-leak", True): "tab:orange"}
    fig, ax = plt.subplots(figsize=(10, max(4, 0.14 * len(welch))))
    values = [min(abs(t["statistic"]), 1e3) if math.isfinite(t["statistic"]) else 0.0
              for t in welch]
    ax.barh(range(len(welch)), values,
            color=[colours[(t["expectation"], t["flagged"])] for t in welch])
    ax.axvline(T_THRESHOLD, color="k", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(welch)), [f"{' vs '.join(t['workloads'])}: {t['feature']}"
                                      for t in welch], fontsize=5)
    ax.invert_yaxis()
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("|t| (Welch); dashed: 4.5. green clean/pass, red clean/FLAGGED, "
                  "grey known leak/not seen, orange known leak/seen")
    ax.set_title(f"dudect-style t-tests ({tag})")
    written.append(_save(fig, out, f"{name}_t_statistics.png"))
    # 3. section 8: revealed-bin repeat ratio.
    s8 = report["section8"]["per_workload"]
    fig, ax = plt.subplots(figsize=(10, 4))
    groups = ["same key", "distinct present keys", "next op a miss"]
    names = list(s8)
    for g, group in enumerate(groups):
        xs, ys, errs = [], [], []
        for i, w in enumerate(names):
            entry = s8[w][group]
            if entry["transitions"] >= 30:
                xs.append(i + (g - 1) * 0.25)
                ys.append(entry["ratio_to_chance"])
                lo, hi = entry["ratio_ci95"]
                errs.append((hi - lo) / 2)
        ax.errorbar(xs, ys, yerr=errs, fmt="o", capsize=3, label=group)
    ax.axhline(1, color="k", linewidth=1)
    ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    ax.set_ylabel("P(x repeats) / chance (1/B)")
    ax.set_title(f"algorithm §8: revealed bin repeats, 95% CI ({tag})")
    ax.legend(fontsize=8)
    written.append(_save(fig, out, f"{name}_section8.png"))
    # 4. effect size vs smallest detectable effect.
    fig, ax = plt.subplots(figsize=(6, 5))
    for (expectation, flagged), colour in colours.items():
        chosen = [t for t in welch if t["expectation"] == expectation
                  and t["flagged"] == flagged]
        ax.scatter([t["min_detectable_effect"] for t in chosen],
                   [min(abs(t["effect_size"]), 10) if math.isfinite(t["effect_size"]) else 0
                    for t in chosen], s=10, c=colour,
                   label=f"{expectation}, {'flagged' if flagged else 'not flagged'}")
    lim = max([t["min_detectable_effect"] for t in welch
               if math.isfinite(t["min_detectable_effect"])] + [1e-3])
    ax.plot([0, lim], [0, lim], "k--", linewidth=1)
    ax.set_xlabel("smallest detectable |d| (80% power)")
    ax.set_ylabel("measured |d|")
    ax.set_yscale("symlog", linthresh=1e-2)
    ax.set_title("effect sizes", fontsize=9)
    ax.legend(fontsize=7)
    written.append(_save(fig, out, f"{name}_effects.png"))
    return written


def _save(fig, out, filename) -> str:
    import matplotlib.pyplot as plt
    path = os.path.join(out, filename)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

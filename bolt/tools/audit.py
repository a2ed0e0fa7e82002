"""The trace audit: conformance to the reference design, and leakage of the reference design.

Two questions, never mixed (``docs/audit.md`` explains every test, its unit and how to read a
report):

**Conformance** (:func:`conformance`): does a design under test (the RTL backend, a planted
variant, or any object with ``setup(items, salt=)``, ``access(op, key, value)`` and ``trace``)
give the same host-trace distribution as the reference design, on every workload and feature?
Each side runs ``runs`` independent runs (own DRBG key, own operations) of every workload; each
run is reduced to run-level statistics (the mean of every feature code, the touch fractions,
the dispersion of the touched pages); a Welch t-test across runs compares the sides. Runs are
independent even though the accesses inside a run are not, so the p-values hold. Holm's method
keeps the family-wise error of all the tests of one report at :data:`FAMILY_ALPHA`. Two exact
checks join them: Setup traces of different item sets of one size must be identical, and (for a
design that follows the algorithm's DRBG, such as the RTL) every access's pages must equal the
reference's under the same keys.

**Leakage** (:func:`leakage`, :func:`reaccess_leak`): how far is the reference design from an
ideal oblivious map? Unit: bits per operation, the mutual information between a secret binary
label (equally likely) and one feature code per access, estimated with the Miller-Madow
correction, with an interval from a bootstrap over independent runs. Per workload and feature
the label is "this workload or the ideal simulator" (x and y independent uniform bins). The
re-access probe (algorithm §8) labels each access "the key of ``gap`` accesses ago" or
"another present key" and reads the page-history observer's features. Every estimate must lie
within :data:`LEAK_BUDGET_BITS_PER_OP`, the one budget.

The reference side runs on :class:`~bolt.tools.trace_engine.TraceEngine` (a test shows its
trace equals the model's), so large samples cost seconds.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..params import Params
from ..protocol import Status
from .features import HISTORY_TAU_BINS, HostView, extract, host_view, probe_code
from .trace_engine import TraceEngine
from .variants import VARIANTS, make_variant
from .workloads import WORKLOADS, Workload, make_workload, present_count

__all__ = ["conformance", "leakage", "reaccess_leak", "hot_key_leak", "placement_comparison",
           "self_check", "AuditError",
           "FAMILY_ALPHA", "LEAK_BUDGET_BITS_PER_OP", "INTERVAL", "design_factory",
           "run_statistics", "mutual_information_bits", "holm", "ideal_view",
           "reference_view", "write_report", "DEFAULT_WORKLOADS"]

#: Family-wise error rate of one conformance report (Holm's method over all its tests).
FAMILY_ALPHA = 0.01
#: The one leakage budget: mutual information, in bits per operation, between a secret label
#: and any one feature, for every workload and for the re-access probe. It is the documented
#: size of the known leak of algorithm §8 with some margin: measured (docs/audit.md) at
#: about 0.025 bits per access for the re-access probe and at most about 0.07 bits per access
#: for a hot key against the ideal simulator (the decayed reveal counts, N = 2^8 .. 2^16).
#: Anything larger is a leak the design is not documented to have, and fails.
LEAK_BUDGET_BITS_PER_OP = 0.1
#: Coverage of each displayed interval; budget decisions use the Bonferroni-adjusted level over
#: the report's estimates (1 - (1 - INTERVAL) / m), so they hold simultaneously.
INTERVAL = 0.95
#: Bootstrap resamples of the runs.
BOOTSTRAP = 2000
#: Power at which the smallest detectable conformance effect is stated.
POWER = 0.8
#: Workloads of a default audit (all of them).
DEFAULT_WORKLOADS = tuple(WORKLOADS)


class AuditError(RuntimeError):
    """The audit could not run (for example: the RTL backend is not available)."""


# -- designs, runs and views ---------------------------------------------------------------------

Design = Callable[..., object]   # (params, *, master_key, salt) -> accelerator


def design_factory(backend: str = "reference", *, variant: str | None = None,
                   crypto: bool = False) -> Design:
    """The design under test: ``"reference"`` (the model, trace-only unless ``crypto``), ``"rtl"``
    (the Verilator simulation), ``"channel"`` / ``"rtl-channel"`` (the reference / the RTL
    behind the sealed client channel: frames join the features), a planted ``variant``, or
    ``"module:function"`` naming a
    factory ``(params, *, master_key, salt) -> object`` with ``setup``, ``access``, ``trace``."""
    if variant is not None:
        return make_variant(variant)
    if backend == "reference":
        from ..model import ReferenceAccelerator
        return lambda params, *, master_key, salt: ReferenceAccelerator(
            params, master_key=master_key, salt=salt, crypto=crypto)
    if backend in ("channel", "rtl-channel"):
        device = "rtl" if backend == "rtl-channel" else "reference"
        return lambda params, *, master_key, salt: ChannelDesign(
            params, master_key=master_key, salt=salt, backend=device)
    if backend == "rtl":
        def rtl(params, *, master_key, salt):
            from ..map import BACKENDS
            try:
                return BACKENDS["rtl"](params, master_key=master_key, salt=salt)
            except ImportError as error:
                raise AuditError(f"the RTL backend is not available: {error}") from error
        return rtl
    if ":" in backend:
        import importlib
        module, name = backend.split(":", 1)
        return getattr(importlib.import_module(module), name)
    raise AuditError(f"unknown design {backend!r}: reference, rtl, channel, rtl-channel or "
                     "module:function")


class ChannelDesign:
    """A backend behind the sealed client channel (:class:`bolt.Map` with its channel), through
    the public API: what the host sees adds the relayed frames, which :meth:`frame_lengths`
    hands to the features (count and bytes of each access's frames)."""

    def __init__(self, params: Params, *, master_key: bytes, salt: bytes,
                 backend: str = "reference"):
        from ..map import Map
        self._map = Map(**params.arguments(), master_key=master_key, unsafe_test_salt=salt,
                        backend=backend, channel=True)
        self.trace = self._map.trace

    def setup(self, items, *, salt: bytes) -> None:
        self._map.load(items, unsafe_test_salt=salt)
        self._first_frame = self._map.host_view.frame_count()   # the accesses' frames follow

    def access(self, op, key, value=None):
        from ..errors import BoundExceededError, CapacityError
        from ..protocol import Op, Response
        m = self._map
        try:
            if op == Op.GET:
                found = m.get(key, self) is not self
            elif op == Op.PUT:
                found = m.put(key, value) is not None
            else:
                try:
                    del m[key]
                    found = True
                except KeyError:
                    found = False
        except CapacityError:
            return Response(Status.FULL)
        except BoundExceededError:
            return Response(Status.BOUND)
        return Response(Status.FOUND if found else Status.ABSENT)

    def frame_lengths(self, accesses: int) -> np.ndarray:
        """(accesses, k) lengths of the frames of each access (a command frame opens one)."""
        per_access: list[list[int]] = []
        for frame in self._map.host_view.frames[self._first_frame:]:
            if frame.kind == "command" or not per_access:
                per_access.append([])
            per_access[-1].append(frame.length)
        if len(per_access) != accesses:
            raise AuditError(f"{len(per_access)} command frames for {accesses} accesses")
        width = max(map(len, per_access), default=0)
        return np.array([row + [0] * (width - len(row)) for row in per_access], np.int64)

    def close(self) -> None:
        self._map.close()


def run_keys(seed: int, side: str, workload: str, run: int) -> tuple[bytes, bytes, int]:
    """Master key, Setup salt and workload seed of one run (distinct for every argument)."""
    digest = hashlib.sha256(f"bolt-audit:{seed}:{side}:{workload}:{run}".encode()).digest()
    return digest[:16], digest[16:31], int.from_bytes(digest[31:], "big") + 256 * run


def reference_view(workload: Workload, master_key: bytes, salt: bytes, *,
                   frames: bool = False) -> tuple[HostView, np.ndarray]:
    """The reference design's pages (trace engine) and statuses for ``workload``; with
    ``frames``, its channel frames too (one command and one response frame of fixed lengths per
    access, whatever the access)."""
    p = workload.params
    engine = TraceEngine(p, master_key=master_key, salt=salt, setup_keys=workload.setup_ids,
                         universe=workload.universe)
    run = engine.run(workload.op_codes, workload.key_ids)
    lengths = (np.tile([p.command_frame_bytes, p.response_frame_bytes], (workload.length, 1))
               if frames else None)
    return HostView(run.pages.astype(np.int64), frames=lengths), run.statuses


def design_view(accelerator, workload: Workload, salt: bytes, progress=None):
    """Run ``workload`` on a design (a fresh Setup under ``salt``); its view and statuses."""
    accelerator.setup(workload.preload, salt=salt)
    accelerator.trace.clear()
    statuses = np.zeros(workload.length, np.int8)
    for t, (op, key, value) in enumerate(workload):
        statuses[t] = accelerator.access(op, key, value).status
        if progress is not None and t % 256 == 255:
            progress.update(256)
    if progress is not None:
        progress.update(workload.length % 256)
    view = host_view(accelerator.trace, workload.params)
    if hasattr(accelerator, "frame_lengths"):
        view.frames = accelerator.frame_lengths(workload.length)
    if len(view) != workload.length:
        raise AuditError(f"{workload.name}: the trace has {len(view)} operations, "
                         f"not {workload.length}")
    return view, statuses


def ideal_view(params: Params, length: int, seed: int) -> HostView:
    """The ideal oblivious simulator: x and y independent uniform bins, host bins touched."""
    rng = np.random.default_rng([seed, 0x1DEA1])
    k = params.hbm_bins
    bins = rng.integers(0, params.bins, size=(length, 2))
    pages = np.where(bins >= k, bins - k, -1)
    x_hbm = pages[:, 0] < 0
    pages[x_hbm, 0], pages[x_hbm, 1] = pages[x_hbm, 1], -1
    return HostView(pages)


# -- statistics ------------------------------------------------------------------------------------

def run_statistics(codes: dict[str, np.ndarray], params: Params) -> dict[str, float]:
    """A run's statistics: the mean code of every feature (over the accesses where it applies),
    the fractions of accesses touching 0 and 2 pages, and the dispersion (chi-square / df
    against uniform) of the pages revealed as x and of the other touched pages."""
    stats = {}
    for name, code in codes.items():
        valid = code[code >= 0]
        stats[name] = float(valid.mean()) if len(valid) else math.nan
    touches = codes["touches"]
    stats["touches=0"] = float((touches == 0).mean())
    stats["touches=2"] = float((touches == 2).mean())
    b = params.host_bins
    for name in ("page_x", "page_y"):
        pages = codes[name][codes[name] >= 0]
        if len(pages) and b > 1:
            counts = np.bincount(pages, minlength=b)
            expected = len(pages) / b
            stats[f"{name} dispersion"] = float(((counts - expected) ** 2).sum()
                                                / expected / (b - 1))
        else:
            stats[f"{name} dispersion"] = math.nan
    return stats


def welch(a: np.ndarray, b: np.ndarray) -> dict:
    """Welch's t-test of two samples of run statistics (NaNs dropped)."""
    from scipy import stats
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        return {"t": math.nan, "df": math.nan, "p_value": 1.0, "effect_size": math.nan,
                "not_applicable": True}
    ma, mb = float(a.mean()), float(b.mean())
    va, vb = float(a.var(ddof=1)), float(b.var(ddof=1))
    se2 = va / len(a) + vb / len(b)
    if se2 == 0:
        # Both sides constant: equal (p = 1) or different (p = 0), nothing in between.
        t, df, p = (0.0 if ma == mb else math.copysign(math.inf, ma - mb)), math.nan, \
            float(ma == mb)
    else:
        t = (ma - mb) / math.sqrt(se2)
        df = se2 ** 2 / ((va / len(a)) ** 2 / (len(a) - 1) + (vb / len(b)) ** 2 / (len(b) - 1))
        p = float(2 * stats.t.sf(abs(t), df))
    sd = math.sqrt((va + vb) / 2)
    d = (ma - mb) / sd if sd > 0 else (0.0 if ma == mb else math.copysign(math.inf, ma - mb))
    return {"t": float(t), "df": float(df), "p_value": p, "means": [ma, mb],
            "effect_size": float(d), "runs": [len(a), len(b)]}


def holm(p_values: Sequence[float], alpha: float) -> np.ndarray:
    """Holm's step-down method: which hypotheses are rejected at family-wise error ``alpha``."""
    p = np.asarray(p_values, float)
    order = np.argsort(p)
    rejected = np.zeros(len(p), bool)
    for rank, i in enumerate(order):
        if p[i] > alpha / (len(p) - rank):
            break
        rejected[i] = True
    return rejected


def _entropy_mm(counts: np.ndarray) -> np.ndarray:
    """Miller-Madow corrected plug-in entropy of count vectors (last axis), in nats."""
    counts = np.asarray(counts, float)
    n = counts.sum(axis=-1, keepdims=True)
    q = np.divide(counts, n, out=np.zeros_like(counts), where=n > 0)
    plug_in = -(q * np.log(np.where(q > 0, q, 1))).sum(axis=-1)
    occupied = (counts > 0).sum(axis=-1)
    n = n[..., 0]
    return np.where(n > 0, plug_in + (occupied - 1) / (2 * np.where(n > 0, n, 1)), 0.0)


def mutual_information_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    """I(label; code) in bits for a label equally likely ``a`` or ``b`` (count vectors over the
    same codes, or stacks of them on the last axis): Miller-Madow corrected, clipped at 0."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    na, nb = a.sum(axis=-1, keepdims=True), b.sum(axis=-1, keepdims=True)
    if (na == 0).any() or (nb == 0).any():
        return 0.0 if a.ndim == 1 else np.zeros(a.shape[:-1])
    mix = (a / na + b / nb) / 2 * (na + nb)
    info = np.maximum(0.0, (_entropy_mm(mix) - (_entropy_mm(a) + _entropy_mm(b)) / 2)
                      / math.log(2))
    return float(info) if a.ndim == 1 else info


def kl_bits(a: np.ndarray, b: np.ndarray) -> float:
    """KL(a || b) in bits per sample between two count vectors (add-half smoothing): the rate
    at which a likelihood-ratio observer gains evidence for ``a``."""
    pa = (a + 0.5) / (a.sum() + 0.5 * len(a))
    pb = (b + 0.5) / (b.sum() + 0.5 * len(b))
    return float((pa * np.log2(pa / pb)).sum())


def _tables(code_runs: list[np.ndarray], cells: int) -> np.ndarray:
    """Per-run count vectors of codes (-1 counted as its own cell)."""
    return np.stack([np.bincount(code + 1, minlength=cells) for code in code_runs])


def information_estimate(a_runs: list[np.ndarray], b_runs: list[np.ndarray], *,
                         seed: int = 0, z: float | None = None) -> dict:
    """Bits per access between label a / b and one code, from per-run codes.

    The estimate pools the runs (Miller-Madow corrected plug-in mutual information). Its
    standard error comes from a bootstrap over runs (runs are independent; the accesses in a
    run are not), and the intervals are estimate +- z SE, clipped at 0: at :data:`INTERVAL`
    for display, and at ``z`` (a Bonferroni level over a report's estimates) for budget
    decisions. Percentile intervals would not do: resampling runs with replacement adds
    plug-in bias, which shifts the bootstrap distribution above a small estimate."""
    from scipy import stats
    cells = 1 + max(int(max(c.max(initial=-1) for c in a_runs)),
                    int(max(c.max(initial=-1) for c in b_runs))) + 1
    ta, tb = _tables(a_runs, cells), _tables(b_runs, cells)
    estimate = mutual_information_bits(ta.sum(0), tb.sum(0))
    rng = np.random.default_rng(seed)
    # Resampled runs, as multiplicities per run: (BOOTSTRAP, runs) @ (runs, cells).
    weights_a = rng.multinomial(len(ta), np.full(len(ta), 1 / len(ta)), BOOTSTRAP)
    weights_b = rng.multinomial(len(tb), np.full(len(tb), 1 / len(tb)), BOOTSTRAP)
    boot = mutual_information_bits(weights_a @ ta, weights_b @ tb)
    se = float(boot.std(ddof=1))
    shown = float(stats.norm.isf((1 - INTERVAL) / 2))
    out = {"bits_per_op": estimate,
           "interval": [max(0.0, estimate - shown * se), estimate + shown * se],
           "bootstrap_se": se, "bootstrap_bias": float(boot.mean() - estimate),
           "runs": [len(ta), len(tb)], "accesses": [int(ta.sum()), int(tb.sum())],
           "cells": cells}
    if z is not None:
        out["decision_interval"] = [max(0.0, estimate - z * se), estimate + z * se]
    return out


def budget_verdict(entry: dict) -> str:
    low, high = entry["decision_interval"]
    if high <= LEAK_BUDGET_BITS_PER_OP:
        return "within budget"
    if low > LEAK_BUDGET_BITS_PER_OP:
        return "EXCEEDS budget"
    return "undecided: the sample is too small to place it against the budget"


# -- conformance ---------------------------------------------------------------------------------

def setup_check(design: Design, params: Params, seed: int) -> dict:
    """Setup traces of different item sets of each size (0, 1, N/8, N/2; keys of mixed lengths,
    values of lengths 0..V) must be identical to each other and to the reference's."""
    from ..model import ReferenceAccelerator
    sizes = sorted({0, 1, params.capacity // 8, present_count(params)})
    master_key, salt, _ = run_keys(seed, "setup", "setup", 0)
    dut = design(params, master_key=master_key, salt=salt)
    reference = ReferenceAccelerator(params, master_key=master_key, salt=salt, crypto=False)
    differing = []
    try:
        for size in sizes:
            sets = [make_workload("key_lengths", params, 1, seed=s) for s in (seed, seed + 1)]
            traces = []
            for n, (target, workload) in enumerate([(dut, sets[0]), (dut, sets[1]),
                                                    (reference, sets[0])]):
                _, run_salt, _ = run_keys(seed, "setup", str(size), n)
                items = _item_set(workload, size, n)
                target.trace.clear()
                target.setup(items, salt=run_salt)
                traces.append(list(target.trace))
            if not traces[0] == traces[1] == traces[2]:
                differing.append(size)
    finally:
        getattr(dut, "close", lambda: None)()
    return {"test": "setup_identity", "sizes": sizes, "differing_sizes": differing,
            "flagged": bool(differing)}


def _item_set(workload: Workload, size: int, variant: int) -> list[tuple[bytes, bytes]]:
    """``size`` items of ``workload``'s mixed-length keys, with values of lengths 0..V."""
    p = workload.params
    rng = np.random.default_rng([variant, size])
    ids = rng.choice(p.capacity, size=size, replace=False)
    lengths = rng.integers(0, p.value_size + 1, size)
    return [(workload.key(int(i)), bytes(rng.integers(0, 256, int(n), dtype=np.uint8)))
            for i, n in zip(ids, lengths)]


@dataclass
class _Side:
    stats: dict           # workload -> list of run statistics dicts
    statuses: dict        # workload -> Status counts over the runs
    shape_violations: int = 0


def conformance(params: Params, design: Design | None = None, *, workloads=DEFAULT_WORKLOADS,
                runs: int = 8, ops: int = 2048, seed: int = 0, exact: bool = False,
                progress: bool = False, name: str = "reference") -> dict:
    """Conformance of ``design`` (default: the reference model under other keys) to the
    reference design; a JSON-ready report whose ``passed`` is False when any test flags."""
    started = time.perf_counter()
    design = design or design_factory("reference")
    names = list(workloads)
    if runs < 2 or ops < 16:
        raise AuditError("conformance needs at least 2 runs of 16 operations per workload")
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=ops * runs * len(names), unit="op", desc=f"{name}", smoothing=0.05)
    master_key, salt0, _ = run_keys(seed, "design", "instance", 0)
    dut = design(params, master_key=master_key, salt=salt0)
    sides = {"design": _Side({}, {}), "reference": _Side({}, {})}
    mismatched_ops = 0 if exact else None
    try:
        for workload_name in names:
            for side in sides.values():
                side.stats[workload_name] = []
                side.statuses[workload_name] = np.zeros(len(Status), np.int64)
            for run in range(runs):
                _, salt, workload_seed = run_keys(seed, "design", workload_name, run)
                workload = make_workload(workload_name, params, ops, workload_seed)
                view, statuses = design_view(dut, workload, salt, bar)
                side = sides["design"]
                side.shape_violations += view.shape_violations
                side.stats[workload_name].append(run_statistics(extract(view, params), params))
                side.statuses[workload_name] += np.bincount(statuses, minlength=len(Status))
                frames = view.frames is not None
                if exact:
                    ref_view, _ = reference_view(workload, master_key, salt)
                    mismatched_ops += int((ref_view.pages != view.pages).any(axis=1).sum())
                ref_key, ref_salt, ref_seed = run_keys(seed, "reference", workload_name, run)
                reference = make_workload(workload_name, params, ops, ref_seed)
                ref_view, ref_statuses = reference_view(reference, ref_key, ref_salt,
                                                        frames=frames)
                side = sides["reference"]
                side.stats[workload_name].append(run_statistics(extract(ref_view, params),
                                                                params))
                side.statuses[workload_name] += np.bincount(ref_statuses,
                                                            minlength=len(Status))
    finally:
        getattr(dut, "close", lambda: None)()
        if bar is not None:
            bar.close()
    run_seconds = time.perf_counter() - started
    tests = []
    for workload_name in names:
        design_stats = sides["design"].stats[workload_name]
        reference_stats = sides["reference"].stats[workload_name]
        for statistic in design_stats[0]:
            a = np.array([s[statistic] for s in design_stats])
            b = np.array([s[statistic] for s in reference_stats])
            result = welch(a, b)
            result.update(test="welch", workload=workload_name, statistic=statistic)
            tests.append(result)
    # The family: every test that applies (a feature with no sample on either side does not).
    family = [t for t in tests if not t.get("not_applicable")]
    rejected = holm([t["p_value"] for t in family], FAMILY_ALPHA)
    from scipy import stats as sstats
    m = len(family)
    for test in tests:
        test["flagged"] = False
    for test, flag in zip(family, rejected):
        test["flagged"] = bool(flag)
        ra, rb = test["runs"]
        df = test["df"] if math.isfinite(test["df"]) else ra + rb - 2
        test["min_detectable_effect"] = float(
            (sstats.t.isf(FAMILY_ALPHA / (2 * m), df) + sstats.t.ppf(POWER, df))
            * math.sqrt(1 / ra + 1 / rb))
    setup = setup_check(design, params, seed)
    flagged = [t for t in tests if t["flagged"]]
    report = {
        "kind": "conformance", "design": name, "params": params.arguments(),
        "runs_per_side": runs, "ops_per_run": ops, "seed": seed, "workloads": names,
        "multiple_testing": f"Holm, family-wise error {FAMILY_ALPHA} over {m} Welch tests",
        "tests": tests, "setup": setup,
        "exact": {"checked": exact, "ops_differing_from_reference": mismatched_ops},
        "shape_violations": sides["design"].shape_violations,
        "statuses": {side: {w: {s.name: int(c[s]) for s in Status if c[s]}
                            for w, c in value.statuses.items()}
                     for side, value in sides.items()},
        "flagged": [f"{t['workload']}: {t['statistic']}" for t in flagged]
        + (["setup identity"] if setup["flagged"] else [])
        + (["trace shape"] if sides["design"].shape_violations else [])
        + (["exact trace"] if exact and mismatched_ops else []),
        "seconds": {"runs": run_seconds, "total": time.perf_counter() - started},
    }
    report["passed"] = not report["flagged"]
    return report


def self_check(params: Params, *, variants=tuple(VARIANTS), **options) -> dict:
    """Conformance of every planted variant; each must be flagged by a statistical test or the
    Setup check (the exact check is left out: it would flag them all trivially)."""
    results = {}
    for variant in variants:
        report = conformance(params, make_variant(variant), name=variant, exact=False,
                             **options)
        results[variant] = {"flagged": report["flagged"], "caught": not report["passed"],
                            "report": report}
    return results


# -- leakage ---------------------------------------------------------------------------------------

def _reference_codes(workload_name, params, ops, runs, seed, lag=None, **options):
    codes = []
    for run in range(runs):
        key, salt, workload_seed = run_keys(seed, "leakage", workload_name, run)
        workload = make_workload(workload_name, params, ops, workload_seed, **options)
        view, _ = reference_view(workload, key, salt)
        codes.append((workload, extract(view, params,
                                        lag=options.get("gap", 0) if lag is None else lag)))
    return codes


def _ideal_codes(params, ops, runs, seed, side, lag=0):
    out = []
    for run in range(runs):
        _, _, ideal_seed = run_keys(seed, side, "ideal", run)
        out.append(extract(ideal_view(params, ops, ideal_seed), params, lag=lag))
    return out


def leakage(params: Params, *, workloads=DEFAULT_WORKLOADS, runs: int = 8, ops: int = 4096,
            seed: int = 0, features: Sequence[str] | None = None) -> dict:
    """Bits per access between "this workload or the ideal simulator" and each feature, for
    the reference design, with intervals, against the budget; plus the noise floor (the
    ideal simulator against an independent copy of itself)."""
    from scipy import stats as sstats
    started = time.perf_counter()
    names = list(workloads)
    ideal = _ideal_codes(params, ops, runs, seed, "ideal")
    ideal_again = _ideal_codes(params, ops, runs, seed, "ideal-again")
    feature_names = list(features or ideal[0])
    m = len(names) * len(feature_names)
    z = float(sstats.norm.isf((1 - INTERVAL) / (2 * m)))
    floor = {f: information_estimate([c[f] for c in ideal_again], [c[f] for c in ideal],
                                     seed=seed, z=z)
             for f in feature_names}
    results = []
    for workload_name in names:
        codes = [c for _, c in _reference_codes(workload_name, params, ops, runs, seed)]
        for f in feature_names:
            entry = information_estimate([c[f] for c in codes], [c[f] for c in ideal],
                                         seed=seed, z=z)
            entry.update(workload=workload_name, feature=f,
                         noise_floor=floor[f]["interval"][1])
            entry["verdict"] = budget_verdict(entry)
            results.append(entry)
    report = {
        "kind": "leakage", "params": params.arguments(), "runs_per_side": runs,
        "ops_per_run": ops, "seed": seed, "budget_bits_per_op": LEAK_BUDGET_BITS_PER_OP,
        "multiple_testing": f"budget decisions on Bonferroni intervals (z = {z:.2f}) over "
                            f"{m} estimates, simultaneous coverage {INTERVAL}",
        "estimates": results,
        "exceeded": [f"{e['workload']}: {e['feature']}" for e in results
                     if e["verdict"].startswith("EXCEEDS")],
        "undecided": [f"{e['workload']}: {e['feature']}" for e in results
                      if e["verdict"].startswith("undecided")],
        "seconds": time.perf_counter() - started,
    }
    report["passed"] = not report["exceeded"] and not report["undecided"]
    return report


def reaccess_leak(params: Params, *, gap: int = 1, runs: int = 8, ops: int = 65536,
                  seed: int = 0, warmup: int | None = None) -> dict:
    """The section 8 effect: bits per access between "the key of ``gap`` accesses ago" and
    "another present key" (the ``reaccess`` workload's label), read by the page-history
    observer (time since page x was last revealed as x, decayed reveal counts, x equal to
    the x of ``gap`` accesses ago), with a bootstrap interval over runs; the pair-only
    statistic (x repeats) alone; the repeat ratio to chance; and the same observer on the
    ideal simulator (noise floor). The first ``warmup`` accesses of a run (default: 2 tau or a
    quarter of the run) only build the history."""
    from scipy import stats as sstats
    started = time.perf_counter()
    tau = HISTORY_TAU_BINS * params.bins
    warmup = min(2 * tau, ops // 4) if warmup is None else warmup
    z = float(sstats.norm.isf((1 - INTERVAL) / 2))
    joint = {0: [], 1: []}
    pair = {0: [], 1: []}
    repeats = {0: [0, 0], 1: [0, 0]}
    for workload, codes in _reference_codes("reaccess", params, ops, runs, seed, gap=gap):
        labels = workload.labels[warmup:]
        code, repeat = probe_code(codes)[warmup:], codes["x_lag_repeat"][warmup:]
        for label in (0, 1):
            chosen = labels == label
            joint[label].append(code[chosen])
            pair[label].append(repeat[chosen])
            valid = repeat[chosen] >= 0
            repeats[label][0] += int(repeat[chosen][valid].sum())
            repeats[label][1] += int(valid.sum())
    ideal_joint = {0: [], 1: []}
    for run, codes in enumerate(_ideal_codes(params, ops, runs, seed, "reaccess-ideal",
                                             lag=gap)):
        code = probe_code(codes)[warmup:]
        half = np.random.default_rng([seed, run]).random(len(code)) < 0.5
        ideal_joint[1].append(code[half])
        ideal_joint[0].append(code[~half])
    chance = 1 / params.host_bins
    same = information_estimate(joint[1], joint[0], seed=seed, z=z)
    cells = same["cells"]
    ta, tb = _tables(joint[1], cells).sum(0), _tables(joint[0], cells).sum(0)
    kl = kl_bits(ta, tb)
    return {
        "kind": "reaccess", "params": params.arguments(), "gap": gap, "runs": runs,
        "ops_per_run": ops, "warmup": warmup, "seed": seed,
        "history_tau_accesses": tau,
        "page_history": same,
        "pair_only": information_estimate(pair[1], pair[0], seed=seed, z=z),
        "ideal_page_history": information_estimate(ideal_joint[1], ideal_joint[0], seed=seed,
                                                   z=z),
        "x_repeat_ratio_to_chance": {
            "same key": (repeats[1][0] / repeats[1][1] / chance) if repeats[1][1] else None,
            "another key": (repeats[0][0] / repeats[0][1] / chance) if repeats[0][1] else None,
            "pairs": [repeats[1][1], repeats[0][1]]},
        "kl_bits_per_reaccess": kl,
        "reaccesses_for_1000_to_1": math.log2(1000) / kl if kl > 0 else math.inf,
        "verdict": budget_verdict(same),
        "seconds": time.perf_counter() - started,
    }


# -- the two placements side by side (algorithm §13) ----------------------------------------------

#: Re-access gaps of the placement comparison, as (name, multiple of M): the pool is to cut the
#: page-history leak for gaps under about M (algorithm §13).
COMPARISON_GAPS = (("gap 1", 0.0), ("gap M/8", 1 / 8), ("gap M", 1.0), ("gap 4M", 4.0))


def hot_key_leak(params: Params, *, runs: int = 8, ops: int = 65536, seed: int = 0,
                 warmup: int | None = None) -> dict:
    """The page-history observer on a hot key: bits per access between the ``hot_key``
    workload (one present key over and over) and the ideal simulator, read by the joint code
    of :func:`~bolt.tools.features.probe_code` (x equal to the previous access's x)."""
    started = time.perf_counter()
    tau = HISTORY_TAU_BINS * params.bins
    warmup = min(2 * tau, ops // 4) if warmup is None else warmup
    hot = [probe_code(codes)[warmup:]
           for _, codes in _reference_codes("hot_key", params, ops, runs, seed, lag=1)]
    ideal = [probe_code(codes)[warmup:]
             for codes in _ideal_codes(params, ops, runs, seed, "hot-key-ideal", lag=1)]
    return {"kind": "hot_key", "params": params.arguments(), "runs": runs, "ops_per_run": ops,
            "warmup": warmup, "seed": seed,
            "page_history": information_estimate(hot, ideal, seed=seed),
            "seconds": time.perf_counter() - started}


def _ratio(high: dict, low: dict) -> dict:
    """How many times less ``low`` leaks than ``high`` (estimates with intervals): the
    estimate's ratio and a conservative interval from the two intervals' ends."""
    (h_low, h_high), (l_low, l_high) = high["interval"], low["interval"]
    divide = lambda a, b: a / b if b > 0 else math.inf     # noqa: E731
    return {"estimate": divide(high["bits_per_op"], low["bits_per_op"]),
            "interval": [divide(h_low, l_high), divide(h_high, l_low)],
            "more_with_low": l_low > h_high}


def placement_comparison(base: Params, capacities: Sequence[int], *, runs: int = 8,
                         ops: int = 2**18, seed: int = 0, pool_size: int | None = None,
                         progress=None) -> dict:
    """Page-history leakage of the two placements side by side, at each N of ``capacities``
    (the other parameters those of ``base``): a hot key against the ideal simulator, and the
    re-access probe of :func:`reaccess_leak` at the gaps of :data:`COMPARISON_GAPS`, in bits
    per access with intervals, and the ratio two-choice / pool. A run lasts at least
    ``2 tau + 4 gap`` accesses, so every gap is seen after the warm-up."""
    started = time.perf_counter()
    rows = []
    for capacity in capacities:
        designs = {placement: Params(**{**base.arguments(), "capacity": capacity,
                                        "placement": placement,
                                        "pool_size": pool_size if placement == "pool"
                                        else None})
                   for placement in ("two-choice", "pool")}
        m = designs["pool"].bins
        probes = [("hot key", None)] + [(name, max(1, round(multiple * m)))
                                        for name, multiple in COMPARISON_GAPS]
        for probe, gap in probes:
            row = {"capacity": capacity, "bins": m, "pool_size": designs["pool"].pool_size,
                   "probe": probe, "gap": gap}
            for placement, params in designs.items():
                if gap is None:
                    result = hot_key_leak(params, runs=runs, ops=ops, seed=seed)
                else:
                    needed = 2 * HISTORY_TAU_BINS * params.bins + 4 * gap
                    result = reaccess_leak(params, gap=gap, runs=runs, ops=max(ops, needed),
                                           seed=seed)
                row[placement] = {key: result[key] for key in
                                  ("page_history", "ops_per_run", "runs", "seconds")}
                if progress is not None:
                    progress(capacity, probe, placement, result)
            row["ratio"] = _ratio(row["two-choice"]["page_history"],
                                  row["pool"]["page_history"])
            rows.append(row)
    return {"kind": "placements", "params": base.arguments(), "capacities": list(capacities),
            "runs": runs, "ops_per_run": ops, "seed": seed, "rows": rows,
            "pool_leaks_more": [f"N={r['capacity']} {r['probe']}" for r in rows
                                if r["ratio"]["more_with_low"]],
            "seconds": time.perf_counter() - started}


# -- output ----------------------------------------------------------------------------------------

def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    return value


def write_report(report: dict, out: str, name: str) -> str:
    """Write ``<out>/<name>.json``; return its path."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"{name}.json")
    with open(path, "w") as f:
        json.dump(_json_safe(report), f, indent=1)
    return path

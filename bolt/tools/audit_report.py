"""Summaries and plots of audit reports (:mod:`bolt.tools.audit`) for the command line."""

from __future__ import annotations

import math
import os

import numpy as np

from .audit import LEAK_BUDGET_BITS_PER_OP

__all__ = ["conformance_lines", "leakage_lines", "reaccess_lines", "plot_conformance",
           "plot_leakage", "plot_reaccess"]


def _interval(values) -> str:
    low, high = values
    return f"[{low:.4f}, {high:.4f}]"


def conformance_lines(report: dict, *, top: int = 8) -> list[str]:
    """A verdict line, the multiple-testing rule, and the strongest tests."""
    tests = [t for t in report["tests"] if not t.get("not_applicable")]
    exact = report["exact"]
    lines = [f"conformance of {report['design']}: {len(report['workloads'])} workloads x "
             f"{report['runs_per_side']} runs x {report['ops_per_run']} ops per side, "
             f"seed {report['seed']}; {report['multiple_testing']}",
             f"  Setup identity over sizes {report['setup']['sizes']}: "
             + ("DIFFERS at " + str(report["setup"]["differing_sizes"])
                if report["setup"]["flagged"] else "identical"),
             f"  trace shape violations: {report['shape_violations']}"]
    if exact["checked"]:
        lines.append(f"  accesses whose pages differ from the reference under the same keys: "
                     f"{exact['ops_differing_from_reference']}")
    lines.append(f"  strongest of {len(tests)} Welch tests (across runs):")
    for t in sorted(tests, key=lambda t: t["p_value"])[:top]:
        lines.append(f"    {'FLAGGED ' if t['flagged'] else '        '}{t['workload']:>15}: "
                     f"{t['statistic']:<20} t = {t['t']:8.2f}  p = {t['p_value']:.2e}  "
                     f"d = {t['effect_size']:+.2f} (smallest detectable "
                     f"{t['min_detectable_effect']:.2f})")
    lines.append("  RESULT: " + ("conforms (nothing flagged)" if report["passed"]
                                 else "DIFFERS: " + ", ".join(report["flagged"][:12])
                                 + (" ..." if len(report["flagged"]) > 12 else "")))
    return lines


def leakage_lines(report: dict, *, top: int = 10) -> list[str]:
    entries = report["estimates"]
    lines = [f"leakage of the reference design against the ideal simulator: "
             f"{report['runs_per_side']} runs x {report['ops_per_run']} ops per side, "
             f"budget {report['budget_bits_per_op']} bits/op; {report['multiple_testing']}",
             "  largest estimates (bits/op, 95% bootstrap interval over runs, decision "
             "interval, noise floor):"]
    for e in sorted(entries, key=lambda e: -e["bits_per_op"])[:top]:
        lines.append(f"    {e['workload']:>15}: {e['feature']:<14} {e['bits_per_op']:.4f} "
                     f"{_interval(e['interval'])} {_interval(e['decision_interval'])} "
                     f"floor {e['noise_floor']:.4f}  {e['verdict']}")
    verdict = ("within budget everywhere" if report["passed"] else
               "EXCEEDS budget: " + ", ".join(report["exceeded"]) if report["exceeded"] else
               "undecided (sample too small): " + ", ".join(report["undecided"]))
    lines.append(f"  RESULT: {verdict}")
    return lines


def reaccess_lines(reports: list[dict]) -> list[str]:
    lines = ["algorithm §8, re-access probe (label: key of `gap` accesses ago, or another "
             "present key); bits per access, 95% bootstrap interval over runs:",
             f"  {'N':>8} {'gap':>5} {'runs x ops':>14} {'pairs':>10} {'page history':>28} "
             f"{'pair only':>28} {'ideal floor':>10} {'x-repeat ratio same/other':>26} "
             f"{'1000:1 after':>12} {'seconds':>8}"]
    for r in reports:
        ph, po, ideal = r["page_history"], r["pair_only"], r["ideal_page_history"]
        ratio = r["x_repeat_ratio_to_chance"]
        lines.append(
            f"  {r['params']['capacity']:>8} {r['gap']:>5} {r['runs']:>4} x {r['ops_per_run']:<8}"
            f" {sum(ph['accesses']):>10} {ph['bits_per_op']:.4f} {_interval(ph['interval']):>20}"
            f" {po['bits_per_op']:.2e} [{po['interval'][0]:.1e}, {po['interval'][1]:.1e}] "
            f"{ideal['interval'][1]:>11.1e} {ratio['same key']:>12.3f}/{ratio['another key']:<12.3f}"
            f" {r['reaccesses_for_1000_to_1']:>12.0f} {r['seconds']:>8.1f}")
    return lines


def placement_lines(report: dict) -> list[str]:
    """The two placements side by side (algorithm §13): page-history bits per access of each
    probe, with 95% intervals, and how many times less the pool leaks."""
    lines = ["algorithm §13, page-history leak of the two placements (hot key: against the "
             "ideal simulator; gaps: the re-access probe); bits per access, 95% bootstrap "
             "interval over runs:",
             f"  {'N':>8} {'M':>6} {'probe':>9} {'gap':>6} {'two-choice':>26} {'pool':>26} "
             f"{'two-choice / pool':>22}"]
    for row in report["rows"]:
        cells = []
        for placement in ("two-choice", "pool"):
            ph = row[placement]["page_history"]
            low, high = ph["interval"]
            cells.append(f"{ph['bits_per_op']:.5f} [{low:.5f}, {high:.5f}]")
        ratio = row["ratio"]
        low, high = ratio["interval"]
        lines.append(f"  {row['capacity']:>8} {row['bins']:>6} {row['probe']:>9} "
                     f"{row['gap'] if row['gap'] is not None else '-':>6} {cells[0]} {cells[1]} "
                     f"{ratio['estimate']:>8.1f} [{low:.1f}, {high:.1f}]"
                     + ("  POOL LEAKS MORE" if ratio["more_with_low"] else ""))
    lines.append(f"  runs x accesses per run: {report['runs']} x at least "
                 f"{report['ops_per_run']}; wall time {report['seconds']:.0f} s")
    return lines


def _figure(*size):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt, *plt.subplots(figsize=size)


def _save(plt, fig, path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_conformance(report: dict, path: str) -> str:
    """Measured |d| against the smallest |d| the test could detect, both on log axes; the
    y = x line is drawn as a curve on those axes, so a point above it is an effect the sample
    could see, and every flagged test is marked."""
    tests = [t for t in report["tests"] if not t.get("not_applicable")
             and math.isfinite(t["effect_size"])]
    plt, fig, ax = _figure(6.5, 5.5)
    floor = 1e-3
    x = np.array([t["min_detectable_effect"] for t in tests])
    y = np.maximum(np.abs([t["effect_size"] for t in tests]), floor)
    flagged = np.array([t["flagged"] for t in tests], bool)
    ax.scatter(x[~flagged], y[~flagged], s=10, c="tab:green", label="not flagged")
    ax.scatter(x[flagged], y[flagged], s=16, c="tab:red", label="flagged (Holm)")
    low, high = floor, max(float(y.max(initial=1)), float(x.max(initial=1))) * 1.5
    line = np.geomspace(low, high, 200)
    ax.plot(line, line, "k--", linewidth=1, label="measured = smallest detectable")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(min(x.min(initial=1), 1) / 1.5, high)
    ax.set_ylim(low, high)
    ax.set_xlabel("smallest detectable |d| (Holm level, 80% power)")
    ax.set_ylabel(f"measured |d| across runs (floored at {floor:g})")
    ax.set_title(f"conformance of {report['design']}: {int(flagged.sum())} of {len(tests)} "
                 f"tests flagged", fontsize=9)
    ax.legend(fontsize=7)
    return _save(plt, fig, path)


def plot_leakage(report: dict, path: str, *, top: int = 40) -> str:
    """The largest estimates with their intervals, against the budget."""
    entries = sorted(report["estimates"], key=lambda e: -e["bits_per_op"])[:top]
    plt, fig, ax = _figure(8, max(4, 0.18 * len(entries)))
    ys = np.arange(len(entries))
    est = np.array([e["bits_per_op"] for e in entries])
    low = np.array([e["decision_interval"][0] for e in entries])
    high = np.array([e["decision_interval"][1] for e in entries])
    ax.errorbar(est, ys, xerr=[est - low, high - est], fmt="o", markersize=3, capsize=2)
    ax.axvline(LEAK_BUDGET_BITS_PER_OP, color="tab:red", linestyle="--",
               label=f"budget {LEAK_BUDGET_BITS_PER_OP} bits/op")
    ax.set_yticks(ys, [f"{e['workload']}: {e['feature']}" for e in entries], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("bits per access vs the ideal simulator (simultaneous decision intervals)")
    ax.set_title(f"leakage, N = {report['params']['capacity']}", fontsize=9)
    ax.legend(fontsize=7)
    return _save(plt, fig, path)


def plot_reaccess(reports: list[dict], path: str) -> str:
    """Bits per re-access against N: the page-history observer, the pair-only statistic, and
    the ideal simulator's noise floor, with intervals, and the budget."""
    plt, fig, ax = _figure(7, 4.5)
    ns = np.array([r["params"]["capacity"] for r in reports])
    for key, label in (("page_history", "page-history observer"),
                       ("pair_only", "pair only (x repeats)"),
                       ("ideal_page_history", "ideal simulator (noise floor)")):
        est = np.array([r[key]["bits_per_op"] for r in reports])
        low = np.array([r[key]["interval"][0] for r in reports])
        high = np.array([r[key]["interval"][1] for r in reports])
        ax.errorbar(ns, np.maximum(est, 1e-6), yerr=[np.maximum(est - low, 0),
                                                     np.maximum(high - est, 0)],
                    fmt="o-", capsize=3, label=label)
    ax.axhline(LEAK_BUDGET_BITS_PER_OP, color="tab:red", linestyle="--", label="budget")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("N")
    ax.set_ylabel("bits per access (label: re-access or another key)")
    ax.set_title("algorithm §8: the re-access leak against N, 95% intervals", fontsize=9)
    ax.legend(fontsize=7)
    return _save(plt, fig, path)


def plot_placements(report: dict, path: str) -> str:
    """Bits per access of each probe (hot key, then the gaps) for both placements, one line
    per N and placement, with 95% intervals; zero estimates drawn at the axis floor."""
    plt, fig, ax = _figure(8, 4.8)
    probes = list(dict.fromkeys(row["probe"] for row in report["rows"]))
    floor = 1e-6
    for n, capacity in enumerate(report["capacities"]):
        rows = {row["probe"]: row for row in report["rows"] if row["capacity"] == capacity}
        for placement, style in (("two-choice", "o-"), ("pool", "s--")):
            entries = [rows[probe][placement]["page_history"] for probe in probes]
            est = np.array([max(e["bits_per_op"], floor) for e in entries])
            low = np.array([max(e["interval"][0], floor) for e in entries])
            high = np.array([max(e["interval"][1], floor) for e in entries])
            ax.errorbar(np.arange(len(probes)) + 0.06 * (n - len(report["capacities"]) / 2),
                        est, yerr=[est - np.minimum(low, est), high - est], fmt=style,
                        color=f"C{n % 10}", capsize=3, markersize=4,
                        label=f"N = 2^{int(np.log2(capacity))} {placement}")
    ax.set_xticks(range(len(probes)), probes)
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor / 2)
    ax.set_ylabel("bits per access (page-history observer)")
    ax.set_title("algorithm §13: two-choice (solid) and pool (dashed), 95% intervals",
                 fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    return _save(plt, fig, path)


def output_path(out: str, name: str) -> str:
    os.makedirs(out, exist_ok=True)
    return os.path.join(out, name)

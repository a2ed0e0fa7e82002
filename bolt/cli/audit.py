"""``bolt audit``: the trace-leakage audit."""

from __future__ import annotations

import click

from ..tools.audit import LEAKY_VARIANTS, AuditError, _label, audit, write_report
from ..tools.workloads import WORKLOADS
from .common import make_params, params_options, print_table


@click.command("audit")
@params_options
@click.option("--ops", "-n", default="16384", show_default=True,
              help="Operations per workload (1e5 style accepted).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--backend", type=click.Choice(["reference", "rtl"]), default="reference",
              show_default=True)
@click.option("--crypto/--trace-only", default=False, show_default=True,
              help="Reference model with page crypto, or the trace-only mode (algorithm §9).")
@click.option("--workloads", "-w", default=",".join(WORKLOADS), show_default=True,
              help="Comma-separated workloads to run.")
@click.option("--self-check", is_flag=True,
              help="Also run the deliberately leaky variants and check they are flagged.")
@click.option("--out", type=click.Path(file_okay=False), default="reports/audit",
              show_default=True)
@click.option("--plots/--no-plots", default=True, show_default=True)
@click.option("--progress/--no-progress", default=True, show_default=True)
def command(ops, seed, backend, crypto, workloads, self_check, out, plots, progress,
                  **options):
    """Trace-leakage audit: can the host trace tell workloads apart? (algorithm §8)

    Exits with status 1 if a test the design is expected to pass is flagged, or if
    --self-check finds a leaky variant that the audit does not flag.
    """
    params = make_params(**options)
    ops = int(float(ops))
    names = [w.strip() for w in workloads.split(",") if w.strip()]
    for w in names:
        if w not in WORKLOADS:
            raise click.BadParameter(f"unknown workload {w!r}; choose from "
                                     f"{', '.join(WORKLOADS)}")
    ok = True
    try:
        report = audit(params, ops=ops, seed=seed, backend=backend, crypto=crypto,
                       workloads=names, progress=progress)
    except AuditError as error:
        raise click.ClickException(str(error)) from error
    paths = write_report(report, out, name="audit", plots=plots)
    print_summary(report, click.echo)
    click.echo("RESULT: " + ("pass" if report["passed"] else "FAIL (leak detected)"))
    ok = report["passed"]
    if self_check:
        for variant in LEAKY_VARIANTS:
            leaky = audit(params, ops=ops, seed=seed, crypto=crypto, variant=variant,
                          workloads=names, progress=progress)
            paths += write_report(leaky, out, name=f"selfcheck_{variant}", plots=plots)
            click.echo("")
            print_summary(leaky, click.echo)
            caught = not leaky["passed"]
            click.echo(f"SELF-CHECK {variant}: " + ("flagged, as it must be" if caught
                                                     else "NOT FLAGGED: the audit is blind"))
            ok = ok and caught
    click.echo("wrote " + ", ".join(paths))
    if not ok:
        raise SystemExit(1)


def print_summary(report: dict, echo) -> None:
    s = report["summary"]
    echo(f"{report['variant']}: {report['ops_per_workload']} ops per workload, seed "
         f"{report['seed']}, backend {report['backend']}"
         f"{' (full crypto)' if report['crypto'] else ' (trace-only)'}; "
         f"{s['tests']} tests: {s['clean_tests']} expected clean, {s['clean_flagged']} of them "
         f"flagged; {s['known_leak_tests']} measure the known leak, {s['known_leak_detected']} "
         f"detected it")
    rows = []
    for t in report["tests"]:
        if t["flagged"] or (t["test"] != "welch" and t["workloads"][0] != "ideal"):
            stat = f"{t['statistic_name']}={t['statistic']:.2f}"
            rows.append((_label(t), stat, t["threshold"], t["sample_size"] if t["test"] != "welch"
                         else min(t["sample_size"]), f"{t['effect_size']:.4f}",
                         f"{t['min_detectable_effect']:.4f}", f"{t['bits_per_op']:.2e}",
                         t["verdict"].split(" (")[0].split(":")[0]))
    print_table(rows, headers=("test", "statistic", "threshold", "n", "effect", "min effect",
                               "bits/op", "verdict"))
    echo("algorithm §8, revealed bin x repeats between consecutive ops (ratio to chance 1/B):")
    for group, entry in report["section8"]["pooled"].items():
        lo, hi = entry["ratio_ci95"]
        echo(f"  {group:24s} {entry['ratio_to_chance']:.3f}  (95% CI {lo:.3f}-{hi:.3f}, "
             f"{entry['transitions']} transitions, "
             f"{entry['bits_per_transition']:.2e} bits per transition)")
    budget = report["section8"]["budget"]
    echo(f"  budget: same-key ratio <= {budget['limit']}, distinct-key ratio >= "
         f"{1 / budget['limit']}: " + ("EXCEEDED" if budget["exceeded"] else "within"))
    if report.get("ops_differing_from_reference_model"):
        echo("ops whose trace differs from the trace-only reference model: "
             + ", ".join(f"{w} {n}" for w, n in
                         report["ops_differing_from_reference_model"].items()))

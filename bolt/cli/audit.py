"""``bolt audit``: conformance to the reference design, and leakage of the reference design."""

from __future__ import annotations

import time

import click

from .common import make_params, params_options, parse_ints, placement_options


@click.command("audit")
@params_options(capacity=256)
@placement_options
@click.option("--conformance", is_flag=True,
              help="Compare the design under test (--backend / --variant) with the reference "
                   "design on every workload and feature.")
@click.option("--leakage", is_flag=True,
              help="Bits per access of the reference design against the ideal simulator, per "
                   "workload and feature, and the re-access probe at this N.")
@click.option("--section8", "section8", default=None, metavar="CAPACITIES",
              help="The re-access probe at each N given (e.g. 2^8,2^12,2^16,2^20), with "
                   "--probe-runs runs of --probe-ops accesses each.")
@click.option("--compare-placements", "compare", default=None, metavar="CAPACITIES",
              help="Page-history leak of the two placements side by side at each N given "
                   "(e.g. 2^8,2^12,2^16): a hot key and re-access gaps of 1, M/8, M and 4M, "
                   "with --probe-runs runs of at least --probe-ops accesses each (for a pool "
                   "of another size, --placement pool --pool-size P).")
@click.option("--self-check", is_flag=True,
              help="Conformance of every planted variant; each must be flagged.")
@click.option("--false-alarms", type=int, default=0, metavar="K",
              help="Conformance of the reference against itself for K seeds; count flags.")
@click.option("--backend", default="reference", show_default=True,
              help="Design under test: reference, rtl, channel or rtl-channel (behind the "
                   "sealed channel: frames too), or module:function (a factory "
                   "(params, *, master_key, salt) -> object with setup/access/trace).")
@click.option("--variant", default=None, help="A planted variant as the design under test.")
@click.option("--crypto/--trace-only", default=False, show_default=True,
              help="The reference backend with page crypto, or its trace-only pages.")
@click.option("--exact/--no-exact", default=None,
              help="Also require the design's pages to equal the reference's under the same "
                   "keys, access for access (default: on for rtl, the channels and --crypto).")
@click.option("--runs", type=int, default=8, show_default=True,
              help="Independent runs per side and workload.")
@click.option("--ops", "-n", default="2048", show_default=True,
              help="Accesses per run (1e4 style accepted).")
@click.option("--workloads", "-w", default=None,
              help="Comma-separated workloads (default: all).")
@click.option("--gap", type=int, default=1, show_default=True,
              help="Re-access probe: accesses between a key's access and its re-access.")
@click.option("--probe-runs", type=int, default=8, show_default=True)
@click.option("--probe-ops", default="65536", show_default=True,
              help="Accesses per run of the re-access probe.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default="reports/audit",
              show_default=True)
@click.option("--plots/--no-plots", default=True, show_default=True)
@click.option("--progress/--no-progress", default=True, show_default=True)
def command(conformance, leakage, section8, compare, self_check, false_alarms, backend, variant,
            crypto, exact, runs, ops, workloads, gap, probe_runs, probe_ops, seed, out, plots,
            progress, **options):
    """Audit host traces: conformance of a design, leakage of the reference design.

    With no choice given, runs --conformance and --leakage. Writes JSON (and PNG) reports to
    --out; docs/audit.md explains every test and how to read them. Exits with status 1 when a
    conformance test flags the design, a leakage estimate exceeds the budget, or a planted
    variant goes unflagged.
    """
    from ..tools import audit, audit_report
    from ..tools.variants import VARIANTS
    from ..tools.workloads import WORKLOADS

    params = make_params(**options)
    ops, probe_ops = int(float(ops)), int(float(probe_ops))
    names = list(WORKLOADS) if workloads is None else [w.strip() for w in workloads.split(",")
                                                       if w.strip()]
    for name in names:
        if name not in WORKLOADS:
            raise click.BadParameter(f"unknown workload {name!r}; choose from "
                                     f"{', '.join(WORKLOADS)}")
    if variant is not None and variant not in VARIANTS:
        raise click.BadParameter(f"unknown variant {variant!r}; choose from "
                                 f"{', '.join(VARIANTS)}")
    if not (conformance or leakage or section8 or compare or self_check or false_alarms):
        conformance = leakage = True
    if exact is None:
        exact = backend in ("rtl", "channel", "rtl-channel") or (backend == "reference"
                                                                 and crypto)
    common = dict(workloads=names, runs=runs, ops=ops, progress=progress)
    started, ok, paths = time.perf_counter(), True, []

    def emit(lines):
        for line in lines:
            click.echo(line)
        click.echo("")

    try:
        if conformance:
            design = audit.design_factory(backend, variant=variant, crypto=crypto)
            name = variant or (f"{backend}" + (" (crypto)" if crypto else ""))
            report = audit.conformance(params, design, seed=seed, exact=exact, name=name,
                                       **common)
            paths.append(audit.write_report(report, out, "conformance"))
            if plots:
                paths.append(audit_report.plot_conformance(
                    report, audit_report.output_path(out, "conformance_effects.png")))
            emit(audit_report.conformance_lines(report))
            ok &= report["passed"]
        if false_alarms:
            flagged, seeds = [], [seed + 1000 + k for k in range(false_alarms)]
            for other in seeds:
                report = audit.conformance(params, seed=other, name="reference", **common)
                flagged.append(len(report["flagged"]))
                click.echo(f"reference against itself, seed {other}: "
                           f"{len(report['flagged'])} flagged {report['flagged']}")
            paths.append(audit.write_report({"seeds": seeds, "flagged_tests": flagged,
                                             "multiple_testing": report["multiple_testing"]},
                                            out, "false_alarms"))
            click.echo(f"false alarms: {sum(f > 0 for f in flagged)} of {false_alarms} "
                       f"reports flagged something ({sum(flagged)} tests in all)\n")
            ok &= not any(flagged)
        if self_check:
            results = audit.self_check(params, seed=seed, **common)
            for name, result in results.items():
                paths.append(audit.write_report(result["report"], out, f"selfcheck_{name}"))
                click.echo(f"SELF-CHECK {name}: "
                           + (f"flagged by {len(result['flagged'])}: "
                              + ", ".join(result["flagged"][:6])
                              + (" ..." if len(result["flagged"]) > 6 else "")
                              if result["caught"] else "NOT FLAGGED: the audit is blind"))
                ok &= result["caught"]
            click.echo("")
        if leakage:
            report = audit.leakage(params, workloads=names, runs=runs, ops=max(ops, 4096),
                                   seed=seed)
            paths.append(audit.write_report(report, out, "leakage"))
            if plots:
                paths.append(audit_report.plot_leakage(
                    report, audit_report.output_path(out, "leakage.png")))
            emit(audit_report.leakage_lines(report))
            ok &= report["passed"]      # an undecided estimate does not pass either
            section8 = section8 or str(params.capacity)
        if section8:
            probes = []
            for capacity in parse_ints(section8):
                probe_params = make_params(**{**options, "capacity": capacity})
                probes.append(audit.reaccess_leak(probe_params, gap=gap, runs=probe_runs,
                                                  ops=probe_ops, seed=seed))
            paths.append(audit.write_report({"probes": probes}, out, "section8"))
            if plots and len(probes) > 1:
                paths.append(audit_report.plot_reaccess(
                    probes, audit_report.output_path(out, "section8.png")))
            emit(audit_report.reaccess_lines(probes))
            ok &= all(not p["verdict"].startswith("EXCEEDS") for p in probes)
        if compare:
            # A comparison of two designs, not a verdict on one: it does not change RESULT.
            report = audit.placement_comparison(
                params, parse_ints(compare), runs=probe_runs, ops=probe_ops, seed=seed,
                pool_size=options["pool_size"],
                progress=(lambda n, probe, placement, result: click.echo(
                    f"  N={n} {probe} {placement}: {result['seconds']:.1f} s", err=True))
                if progress else None)
            paths.append(audit.write_report(report, out, "placements"))
            if plots:
                paths.append(audit_report.plot_placements(
                    report, audit_report.output_path(out, "placements.png")))
            emit(audit_report.placement_lines(report))
    except audit.AuditError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"audit wall time {time.perf_counter() - started:.1f} s; wrote "
               + ", ".join(paths))
    click.echo("RESULT: " + ("pass" if ok else "FAIL"))
    if not ok:
        raise SystemExit(1)

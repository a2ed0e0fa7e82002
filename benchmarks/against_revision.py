"""``bolt speed`` of this checkout against an earlier revision, run by run on the same machine.

This virtual machine's speed for the same code moves by a third between neighbouring minutes, so
a figure measured today cannot be held against one measured on another day. This script runs
the same measurement (``bolt.tools.speed.measure``: the 50/50 GET/PUT workload on a map
bulk-loaded with N/2 items, then a Setup of N items) alternately on this checkout and on a
revision exported from git, each run in a fresh process, and reports each side's median and
the median of the pairs' ratios.

    python benchmarks/against_revision.py 0c2b2ee            # this checkout (through the channel)
                                                             # against the model at 0c2b2ee
    python benchmarks/against_revision.py 0c2b2ee --pairs 8 --capacity 16

The revision runs its own ``measure`` with its defaults; so does this checkout, where that is
``bolt.Map``'s default, the sealed channel. Both run with this environment's packages.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent

_CHILD = """
import json, sys
from bolt.params import Params
from bolt.tools.speed import measure
result = measure(Params(capacity=1 << int(sys.argv[1])), ops=int(sys.argv[2]))
print(json.dumps({"ops_per_s": result["ops_per_s"], "setup_s": result["setup_s"]}))
"""


def export(revision: str, into: Path) -> Path:
    """The ``bolt`` package of ``revision`` unpacked under ``into``."""
    archive = subprocess.run(["git", "-C", str(CHECKOUT), "archive", revision, "bolt"],
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        # The archive is our own repository's, but take the safe filter where there is one
        # (Python 3.11.4 on).
        tar.extractall(into, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    return into


def run(tree: Path, capacity_log2: int, ops: int) -> dict:
    """One measurement in a fresh process importing ``bolt`` from ``tree``."""
    result = subprocess.run([sys.executable, "-c", _CHILD, str(capacity_log2), str(ops)],
                            capture_output=True, text=True, cwd=tree,
                            env=os.environ | {"PYTHONPATH": str(tree)})
    if result.returncode:
        raise SystemExit(f"a run in {tree} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("revision", help="the git revision to measure against")
    parser.add_argument("--capacity", type=int, default=20, help="log2 N (default 20)")
    parser.add_argument("--ops", type=int, default=20000, help="accesses timed per run")
    parser.add_argument("--pairs", type=int, default=6, help="runs of each (default 6)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        baseline = export(args.revision, Path(scratch))
        sides = {"this checkout": [], args.revision: []}
        for pair in range(args.pairs):
            # Alternate which side goes first, so neither always follows the other.
            order = [(CHECKOUT, "this checkout"), (baseline, args.revision)]
            for tree, name in order if pair % 2 == 0 else order[::-1]:
                sides[name].append(run(tree, args.capacity, args.ops))
            now, then = sides["this checkout"][-1], sides[args.revision][-1]
            print(f"pair {pair + 1}: {now['ops_per_s']:,.0f} against {then['ops_per_s']:,.0f} "
                  f"ops/s, Setup {now['setup_s']:.2f} against {then['setup_s']:.2f} s",
                  flush=True)
    now, then = sides["this checkout"], sides[args.revision]
    ops_ratios = [a["ops_per_s"] / b["ops_per_s"] for a, b in zip(now, then)]
    setup_ratios = [a["setup_s"] / b["setup_s"] for a, b in zip(now, then)]
    for name, runs in sides.items():
        ops_per_s = statistics.median(r["ops_per_s"] for r in runs)
        setup_s = statistics.median(r["setup_s"] for r in runs)
        print(f"{name}: median {ops_per_s:,.0f} ops/s, Setup of 2^{args.capacity} items "
              f"{setup_s:.2f} s")
    print(f"median ratio of the pairs: ops/s {statistics.median(ops_ratios):.3f} "
          f"(range {min(ops_ratios):.3f}-{max(ops_ratios):.3f}), Setup time "
          f"{statistics.median(setup_ratios):.3f} (range {min(setup_ratios):.3f}-"
          f"{max(setup_ratios):.3f})")


if __name__ == "__main__":
    main()

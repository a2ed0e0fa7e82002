"""Instructions per access (or per Setup item) of the reference backend, with and without the
sealed channel, counted by valgrind's callgrind.

Wall-clock and CPU time on a shared machine move by a factor of two between runs; instruction
counts do not. Only the measured part is counted: it runs inside ``functools.reduce``, and
callgrind collects inside that C function alone (``--toggle-collect``), so start-up, imports,
the bulk load before the accesses and any first-use compilation stay out. The master key and
salt are fixed and ``PYTHONHASHSEED=0``, so a run counts the same every time.

    python benchmarks/count_instructions.py                      # accesses at N = 2^12
    python benchmarks/count_instructions.py --capacity 16 --setup

Needs ``valgrind`` on PATH. The workload is ``bolt speed``'s: 50/50 GET/PUT on uniform keys, the
map bulk-loaded with N/2 items (accesses), or a Setup of N items after one untimed Setup.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from functools import reduce

MASTER_KEY = bytes(range(16))


def _run(capacity_log2: int, ops: int, setup: bool, channel: bool) -> None:
    """The measured part, inside ``reduce`` (the child process under callgrind)."""
    import gc

    import numpy as np

    from bolt.map import Map
    from bolt.params import Params
    from bolt.tools.workloads import key_bytes

    params = Params(capacity=1 << capacity_log2)
    options = params.arguments() | {"channel": channel}
    value = bytes(params.value_size)
    if setup:
        items = [(key_bytes(params, i), value) for i in range(params.capacity)]
        # An untimed Setup first: imports and compilation that only a large Setup triggers.
        Map.from_items(items, master_key=MASTER_KEY, unsafe_test_salt=bytes(range(15)),
                       **options).close()
        gc.collect()
        reduce(lambda _, __: Map.from_items(items, master_key=MASTER_KEY,
                                            unsafe_test_salt=bytes(15), **options).close(),
               [None], None)
        return
    m = Map.from_items(((key_bytes(params, i), value) for i in range(params.capacity // 2)),
                       master_key=MASTER_KEY, unsafe_test_salt=bytes(15), **options)
    rng = np.random.default_rng(0)
    keys = [key_bytes(params, i) for i in rng.integers(0, params.capacity, size=ops)]
    puts = rng.random(ops) < 0.5

    def access(_, key_and_put):
        key, put = key_and_put
        if put:
            m[key] = value
        else:
            m.get(key)

    gc.collect()
    reduce(access, zip(keys, puts), None)


def count(capacity_log2: int, ops: int, setup: bool, channel: bool) -> int:
    """Instructions callgrind counts inside the measured part."""
    command = ["valgrind", "--tool=callgrind", "--toggle-collect=functools_reduce",
               "--callgrind-out-file=/dev/null", sys.executable, __file__, "--child",
               "--capacity", str(capacity_log2), "--ops", str(ops)]
    command += ["--setup"] if setup else []
    command += [] if channel else ["--no-channel"]
    result = subprocess.run(command, capture_output=True, text=True,
                            env=os.environ | {"PYTHONHASHSEED": "0"})
    found = re.search(r"refs:\s+([\d,]+)", result.stderr)
    if result.returncode or not found:
        raise SystemExit(f"callgrind run failed:\n{result.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capacity", type=int, default=12, help="log2 N (default 12)")
    parser.add_argument("--ops", type=int, default=2000, help="accesses counted")
    parser.add_argument("--setup", action="store_true", help="count a Setup of N items")
    parser.add_argument("--no-channel", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _run(args.capacity, args.ops, args.setup, not args.no_channel)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not on PATH")
    per = (1 << args.capacity) if args.setup else args.ops
    what = f"Setup, per item (N = 2^{args.capacity})" if args.setup else \
        f"access (N = 2^{args.capacity}, {args.ops} accesses)"
    without = count(args.capacity, args.ops, args.setup, False) / per
    with_channel = count(args.capacity, args.ops, args.setup, True) / per
    print(f"{what}: {without:,.0f} instructions without the channel, {with_channel:,.0f} "
          f"with it ({with_channel / without:.3f}x)")


if __name__ == "__main__":
    main()

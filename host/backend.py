"""``bolt.Map(backend="rtl")``: the accelerator's Verilator simulation as a map backend.

The design is generated from the map's :class:`~bolt.params.Params`, built once per parameter
set (cached by :func:`bolt.sim.verilator.build`) and simulated in a child process running the
cocotb server :mod:`bolt.sim.server`. This process stays a plain Python process: it sends
each operation over a Unix socket; its :class:`~bolt.trace.HostMemory` keeps the host bytes in
a memory map the simulation shares (in ``/dev/shm`` where there is one), which serves the
accelerator's page reads and writes without waiting for this process, and sends the trace
events of each operation with its answer. So ``trace`` and ``host_memory`` behave exactly as
on the reference backend, tampering included.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from ..crypto import master_key_or_new, new_salt
from ..errors import (BOUND_UNNAMED, BackendError, BoundExceededError, CapacityError,
                      ChannelError)
from ..params import Params
from ..protocol import Op, Response, Status
from ..trace import HostMemory, Trace

__all__ = ["RtlBackend", "RtlStats", "build_accelerator", "run_cosim_testbench",
           "PCIE_GEN3_X16_BYTES_PER_S", "PAPER_LATENCY_US"]

#: Usable bandwidth of PCIe Gen3 x16, the default host link of the latency projection.
PCIE_GEN3_X16_BYTES_PER_S = 12e9
#: The simulation server's name for itself in Verilator builds.
TOP_NAME = "bolt_accelerator"
#: The same for the accelerator behind its sealed channel.
SEALED_TOP_NAME = "bolt_sealed_accelerator"


#: The largest capacity whose profile-guided build (``build_accelerator(...,
#: profile_guided=True)``) is made: its training run's Setup clears every HBM page, so it grows
#: with N (seconds at 2^12, minutes at 2^20); larger builds are compiled without a profile.
PROFILE_GUIDED_MAX_CAPACITY = 2**16


def run_cosim_testbench(handle, params: Params, *, setup_items: int, ops: int, seed: int,
                        **env) -> None:
    """Run the cosimulation testbench (``bolt.sim.tb_accelerator``'s ``test_cosim``) on the
    accelerator build ``handle``: a Setup of ``setup_items`` distinct keys (the map's first:
    no empty Setup before it), then ``ops`` mixed accesses compared with the model, on the
    RTL backend's main-loop clock. ``env``: more of the testbench's ``BOLT_*`` settings."""
    from ..sim.streams import CLOCK_PERIOD_NS
    from ..sim.verilator import main_clock_env, run

    run(handle, "bolt.sim.tb_accelerator", testcase="test_cosim", env={
        "BOLT_PARAMS": json.dumps(params.arguments()), "BOLT_SETUP_ITEMS": setup_items,
        "BOLT_OPS": ops, "BOLT_SEED": seed, "BOLT_INITIAL_SETUP": 0, **env,
        **main_clock_env(CLOCK_PERIOD_NS)})


def _training(params: Params):
    """The training run of a profile-guided accelerator build: the cosimulation testbench's
    Setup of a few hundred items and 200 mixed accesses, without back-pressure, as the
    backend simulates it."""
    def train(handle) -> None:
        run_cosim_testbench(handle, params, setup_items=min(256, params.capacity // 2),
                            ops=200, seed=1, BOLT_PAUSES=0)
    return train


def build_accelerator(params: Params, *, waveform: bool = False, sealed: bool = False,
                      profile_guided: bool = False):
    """The cached Verilator build of the accelerator for ``params`` (``sealed``: behind its
    channel, :class:`bolt.hdl.channel.SealedAccelerator`), with the simulated HBM and host
    memory models on its ports (:class:`bolt.sim.card.SimulatedCard`).

    ``profile_guided``: compiled with the counts of a training run (:func:`_training`,
    ``bolt.sim.verilator.build``'s ``training``), for long simulations such as ``bolt sim``'s;
    a separate cache entry, not made for a waveform, the sealed design or a capacity over
    :data:`PROFILE_GUIDED_MAX_CAPACITY`."""
    from ..hdl.accelerator import RtlAccelerator
    from ..sim.card import SimulatedCard, models_verilog
    from ..sim.verilator import DEFAULT_BUILD_ARGS, build

    if params.pooled:
        raise ValueError("the RTL implements the two-choice placement only; placement='pool' "
                         "(algorithm §13) runs on the reference backend (docs/rtl.md says "
                         "what the RTL would take)")
    args = DEFAULT_BUILD_ARGS + (("--trace-fst", "--trace-structs") if waveform else ())
    try:
        if sealed:
            from ..hdl.channel import SealedAccelerator
            design, name = SealedAccelerator, SEALED_TOP_NAME
        else:
            design, name = RtlAccelerator, TOP_NAME
        training = (_training(params) if profile_guided and not waveform and not sealed
                    and params.capacity <= PROFILE_GUIDED_MAX_CAPACITY else None)
        return build(lambda: SimulatedCard(design(params)), name=name, build_args=args,
                     source_key=repr(params.arguments()),
                     extra_verilog=models_verilog(), long_runs=True, training=training)
    except Exception as error:
        raise BackendError(f"could not build the accelerator for {params}: {error}") from error


#: The paper's FPGA prototype (U55C, 1M items, one command at a time): µs per access by V.
PAPER_LATENCY_US = {8: 4.57, 64: 6.99}


@dataclass
class RtlStats:
    """Cycle stamps of the accelerator per access, and the latency and throughput they project
    on a real host link (:mod:`bolt.model.schedule`, the one home of the timing rule).

    From the simulated accesses it takes the on-chip phases (:class:`AccessPhases`):
    ``prelude``, acceptance to the back taking the command (its PRF and draws); ``front``, from
    there to the first page read request; ``hbm_reads[t]``, that request to the end of the
    access's HBM reads (the flushes' frames in); ``back[t]``, the later of the last page beat
    in and that end to the core's response; ``tail[t]``, that response to the back being idle
    again; by touch count ``t``; and ``sealing``, the core's response to the answer (the
    sealed channel's sealing, beside the tail; 0 without it). The simulated host link's
    latency and beats are replaced by ``host_round_trip_s`` and ``host_bandwidth``; the
    projection then runs the recorded touch counts through the schedule with one access in
    flight and with the best number in flight.
    ``back`` holds whatever on-chip work the simulated host did not hide: simulated as the
    link itself (``simulated_link``: its round trip and bandwidth), it is the work a real link
    leaves after the last beat; with the quickest host (the default), more, so the projection
    is pessimistic.
    """

    clock_hz: float = 300e6
    host_round_trip_s: float = 1e-6
    host_bandwidth: float = PCIE_GEN3_X16_BYTES_PER_S
    page_bytes: int = 0
    value_size: int = 0
    simulated_link: bool = False
    cycles: list[int] = field(default_factory=list)      #: per access
    reads: list[int] = field(default_factory=list)       #: page reads per access
    bytes_moved: list[int] = field(default_factory=list)  #: host bytes per access
    reads_at: list[int] = field(default_factory=list)    #: cycle of the first page read
    data_at: list[int] = field(default_factory=list)     #: cycle of the last page beat in
    idle_at: list[int] = field(default_factory=list)     #: cycle the back was idle again
    ready_at: list[int] = field(default_factory=list)    #: cycle its HBM reads ended
    taken_at: list[int] = field(default_factory=list)    #: cycle the back took it
    responded_at: list[int] = field(default_factory=list)  #: the core's response (no sealing)
    setup_cycles: int = 0

    def record(self, cycles, reads: int, bytes_moved: int) -> None:
        """``cycles``: the access's ``(total, reads_at, data_at, idle_at, ready_at, taken_at,
        responded_at)`` stamps (:class:`bolt.hdl.accelerator.Cycles`; through the sealed
        channel counted from its frame's acceptance, so the prelude holds the frame's opening,
        and the answer comes the sealing after the core's response), or its total alone
        (stamps unknown: the projection then counts the simulated host link's cycles as
        on-chip work, a pessimistic figure)."""
        total, reads_at, data_at, idle_at, ready_at, taken_at, responded_at = (
            (cycles, 0, 0, cycles, 0, 0, 0) if isinstance(cycles, int) else cycles)
        self.cycles.append(total)
        self.taken_at.append(taken_at)
        self.responded_at.append(responded_at or total)
        self.reads.append(reads)
        self.bytes_moved.append(bytes_moved)
        self.reads_at.append(reads_at)
        self.data_at.append(data_at)
        self.idle_at.append(idle_at)
        self.ready_at.append(ready_at)

    @property
    def link(self):
        from ..model.schedule import HostLink
        return HostLink(self.clock_hz, self.host_round_trip_s, self.host_bandwidth)

    def phases(self):
        """The mean on-chip phases of the recorded accesses."""
        from ..model.schedule import AccessPhases
        touched = [i for i, reads in enumerate(self.reads) if reads]
        # Recorded one command at a time, so the back took each as soon as it was prepared.
        prelude = sum(self.taken_at) / len(self.taken_at) if self.taken_at else 0.0
        front = (sum(self.reads_at[i] for i in touched) / len(touched) - prelude
                 if touched else 0.0)
        responded = self.responded_at
        sealing = sum(c - r for c, r in zip(self.cycles, responded)) / max(1, len(responded))
        back, tail, hbm_reads = [], [], []
        for t in range(3):
            rows = [i for i, reads in enumerate(self.reads) if reads == t]
            if not rows:         # never used: the projection runs the recorded counts
                back.append(0.0)
                tail.append(0.0)
                hbm_reads.append(0.0)
                continue
            if t == 0:           # no page to wait for: its work to the response is HBM reads
                hbm_reads.append(sum(responded[i] for i in rows) / len(rows) - prelude - front)
                back.append(0.0)
            else:
                hbm_reads.append(sum(max(0, self.ready_at[i] - self.reads_at[i]) for i in rows)
                                 / len(rows))
                back.append(sum(responded[i] - max(self.data_at[i], self.ready_at[i])
                                for i in rows) / len(rows))
            tail.append(sum(self.idle_at[i] - responded[i] for i in rows) / len(rows))
        return AccessPhases(front, tuple(back), tuple(tail), tuple(hbm_reads), prelude, sealing)

    def projection(self, depth: int | None = 1) -> dict:
        """The schedule's projection of the recorded touch counts at ``depth`` accesses in
        flight (None: the depth of most throughput)."""
        from ..model.schedule import best_depth, project
        if depth is None:
            return best_depth(self.reads, self.phases(), self.link, self.page_bytes)
        return project(self.reads, self.phases(), self.link, self.page_bytes, depth)

    def summary(self) -> dict:
        """Cycles, phases, and projected latency and throughput over the recorded accesses."""
        n = len(self.cycles)
        if n == 0:
            return {"accesses": 0}
        by_touches: dict[int, list[int]] = {}
        for cycles, reads in zip(self.cycles, self.reads):
            by_touches.setdefault(reads, []).append(cycles)
        phases = self.phases()
        report = {
            "accesses": n,
            "mean cycles": sum(self.cycles) / n,
            "max cycles": max(self.cycles),
            "mean cycles by touches": {t: sum(c) / len(c) for t, c in sorted(by_touches.items())},
            "prelude cycles (PRF and draws, beside the access before)": phases.prelude,
            "front cycles (lookup, to the reads)": phases.front,
            "HBM read cycles by touches (reads to the end of the frame reads)":
                dict(enumerate(phases.hbm_reads)),
            "back cycles by touches (data and frames in to response)":
                dict(enumerate(phases.back)),
            "tail cycles by touches (writes, re-placement)": dict(enumerate(phases.tail)),
        }
        if phases.sealing:
            report["sealing cycles (response to answer, beside the tail)"] = phases.sealing
        report["idle accelerator: mean latency (us)"] = \
            self.projection(1)["idle accelerator: mean latency (us)"]
        for name, depth in (("1 in flight", 1), ("best in flight", None)):
            run = self.projection(depth)
            report[f"{name}: depth"] = run["depth"]
            report[f"{name}: mean latency (us)"] = run["mean latency (us)"]
            report[f"{name}: p99 latency (us)"] = run["p99 latency (us)"]
            report[f"{name}: throughput (accesses/s)"] = run["throughput (accesses/s)"]
        report["host link cap (accesses/s)"] = run["link cap (accesses/s)"]
        port_cap = run["HBM port cap (accesses/s)"]
        report["HBM port cap (accesses/s)"] = (
            port_cap if port_cap is not None else "not measured (no cycle stamps)")
        if self.value_size in PAPER_LATENCY_US:
            paper = PAPER_LATENCY_US[self.value_size]
            report["paper's FPGA latency (us)"] = paper
            report["paper's FPGA throughput (accesses/s)"] = 1e6 / paper
        report.update({
            "clock (MHz)": self.clock_hz / 1e6,
            "host round trip (us)": self.host_round_trip_s * 1e6,
            "host bandwidth (GB/s)": self.host_bandwidth / 1e9,
            "host link simulated": "yes" if self.simulated_link else "no (quickest host)",
            "setup cycles": self.setup_cycles,
        })
        return report


def simulated_host_timing(clock_hz: float, round_trip_s: float,
                          bandwidth: float) -> tuple[int, int]:
    """The host model's read latency (cycles to a read's first beat) and pace (bytes a cycle)
    that simulate a link of ``round_trip_s`` and ``bandwidth`` at ``clock_hz``."""
    latency, rate = round(round_trip_s * clock_hz), round(bandwidth / clock_hz)
    if not (0 <= latency < 2**16 and 1 <= rate < 2**8):
        raise ValueError(f"a {round_trip_s * 1e6:g} us round trip and {bandwidth / 1e9:g} GB/s "
                         f"at {clock_hz / 1e6:g} MHz give {latency} cycles and {rate} bytes a "
                         "cycle; the simulated host takes up to 65,535 cycles and 1 to 255 "
                         "bytes a cycle")
    return latency, rate


def _shared_memory(size: int) -> tuple[Path, mmap.mmap]:
    """A new file of ``size`` zero bytes, in ``/dev/shm`` (memory, not disk) where there is
    one, and a shared map of it."""
    shm = Path("/dev/shm")
    descriptor, name = tempfile.mkstemp(prefix="bolt-host-",
                                        dir=shm if os.access(shm, os.W_OK) else None)
    try:
        os.ftruncate(descriptor, size)
        return Path(name), mmap.mmap(descriptor, size)
    except BaseException:
        os.unlink(name)
        raise
    finally:
        os.close(descriptor)


class RtlBackend:
    """The accelerator RTL, simulated by Verilator in a child process.

    Parameters
    ----------
    params : Params
        The public parameters; the design is generated from them.
    master_key, salt, items
        As for the reference model: the first Setup's key, salt and items.
    clock_hz, host_round_trip_s, host_bandwidth : float
        The latency projection's clock (default 300 MHz), host round trip (1 µs) and host
        link bandwidth (PCIe Gen3 x16, 12 GB/s).
    simulated_link : bool
        Simulate the host memory as that link: its round trip before a read's first beat and
        its bandwidth between beats (:func:`simulated_host_timing`), so that the measured
        phases leave out what a real link hides. Off (the default), the host answers at once,
        a beat a cycle: the quickest simulation.
    waveform : path, optional
        A directory for an FST waveform of the whole session (``dump.fst``, opens in GTKWave).
    timeout_s : float
        Longest wait for the simulator to answer one request before it is declared dead (a
        Setup waits that long per 2^16 of capacity: it is linear in N).
    channel : bool
        Simulate the accelerator behind its sealed channel, with the security monitor in the
        simulation process: then this object is the device a :class:`bolt.channel.ChannelClient`
        talks to through the host (``report``, ``open_session``, ``exchange``), and nothing is
        set up until the client's Setup frames arrive (``master_key``, ``salt`` and ``items``
        are not used).
    profile_guided : bool
        Simulate on the profile-guided build (:func:`build_accelerator`): for long runs, at
        the cost of a training run and a second compilation when it is not cached yet.
    """

    def __init__(self, params: Params, *, master_key: bytes | None = None,
                 salt: bytes | None = None, items=(), clock_hz: float = 300e6,
                 host_round_trip_s: float = 1e-6,
                 host_bandwidth: float = PCIE_GEN3_X16_BYTES_PER_S,
                 simulated_link: bool = False,
                 waveform: str | os.PathLike | None = None, timeout_s: float = 120.0,
                 channel: bool = False, profile_guided: bool = False):
        self._host_timing = simulated_host_timing(clock_hz, host_round_trip_s, host_bandwidth) \
            if simulated_link else (0, 0)
        master_key = master_key_or_new(master_key)
        self.channel = channel
        self.params = params
        self.trace = Trace()
        self._directory = Path(tempfile.mkdtemp(prefix="bolt-rtl-"))
        self._host_file, shared = _shared_memory(params.host_bytes)
        self.host_memory = HostMemory(params.host_bytes, self.trace, buffer=shared)
        self.stats = RtlStats(clock_hz=clock_hz, host_round_trip_s=host_round_trip_s,
                              host_bandwidth=host_bandwidth, page_bytes=params.page_stride,
                              value_size=params.value_size,
                              simulated_link=simulated_link)
        self._master_key = master_key
        self._keys: dict[bytes, None] = {}
        self._timeout_s = timeout_s
        self._process = None
        self._connection = None
        try:
            self._handle = build_accelerator(params, waveform=waveform is not None,
                                             sealed=channel, profile_guided=profile_guided)
            self._start(self._handle, waveform)
            if not channel:
                self.setup(items, salt=salt)
        except BaseException:
            self.close()
            raise

    # -- the child process -------------------------------------------------------------------

    def _start(self, handle, waveform) -> None:
        address = str(self._directory / "bridge.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(address)
        listener.listen(1)
        listener.settimeout(0.5)
        env = dict(os.environ, BOLT_PARAMS=json.dumps(self.params.arguments()),
                   BOLT_BRIDGE_ADDRESS=address, BOLT_BUILD_DIR=str(handle.directory),
                   BOLT_BUILD_NAME=handle.name, BOLT_VERILOG=str(handle.verilog),
                   BOLT_HOST_MEMORY=str(self._host_file),
                   BOLT_HOST_LATENCY=str(self._host_timing[0]),
                   BOLT_HOST_RATE=str(self._host_timing[1]))
        if self.channel:
            env["BOLT_SERVER_MODULE"] = "bolt.sim.channel_server"
        if waveform is not None:
            Path(waveform).mkdir(parents=True, exist_ok=True)
            env["BOLT_WAVEFORM_DIR"] = str(Path(waveform).resolve())
        self._log_path = self._directory / "simulator.log"
        with open(self._log_path, "wb") as log:
            self._process = subprocess.Popen([sys.executable, "-m", "bolt.sim.launch"],
                                             env=env, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + self._timeout_s
        try:
            while True:
                try:
                    client, _ = listener.accept()
                    break
                except socket.timeout:
                    self._check_alive(deadline, self._timeout_s, "start")
        finally:
            listener.close()
        self._connection = Connection(client.detach())
        self._receive("ready", deadline, self._timeout_s)

    def _check_alive(self, deadline: float, timeout_s: float, doing: str) -> None:
        if self._process.poll() is not None:
            raise BackendError(f"the RTL simulator exited (code {self._process.returncode}) "
                               f"during {doing}:\n{self._log_tail()}")
        if time.monotonic() > deadline:
            raise BackendError(f"the RTL simulator did not answer within {timeout_s:g} s "
                               f"during {doing}:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self._log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no simulator log)"

    def _receive(self, expected: str, deadline: float, timeout_s: float):
        """Record the simulation's host-memory events until it sends ``expected``."""
        connection, record = self._connection, self.trace.append
        while True:
            try:
                ready = connection.poll(0.5)
                message = connection.recv() if ready else None
            except (EOFError, OSError) as error:
                raise BackendError(f"lost the RTL simulator: {error}\n{self._log_tail()}") from error
            if message is None:
                self._check_alive(deadline, timeout_s, expected)
                continue
            if message[0] == "events":      # the host accesses made since the last message
                for event in message[1]:
                    record(event)
                message = message[2]
            kind = message[0]
            if kind == expected:
                return message
            else:
                raise BackendError(f"unexpected message {kind!r} from the RTL simulator")

    def _request(self, *request, long: bool = False):
        """Send ``request`` and serve the simulation until it is done. ``long``: a Setup, whose
        clear and page writes are linear in N (millions of cycles with no message at
        N = 2^20), so its deadline grows with N (``timeout_s`` per 2^16 items)."""
        if self._connection is None:
            raise BackendError("this RTL map is closed")
        try:
            self._connection.send(request)
        except OSError as error:
            raise BackendError(f"lost the RTL simulator: {error}\n{self._log_tail()}") from error
        timeout_s = self._timeout_s * (max(1.0, self.params.capacity / 2**16) if long else 1.0)
        return self._receive("done", time.monotonic() + timeout_s, timeout_s)

    # -- the backend interface -----------------------------------------------------------------

    def _direct(self) -> None:
        if self.channel:
            raise BackendError("this accelerator sits behind its sealed channel: send it sealed "
                               "frames (exchange), as bolt.Map does")

    def setup(self, items, *, salt: bytes | None = None) -> None:
        self._direct()
        items = dict(items)
        if len(items) > self.params.capacity:
            raise CapacityError(f"{len(items)} items exceed the capacity of "
                                f"{self.params.capacity}")
        self.trace.begin_op()
        _, status, cycles = self._request("setup", self._master_key,
                                          salt if salt is not None else new_salt(),
                                          list(items.items()), long=True)
        if status != 0:
            self._keys = {}
            raise BoundExceededError(BOUND_UNNAMED,
                                     f"the RTL's Setup crossed a bound ({Status(status).name}); "
                                     "the map is now empty")
        self.stats.setup_cycles = cycles
        self._keys = dict.fromkeys(items)

    def access(self, op: Op, key: bytes, value: bytes | None = None) -> Response:
        self._direct()
        self.trace.begin_op()
        start = len(self.trace)
        _, status, found, page, cycles = self._request("access", int(op), key, value)
        status = Status(status)
        events = self.trace[start:]
        self.stats.record(cycles, sum(e.kind == "read" for e in events),
                          sum(e.length for e in events))
        if status in (Status.FOUND, Status.ABSENT):
            if op == Op.PUT:
                self._keys[key] = None
            elif op == Op.DELETE:
                self._keys.pop(key, None)
        return Response(status, found, page)

    # -- behind the sealed channel (``channel=True``): what the host relays ----------------------

    @property
    def verilog(self) -> bytes:
        """The generated Verilog of the simulated design (what its attestation measures)."""
        return Path(self._handle.verilog).read_bytes()

    def report(self) -> bytes:
        return self._request("report")[1]

    def open_session(self, encapsulated_key: bytes, session: int = 0) -> bytes:
        """A new session under the host's handle ``session`` (one per client of a server)."""
        _, nonce, error = self._request("session", bytes(encapsulated_key), session)
        if error is not None:
            raise ChannelError(error)
        return nonce

    def install_test_keys(self, command_key: bytes, response_key: bytes) -> None:
        """Put keys straight on the key port (tests that compare frames with the reference
        endpoint under the same keys); a real host has no such path."""
        self._request("test keys", bytes(command_key), bytes(response_key))

    def close_session(self, session: int = 0) -> None:
        """Forget a session (its client is gone); the map is untouched."""
        self._request("close session", session)

    def exchange(self, frames, session: int = 0) -> list[bytes]:
        """Relay command frames; return the response frames. One frame is taken as one access
        (an operation of the trace), a batch as one Setup."""
        self.trace.begin_op()
        start = len(self.trace)
        _, answers, cycles, total = self._request("frames", [bytes(f) for f in frames], session,
                                                  long=len(frames) > 1)
        if len(frames) == 1 and len(answers) == 1:
            events = self.trace[start:]
            self.stats.record(cycles[0], sum(e.kind == "read" for e in events),
                              sum(e.length for e in events))
        elif len(frames) > 1:
            self.stats.setup_cycles = total
        return answers

    def __len__(self) -> int:
        return len(self._keys)

    def keys(self):
        """Keys held, from the accelerator's answers (the user's side; no host access)."""
        return iter(list(self._keys))

    def simulator_cpu_seconds(self) -> float | None:
        """CPU seconds used so far by the simulation's processes (the launcher and the
        Verilator executable with cocotb's Python in it), read from ``/proc``; None where
        there is none. The figure to compare builds by on a shared machine, where wall-clock
        time depends on the other jobs."""
        if self._process is None or not Path("/proc/self/stat").is_file():
            return None
        ticks = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                # After the command's closing parenthesis: the session, then user and
                # system time (fields 6, 14 and 15 of proc(5)).
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:              # gone meanwhile
                continue
            if int(fields[3]) == self._process.pid:
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        """Stop the simulation (politely, then by force) and remove its files."""
        if os.environ.get("BOLT_KEEP_SIM_LOG") and self._directory.exists():
            print(self._log_tail(), file=sys.stderr)
        if self._connection is not None:
            try:
                self._connection.send(("close",))
            except OSError:
                pass
            self._connection.close()
            self._connection = None
        if self._process is not None:
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
            self._process = None
        shutil.rmtree(self._directory, ignore_errors=True)
        if self._host_file is not None:    # the map stays readable: host_memory outlives us
            self._host_file.unlink(missing_ok=True)
            self._host_file = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

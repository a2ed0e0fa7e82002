"""The accelerator as the simulations run it: :class:`~bolt.hdl.accelerator.RtlAccelerator`
(or :class:`~bolt.hdl.channel.SealedAccelerator`) with simulation-only memory models on its
ports.

The HBM ports carry a hundred or so requests per access; served from Python (cocotbext-axi's
``AxiRam``) they were most of the simulator's time, so the model is Verilog inside the
simulated design (``hbm_model.v``: an AXI4 slave over a dense memory, zero at start, with a
read latency and random back-pressure set from ports), one instance per HBM port of the map.

The host port goes to one of two slaves, chosen by the ``host_model_select`` port: the top
level's ``host__*`` AXI4 ports, served from Python by cocotbext-axi
(:class:`bolt.sim.host_port.HostPort`, with its pause generators), or the host model
(``host_model.v``: an AXI4 slave with a read latency and random back-pressure whose bytes
Python serves a whole burst at a time, :class:`bolt.sim.host_port.HostModelPort`). Both keep
host memory in Python, where tests read and tamper with it; the model wakes Python once per
burst instead of once per clock per channel. One build serves both.
"""

from __future__ import annotations

from pathlib import Path

from amaranth.hdl import ClockSignal, Instance, Module, Mux, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bolt.hdl.accelerator import pass_through
from bolt.hdl.hbm import MAX_BURST_BEATS, HbmMap
from bolt.hdl.pages import ADDRESS_BITS
from bolt.params import BEAT_BYTES, Params

__all__ = ["SimulatedCard", "MODEL_PORTS_VERILOG", "HBM_MODEL_VERILOG", "HOST_MODEL_VERILOG",
           "STALL_VERILOG", "MODELS_VERILOG", "HBM_LATENCY_SIMULATED",
           "models_verilog", "set_hbm", "host_model_beats"]

#: The simulated HBM's read latency unless a test sets another: about 80 ns at 300 MHz, below
#: the accelerator's budget (:data:`bolt.hdl.accelerator.HBM_LATENCY`).
HBM_LATENCY_SIMULATED = 24

#: The port list both models begin with (macro ``BOLT_MEMORY_MODEL_PORTS``): clock, reset,
#: settings and the AXI4 slave.
MODEL_PORTS_VERILOG = Path(__file__).with_name("model_ports.v")
#: The Verilog of the HBM model (module ``bolt_hbm_model``).
HBM_MODEL_VERILOG = Path(__file__).with_name("hbm_model.v")
#: The Verilog of the host-memory model (module ``bolt_host_model``).
HOST_MODEL_VERILOG = Path(__file__).with_name("host_model.v")
#: The Verilog of both models' back-pressure (module ``bolt_stall``).
STALL_VERILOG = Path(__file__).with_name("stall.v")


#: Every Verilog file of the memory models, the port list (a macro the models use) first.
MODELS_VERILOG = (MODEL_PORTS_VERILOG, HBM_MODEL_VERILOG, HOST_MODEL_VERILOG, STALL_VERILOG)


def models_verilog() -> str:
    """The Verilog of both memory models, to compile with a :class:`SimulatedCard`."""
    return "".join(path.read_text() for path in MODELS_VERILOG)


def host_model_beats(params: Params) -> int:
    """Beats of the longest host burst: a page, or less where it crosses 4 KB."""
    return min(params.page_beats, MAX_BURST_BEATS)


def set_hbm(dut, *, latency: int = HBM_LATENCY_SIMULATED, stall: float = 0.0,
            seed: int = 1) -> None:
    """Set a running :class:`SimulatedCard`'s HBM model (cocotb): its read latency in cycles,
    the chance it holds a handshake in a cycle, and its seed (taken at the next reset)."""
    dut.hbm_latency.value = latency
    dut.hbm_stall.value = min(255, round(256 * stall))
    dut.hbm_seed.value = seed


class SimulatedCard(wiring.Component):
    """Every port of ``design`` but ``hbm``, whose ports the HBM models serve (one each), and
    the host model's ports. A command on ``cmd`` reaches the design a cycle after the card
    takes it (a register, for the simulation's speed: :meth:`_command_register`).

    ``hbm_latency`` (cycles from a read request to its first beat, at least), ``hbm_stall``
    (chance in 256 that the model holds a handshake in a cycle) and ``hbm_seed`` (its stall
    generator's seed, taken at reset) drive the HBM model; the ``host_model_`` ports the same
    for the host model (and ``host_model_rate``, its read beats' pace in bytes a cycle, 0 for
    a beat every cycle), which serves the ``host`` port while ``host_model_select`` is high,
    and its burst interface to Python (``host_model_request`` flips when a burst waits for
    Python, which sets ``host_model_answered`` equal to it once served).

    Parameters
    ----------
    design : RtlAccelerator or SealedAccelerator
        Has ``params``, a ``host`` AXI4 master and ``hbm`` AXI4 masters (one per HBM port)
        laid out by :class:`~bolt.hdl.hbm.HbmMap`.
    """

    def __init__(self, design):
        self.design = design
        burst_bits = 8 * BEAT_BYTES * host_model_beats(design.params)
        members = {name: member for name, member in design.signature.members.items()
                   if name != "hbm"}
        super().__init__({
            **members,
            "hbm_latency": In(16), "hbm_stall": In(8), "hbm_seed": In(32),
            "host_model_select": In(1), "host_model_latency": In(16), "host_model_rate": In(8),
            "host_model_stall": In(8), "host_model_seed": In(32),
            "host_model_request": Out(1), "host_model_write": Out(1),
            "host_model_address": Out(ADDRESS_BITS), "host_model_beats": Out(8),
            "host_model_write_data": Out(burst_bits), "host_model_read_data": In(burst_bits),
            "host_model_answered": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.design = design = self.design
        for name in self.signature.members:
            if name == "cmd" and design.signature.members[name].flow == In:
                self._command_register(m)
            elif name != "host" and not name.startswith(("hbm_", "host_model_")):
                pass_through(m, self, design, name)
        # The host side's choice, registered (tests set it before reset): fed straight from
        # the input, the switch and all it feeds would be logic fed by an input (below).
        use_model = Signal(reset_less=True)
        m.d.sync += use_model.eq(self.host_model_select)
        hbm_map = HbmMap(design.params)
        for port, size in enumerate(hbm_map.port_sizes):
            # A model per HBM port, each holding what the map puts there; their stalls are
            # drawn apart (seeds one apart).
            m.submodules[f"hbm{port}" if port else "hbm"] = Instance(
                "bolt_hbm_model",
                p_ADDR_WIDTH=hbm_map.address_width, p_WORDS=size // BEAT_BYTES,
                i_clk=ClockSignal(), i_rst=ResetSignal(),
                i_latency=self.hbm_latency, i_stall=self.hbm_stall,
                i_seed=(self.hbm_seed + port)[:32],
                **_axi_ports(design.hbm[port], lambda name, signal: signal))
        m.submodules.host_model = Instance(
            "bolt_host_model",
            p_ADDR_WIDTH=ADDRESS_BITS, p_BEATS=host_model_beats(design.params),
            i_clk=ClockSignal(), i_rst=ResetSignal(),
            i_latency=self.host_model_latency, i_rate=self.host_model_rate,
            i_stall=self.host_model_stall, i_seed=self.host_model_seed,
            o_req_toggle=self.host_model_request, o_req_write=self.host_model_write,
            o_req_addr=self.host_model_address, o_req_beats=self.host_model_beats,
            o_wr_data=self.host_model_write_data, i_rd_data=self.host_model_read_data,
            i_ack_toggle=self.host_model_answered,
            **_axi_ports(design.host,
                         lambda name, signal: self._host_switch(m, use_model, name, signal)))
        return m

    def _command_register(self, m):
        """The design's ``cmd`` stream behind a register: a command the card takes reaches the
        design the next cycle, and the card takes one only while the design is ready for it
        (so ``cmd.ready`` still says when the design's front takes a command).

        Verilator evaluates logic fed by a top-level input at every evaluation, and logic that
        also reads registers a second time after the clock edge; the command's payload feeds
        the control's choice of HBM requests (the next value of a register of over a
        thousand bits at V = 64) and the lookup's key. Sim-only: the design's cycle stamps
        count from its own acceptance of the command, so no measured or projected figure
        moves; seen from the card's ports, each command takes one cycle more."""
        outer, inner = self.cmd, self.design.cmd
        full = Signal()
        payload = Signal.like(outer.payload, reset_less=True)
        m.d.comb += [outer.ready.eq(~full & inner.ready),
                     inner.valid.eq(full), inner.payload.eq(payload)]
        with m.If(outer.valid & outer.ready):
            m.d.sync += [full.eq(1), payload.eq(outer.payload)]
        with m.Elif(inner.ready):
            m.d.sync += full.eq(0)

    def _host_switch(self, m, use_model, name: str, signal):
        """The host model's side of ``host`` member ``name`` (``signal`` on the design), the
        top level's side connected too: requests (``*valid`` from the master) go to the side
        ``use_model`` (``host_model_select``, registered) picks, answers come from it."""
        outer = getattr(self.host, name)
        model = Signal.like(signal, name=f"host_model_{name}")
        if self.design.host.signature.members[name].flow == Out:     # master to slave
            if name.endswith("valid"):
                m.d.comb += [outer.eq(signal & ~use_model), model.eq(signal & use_model)]
            else:
                m.d.comb += [outer.eq(signal), model.eq(signal)]
        else:
            m.d.comb += signal.eq(Mux(use_model, model, outer))
        return model


def _axi_ports(master, connect) -> dict:
    """Instance ports of an AXI4 slave model for ``master`` (``connect(name, signal)`` gives
    the signal to use for each member)."""
    ports = {}
    for name, member in master.signature.members.items():
        prefix = "i" if member.flow == Out else "o"
        ports[f"{prefix}_{name}"] = connect(name, getattr(master, name))
    return ports

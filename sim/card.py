"""The accelerator as the simulations run it: :class:`~bolt.hdl.accelerator.RtlAccelerator`
(or :class:`~bolt.hdl.channel.SealedAccelerator`) with a simulation-only HBM model on its HBM
port.

The HBM port carries a hundred or so requests per access; served from Python (cocotbext-axi's
``AxiRam``) they were most of the simulator's time, so the model is Verilog inside the
simulated design (``hbm_model.v``: an AXI4 slave over a dense memory, zero at start, with a
read latency and random back-pressure set from ports). The host port stays at the top level,
served from Python (:mod:`bolt.sim.host_port`), where tests read and tamper with host memory.
"""

from __future__ import annotations

from pathlib import Path

from amaranth.hdl import ClockSignal, Instance, Module, ResetSignal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bolt.hdl.accelerator import pass_through
from bolt.hdl.hbm import HbmMap
from bolt.params import BEAT_BYTES

__all__ = ["SimulatedCard", "HBM_MODEL_VERILOG", "HBM_LATENCY_SIMULATED", "set_hbm"]

#: The simulated HBM's read latency unless a test sets another: about 80 ns at 300 MHz, below
#: the accelerator's budget (:data:`bolt.hdl.accelerator.HBM_LATENCY`).
HBM_LATENCY_SIMULATED = 24

#: The Verilog of the HBM model (module ``bolt_hbm_model``).
HBM_MODEL_VERILOG = Path(__file__).with_name("hbm_model.v")


def set_hbm(dut, *, latency: int = HBM_LATENCY_SIMULATED, stall: float = 0.0,
            seed: int = 1) -> None:
    """Set a running :class:`SimulatedCard`'s HBM model (cocotb): its read latency in cycles,
    the chance it holds a handshake in a cycle, and its seed (taken at the next reset)."""
    dut.hbm_latency.value = latency
    dut.hbm_stall.value = min(255, round(256 * stall))
    dut.hbm_seed.value = seed


class SimulatedCard(wiring.Component):
    """Every port of ``design`` but ``hbm``, which the HBM model serves; ``hbm_latency``
    (cycles from a read request to its first beat, at least), ``hbm_stall`` (chance in 256
    that the model holds a handshake in a cycle) and ``hbm_seed`` (its LFSR's seed, taken at
    reset) drive the model.

    Parameters
    ----------
    design : RtlAccelerator or SealedAccelerator
        Has ``params`` and an ``hbm`` AXI4 master laid out by :class:`~bolt.hdl.hbm.HbmMap`.
    """

    def __init__(self, design):
        self.design = design
        members = {name: member for name, member in design.signature.members.items()
                   if name != "hbm"}
        super().__init__({**members,
                          "hbm_latency": In(16), "hbm_stall": In(8), "hbm_seed": In(32)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.design = design = self.design
        for name in self.signature.members:
            if not name.startswith("hbm_"):
                pass_through(m, self, design, name)
        ports = {}
        for name, member in design.hbm.signature.members.items():
            prefix = "i" if member.flow == Out else "o"
            ports[f"{prefix}_{name}"] = getattr(design.hbm, name)
        hbm_map = HbmMap(design.params)
        m.submodules.hbm = Instance(
            "bolt_hbm_model",
            p_ADDR_WIDTH=hbm_map.address_width, p_WORDS=hbm_map.size // BEAT_BYTES,
            i_clk=ClockSignal(), i_rst=ResetSignal(),
            i_latency=self.hbm_latency, i_stall=self.hbm_stall, i_seed=self.hbm_seed,
            **ports)
        return m

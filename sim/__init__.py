"""What runs inside the simulator process (installed as ``bolt.sim``).

:mod:`~bolt.sim.verilator` builds and runs Verilator models through cocotb's runner;
:mod:`~bolt.sim.launch` is the child process's entry point; :mod:`~bolt.sim.server` is the RTL
backend's cocotb server; :mod:`~bolt.sim.driver` and :mod:`~bolt.sim.host_port` drive the
accelerator's command and host-memory ports; ``tb_*.py`` are the cocotb testbenches.
"""

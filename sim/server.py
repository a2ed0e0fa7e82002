"""The simulation side of the RTL backend: a cocotb test that serves one ``bolt.Map``.

It connects back to the parent process (:class:`bolt.host.backend.RtlBackend`) over the Unix
socket named by ``BOLT_BRIDGE_ADDRESS``, then executes the parent's requests one at a time:

- ``("setup", master_key, salt, items)`` -> ``("done", status, cycles)``
- ``("access", op, key, value)`` -> ``("done", status, value, page, cycles)`` (cycles: the
  ``(total, reads_at, data_at)`` stamps of :class:`bolt.hdl.accelerator.Cycles`)
- ``("close",)`` ends the simulation.

The untrusted host memory is a memory map both processes share (a file named by
``BOLT_HOST_MEMORY``, :func:`open_host_memory`): the host model reads and writes its pages here,
with no round trip to the parent, and records each page moved as the reference model would;
those events travel to the parent with the next message (:class:`Bridge`), which appends them
to its trace. A test tampering with the parent's view of the memory between accesses changes
the bytes the next access reads.
"""

from __future__ import annotations

import json
import mmap
import os
import socket
from multiprocessing.connection import Connection

import cocotb

from bolt.sim.card import HBM_LATENCY_SIMULATED, set_hbm
from bolt.sim.driver import AcceleratorDriver, SetupFailed
from bolt.sim.host_port import HostModelPort
from bolt.params import Params
from bolt.protocol import Op
from bolt.trace import HostMemory, Trace


class Bridge:
    """The simulation's end of the connection to the parent: its requests in, answers out, and
    the host-memory trace recorded since the last message.

    Every message leaves as ``("events", [(kind, address, length), ...], message)`` when the
    host model moved pages since the previous one: the parent appends the events to its trace,
    in order, then handles ``message``.
    """

    def __init__(self, connection: Connection, trace: Trace):
        self._connection = connection
        self._trace = trace

    def recv(self):
        return self._connection.recv()

    def send(self, message) -> None:
        if len(self._trace):
            message = ("events", list(map(tuple, self._trace)), message)
            self._trace.clear()
        self._connection.send(message)

    def close(self) -> None:
        self._connection.close()


def open_host_memory(params: Params, trace: Trace) -> HostMemory:
    """The parent's host memory (the file ``BOLT_HOST_MEMORY`` names, mapped shared), recording
    the accelerator's page reads and writes in ``trace``."""
    with open(os.environ["BOLT_HOST_MEMORY"], "r+b") as file:
        shared = mmap.mmap(file.fileno(), params.host_bytes)
    return HostMemory(params.host_bytes, trace, buffer=shared)


def serve_memories(dut, memory: HostMemory, params: Params) -> None:
    """Serve the card's host model from ``memory`` and set its HBM model, with
    the timing the parent asked for: ``BOLT_HOST_LATENCY`` and ``BOLT_HBM_LATENCY``, cycles
    from a read request to its first beat; ``BOLT_HOST_RATE``, the host's read beats' pace in
    bytes a cycle (0: a beat every cycle)."""
    HostModelPort(dut, memory, page_stride=params.page_stride,
                  latency=int(os.environ.get("BOLT_HOST_LATENCY", 0)),
                  rate=int(os.environ.get("BOLT_HOST_RATE", 0)))
    set_hbm(dut, latency=int(os.environ.get("BOLT_HBM_LATENCY", HBM_LATENCY_SIMULATED)))


def connect(params: Params) -> tuple[Bridge, HostMemory]:
    """The connection to the parent (``BOLT_BRIDGE_ADDRESS``) and the host memory it shares."""
    trace = Trace()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(os.environ["BOLT_BRIDGE_ADDRESS"])
    return Bridge(Connection(sock.detach()), trace), open_host_memory(params, trace)


@cocotb.test()
async def serve(dut):
    """Serve the parent's requests until it closes the map."""
    params = Params(**json.loads(os.environ["BOLT_PARAMS"]))
    connection, memory = connect(params)
    driver = AcceleratorDriver(dut, params)
    serve_memories(dut, memory, params)
    dut._log.info("bridge connected; resetting the accelerator")
    await driver.start()
    dut._log.info("accelerator out of reset; serving")
    connection.send(("ready",))
    while True:
        request = connection.recv()
        kind = request[0]
        if kind == "close":
            break
        if kind == "setup":
            _, master_key, salt, items = request
            try:
                cycles = await driver.setup(master_key, salt, items)
                connection.send(("done", 0, cycles))
            except SetupFailed as failure:
                connection.send(("done", int(failure.response.status), 0))
        elif kind == "access":
            _, op, key, value = request
            response, cycles = await driver.command(Op(op), key, value or b"")
            connection.send(("done", int(response.status), response.value, response.page,
                             tuple(cycles)))
        else:
            raise ValueError(f"unknown request {kind!r}")
    connection.close()

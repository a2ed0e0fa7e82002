"""The simulation side of the RTL backend: a cocotb test that serves one ``bolt.Map``.

It connects back to the parent process (:class:`bolt.host.backend.RtlBackend`) over the Unix
socket named by ``BOLT_BRIDGE_ADDRESS``, then executes the parent's requests one at a time:

- ``("setup", master_key, salt, items)`` -> ``("done", status, cycles)``
- ``("access", op, key, value)`` -> ``("done", status, value, page, cycles)`` (cycles: the
  ``(total, reads_at, data_at)`` stamps of :class:`bolt.hdl.accelerator.Cycles`)
- ``("close",)`` ends the simulation.

While a request runs, every page the accelerator reads or writes is forwarded to the parent,
which owns the untrusted host memory and its trace: ``("read", address, length)`` is answered
with the bytes; page writes need no answer and travel, in order, with the next message
(:class:`Bridge`). The parent thus records exactly the trace the reference model records, and
a test can tamper with host memory in the parent.
"""

from __future__ import annotations

import json
import os
import socket
from multiprocessing.connection import Connection

import cocotb

from bolt.sim.card import HBM_LATENCY_SIMULATED, set_hbm
from bolt.sim.driver import AcceleratorDriver, SetupFailed
from bolt.sim.host_port import HostModelPort
from bolt.params import Params
from bolt.protocol import Op


class Bridge:
    """The simulation's end of the connection to the parent: its requests in, answers out, and
    the parent's host memory (``read``, ``write``) as the host model's target.

    A page write needs no answer, so it waits and leaves with the next message (a read or an
    answer) as ``("writes", [(address, data), ...], message)``: the parent applies the writes,
    in order, then handles ``message``. One wake-up of the parent per read and per answer
    instead of one more per page written, which on a busy machine cost more wall-clock time
    than the simulation of the access. A long run of writes (a Setup's) leaves every
    :data:`WRITES_HELD_BYTES` with no message (``None``).
    """

    #: Bytes of page writes held at most before they leave on their own.
    WRITES_HELD_BYTES = 1 << 18

    def __init__(self, connection: Connection):
        self._connection = connection
        self._writes: list[tuple[int, bytes]] = []
        self._held = 0

    def recv(self):
        return self._connection.recv()

    def send(self, message) -> None:
        if self._writes:
            message = ("writes", self._writes, message)
            self._writes, self._held = [], 0
        self._connection.send(message)

    def read(self, address: int, length: int) -> bytes:
        self.send(("read", address, length))
        return self._connection.recv_bytes()

    def write(self, address: int, data: bytes) -> None:
        self._writes.append((address, data))
        self._held += len(data)
        if self._held >= self.WRITES_HELD_BYTES:
            self.send(None)

    def close(self) -> None:
        self._connection.close()


def serve_memories(dut, connection: Bridge, params: Params) -> None:
    """Serve the card's host model from the parent's host memory and set its HBM model, with
    the timing the parent asked for: ``BOLT_HOST_LATENCY`` and ``BOLT_HBM_LATENCY``, cycles
    from a read request to its first beat; ``BOLT_HOST_RATE``, the host's read beats' pace in
    bytes a cycle (0: a beat every cycle)."""
    HostModelPort(dut, connection, page_stride=params.page_stride,
                  latency=int(os.environ.get("BOLT_HOST_LATENCY", 0)),
                  rate=int(os.environ.get("BOLT_HOST_RATE", 0)))
    set_hbm(dut, latency=int(os.environ.get("BOLT_HBM_LATENCY", HBM_LATENCY_SIMULATED)))


def connect(address: str) -> Bridge:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(address)
    return Bridge(Connection(sock.detach()))


@cocotb.test()
async def serve(dut):
    """Serve the parent's requests until it closes the map."""
    params = Params(**json.loads(os.environ["BOLT_PARAMS"]))
    connection = connect(os.environ["BOLT_BRIDGE_ADDRESS"])
    driver = AcceleratorDriver(dut, params)
    serve_memories(dut, connection, params)
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

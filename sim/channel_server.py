"""The simulation side of the RTL backend behind the sealed channel (a cocotb test).

Like :mod:`bolt.sim.server`, but the design is :class:`bolt.hdl.channel.SealedAccelerator` and
this process also runs the security monitor (:class:`bolt.channel.SecurityMonitor`), which
stands for the card's trusted processor: it holds the device key, measures the generated
Verilog (``BOLT_VERILOG``) and installs session keys through the key port. Requests:

- ``("report",)`` -> ``("done", report)``
- ``("session", encapsulated_key)`` -> ``("done", monitor nonce or None, error or None)``
- ``("test keys", command_key, response_key)`` -> ``("done",)``: keys straight onto the key
  port, for tests that compare frame bytes with the reference endpoint under the same keys
- ``("frames", [frame, ...])`` -> ``("done", answers, cycles per answer, cycles in all)``
- ``("close",)`` ends the simulation.

Page reads and writes go to the parent as in :mod:`bolt.sim.server`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb

from bolt.channel import SecurityMonitor, rtl_measurement
from bolt.errors import ChannelError
from bolt.params import Params
from bolt.sim import server
from bolt.sim.channel_driver import ChannelDriver
from bolt.sim.host_port import HostPortDriver


@cocotb.test()
async def serve_sealed(dut):
    """Serve the parent's requests until it closes the map."""
    params = Params(**json.loads(os.environ["BOLT_PARAMS"]))
    connection = server.connect(os.environ["BOLT_BRIDGE_ADDRESS"])
    driver = ChannelDriver(dut, params)
    HostPortDriver(dut, server.RemoteHostMemory(connection), page_stride=params.page_stride,
                   clock=dut.clk,
                   read_latency=int(os.environ.get("BOLT_READ_LATENCY", 2))).start()
    await driver.start()
    keys = []
    verilog = Path(os.environ["BOLT_VERILOG"]).read_bytes()
    monitor = SecurityMonitor(rtl_measurement(params, verilog),
                              lambda command_key, response_key, session=0: keys.append(
                                  (command_key, response_key)))
    connection.send(("ready",))
    while True:
        request = connection.recv()
        kind = request[0]
        if kind == "close":
            break
        if kind == "report":
            connection.send(("done", monitor.report))
        elif kind == "session":
            try:
                nonce = monitor.open_session(request[1])
            except ChannelError as error:
                connection.send(("done", None, str(error)))
                continue
            await driver.install_keys(*keys.pop())
            connection.send(("done", nonce, None))
        elif kind == "test keys":
            await driver.install_keys(request[1], request[2])
            connection.send(("done",))
        elif kind == "frames":
            connection.send(("done", *await driver.exchange(request[1])))
        else:
            raise ValueError(f"unknown request {kind!r}")
    connection.close()

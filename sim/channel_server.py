"""The simulation side of the RTL backend behind the sealed channel (a cocotb test).

Like :mod:`bolt.sim.server`, but the design is :class:`bolt.hdl.channel.SealedAccelerator` and
this process also runs the security monitor (:class:`bolt.channel.SecurityMonitor`), which
stands for the card's trusted processor: it holds the device key, measures the generated
Verilog (``BOLT_VERILOG``) and installs session keys through the key port. Requests:

- ``("report",)`` -> ``("done", report)``
- ``("session", encapsulated_key, session)`` -> ``("done", monitor nonce or None, error or
  None)``: a new session under the host's handle ``session``
- ``("close session", session)`` -> ``("done",)``
- ``("test keys", command_key, response_key)`` -> ``("done",)``: keys straight onto the key
  port, for tests that compare frame bytes with the reference endpoint under the same keys
- ``("frames", [frame, ...], session)`` -> ``("done", answers, cycles per answer, cycles in
  all)``
- ``("close",)`` ends the simulation.

The RTL channel has one key slot; the monitor keeps every client's session
(:class:`bolt.channel.monitor.SlotSessions`) and reloads the slot, keys and sequence numbers,
when the host switches to another session's frames. Frames of a session that is not open never
reach the accelerator and are answered with zeros, as with no session.

Host memory is shared with the parent as in :mod:`bolt.sim.server`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb

from bolt.channel import SecurityMonitor, rtl_measurement
from bolt.channel.monitor import SlotSessions
from bolt.errors import ChannelError
from bolt.params import Params
from bolt.sim import server
from bolt.sim.channel_driver import ChannelDriver


@cocotb.test()
async def serve_sealed(dut):
    """Serve the parent's requests until it closes the map."""
    params = Params(**json.loads(os.environ["BOLT_PARAMS"]))
    connection, memory = server.connect(params)
    driver = ChannelDriver(dut, params)
    server.serve_memories(dut, memory, params)
    await driver.start()
    keys = []
    verilog = Path(os.environ["BOLT_VERILOG"]).read_bytes()
    monitor = SecurityMonitor(rtl_measurement(params, verilog),
                              lambda command_key, response_key, session: keys.append(
                                  (command_key, response_key, session)))
    sessions = SlotSessions()
    no_session = bytes(params.response_frame_bytes)
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
                nonce = monitor.open_session(request[1], request[2])
                command_key, response_key, session = keys.pop()
                sessions.open(session, command_key, response_key)
            except ChannelError as error:
                connection.send(("done", None, str(error)))
                continue
            await driver.install_keys(command_key, response_key)
            connection.send(("done", nonce, None))
        elif kind == "close session":
            sessions.close(request[1])
            connection.send(("done",))
        elif kind == "test keys":
            sessions.open(0, request[1], request[2])
            await driver.install_keys(request[1], request[2])
            connection.send(("done",))
        elif kind == "frames":
            frames, session = request[1], request[2]
            try:
                load = sessions.switch_to(session)
            except KeyError:
                connection.send(("done", [no_session] * len(frames), [0] * len(frames), 0))
                continue
            if load is not None:
                await driver.install_keys(*load)
            answer = await driver.exchange(frames)
            sessions.save(session, *await driver.session_state())
            connection.send(("done", *answer))
        else:
            raise ValueError(f"unknown request {kind!r}")
    connection.close()

"""A ``bolt serve`` server in a thread of the test process (127.0.0.1, stops by itself)."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from bolt.channel import reference_measurement
from bolt.host.server import Server, ServerConfig, new_device

#: No server a test starts lives longer than this, whatever happens to the test.
LIFETIME_S = 120.0


@contextlib.contextmanager
def served(params, *, tap=None, device=None, **config):
    """Yield ``(server, "127.0.0.1:port", measurement)`` while a server of ``device`` (a new
    reference device by default) runs."""
    device = device if device is not None else new_device("reference", params)
    server = Server(device, params,
                    config=ServerConfig(port=0, lifetime_s=LIFETIME_S, **config), tap=tap)
    ready = threading.Event()
    loop_box = {}

    def run():
        async def main():
            loop_box["loop"] = asyncio.get_running_loop()
            await server.serve(lambda address: ready.set())
        asyncio.run(main())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30), "the server did not start"
    host, port = server.address
    try:
        yield server, f"{host}:{port}", reference_measurement(params)
    finally:
        loop_box["loop"].call_soon_threadsafe(server.stop)
        thread.join(30)
        assert not thread.is_alive(), "the server did not stop"

"""The sealed accelerator (hdl/channel.py in front of the core) in Verilator against the
reference device: under the same session keys, the same command frames give the same response
frames, byte for byte, the same page trace and the same host bytes; and bolt.Map on the RTL
backend verifies the RTL's attestation and works through the channel."""

from __future__ import annotations

import os
import random

import pytest

import bolt
from bolt.channel import ReferenceDevice
from bolt.channel.frames import TO_ACCELERATOR, FrameCipher, FrameFormat, setup_key_commands
from bolt.params import Params
from bolt.protocol import Cmd, Op

from tests.conftest import MASTER_KEY, unique_salt

pytestmark = pytest.mark.rtl

PARAMS = dict(capacity=1024, key_size=16, value_size=8, load=8, hbm_fraction=0.2)


@pytest.fixture(scope="module")
def rtl_device():
    from bolt.host.backend import RtlBackend

    device = RtlBackend(Params(**PARAMS), channel=True, timeout_s=600)
    yield device
    device.close()


def test_rtl_frames_equal_the_reference_frames(rtl_device):
    p = Params(**PARAMS)
    reference = ReferenceDevice(p)
    command_key, response_key = os.urandom(16), os.urandom(16)
    rtl_device.install_test_keys(command_key, response_key)
    reference.endpoint.install_keys(command_key, response_key)
    send, fmt = FrameCipher(command_key, TO_ACCELERATOR), FrameFormat(p)
    rng = random.Random(21)

    def both(frames):
        got, want = rtl_device.exchange(frames), reference.exchange(frames)
        assert got == want
        return got

    assert len(both([send.seal(fmt.pack_command(Op.GET, b"early"))])) == 1   # REFUSED
    items = {b"k%d" % i: rng.randbytes(rng.randrange(9)) for i in range(300)}
    setup = [send.seal(c) for c in setup_key_commands(p, MASTER_KEY, unique_salt())]
    setup += send.seal_run(fmt.pack_items(items), len(items), length=p.command_plaintext_bytes)
    setup.append(send.seal(fmt.pack_command(Cmd.SETUP_END)))
    assert len(both(setup)) == 1
    keys = list(items) + [b"new%d" % i for i in range(50)]
    for _ in range(150):
        op = rng.choice(list(Op))
        value = rng.randbytes(rng.randrange(9)) if op == Op.PUT else b""
        both([send.seal(fmt.pack_command(op, rng.choice(keys), value))])
    altered = bytearray(send.seal(fmt.pack_command(Op.GET, b"k1")))
    altered[0] ^= 1
    both([bytes(altered)])                                    # CHANNEL, session closed
    both([send.seal(fmt.pack_command(Op.GET, b"k2"))])         # all zeros
    assert list(rtl_device.trace) == list(reference.trace)
    assert rtl_device.host_memory.snapshot() == reference.host_memory.snapshot()


def test_map_on_the_rtl_backend_goes_through_the_channel(rtl_device):
    with bolt.Map(**PARAMS, backend="rtl", master_key=MASTER_KEY,
                  unsafe_test_salt=unique_salt()) as m:
        for i in range(20):
            m[b"k%d" % i] = b"v%d" % i
        assert [m[b"k%d" % i] for i in range(20)] == [b"v%d" % i for i in range(20)]
        view = m.host_view
        assert {f.length for f in view.frames if f.kind == "command"} == \
            {m.params.command_frame_bytes}
        assert {f.length for f in view.frames if f.kind == "response"} == \
            {m.params.response_frame_bytes}
        assert b"v13" not in view.frame_bytes() and MASTER_KEY not in view.frame_bytes()
        assert len(m.stats.cycles) == 40
    with pytest.raises(bolt.AttestationError):
        bolt.Map(**PARAMS, backend="rtl", measurement=bytes(32))

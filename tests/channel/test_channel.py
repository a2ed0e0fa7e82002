"""The sealed channel on the reference backend: what the host sees, and what a hostile host
achieves by altering, replaying, dropping, reordering or truncating frames (nothing)."""

import random

import numpy as np
import pytest

import bolt
from bolt.channel import (ChannelClient, HostRelay, ReferenceDevice, Report, reference_measurement,
                          fixture_vendor_key)
from bolt.channel.attestation import rtl_measurement
from bolt.channel.frames import TO_ACCELERATOR, FrameCipher, FrameFormat, FrameRun
from bolt.model import ReferenceAccelerator
from bolt.model.pages import EncodedItems, encode_slot
from bolt.params import Params
from bolt.protocol import Cmd, Op, Status

from tests.conftest import MASTER_KEY, SALT, unique_salt

PARAMS = dict(capacity=256, key_size=8, value_size=16, load=4, hbm_fraction=0.25)


def new_map(items=None, salt=None, **options):
    items = {b"k%d" % i: b"value %d" % i for i in range(100)} if items is None else items
    return bolt.Map.from_items(items, **PARAMS, master_key=MASTER_KEY,
                               unsafe_test_salt=salt or unique_salt(), **options)


def assert_intact(m, items):
    for key, value in items.items():
        assert m[key] == value
    assert len(m) == len(items)


# -- what the host sees ---------------------------------------------------------------------------

def test_every_frame_has_one_length_whatever_the_op_lengths_or_outcome():
    m = new_map({})
    p = m.params
    rng = random.Random(3)
    outcomes = set()
    for _ in range(400):
        key = b"%d" % rng.randrange(40) * rng.randrange(1, 3)   # lengths 1 to 4
        op = rng.choice(["put", "get", "delete"])
        try:
            if op == "put":
                m[key] = rng.randbytes(rng.randrange(p.value_size + 1))
                outcomes.add("put")
            elif op == "get":
                m[key]
                outcomes.add("hit")
            else:
                del m[key]
                outcomes.add("delete hit")
        except KeyError:
            outcomes.add(op + " miss")
    assert {"put", "hit", "get miss", "delete hit", "delete miss"} <= outcomes
    view = m.host_view
    lengths = {(f.kind, f.length) for f in view.frames}
    assert ("command", p.command_frame_bytes) in lengths
    assert ("response", p.response_frame_bytes) in lengths
    assert {length for kind, length in lengths if kind == "command"} == {p.command_frame_bytes}
    assert {length for kind, length in lengths if kind == "response"} == {p.response_frame_bytes}
    # One command and one response per access, whatever it was.
    assert view.frame_count("response") == 400 + 1          # and the Setup's answer
    assert view.frame_count("command") == 400 + p.setup_key_frames + 1


def test_frames_sit_between_the_page_events_of_their_access():
    m = new_map()
    m.host_view.clear()
    for i in range(30):
        m[b"k%d" % i]
    frames = m.host_view.frames
    ops = m.trace.ops()
    assert len(frames) == 60 and len(ops) == 30
    starts = [0]
    for events in ops:
        starts.append(starts[-1] + len(events))
    for i, (command, response) in enumerate(zip(frames[::2], frames[1::2])):
        assert (command.kind, response.kind) == ("command", "response")
        assert command.position == starts[i] and response.position == starts[i + 1]


def test_no_key_value_or_master_key_byte_reaches_the_host():
    rng = random.Random(9)
    items = {rng.randbytes(8): rng.randbytes(16) for _ in range(150)}
    m = new_map(items, salt=(salt := rng.randbytes(15)))
    for key in list(items)[:50]:
        m[key] = rng.randbytes(16)
        items[key] = m[key]
    seen = m.host_view.frame_bytes() + m.host_memory.snapshot()
    secrets = list(items) + list(items.values()) + [MASTER_KEY, salt]
    # 8 random bytes appear by chance with probability about len(seen) / 2^64.
    assert not [s for s in secrets if s in seen]
    assert MASTER_KEY[:8] not in seen and MASTER_KEY[8:] not in seen


def test_trace_and_host_bytes_match_the_model_called_directly():
    items = {b"k%d" % i: b"v%d" % i for i in range(120)}
    sealed = new_map(items, salt=(salt := unique_salt()))
    direct = ReferenceAccelerator(Params(**PARAMS), master_key=MASTER_KEY, salt=salt,
                                  items=items.items())
    rng = random.Random(5)
    for _ in range(200):
        key = b"k%d" % rng.randrange(200)
        if rng.random() < 0.5:
            assert sealed.put(key, b"x") == direct.access(Op.PUT, key, b"x").value
        else:
            assert sealed.get(key) == direct.access(Op.GET, key).value
    assert list(sealed.trace) == list(direct.trace)
    assert sealed.trace.op_count == direct.trace.op_count
    assert sealed.host_memory.snapshot() == direct.host_memory.snapshot()
    assert sorted(sealed) == sorted(direct.keys())


# -- a hostile host -------------------------------------------------------------------------------

def flip_a_bit(frames):
    frame = bytearray(frames[0])
    frame[5] ^= 1
    return [bytes(frame)]


@pytest.mark.parametrize("attack", ["altered", "replayed", "truncated", "extended"])
def test_a_bad_command_frame_changes_nothing_and_ends_the_session(attack):
    items = {b"k%d" % i: b"value %d" % i for i in range(100)}
    m = new_map(items)
    if attack == "replayed":
        m[b"k1"] = b"old"                # the frame the host will replay: PUT k1 = old
        replay = m.host_view.frames[-2].data
        m[b"k1"] = items[b"k1"]
    hostile = {"altered": flip_a_bit, "truncated": lambda frames: [frames[0][:-1]],
               "extended": lambda frames: [frames[0] + b"\0"],
               "replayed": lambda frames: [replay]}[attack]
    m.host_view.interpose = hostile
    pages_before, events_before = m.host_memory.snapshot(), len(m.trace)
    with pytest.raises(bolt.ChannelError, match="rejected a command frame"):
        m[b"k2"] = b"new"
    assert len(m.trace) == events_before and m.host_memory.snapshot() == pages_before
    m.host_view.interpose = None
    with pytest.raises(bolt.ChannelError, match="no session"):
        m[b"k4"]                          # the session is over
    m.new_session()
    assert_intact(m, items)


@pytest.mark.parametrize("attack", ["dropped", "reordered", "replayed"])
def test_the_accelerator_takes_frames_only_in_sequence(attack):
    items = {b"k%d" % i: b"value %d" % i for i in range(100)}
    m = new_map(items)
    client, device = m._client, m._backend
    put = client.seal_command(Op.PUT, b"k2", b"new")
    get = client.seal_command(Op.GET, b"k3")
    frames = {"dropped": [get], "reordered": [get, put], "replayed": [put, put]}[attack]
    pages_before = m.host_memory.snapshot()
    answers = device.exchange(frames)
    assert len(answers) == len(frames)
    if attack == "replayed":
        assert client.open_response(answers[0]).status == Status.FOUND
        items[b"k2"] = b"new"
        pages_before = None
    with pytest.raises(bolt.ChannelError, match="rejected a command frame"):
        client.open_response(answers[-1] if attack == "replayed" else answers[0])
    if attack == "reordered":   # the session was closed by the first: the held PUT gets zeros
        assert answers[1] == bytes(m.params.response_frame_bytes)
    if pages_before is not None:
        assert m.host_memory.snapshot() == pages_before
    m.new_session()
    assert_intact(m, items)


def test_a_response_that_never_comes_is_an_error():
    m = new_map()
    m.host_view.interpose = lambda frames: []
    with pytest.raises(bolt.ChannelError, match="got 0 responses"):
        m[b"k1"]
    m.host_view.interpose = None
    m.new_session()
    assert m[b"k1"] == b"value 1"


def test_a_bad_response_frame_is_an_error_never_a_wrong_value():
    m = new_map()
    original = m.host_view._exchange

    def altered_answers(frames):
        return [bytes(b ^ 1 for b in r) for r in original(frames)]

    m.host_view._exchange = altered_answers
    with pytest.raises(bolt.ChannelError, match="response frame failed verification"):
        m[b"k1"]
    m.host_view._exchange = original
    m.new_session()
    assert m[b"k1"] == b"value 1"


def test_a_replayed_session_request_gets_fresh_keys():
    """HPKE's base mode gives the accelerator no freshness: the monitor's nonce does. A host
    that replays an old session request and its frames gets the frames rejected."""
    m = new_map()
    view = m.host_view
    m.host_view.clear()
    m.new_session()
    m[b"k5"] = b"changed"
    request = next(f.data for f in view.frames if f.kind == "session request")
    put_frame = next(f.data for f in view.frames if f.kind == "command")
    m[b"k5"] = b"value 5"
    device = m._backend
    device.open_session(request)           # the host replays the request ...
    [answer] = device.exchange([put_frame])  # ... and the PUT
    assert answer != bytes(len(answer))      # a sealed CHANNEL error, not a PUT
    m.new_session()
    assert m[b"k5"] == b"value 5"


def test_no_session_gets_all_zero_answers_of_the_response_length():
    p = Params(**PARAMS)
    device = ReferenceDevice(p)
    assert device.exchange([b"anything"]) == [bytes(p.response_frame_bytes)]


def test_accesses_before_the_first_setup_are_refused_without_touching_the_host():
    p = Params(**PARAMS)
    device = ReferenceDevice(p)
    relay = HostRelay(device)
    client = ChannelClient(p, relay, measurement=reference_measurement(p))
    for op in Op:
        response = client.access(op, b"key", b"v" if op == Op.PUT else None)
        assert response.status == Status.REFUSED
    assert len(device.trace) == 0 and device.host_memory is None and device.accelerator is None
    assert client.setup({b"key": b"v"}, master_key=MASTER_KEY, salt=SALT).status == Status.ABSENT
    assert client.access(Op.GET, b"key").value == b"v"


def test_a_map_refuses_with_a_clear_error_after_a_failed_setup():
    m = new_map()
    with pytest.raises(bolt.CapacityError, match="nothing was sent"):
        m.load({b"%d" % i: b"" for i in range(PARAMS["capacity"] + 1)})
    assert m[b"k1"] == b"value 1"     # refused before anything was sent


def test_setup_key_material_spans_several_frames_when_one_is_too_small():
    p = Params(capacity=64, key_size=1, value_size=1)
    assert p.setup_key_frames == 7      # 31 bytes, 5 a frame (key length, key, value length, value)
    m = bolt.Map(**p.arguments(), master_key=MASTER_KEY, unsafe_test_salt=(salt := unique_salt()))
    m[b"a"] = b"b"
    assert m[b"a"] == b"b"
    direct = ReferenceAccelerator(p, master_key=MASTER_KEY, salt=salt)
    direct.access(Op.PUT, b"a", b"b")
    assert direct.access(Op.GET, b"a").value == b"b"
    assert m.host_memory.snapshot() == direct.host_memory.snapshot()


def test_out_of_place_setup_commands_are_refused():
    p = Params(**PARAMS)
    device = ReferenceDevice(p)
    client = ChannelClient(p, device, measurement=reference_measurement(p))
    for op in (Cmd.SETUP_END, 7, 255):
        assert client.access(op, b"").status == Status.REFUSED
    [answer] = device.exchange([client.seal_command(Cmd.SETUP_ITEM, b"k", b"v")])
    assert client.open_response(answer).status == Status.REFUSED



@pytest.mark.parametrize("lengths", ["one key and one value length", "mixed lengths"])
def test_setup_items_decode_as_each_command_alone_would(lengths):
    # The accelerator's end decodes a Setup's items all at once (one struct format for the usual
    # single key and value lengths): the same items as decoding each command, a repeated key
    # keeping its first place and its last value, and a bad length field refusing the lot.
    fmt = FrameFormat(p := Params(**PARAMS))
    rng = random.Random(len(lengths))
    if lengths == "mixed lengths":
        items = [(i.to_bytes(2, "big") + rng.randbytes(rng.randrange(p.key_size - 1)),
                  rng.randbytes(rng.randrange(p.value_size + 1))) for i in range(300)]
    else:
        items = [(rng.randbytes(5), rng.randbytes(p.value_size)) for _ in range(300)]
    items.append((items[3][0], rng.randbytes(len(items[3][1]))))   # a repeated key
    plaintexts = [fmt.pack_command(Cmd.SETUP_ITEM, key, value) for key, value in items]
    one_by_one = {}
    for plaintext in plaintexts:
        op, key, value = fmt.unpack_command(plaintext)
        assert op == Cmd.SETUP_ITEM
        one_by_one[key] = value
    decoded = fmt.unpack_items(b"".join(plaintexts))
    assert list(decoded.items()) == list(one_by_one.items()) == list(dict(items).items())
    assert not isinstance(decoded, EncodedItems)   # a repeated key: no slot per item
    distinct = fmt.unpack_items(b"".join(plaintexts[:-1]))
    assert isinstance(distinct, EncodedItems) and distinct == dict(items[:-1])
    assert [row.tobytes() for row in distinct.slots] == [encode_slot(p, key, value)
                                                         for key, value in items[:-1]]
    # A writable buffer (the endpoint's opened frames) is decoded alike, and becomes the slots.
    writable = bytearray(b"".join(plaintexts[:-1]))
    in_place = fmt.unpack_items(memoryview(writable))
    assert in_place == distinct and (in_place.slots == distinct.slots).all()
    assert np.shares_memory(in_place.slots, np.frombuffer(writable, dtype=np.uint8))
    bad = bytearray(plaintexts[7])
    bad[1] = p.key_size + 1                       # a key length past the key field
    assert fmt.unpack_items(b"".join(plaintexts[:7] + [bytes(bad)] + plaintexts[8:])) is None
    assert fmt.unpack_items(b"") == {}


def test_runs_of_frames_seal_and_open_as_one_frame_at_a_time():
    # A Setup's frames are sealed and opened in runs (nonces built as one array): the same
    # frames as sealing each alone, up to sequence numbers that fill the nonce's 8 bytes.
    plaintexts = [bytes([i]) * 20 for i in range(50)]
    for start in (0, 2**32 - 3, 2**64 - 60):
        one, run, opener = (FrameCipher(bytes(range(16)), TO_ACCELERATOR) for _ in range(3))
        one.sequence = run.sequence = opener.sequence = start
        frames = [one.seal(plaintext) for plaintext in plaintexts]
        sealed = run.seal_run(iter(plaintexts), len(plaintexts), length=20)
        assert list(sealed) == frames and sealed.tobytes() == b"".join(frames)
        assert run.sequence == one.sequence == start + 50
        opened = opener.open_run(frames[:30] + [frames[31]] + frames[31:], 0, 36)
        assert opened == b"".join(plaintexts[:30])
        assert opener.sequence == start + 30
        # A run opens from a FrameRun as from a list, up to the first frame that fails.
        tampered = bytearray(sealed.tobytes())
        tampered[40 * 36] ^= 1
        again = FrameCipher(bytes(range(16)), TO_ACCELERATOR)
        again.sequence = start
        assert again.open_run(FrameRun(bytes(tampered), 36), 5, 36) == b""
        again.sequence = start + 5
        assert again.open_run(FrameRun(bytes(tampered), 36), 5, 36) == b"".join(plaintexts[5:40])
        assert again.sequence == start + 40


@pytest.mark.parametrize("placement", ["two-choice", "pool"])
@pytest.mark.parametrize("crypto", [True, False])
def test_a_setup_from_the_frames_encodings_equals_one_from_the_items(placement, crypto):
    # The channel's Setup hands the model its items with their slot plaintexts (taken from
    # the frames); the model must write the same pages as when it encodes the items itself.
    p = Params(**PARAMS, placement=placement)
    fmt = FrameFormat(p)
    items = {b"k%d" % i: b"v" * (i % (p.value_size + 1)) for i in range(150)}
    encoded = fmt.unpack_items(b"".join(fmt.pack_items(items)))
    assert isinstance(encoded, EncodedItems)
    plain, from_frames = (ReferenceAccelerator(p, master_key=MASTER_KEY, salt=SALT, items=given,
                                               crypto=crypto) for given in (items, encoded))
    assert list(from_frames.trace) == list(plain.trace)
    if crypto:
        assert from_frames.host_memory.snapshot() == plain.host_memory.snapshot()
    for key, value in items.items():
        assert from_frames.locate(key) == plain.locate(key)
        assert from_frames.access(Op.GET, key) == plain.access(Op.GET, key)
        assert plain.access(Op.GET, key).value == from_frames.access(Op.GET, key).value == value

# -- attestation ----------------------------------------------------------------------------------

def test_a_wrong_measurement_is_rejected():
    with pytest.raises(bolt.AttestationError, match="measures"):
        new_map(measurement=bytes(32))


def test_a_report_signed_by_another_vendor_key_is_rejected():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    with pytest.raises(bolt.AttestationError, match="not signed by the pinned vendor key"):
        new_map(vendor_key=Ed25519PrivateKey.generate().public_key())


def test_an_altered_report_is_rejected():
    p = Params(**PARAMS)
    device = ReferenceDevice(p)
    report = bytearray(device.report())
    report[20] ^= 1      # a different device key
    device.report = lambda: bytes(report)
    with pytest.raises(bolt.AttestationError):
        ChannelClient(p, device, measurement=reference_measurement(p))


def test_measurements_name_the_design_and_its_parameters():
    p, q = Params(**PARAMS), Params(**dict(PARAMS, value_size=17))
    assert reference_measurement(p) != reference_measurement(q)
    assert rtl_measurement(p, b"module a;") != rtl_measurement(p, b"module b;")
    assert rtl_measurement(p, b"") != reference_measurement(p)
    report = Report.from_bytes(ReferenceDevice(p).report())
    assert report.measurement == reference_measurement(p)
    report.verify(fixture_vendor_key().public_key(), reference_measurement(p))


def test_bolt_attest_prints_a_verified_report():
    from click.testing import CliRunner

    from bolt.cli import main

    result = CliRunner().invoke(main, ["attest", "-N", "256", "-V", "16", "--raw"])
    assert result.exit_code == 0, result.output
    rows = dict(line.split(None, 1) for line in result.output.splitlines()[2:-1])
    expected = reference_measurement(Params(capacity=256, value_size=16)).hex()
    assert rows["measurement"].strip() == rows["expected"].split()[-1] == expected
    assert rows["report"].strip() == "verified"
    assert Report.from_bytes(bytes.fromhex(result.output.splitlines()[-1])).measurement.hex() \
        == expected


def test_a_crossed_bound_comes_through_the_channel_unnamed():
    m = new_map()
    state = m.backend._state
    saved = list(state.free_frames)
    state.free_frames.clear()
    with pytest.raises(bolt.BoundExceededError) as raised:
        m[b"new"] = b"x"
    assert raised.value.bound == bolt.errors.BOUND_UNNAMED
    state.free_frames[:] = saved
    assert b"new" not in list(m) and len(m) == 100 and m[b"k1"] == b"value 1"

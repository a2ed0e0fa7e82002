"""Several sessions on one accelerator (one per client of a server): each is sealed under its
own keys, a failure ends only its own, and a Setup belongs to the session that sends it."""

import pytest

from bolt.channel import ChannelClient, ReferenceDevice, reference_measurement
from bolt.channel.endpoint import MAX_SESSIONS
from bolt.errors import ChannelError
from bolt.params import Params
from bolt.protocol import Op, Status

from tests.conftest import MASTER_KEY, SALT

PARAMS = Params(capacity=256, key_size=8, value_size=16, load=4, hbm_fraction=0.25)


class SessionLink:
    """What a server does for one client: name its session on every request."""

    def __init__(self, device, session):
        self.device, self.session = device, session

    def report(self):
        return self.device.report()

    def open_session(self, encapsulated_key):
        return self.device.open_session(encapsulated_key, self.session)

    def exchange(self, frames):
        return self.device.exchange(frames, self.session)


def clients(count):
    device = ReferenceDevice(PARAMS)
    made = [ChannelClient(PARAMS, SessionLink(device, n + 1),
                          measurement=reference_measurement(PARAMS)) for n in range(count)]
    return device, made


def test_sessions_interleave_on_one_map():
    device, (a, b) = clients(2)
    assert a.setup({b"k": b"v"}, master_key=MASTER_KEY, salt=SALT).status == Status.ABSENT
    assert b.access(Op.GET, b"k")[:2] == (Status.FOUND, b"v")
    a.access(Op.PUT, b"k", b"w")
    assert b.access(Op.GET, b"k").value == b"w"
    assert a.access(Op.GET, b"k").value == b"w"


def test_a_frame_sent_under_another_session_fails_and_ends_only_that_session():
    device, (a, b) = clients(2)
    a.setup({b"k": b"v"}, master_key=MASTER_KEY, salt=SALT)
    frame = a.seal_command(Op.GET, b"k")
    # The host delivers a's frame as b's: it does not open under b's keys.
    with pytest.raises(ChannelError):
        b.open_response(device.exchange([frame], 2)[0])
    assert not b.is_open
    # a's session is untouched, though its frame was spent: a new session goes on.
    a.open_session()
    assert a.access(Op.GET, b"k").value == b"v"
    b.open_session()
    assert b.access(Op.GET, b"k").value == b"v"


def test_a_setup_interrupted_by_another_session_is_abandoned():
    device, (a, b) = clients(2)
    a.setup({b"k": b"v"}, master_key=MASTER_KEY, salt=SALT)
    relay = device.exchange

    def interleave(frames, session=0):
        """A host that slips b's access into the middle of a's Setup."""
        if session != 1 or len(frames) == 1:
            return relay(frames, session)
        responses = relay(frames[:1], session)
        assert b.access(Op.GET, b"k").value == b"v"
        return responses + relay(frames[1:], session)

    device.exchange = interleave
    with pytest.raises(ChannelError):
        a.setup({b"new": b"1"}, master_key=MASTER_KEY, salt=SALT)
    device.exchange = relay
    assert b.access(Op.GET, b"k").value == b"v"     # the old map is intact
    assert b.access(Op.GET, b"new").status == Status.ABSENT


def test_a_closed_session_is_answered_with_zeros():
    device, (a,) = clients(1)
    a.setup({}, master_key=MASTER_KEY, salt=SALT)
    device.close_session(1)
    assert device.exchange([a.seal_command(Op.GET, b"k")], 1) == [
        bytes(PARAMS.response_frame_bytes)]


def test_the_session_table_is_bounded():
    device = ReferenceDevice(PARAMS)
    links = [ChannelClient(PARAMS, SessionLink(device, n),
                           measurement=reference_measurement(PARAMS))
             for n in range(MAX_SESSIONS)]
    with pytest.raises(ChannelError, match="sessions"):
        ChannelClient(PARAMS, SessionLink(device, MAX_SESSIONS),
                      measurement=reference_measurement(PARAMS))
    links[0].open_session()   # a handle already in the table may open a new session


def test_the_monitors_slot_table_reloads_sessions_and_never_revives_a_closed_one():
    from bolt.channel.monitor import SlotSessions

    table = SlotSessions()
    table.open(1, b"A" * 16, b"a" * 16)
    assert table.switch_to(1) is None                      # loaded at open
    table.save(1, True, 7, 4)
    table.open(2, b"B" * 16, b"b" * 16)
    table.save(2, True, 1, 1)
    assert table.switch_to(1) == (b"A" * 16, b"a" * 16, 7, 4)   # where session 1 stopped
    table.save(1, False, 8, 5)                             # a failed frame closed it
    assert table.switch_to(2) == (b"B" * 16, b"b" * 16, 1, 1)
    with pytest.raises(KeyError):
        table.switch_to(1)                                 # gone for good
    table.close(2)
    with pytest.raises(KeyError):
        table.switch_to(2)

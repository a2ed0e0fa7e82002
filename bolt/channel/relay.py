"""The untrusted host between the client and the accelerator, and the record of what it sees.

:class:`HostRelay` forwards the client's messages to the device and records every one, with
its direction, kind, length, bytes and place in the page trace: with the page trace itself, that
is the host's whole view of the map (``bolt.Map.host_view``). A test may act as a hostile host
through :attr:`HostRelay.interpose`.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from typing import NamedTuple

__all__ = ["HostRelay", "HostFrame", "TO_ACCELERATOR", "TO_CLIENT", "KINDS"]

TO_ACCELERATOR, TO_CLIENT = "to accelerator", "to client"
#: What a relayed message is: the attestation report, the session request (HPKE encapsulated
#: key) and the monitor's nonce, then command and response frames.
KINDS = ("report", "session request", "session nonce", "command", "response")
_DIRECTION = {"report": TO_CLIENT, "session request": TO_ACCELERATOR,
              "session nonce": TO_CLIENT, "command": TO_ACCELERATOR, "response": TO_CLIENT}
_COMMAND, _RESPONSE = KINDS.index("command"), KINDS.index("response")


class HostFrame(NamedTuple):
    """One message the host relayed."""
    direction: str   #: TO_ACCELERATOR or TO_CLIENT
    kind: str        #: one of KINDS
    length: int      #: bytes
    data: bytes      #: the bytes themselves
    position: int    #: page-trace events recorded before it (its place among them)


class HostRelay:
    """The host's relay between a client and a device (the reference or the RTL backend).

    Parameters
    ----------
    device
        ``report()``, ``open_session(key)``, ``exchange(frames)``, ``trace`` and
        ``host_memory``.

    Attributes
    ----------
    interpose : callable or None
        ``interpose(frames) -> frames``: what a hostile host does to each batch of command
        frames before relaying it (alter, drop, replay, reorder, truncate).
    """

    def __init__(self, device):
        self.device = device
        self._exchange = device.exchange
        self.interpose: Callable[[list[bytes]], list[bytes]] | None = None
        self._kinds = bytearray()
        self._lengths = array("L")
        self._positions = array("Q")
        self._data = bytearray()

    # -- the transport the client uses ------------------------------------------------------------

    def report(self) -> bytes:
        report = self.device.report()
        self._record_one(KINDS.index("report"), report)
        return report

    def open_session(self, encapsulated_key: bytes) -> bytes:
        self._record_one(KINDS.index("session request"), encapsulated_key)
        nonce = self.device.open_session(encapsulated_key)
        self._record_one(KINDS.index("session nonce"), nonce)
        return nonce

    def exchange(self, frames: Sequence[bytes]) -> list[bytes]:
        if self.interpose is not None:
            frames = self.interpose(list(frames))
        if len(frames) == 1:     # one access: record without the batch machinery
            event_count = self.device.trace.event_count
            self._record_one(_COMMAND, frames[0], event_count())
            responses = self._exchange(frames)
            if len(responses) == 1:
                self._record_one(_RESPONSE, responses[0], event_count())
                return responses
        else:
            self._record(_COMMAND, frames)
            responses = self._exchange(frames)
        self._record(_RESPONSE, responses)
        return responses

    def _record_one(self, kind: int, data: bytes, position: int | None = None) -> None:
        self._kinds.append(kind)
        self._lengths.append(len(data))
        self._positions.append(self.device.trace.event_count() if position is None
                               else position)
        self._data += data

    def _record(self, kind: int, messages: Sequence[bytes]) -> None:
        position = len(self.device.trace)
        count = len(messages)
        self._kinds.extend(bytes((kind,)) * count)
        self._lengths.extend(map(len, messages))
        self._positions.extend((position,) * count)
        self._data += b"".join(messages)

    # -- the host's view ---------------------------------------------------------------------------

    @property
    def trace(self):
        """The page trace (:class:`bolt.trace.Trace`)."""
        return self.device.trace

    @property
    def host_memory(self):
        return self.device.host_memory

    @property
    def frames(self) -> list[HostFrame]:
        """Every message relayed, in order."""
        frames, start = [], 0
        for kind, length, position in zip(self._kinds, self._lengths, self._positions):
            name = KINDS[kind]
            frames.append(HostFrame(_DIRECTION[name], name, length,
                                    bytes(self._data[start:start + length]), position))
            start += length
        return frames

    def frame_count(self, kind: str | None = None) -> int:
        if kind is None:
            return len(self._kinds)
        return self._kinds.count(KINDS.index(kind))

    def frame_bytes(self) -> bytes:
        """Every relayed byte, concatenated (to search for what must not be there)."""
        return bytes(self._data)

    def clear(self) -> None:
        """Forget the recorded messages and the page trace."""
        self._kinds.clear()
        del self._lengths[:], self._positions[:]
        self._data.clear()
        self.device.trace.clear()

"""The untrusted host between the client and the accelerator, and the record of what it sees.

:class:`HostRelay` forwards the client's messages to the device and records every one, with
its direction, kind, length, bytes and place in the page trace: with the page trace itself, that
is the host's whole view of the map (``bolt.Map.host_view``). A test may act as a hostile host
through :attr:`HostRelay.interpose`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from .frames import FrameRun

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
        self._event_count = device.trace.event_count   # a device keeps its one trace
        self.interpose: Callable[[list[bytes]], list[bytes]] | None = None
        # What the host relayed, in order, as (kind, messages, position) entries: a batch of
        # messages of one kind is kept as a tuple of its frames (the bytes themselves are not
        # copied, and read out only when asked for). Tuples of bytes, unlike lists, leave the
        # cyclic garbage collector's lists at its first pass, so a long run's record does not
        # make every later collection slower (a quarter of an access's time at N = 2^20 when
        # it was kept as lists). A Setup's frames come as one FrameRun and are kept as it is.
        self._log: list[tuple[int, Sequence[bytes], int]] = []

    # -- the transport the client uses ------------------------------------------------------------

    def report(self) -> bytes:
        report = self.device.report()
        self._record(KINDS.index("report"), [report])
        return report

    def open_session(self, encapsulated_key: bytes) -> bytes:
        self._record(KINDS.index("session request"), [encapsulated_key])
        nonce = self.device.open_session(encapsulated_key)
        self._record(KINDS.index("session nonce"), [nonce])
        return nonce

    def exchange(self, frames: Sequence[bytes]) -> list[bytes]:
        if self.interpose is not None:
            frames = self.interpose(list(frames))
        log, event_count = self._log, self._event_count
        log.append((_COMMAND, frames if type(frames) is FrameRun else tuple(frames),
                    event_count()))
        responses = self._exchange(frames)
        log.append((_RESPONSE, tuple(responses), event_count()))
        return responses

    def _record(self, kind: int, messages: Sequence[bytes]) -> None:
        self._log.append((kind, tuple(messages), self._event_count()))

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
        frames = []
        for kind, messages, position in self._log:
            name = KINDS[kind]
            frames += [HostFrame(_DIRECTION[name], name, len(message), bytes(message), position)
                       for message in messages]
        return frames

    def frame_count(self, kind: str | None = None) -> int:
        return sum(len(messages) for code, messages, _ in self._log
                   if kind is None or KINDS[code] == kind)

    def frame_bytes(self) -> bytes:
        """Every relayed byte, concatenated (to search for what must not be there)."""
        return b"".join(message for _, messages, _ in self._log for message in messages)

    def clear(self) -> None:
        """Forget the recorded messages and the page trace."""
        self._log.clear()
        self.device.trace.clear()

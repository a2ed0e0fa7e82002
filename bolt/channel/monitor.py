"""The security monitor: the card's trusted embedded processor, modelled in Python.

It sits beside the accelerator, inside the trust boundary. It owns the device's X25519 key
pair (drawn when the device starts), publishes the signed attestation report, runs the HPKE
key agreement of every new session and installs the two frame keys into the accelerator through
an on-chip key port (a callable here: the model's :meth:`ChannelEndpoint.install_keys`, or the
RTL's ``key_port`` driven by the simulation). The keys never leave the trust boundary.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pyhpke import KEMKey

from ..errors import ChannelError
from .attestation import Report, fixture_vendor_key
from .session import MONITOR_NONCE_BYTES, SUITE, session_info, session_keys

__all__ = ["SecurityMonitor", "SlotSessions", "MAX_SESSIONS"]

#: Sessions an accelerator holds at once (the reference endpoint's table, or the monitor's for
#: the RTL's one key slot).
MAX_SESSIONS = 256


class SecurityMonitor:
    """Attestation and key agreement for one accelerator.

    Parameters
    ----------
    measurement : bytes
        The measurement of the design it runs beside.
    key_port : callable
        ``key_port(command_key, response_key, session)`` installs a new session's frame keys
        on chip under the handle ``session`` (and restarts both sequence numbers).
    vendor_key : Ed25519PrivateKey, optional
        Signs the report; the project's TEST FIXTURE key by default.
    """

    def __init__(self, measurement: bytes, key_port: Callable[[bytes, bytes], None], *,
                 vendor_key: Ed25519PrivateKey | None = None):
        self._device_key = X25519PrivateKey.generate()
        public = self._device_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.report = Report.sign(public, measurement,
                                  vendor_key or fixture_vendor_key()).to_bytes()
        self._recipient_key = KEMKey.from_pyca_cryptography_key(self._device_key)
        self._key_port = key_port

    def open_session(self, encapsulated_key: bytes, session: int = 0) -> bytes:
        """Derive a new session's keys from the client's HPKE ``encapsulated_key``, install
        them under the handle ``session`` (the host names its clients' sessions; a wrong
        handle only breaks a session), and return the nonce the client needs to derive the
        same keys."""
        try:
            context = SUITE.create_recipient_context(bytes(encapsulated_key), self._recipient_key,
                                                     info=session_info(self.report))
        except Exception as error:   # pyhpke raises its own errors for a malformed key
            raise ChannelError(f"the session request did not decapsulate: {error}") from None
        nonce = os.urandom(MONITOR_NONCE_BYTES)
        self._key_port(*session_keys(context, nonce), session)
        return nonce


class SlotSessions:
    """The monitor's table of sessions for an accelerator with one key slot (the RTL channel).

    The slot holds one session's keys and sequence numbers; the table keeps every open session's
    and tells the monitor what to load into the slot before a session's frames (``switch_to``)
    and what to save after them (``save``). A session the accelerator closed (a failed frame)
    leaves the table for good, so no host can bring it back by switching away and back.
    """

    def __init__(self):
        self._sessions: dict[int, list] = {}   # handle -> [command key, response key, seqs]
        self.installed: int | None = None

    def open(self, session: int, command_key: bytes, response_key: bytes) -> None:
        """A new session under ``session`` (the monitor loads it into the slot at once)."""
        if session not in self._sessions and len(self._sessions) >= MAX_SESSIONS:
            raise ChannelError(f"the accelerator holds {MAX_SESSIONS} sessions already")
        self._sessions[session] = [command_key, response_key, 0, 0]
        self.installed = session

    def switch_to(self, session: int) -> tuple[bytes, bytes, int, int] | None:
        """What to load into the slot before frames of ``session``: None if it is loaded
        already. Raises KeyError if the session is not open (its frames get all-zero answers,
        as with no session)."""
        entry = self._sessions[session]
        if self.installed == session:
            return None
        self.installed = session
        return tuple(entry)

    def save(self, session: int, open_: bool, command_sequence: int,
             response_sequence: int) -> None:
        """The slot's state after frames of ``session``: keep its numbers, or drop it."""
        if not open_:
            self.close(session)
        elif session in self._sessions:
            self._sessions[session][2:] = [command_sequence, response_sequence]

    def close(self, session: int) -> None:
        self._sessions.pop(session, None)
        if self.installed == session:
            self.installed = None

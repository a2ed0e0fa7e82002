"""The client's end of the channel: attestation, session, sealed commands.

A :class:`ChannelClient` talks to a *transport*: anything with ``report() -> bytes``,
``open_session(encapsulated_key) -> monitor nonce`` and ``exchange(frames) -> response frames``
(the device itself, the recording :class:`~bolt.channel.relay.HostRelay`, or a network link).
Everything it hands the transport is sealed or public.
"""

from __future__ import annotations

from itertools import chain

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..errors import ChannelError
from ..params import Params
from ..protocol import Cmd, Response, Status
from .attestation import Report, fixture_vendor_public_key
from .frames import TO_ACCELERATOR, TO_CLIENT, FrameCipher, FrameFormat, setup_key_commands
from .session import SUITE, session_info, session_keys

__all__ = ["ChannelClient"]

_SETUP_END = bytes((Cmd.SETUP_END,))
_CHANNEL = Status.CHANNEL
_REJECTED = ("the accelerator rejected a command frame (altered, replayed, reordered, dropped or "
             "truncated by the host) and closed the session; nothing changed")


class ChannelClient:
    """One client of one accelerator: verifies its report and opens a session at once.

    Parameters
    ----------
    params : Params
        The accelerator's public parameters (frame lengths).
    transport
        The way to the accelerator (see the module documentation).
    measurement : bytes
        The measurement the client expects (pinned); any other is an
        :class:`~bolt.errors.AttestationError`.
    vendor_key : Ed25519PublicKey, optional
        The key reports must be signed with; the project's TEST FIXTURE key by default.
    """

    def __init__(self, params: Params, transport, *, measurement: bytes,
                 vendor_key: Ed25519PublicKey | None = None):
        self.params = params
        self._transport = transport
        self._measurement = measurement
        self._vendor_key = vendor_key or fixture_vendor_public_key()
        self._send = self._receive = None
        self.format = FrameFormat(params)
        self._pack_command = self.format.pack_command
        self._unpack_response = self.format.unpack_response
        self._response_bytes = params.response_frame_bytes
        self._end = self._pack_command(Cmd.SETUP_END)
        self.open_session()

    @property
    def measurement(self) -> bytes:
        return self._measurement

    def open_session(self) -> None:
        """Verify the accelerator's report and agree on new frame keys (a new session)."""
        self._send = self._receive = None
        report = self._transport.report()
        device_key = Report.from_bytes(report)
        device_key.verify(self._vendor_key, self._measurement)
        encapsulated_key, context = SUITE.create_sender_context(
            SUITE.kem.deserialize_public_key(device_key.device_key), info=session_info(report))
        monitor_nonce = self._transport.open_session(encapsulated_key)
        command_key, response_key = session_keys(context, monitor_nonce)
        self._send = FrameCipher(command_key, TO_ACCELERATOR)
        self._receive = FrameCipher(response_key, TO_CLIENT)

    @property
    def is_open(self) -> bool:
        return self._send is not None

    # -- frames --------------------------------------------------------------------------------

    def seal_command(self, op: int, key: bytes = b"", value: bytes = b"") -> bytes:
        """The next command frame (the session's next sequence number)."""
        return self._sender().seal(self._pack_command(op, key, value))

    def open_response(self, frame: bytes) -> Response:
        """The response in the next response frame. Raises :class:`ChannelError` (and closes
        the session) if it does not verify or reports a rejected command frame."""
        receive = self._receive
        if receive is None:
            raise ChannelError("no session is open; open a new one")
        plaintext = receive.open(frame) if len(frame) == self._response_bytes else None
        if plaintext is None:
            self._send = self._receive = None
            raise ChannelError("a response frame failed verification (altered, replayed, "
                               "reordered or truncated by the host); the session is closed")
        response = self._unpack_response(plaintext)
        if response.status == _CHANNEL:
            self._send = self._receive = None
            raise ChannelError(_REJECTED)
        return response

    def _sender(self) -> FrameCipher:
        if self._send is None:
            raise ChannelError("no session is open; open a new one")
        return self._send

    def _exchange(self, frames: list[bytes]) -> Response:
        """Send ``frames``, of which only the last is answered; return that answer."""
        responses = self._transport.exchange(frames)
        if len(responses) != 1:
            self._exchange_failed(responses, len(frames))
        return self.open_response(responses[0])

    def _exchange_failed(self, responses: list[bytes], sent: int):
        # An early answer means the accelerator refused a frame: report why.
        if responses:
            self.open_response(responses[0])
        self._send = self._receive = None
        raise ChannelError(f"{sent} command frames got {len(responses)} responses instead of "
                           "1; the session is closed")

    # -- commands ------------------------------------------------------------------------------

    def access(self, op: int, key: bytes, value: bytes | None = None) -> Response:
        """One Access (``key`` and ``value`` already checked against the sizes)."""
        send = self._send
        if send is None:
            raise ChannelError("no session is open; open a new one")
        responses = self._transport.exchange(
            [send.seal(self._pack_command(op, key, value or b""))])
        if len(responses) != 1:
            return self._exchange_failed(responses, 1)
        # open_response inline while all goes well (every access); it reports any failure.
        frame = responses[0]
        plaintext = self._receive.open(frame) if len(frame) == self._response_bytes else None
        if plaintext is not None:
            response = self._unpack_response(plaintext)
            if response.status != _CHANNEL:
                return response
            self._send = self._receive = None
            raise ChannelError(_REJECTED)
        return self.open_response(frame)

    def setup(self, items: dict[bytes, bytes], *, master_key: bytes, salt: bytes) -> Response:
        """Setup with ``items`` (distinct, checked keys) under ``master_key`` and ``salt``,
        which travel sealed. Returns ABSENT (done), FULL or BOUND."""
        key_commands = setup_key_commands(self.params, master_key, salt)
        # All of a Setup's frames sealed as one run, relayed as one buffer.
        frames = self._sender().seal_run(
            chain(key_commands, self.format.pack_items(items), (self._end,)),
            len(key_commands) + len(items) + 1, length=self.params.command_plaintext_bytes)
        return self._exchange(frames)


"""The accelerator's end of the channel, and the reference backend behind it.

:class:`ChannelEndpoint` opens command frames, runs them on the reference model and seals the
responses; it is the byte-exact oracle of the RTL's ``hdl/channel.py``. Its rules:

- With no session (none installed yet, or closed by a failure) every frame is answered by an
  all-zero frame of the response length.
- A frame of the wrong length, or one that does not open under the next sequence number
  (tampered, replayed, dropped, reordered), changes nothing: it is answered by a sealed
  ``CHANNEL`` response and the session closes (a Setup in progress is abandoned).
- GET, PUT, DELETE run an Access; before a completed Setup they are answered ``REFUSED`` and
  touch nothing.
- ``SETUP_BEGIN`` frames (``Params.setup_key_frames`` of them) carry the master key and salt;
  after the last one the map counts as not set up until ``SETUP_END``. ``SETUP_ITEM`` frames
  carry one item each. Neither is answered (a Setup of 2^20 items is 2^20 frames), unless out of
  place (``REFUSED``). ``SETUP_END`` runs the Setup and answers ``ABSENT`` (done), ``FULL`` or
  ``BOUND``, or ``REFUSED`` (nothing run) if an item's length field exceeded its field.
- Any other op is answered ``REFUSED``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import BoundExceededError, CapacityError, ChannelError
from ..model import ReferenceAccelerator
from ..params import Params
from ..protocol import Cmd, Op, Response, Status
from ..trace import Trace
from .attestation import reference_measurement
from .frames import TO_ACCELERATOR, TO_CLIENT, FrameCipher, FrameFormat, setup_key_material
from .monitor import MAX_SESSIONS, SecurityMonitor

__all__ = ["ChannelEndpoint", "ReferenceDevice", "MAX_SESSIONS"]

_PUT, _DELETE = int(Op.PUT), int(Op.DELETE)
_SETUP_ITEM = bytes((Cmd.SETUP_ITEM,))


class ChannelEndpoint:
    """The accelerator's side of the sealed channel, in front of the reference model.

    Parameters
    ----------
    params : Params
        The public parameters (frame lengths).
    new_accelerator : callable
        ``new_accelerator(master_key, salt, items)`` builds the model at the first Setup.
    """

    def __init__(self, params: Params, new_accelerator):
        self.params = params
        self.accelerator: ReferenceAccelerator | None = None
        self._new_accelerator = new_accelerator
        self._receive = self._send = None
        # Several clients may each hold a session (a table the monitor fills); the frames of one
        # exchange are all for one session, and a Setup in progress belongs to its session.
        self._sessions: dict[int, tuple[FrameCipher, FrameCipher]] = {}
        self._session = 0
        self._set_up = False
        self._key_commands: list[bytes] = []
        self._setup = None   # (master_key, salt, runs of item plaintexts) between SETUP_BEGIN, END
        self.format = FrameFormat(params)
        self._pack_response, self._unpack_command = (self.format.pack_response,
                                                     self.format.unpack_command)
        self._response_bytes = params.response_frame_bytes
        self._command_bytes = params.command_frame_bytes

    def install_keys(self, command_key: bytes, response_key: bytes, session: int = 0) -> None:
        """The on-chip key port: a new session (sequence numbers from 0) under the handle
        ``session``, replacing any session the handle held."""
        if session not in self._sessions and len(self._sessions) >= MAX_SESSIONS:
            raise ChannelError(f"the accelerator holds {MAX_SESSIONS} sessions already")
        self._sessions[session] = (FrameCipher(command_key, TO_ACCELERATOR),
                                   FrameCipher(response_key, TO_CLIENT))
        self._switch(session, force=True)

    def close_session(self, session: int = 0) -> None:
        """Forget a session's keys (its client is gone); the map is untouched."""
        self._sessions.pop(session, None)
        if session == self._session:
            self._receive = self._send = None
            self._key_commands, self._setup = [], None

    def _switch(self, session: int, *, force: bool = False) -> None:
        """Make ``session`` the one frames are opened for; a Setup in progress in another
        session is abandoned (its client sends a whole Setup in one exchange)."""
        if session == self._session and not force:
            return
        self._session = session
        self._receive, self._send = self._sessions.get(session, (None, None))
        self._key_commands, self._setup = [], None

    def exchange(self, frames: Sequence[bytes], session: int = 0) -> list[bytes]:
        """Take command frames of ``session`` in order; return the response frames they
        produced."""
        if session != self._session:
            self._switch(session)
        if len(frames) == 1:     # one access (the common exchange)
            receive, frame = self._receive, frames[0]
            if receive is None:
                return [bytes(self._response_bytes)]
            plaintext = receive.open(frame) if len(frame) == self._command_bytes else None
            if plaintext is None:
                return [self._close()]
            if plaintext[0] <= _DELETE:   # an access, without the dispatch's other cases
                return [self._send.seal(self._pack_response(self._access(plaintext)))]
            response = self._dispatch(plaintext)
            return [] if response is None else [response]
        # A batch (a Setup): open the frames in runs, then act on each in order.
        responses, start, count = [], 0, len(frames)
        while start < count:
            receive = self._receive
            if receive is None:
                responses += [bytes(self._response_bytes)] * (count - start)
                break
            plaintexts = receive.open_run(frames, start, self._command_bytes)
            opened = len(plaintexts) // self.params.command_plaintext_bytes
            self._dispatch_run(plaintexts, opened, responses)
            start += opened
            if start < count:         # frames[start] did not open
                responses.append(self._close())
                start += 1
        return responses

    def _dispatch_run(self, plaintexts: memoryview, count: int,
                      responses: list[bytes]) -> None:
        """Act on the ``count`` opened commands in ``plaintexts`` (one after another) in
        order, appending their response frames to ``responses``. A Setup's items are taken a
        whole run at a time (no call per item)."""
        # The op bytes are a strided slice, and a run of items is kept as a view of its part
        # (decoded at SETUP_END).
        size = self.params.command_plaintext_bytes
        ops = plaintexts[::size].tobytes()
        position = 0
        while position < count:
            if self._setup is not None and ops[position] == Cmd.SETUP_ITEM:
                end = count - len(ops[position:].lstrip(_SETUP_ITEM))
                self._setup[2].append(plaintexts[position * size:end * size])
                position = end
                continue
            response = self._dispatch(plaintexts[position * size:(position + 1) * size]
                                      .tobytes())
            if response is not None:
                responses.append(response)
            position += 1

    def _dispatch(self, plaintext: bytes) -> bytes | None:
        """Act on an opened command; its response frame, if it has one."""
        op = plaintext[0]
        if op == Cmd.SETUP_ITEM and self._setup is not None:
            self._setup[2].append(plaintext)   # decoded all at once at SETUP_END
            return None
        if op <= _DELETE:
            return self._send.seal(self._pack_response(self._access(plaintext)))
        if op == Cmd.SETUP_BEGIN:
            self._key_commands.append(plaintext)
            if len(self._key_commands) == self.params.setup_key_frames:
                master_key, salt = setup_key_material(self.params, self._key_commands)
                self._key_commands, self._setup, self._set_up = [], (master_key, salt, []), False
            return None
        if op == Cmd.SETUP_END and self._setup is not None:
            return self._reply(self._run_setup())
        return self._reply(Response(Status.REFUSED))

    def _access(self, plaintext: bytes) -> Response:
        command = self._unpack_command(plaintext)
        if command is None or not self._set_up:
            return Response(Status.REFUSED)
        op, key, value = command
        try:
            return self.accelerator.access(op, key, value if op == _PUT else None)
        except BoundExceededError:   # a page counter would wrap
            return Response(Status.BOUND)

    def _run_setup(self) -> Response:
        master_key, salt, runs = self._setup   # the items' plaintexts, in runs
        self._setup = None
        items = self.format.unpack_items(runs[0] if len(runs) == 1 else b"".join(runs))
        if items is None:
            return Response(Status.REFUSED)
        try:
            if self.accelerator is None:
                self.accelerator = self._new_accelerator(master_key, salt, items)
            else:
                self.accelerator.setup(items, salt=salt, master_key=master_key)
        except CapacityError:
            return Response(Status.FULL)
        except BoundExceededError:
            return Response(Status.BOUND)
        self._set_up = True
        return Response(Status.ABSENT)

    def _reply(self, response: Response) -> bytes:
        return self._send.seal(self._pack_response(response))

    def _close(self) -> bytes:
        """A failed frame: answer CHANNEL, then forget the session's keys."""
        reply = self._reply(Response(Status.CHANNEL))
        self._receive = self._send = None
        self._sessions.pop(self._session, None)
        self._key_commands, self._setup = [], None
        return reply


class ReferenceDevice:
    """The reference backend as the host sees it: the model behind its channel endpoint, with
    the security monitor beside it. Nothing of the map exists before the first Setup.

    Parameters
    ----------
    params : Params
        The public parameters.
    crypto : bool
        False runs the model in trace-only mode (see :class:`ReferenceAccelerator`).
    """

    def __init__(self, params: Params, *, crypto: bool = True):
        self.params = params
        self.trace = Trace()
        self._crypto = crypto
        self.endpoint = ChannelEndpoint(params, self._new_accelerator)
        self.monitor = SecurityMonitor(reference_measurement(params), self.endpoint.install_keys)
        self.exchange = self.endpoint.exchange

    def _new_accelerator(self, master_key: bytes, salt: bytes, items) -> ReferenceAccelerator:
        return ReferenceAccelerator(self.params, master_key=master_key, salt=salt, items=items,
                                    crypto=self._crypto, trace=self.trace)

    @property
    def accelerator(self) -> ReferenceAccelerator | None:
        """The model behind the channel (trusted state, for tests and debugging)."""
        return self.endpoint.accelerator

    @property
    def host_memory(self):
        accelerator = self.endpoint.accelerator
        return accelerator.host_memory if accelerator is not None else None

    # -- what the host relays ----------------------------------------------------------------------

    def report(self) -> bytes:
        return self.monitor.report

    def open_session(self, encapsulated_key: bytes, session: int = 0) -> bytes:
        return self.monitor.open_session(encapsulated_key, session)

    def close_session(self, session: int = 0) -> None:
        self.endpoint.close_session(session)

    def close(self) -> None:
        pass

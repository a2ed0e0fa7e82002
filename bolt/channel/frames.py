"""The frames of the client channel: their plaintext formats and their sealing.

See docs/algorithm.md, "The sealed client channel".

Every command is one frame of ``Params.command_frame_bytes`` and every response one of
``Params.response_frame_bytes``, whatever the op, key, value or outcome: the plaintext (fixed
layout below) sealed by AES-128-GCM, ciphertext then 16-byte tag. The nonce is
``direction (4 bytes, BE) ‖ sequence number (8 bytes, BE)``; each direction has its own key and
counts its frames from 0 in every session. The sequence number is not sent: the receiver opens
the frame under the number it expects, so a replayed, dropped or reordered frame fails its tag.

- command plaintext: ``op (1) ‖ key length (1) ‖ key (key_size, zero padded) ‖ value length
  (2, BE) ‖ value (value_size, zero padded)``; ``op`` is a :class:`~bolt.protocol.Cmd`.
  ``SETUP_BEGIN`` frames carry ``master key ‖ salt`` in the bytes after the op, split over
  ``Params.setup_key_frames`` frames (zero padded).
- response plaintext: ``status (1) ‖ value length (2, BE) ‖ value (value_size, zero padded) ‖
  page (4, BE)``.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, islice, repeat

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..crypto import MASTER_KEY_BYTES, SALT_BYTES
from ..errors import ChannelError
from ..model.pages import OCCUPIED, EncodedItems, slot_format
from ..params import FRAME_OP_BYTES, SETUP_KEY_MATERIAL_BYTES, TAG_BYTES, Params
from ..protocol import BARE_RESPONSES, Cmd, Response, Status

__all__ = ["TO_ACCELERATOR", "TO_CLIENT", "SEQUENCE_LIMIT", "FrameCipher",
           "FrameRun", "frame_nonce",
           "FrameFormat",
           "setup_key_commands", "setup_key_material"]

#: The nonce's direction field: client to accelerator (commands), accelerator to client.
TO_ACCELERATOR, TO_CLIENT = 1, 2
#: A session ends before a sequence number would reach this (it is 64 bits wide).
SEQUENCE_LIMIT = 2**64 - 1
_NONCE = struct.Struct(">IQ")
_NONCE_RECORD = np.dtype([("direction", ">u4"), ("sequence", ">u8")])


def frame_nonce(direction: int, sequence: int) -> bytes:
    """``direction (4 bytes, BE) ‖ sequence (8 bytes, BE)``."""
    return _NONCE.pack(direction, sequence)


#: Frames of a run sealed or opened per pass: their objects are freed before the next pass.
_CHUNK = 4096


@functools.lru_cache(maxsize=8)
def _splitter(size: int, count: int) -> struct.Struct:
    """A format that cuts ``count`` pieces of ``size`` bytes, each a ``bytes``."""
    return struct.Struct(f"{size}s" * count)


class FrameRun(Sequence[bytes]):
    """Frames of one length, one after another in one buffer: a Setup's frames as the client
    seals them and the host relays them (a million frames: one buffer, not a million bytes
    objects). Reads as a sequence of ``bytes``; the host relays the run whole.

    Parameters
    ----------
    buffer :
        The frames' bytes (not copied; nothing may write it afterwards).
    frame_length : int
        Bytes of each frame.
    """

    __slots__ = ("_view", "frame_length")

    def __init__(self, buffer, frame_length: int):
        if frame_length <= 0 or len(buffer) % frame_length:
            raise ValueError(f"a run of {len(buffer)} bytes is not whole frames of "
                             f"{frame_length}")
        self._view = memoryview(buffer).toreadonly()
        self.frame_length = frame_length

    def __len__(self) -> int:
        return len(self._view) // self.frame_length

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        count = len(self)
        if index < 0:
            index += count
        if not 0 <= index < count:
            raise IndexError("frame index out of range")
        size = self.frame_length
        return self._view[index * size:(index + 1) * size].tobytes()

    def __iter__(self) -> Iterator[bytes]:
        return self.frames_from(0)

    def frames_from(self, start: int) -> Iterator[bytes]:
        """The frames from ``start`` on, cut a chunk at a time (one ``struct`` call a chunk: a
        view or a slice per frame costs more)."""
        size, count = self.frame_length, len(self) - start
        return chain.from_iterable(
            _splitter(size, min(_CHUNK, count - i)).unpack_from(self._view, (start + i) * size)
            for i in range(0, count, _CHUNK))

    def tobytes(self) -> bytes:
        """All the frames' bytes, one after another."""
        return self._view.tobytes()


class FrameCipher:
    """One direction of a session: seals (or opens) its frames in sequence under its key.

    The runs (a Setup's million frames) go through ``map`` over the AEAD's own methods, so no
    Python frame runs per frame: nonces, sealing and opening all stay in C. They go a chunk at
    a time into one buffer, so a run holds no object per frame (fresh memory for a million
    of them cost more in page faults than the sealing itself).
    """

    #: Nonces made ahead for single frames (one numpy pass; a list pop then costs less than
    #: a ``struct`` call per frame).
    _AHEAD = 256

    def __init__(self, key: bytes, direction: int):
        aead = AESGCM(key)
        self._encrypt, self._decrypt = aead.encrypt, aead.decrypt
        self._direction = direction
        self.sequence = 0

    @property
    def sequence(self) -> int:
        """The sequence number of the next frame."""
        return self._ahead_end - len(self._ahead)

    @sequence.setter
    def sequence(self, sequence: int) -> None:
        # The nonces of the next sequence numbers, the next one last: a frame pops its own.
        self._ahead: list[bytes] = []
        self._ahead_end = sequence   # the sequence number after the ones made ahead

    def _nonces(self, start: int, count: int) -> list[bytes]:
        """The nonces of sequence numbers ``start`` .. ``start + count - 1``, built as one
        numpy array of :func:`frame_nonce` records (a third of the time of one ``struct`` call
        each)."""
        nonces = np.empty(count, dtype=_NONCE_RECORD)
        nonces["direction"] = self._direction
        nonces["sequence"] = np.arange(start, start + count, dtype=np.uint64)
        return nonces.view(f"V{_NONCE.size}").tolist()

    def _make_ahead(self, *, sealing: bool) -> list[bytes]:
        """Make the nonces of the next sequence numbers (the ones made ahead are used up);
        none at or past :data:`SEQUENCE_LIMIT`, which only opening may reach."""
        sequence = self._ahead_end
        if sequence >= SEQUENCE_LIMIT:
            if sealing:
                raise ChannelError("the session's sequence numbers are used up; open a new "
                                   "session")
            self._ahead[:] = [frame_nonce(self._direction, sequence)]
        else:
            count = min(self._AHEAD, SEQUENCE_LIMIT - sequence)
            self._ahead[:] = self._nonces(sequence, count)[::-1]
        self._ahead_end = sequence + len(self._ahead)
        return self._ahead

    def seal(self, plaintext: bytes) -> bytes:
        ahead = self._ahead or self._make_ahead(sealing=True)
        return self._encrypt(ahead.pop(), plaintext, None)

    def seal_run(self, plaintexts: Iterable[bytes], count: int, *,
                 length: int) -> FrameRun:
        """Seal the ``count`` ``plaintexts``, each ``length`` bytes, in sequence into one
        :class:`FrameRun` (a Setup's frames: one call, one buffer)."""
        sequence = self.sequence
        if sequence + count >= SEQUENCE_LIMIT:
            raise ChannelError("the session's sequence numbers are used up; open a new session")
        size = length + TAG_BYTES
        buffer = bytearray(count * size)
        view, plaintexts = memoryview(buffer), iter(plaintexts)
        for start in range(0, count, _CHUNK):
            chunk = min(_CHUNK, count - start)
            sealed = b"".join(map(self._encrypt, self._nonces(sequence + start, chunk),
                                  islice(plaintexts, chunk), repeat(None, chunk)))
            if len(sealed) != chunk * size:
                raise ValueError(f"plaintexts of a run of {count} are not {count} of "
                                 f"{length} bytes")
            view[start * size:(start + chunk) * size] = sealed
        self.sequence = sequence + count
        return FrameRun(buffer, size)

    def open_run(self, frames: Sequence[bytes], start: int, length: int) -> memoryview:
        """Open ``frames[start:]`` in sequence up to the first one that is not ``length``
        bytes long or does not verify; return the plaintexts opened, one after another in one
        buffer."""
        count = len(frames) - start
        if isinstance(frames, FrameRun) and frames.frame_length == length:
            sources = frames.frames_from(start)
        else:
            if count and set(map(len, islice(frames, start, None))) != {length}:   # rare
                count = next(i for i, frame in enumerate(islice(frames, start, None))
                             if len(frame) != length)
            sources = islice(frames, start, start + count)
        size = length - TAG_BYTES
        view = memoryview(bytearray(count * size))
        sequence, opened = self.sequence, 0
        while opened < count:
            chunk = min(_CHUNK, count - opened)
            plaintexts: list[bytes] = []
            try:
                # On InvalidTag, extend keeps the plaintexts of the frames before the failed one.
                plaintexts.extend(map(self._decrypt, self._nonces(sequence + opened, chunk),
                                      islice(sources, chunk), repeat(None, chunk)))
            except InvalidTag:
                pass
            view[opened * size:(opened + len(plaintexts)) * size] = b"".join(plaintexts)
            opened += len(plaintexts)
            if len(plaintexts) < chunk:
                break
        self.sequence = sequence + opened
        return view[:opened * size]

    def open(self, frame: bytes) -> bytes | None:
        """The plaintext of the next frame, or None if it does not verify as that frame (the
        sequence number then stays where it was)."""
        ahead = self._ahead or self._make_ahead(sealing=False)
        try:
            plaintext = self._decrypt(ahead[-1], frame, None)
        except InvalidTag:
            return None
        del ahead[-1]
        return plaintext


# -- plaintext formats ---------------------------------------------------------------------------

_new_response = tuple.__new__   # skips the namedtuple's Python-level __new__ (every access)
_STATUSES = {int(status): status for status in Status}
_FOUND, _INTEGRITY = Status.FOUND, Status.INTEGRITY
_ABSENT_RESPONSE = BARE_RESPONSES[Status.ABSENT]


class FrameFormat:
    """The command and response plaintexts of one :class:`~bolt.params.Params` (``struct``
    formats: the ``s`` fields zero-pad the key and value)."""

    def __init__(self, params: Params):
        ks, vs = params.key_size, params.value_size
        self.params = params
        self._command = slot_format(ks, vs)
        self._response = struct.Struct(f">BH{vs}sI")
        assert self._command.size == params.command_plaintext_bytes
        assert self._response.size == params.response_plaintext_bytes
        self._key_size, self._value_size = ks, vs
        self._absent = self._response.pack(Status.ABSENT, 0, b"", 0)

    def pack_command(self, op: int, key: bytes = b"", value: bytes = b"") -> bytes:
        """A command plaintext (``key`` and ``value`` already checked against the sizes)."""
        return self._command.pack(op, len(key), key, len(value), value)

    def unpack_command(self, plaintext: bytes) -> tuple[int, bytes, bytes] | None:
        """``(op, key, value)`` of a command plaintext, or None if a length field exceeds its
        field (only a faulty client sends that; the accelerator refuses it)."""
        op, key_length, key, value_length, value = self._command.unpack(plaintext)
        ks, vs = self._key_size, self._value_size
        if key_length > ks or value_length > vs:
            return None
        # A comparison costs less than a slice; full-length fields are common (a GET's value
        # is empty, a hash key fills its field).
        return (op, key if key_length == ks else key[:key_length],
                value if value_length == vs else value[:value_length])

    def pack_items(self, items: dict[bytes, bytes]) -> Iterator[bytes]:
        """The ``SETUP_ITEM`` plaintexts of ``items`` (checked keys and values), packed as
        they are consumed (in C: no Python frame per item)."""
        keys, values = items.keys(), items.values()
        return map(self._command.pack, repeat(Cmd.SETUP_ITEM, len(items)), map(len, keys), keys,
                   map(len, values), values)

    def unpack_items(self, plaintexts: bytes) -> dict[bytes, bytes] | None:
        """The items of the ``SETUP_ITEM`` plaintexts in ``plaintexts`` (concatenated; a
        repeated key keeps its first place and its last value), or None if any has a length
        field exceeding its field. Without a repeated key they come as
        :class:`~bolt.model.pages.EncodedItems`: a command plaintext is its item's slot
        plaintext with the op byte in place of the slot's flag; a writable ``plaintexts``
        becomes their slot plaintexts (its op bytes overwritten)."""
        # One command per row, its length fields checked as columns.
        rows = np.frombuffer(plaintexts, dtype=np.uint8).reshape(-1, self._command.size)
        pairs = self._item_pairs(plaintexts, rows)
        if pairs is None or not len(rows):
            return pairs if pairs is None else {}
        # A writable buffer (the endpoint's own, opened from the frames) becomes the slot
        # plaintexts in place: the op bytes are all read, and 2^20 rows are 88 MB.
        slots = rows if rows.flags.writeable else rows.copy()
        slots[:, 0] = OCCUPIED
        # Built straight into the EncodedItems (a million items: no dictionary copied).
        items = EncodedItems(pairs)
        if len(items) != len(rows):   # a repeated key: its slot plaintexts do not fit
            return dict(items)
        items.slots = slots
        return items

    def _item_pairs(self, plaintexts: bytes, rows: np.ndarray):
        """The (key, value) of each command in ``plaintexts``, as an iterable, or None if a
        length field exceeds its field."""
        ks, vs = self._key_size, self._value_size
        # The length fields as columns, checked whole (no Python frame per item).
        key_lengths = rows[:, 1]
        value_lengths = rows[:, 2 + ks].astype(np.uint16) << 8 | rows[:, 3 + ks]
        if not len(rows):
            return ()
        if key_lengths.max() > ks or value_lengths.max() > vs:
            return None
        key_length, value_length = int(key_lengths[0]), int(value_lengths[0])
        if (key_lengths == key_length).all() and (value_lengths == value_length).all():
            # Keys of one length and values of one length (the usual case): a format that
            # takes just the two fields, and the dictionary built in C.
            fields = struct.Struct(f">2x{key_length}s{ks - key_length}x2x{value_length}s"
                                   f"{vs - value_length}x")
            return fields.iter_unpack(plaintexts)
        return ((key[:key_length], value[:value_length])
                for _, key_length, key, value_length, value in
                self._command.iter_unpack(plaintexts))

    def pack_response(self, response: Response) -> bytes:
        if response is _ABSENT_RESPONSE:   # a miss or an insert: packed once
            return self._absent
        value = response.value
        return self._response.pack(response.status, len(value) if value is not None else 0,
                                   value or b"", response.page or 0)

    def unpack_response(self, plaintext: bytes) -> Response:
        """The :class:`Response` of a response plaintext: a value for FOUND, a page for
        INTEGRITY."""
        if plaintext == self._absent:   # a miss or an insert (about half of all answers)
            return _ABSENT_RESPONSE
        status, value_length, value, page = self._response.unpack(plaintext)
        if status == _FOUND:
            return _new_response(Response, (_FOUND, value[:value_length], None, None))
        if status == _INTEGRITY:
            return _new_response(Response, (_INTEGRITY, None, page, None))
        return BARE_RESPONSES[_STATUSES[status]]


def setup_key_commands(params: Params, master_key: bytes, salt: bytes) -> list[bytes]:
    """The ``SETUP_BEGIN`` plaintexts carrying ``master_key ‖ salt``."""
    if len(master_key) != MASTER_KEY_BYTES or len(salt) != SALT_BYTES:
        raise ValueError(f"the master key must be {MASTER_KEY_BYTES} bytes and the salt "
                         f"{SALT_BYTES}")
    chunk = params.command_plaintext_bytes - FRAME_OP_BYTES
    material = (master_key + salt).ljust(chunk * params.setup_key_frames, b"\0")
    return [bytes((Cmd.SETUP_BEGIN,)) + material[i:i + chunk]
            for i in range(0, len(material), chunk)]


def setup_key_material(params: Params, plaintexts: Iterable[bytes]) -> tuple[bytes, bytes]:
    """``(master_key, salt)`` from the ``SETUP_BEGIN`` plaintexts, in order."""
    material = b"".join(plaintext[FRAME_OP_BYTES:] for plaintext in plaintexts)
    return (material[:MASTER_KEY_BYTES],
            material[MASTER_KEY_BYTES:SETUP_KEY_MATERIAL_BYTES])

"""The messages between a ``bolt serve`` server and its clients (``bolt.connect``).

Everything on this wire is public or sealed: the server is the untrusted host. A message is
``length (4 bytes, BE) ‖ kind (1 byte) ‖ body``, ``length`` counting kind and body.

==============  =========  =====================================================================
kind            direction  body
==============  =========  =====================================================================
``HELLO``       to client  first message: JSON of the protocol version, the public parameters,
                           the backend's name, the frame lengths, whether bulk loads are relayed
``REPORT``      to client  the accelerator's attestation report (answer to an empty ``REPORT``)
``SESSION``     both       to the server: the HPKE encapsulated key; back: the monitor's nonce
``EXCHANGE``    both       command frames, back: the response frames (whole frames, concatenated)
``ERROR``       to client  why the server refuses or ends the connection (UTF-8; never map data)
==============  =========  =====================================================================

Each request gets exactly one answer; a client has at most one request outstanding.
"""

from __future__ import annotations

import json
import socket
from enum import IntEnum

from .errors import BackendError

__all__ = ["Kind", "PROTOCOL_VERSION", "HEADER_BYTES", "encode", "decode_length", "hello_body",
           "send", "receive", "WireError"]

PROTOCOL_VERSION = 1
HEADER_BYTES = 5          #: length (4) ‖ kind (1)
#: The longest message a client accepts (a HELLO, a report, a nonce or response frames).
CLIENT_MESSAGE_LIMIT = 1 << 20


class Kind(IntEnum):
    HELLO = 1
    REPORT = 2
    SESSION = 3
    EXCHANGE = 4
    ERROR = 5


class WireError(BackendError):
    """The server broke the protocol, refused a request, or the connection ended."""


def encode(kind: Kind, body: bytes = b"") -> bytes:
    return (len(body) + 1).to_bytes(4, "big") + bytes((kind,)) + body


def decode_length(header: bytes) -> tuple[int, int]:
    """``(kind, body length)`` of a message header; raises WireError if it is malformed."""
    length, kind = int.from_bytes(header[:4], "big"), header[4]
    if length < 1 or kind not in Kind._value2member_map_:
        raise WireError(f"malformed message header {header.hex()}")
    return kind, length - 1


def hello_body(params, backend: str, *, reload: bool) -> bytes:
    """The public facts a client needs before its session (sizes come from ``params``)."""
    return json.dumps({"protocol": PROTOCOL_VERSION, "backend": backend,
                       "params": params.arguments(),
                       "command_frame_bytes": params.command_frame_bytes,
                       "response_frame_bytes": params.response_frame_bytes,
                       "reload": reload}, sort_keys=True).encode()


# -- the blocking client side -------------------------------------------------------------------

def send(sock: socket.socket, kind: Kind, body: bytes = b"") -> None:
    try:
        sock.sendall(encode(kind, body))
    except OSError as error:
        raise WireError(f"lost the server while sending: {error}") from error


def _read_exactly(reader, count: int) -> bytes:
    try:
        data = reader.read(count)
    except socket.timeout:
        raise WireError("the server did not answer in time") from None
    except OSError as error:
        raise WireError(f"lost the server: {error}") from error
    if len(data) < count:
        raise WireError("the server closed the connection")
    return data


def receive(reader, expected: Kind) -> bytes:
    """The body of the next message on ``reader`` (the socket's buffered reader, so a small
    message takes one system call), which must be of kind ``expected`` (an ``ERROR`` from the
    server is raised as WireError with its text)."""
    kind, length = decode_length(_read_exactly(reader, HEADER_BYTES))
    if length > CLIENT_MESSAGE_LIMIT:
        raise WireError(f"the server sent a message of {length} bytes")
    body = _read_exactly(reader, length)
    if kind == Kind.ERROR:
        raise WireError(f"the server refused: {body.decode('utf-8', 'replace')}")
    if kind != expected:
        raise WireError(f"the server sent {Kind(kind).name} instead of {expected.name}")
    return body

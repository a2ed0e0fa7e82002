"""What a backend (the reference model or the RTL) accepts and answers, shared by both.

The accelerator answers every command with a :class:`Response`; :class:`bolt.Map` turns
statuses into Python results and exceptions, the same way for every backend.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

__all__ = ["Op", "Cmd", "Status", "Response", "BARE_RESPONSES", "HBM", "PENDING", "HOST", "POOL"]

#: Kinds of index location (the trusted index of the design): an item sits in an HBM bin's frame,
#: waits in a host bin's eviction buffer (its frame), or lives in a host page's slot. The model
#: and the RTL index encode them with these codes. With the pool placement (algorithm §13) an
#: item may also sit in a trusted pool slot (``POOL``; the RTL has no pool).
HBM, PENDING, HOST, POOL = 0, 1, 2, 3


class Op(IntEnum):
    GET = 0
    PUT = 1
    DELETE = 2


class Cmd(IntEnum):
    """The op byte of a command: the three Access ops of :class:`Op`, then Setup's three steps
    (``SETUP_BEGIN`` carries the master key and salt, ``SETUP_ITEM`` one item, ``SETUP_END``
    writes the pages)."""
    GET = Op.GET
    PUT = Op.PUT
    DELETE = Op.DELETE
    SETUP_BEGIN = 4
    SETUP_ITEM = 5
    SETUP_END = 6


class Status(IntEnum):
    ABSENT = 0      #: the key was not in the map (PUT: it is now)
    FOUND = 1       #: the key was in the map; the response carries its (old) value
    FULL = 2        #: PUT of a new key into a map at capacity; nothing stored
    BOUND = 3       #: a re-placement crossed a bound (bin full or frame pool empty)
    INTEGRITY = 4   #: a host page failed verification; ``page`` names it
    CHANNEL = 5     #: a command frame failed verification or came out of sequence; the
                    #: session is closed and nothing changed
    REFUSED = 6     #: no Setup has completed (no keys), or a command out of place; nothing
                    #: was touched


class Response(NamedTuple):
    status: Status
    value: bytes | None = None   #: the value found (FOUND) or None
    page: int | None = None      #: the failing page (INTEGRITY) or None
    bound: str | None = None     #: which bound (BOUND; the model names it, the RTL does not)


#: The response of each status with nothing else in it, built once: a response is immutable,
#: and making one costs more than the rest of its trip through the channel (a miss, an insert).
BARE_RESPONSES = {status: Response(status) for status in Status}

"""When each access's host events happen: the public schedule of algorithm §12, and the latency
and throughput it projects on a real host link.

One home for the timing rule: the latency projection (``RtlStats``, ``bolt sim``, ``bolt bench``)
and the tests read it from here.

The rule
--------
An access has a public **touch count** ``t`` (0, 1 or 2: which of x, y are host bins, which its
trace shows) and a public **arrival** (when its command reaches the accelerator). Its on-chip
work is fixed by ``t`` (:class:`AccessPhases`): ``front`` cycles from acceptance to its page read
requests (draws, PRF, index lookup), then, once its ``t`` pages are in, ``back[t]`` cycles to its
response (decrypt tail, take, flush), then ``tail[t]`` cycles in which its page writes are
posted and its re-placement is written (the response never waits for them). An access is in
flight from its acceptance to the end of its tail. With up to ``depth`` accesses in flight,
access ``i`` (in command order):

- is accepted at ``accept_i = max(arrival_i, accept_{i-1} + front, idle_{i-depth})``: one
  control front at a time, in order, and at most ``depth`` accesses in flight;
- issues its reads at ``reads_i = accept_i + front`` (both of them, before any write of its own);
- gets its page data over the host link, in order: the first byte comes back one round trip
  after the request, pages follow each other at the link's bandwidth, and access ``i``'s pages
  never overtake access ``i-1``'s;
- answers at ``response_i = max(data_i, idle_{i-1}) + back[t_i]``: one back end at a time, in
  order, busy with an access until ``idle_i = response_i + tail[t_i]``;
- posts its writes from ``response_i`` on, in order behind earlier accesses' writes.

With ``depth = 1`` this is the RTL as built: one access at a time, its reads issued together
after the lookup, its answer before its writes.

Every time is a function of the arrivals and touch counts only, so the interleaving of different
accesses' events is public. A **hazard** is a read of a page that an earlier access in flight
will write after that read leaves (:func:`schedule` marks it): the read still leaves at its time
(the trace keeps its shape and timing), its bytes are ignored and the earlier access's sealed
plaintext is forwarded on chip instead, exactly as the second touch of ``x == y`` works on the
first touch's result. A key re-placed by an earlier access in flight is a hazard on trusted
state: fronts run one at a time in command order, so every decision sees every earlier decision,
and back ends run in order, so a value is read after the earlier access wrote it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["AccessPhases", "HostLink", "Schedule", "schedule", "project", "best_depth"]


@dataclass(frozen=True)
class HostLink:
    """The host link of the projection: PCIe Gen3 x16 and a 1 µs round trip by default, at a
    300 MHz accelerator clock."""

    clock_hz: float = 300e6
    round_trip_s: float = 1e-6
    bandwidth: float = 12e9        #: bytes per second, each direction

    def cycles(self, seconds: float) -> float:
        return seconds * self.clock_hz


@dataclass(frozen=True)
class AccessPhases:
    """The on-chip cycles of an access, fixed by its touch count ``t``.

    ``front``: acceptance to its page read requests; ``back[t]``: its last page byte in (or,
    for ``t = 0``, the end of the front) to its response; ``tail[t]``: its response to the end
    of its page writes and re-placement.
    """

    front: float
    back: tuple[float, float, float]
    tail: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass
class Schedule:
    """Per access (in command order): acceptance, read requests, last page byte in, response,
    end of its tail and of its page writes, in cycles; and how many of its reads are forwarded
    (:func:`schedule`)."""

    accept: list[float]
    reads: list[float]
    data: list[float]
    response: list[float]
    idle: list[float]
    writes_done: list[float]
    forwarded: list[int]


def schedule(arrivals, touches, pages, phases: AccessPhases, link: HostLink, page_bytes: int,
             depth: int = 1) -> Schedule:
    """The times of every access's events under the rule of this module.

    ``arrivals`` are in cycles (None: as soon as the rule allows, i.e. the host keeps
    ``depth`` commands outstanding), ``touches`` the touch counts, ``pages`` each access's
    touched pages (to find the hazards; their values do not change any time).
    """
    if depth < 1:
        raise ValueError("depth must be at least 1")
    rtt = link.cycles(link.round_trip_s)
    page_time = link.cycles(page_bytes / link.bandwidth)
    n = len(touches)
    accept, reads, data, response, idle, writes_done = ([0.0] * n for _ in range(6))
    forwarded = [0] * n
    link_free = write_free = 0.0
    back_free = -math.inf
    for i, t in enumerate(touches):
        start = 0.0 if arrivals is None or arrivals[i] is None else arrivals[i]
        if i:
            start = max(start, accept[i - 1] + phases.front)
        if i >= depth:
            start = max(start, idle[i - depth])
        accept[i] = start
        reads[i] = start + phases.front
        if t:
            first = max(reads[i] + rtt, link_free)
            data[i] = link_free = first + t * page_time
        else:
            data[i] = reads[i]
        response[i] = max(data[i], back_free) + phases.back[t]
        idle[i] = back_free = response[i] + phases.tail[t]
        write_free = max(write_free, response[i]) + t * page_time
        writes_done[i] = write_free
        # Hazards: an earlier access still in flight writes one of these pages after this
        # access's read leaves; its plaintext is forwarded.
        for j in range(max(0, i - depth), i):
            if writes_done[j] > reads[i] and set(pages[j]) & set(pages[i]):
                forwarded[i] += 1
    return Schedule(accept, reads, data, response, idle, writes_done, forwarded)


def project(touches, phases: AccessPhases, link: HostLink, page_bytes: int,
            depth: int = 1) -> dict:
    """Latency (mean, p99, in µs) and throughput (accesses per second) of ``touches`` run by a
    host that keeps ``depth`` commands outstanding (a closed loop: a new command as soon as
    one is answered, so a latency includes the wait for the accesses before it); and the mean
    latency of the same accesses each sent to an idle accelerator."""
    n = len(touches)
    if n == 0:
        return {"depth": depth, "accesses": 0}
    timed = schedule(None, touches, [()] * n, phases, link, page_bytes, depth)
    # Closed loop: command i arrives when command i - depth is answered.
    arrivals = [0.0 if i < depth else timed.response[i - depth] for i in range(n)]
    latencies = sorted((r - a) / link.clock_hz for r, a in zip(timed.response, arrivals))
    span = max(timed.idle) / link.clock_hz
    rtt = link.cycles(link.round_trip_s)
    page_time = link.cycles(page_bytes / link.bandwidth)
    idle = sum(phases.front + (rtt + t * page_time if t else 0) + phases.back[t]
               for t in touches) / n / link.clock_hz
    return {
        "depth": depth,
        "accesses": n,
        "idle accelerator: mean latency (us)": 1e6 * idle,
        "mean latency (us)": 1e6 * sum(latencies) / n,
        "p99 latency (us)": 1e6 * latencies[min(n - 1, math.ceil(0.99 * n) - 1)],
        "throughput (accesses/s)": n / span,
        "link cap (accesses/s)": link.bandwidth / (page_bytes * max(sum(touches) / n, 1e-9)),
    }


def best_depth(touches, phases: AccessPhases, link: HostLink, page_bytes: int,
               depths=range(1, 33)) -> dict:
    """The projection at the depth of most throughput (the smallest such depth within 1 %)."""
    runs = [project(touches, phases, link, page_bytes, d) for d in depths]
    top = max(run["throughput (accesses/s)"] for run in runs)
    return next(run for run in runs if run["throughput (accesses/s)"] >= 0.99 * top)

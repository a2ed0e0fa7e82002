"""When each access's host events happen: the public schedule of algorithm §12, and the latency
and throughput it projects on a real host link.

One home for the timing rule: the latency projection (``RtlStats``, ``bolt sim``, ``bolt bench``)
and the tests read it from here.

The rule
--------
An access has a public **touch count** ``t`` (0, 1 or 2: which of x, y are host bins, which its
trace shows) and a public **arrival** (when its command reaches the accelerator). Its on-chip
work is fixed by ``t`` (:class:`AccessPhases`): ``prelude`` cycles from acceptance to its
command being prepared (index PRF and DRBG draws: no HBM, no host), then ``front`` cycles from
the port taking it to its page read requests (the index lookup), ``hbm_reads[t]`` cycles from
those requests to the end of its HBM reads (the gather, the decisions and the flushes' frame
reads, which run while its pages travel), then, once its ``t`` pages are in and its HBM reads
are over, ``back[t]`` cycles to its response (decrypt tail, take), then ``tail[t]`` cycles in
which the flushes and the re-placement are written and the page writes posted (the response
never waits for them). Behind the sealed channel the answer leaves ``sealing`` cycles after
the response, while the tail runs. An access is in flight from its acceptance to the end of
its tail.

The accelerator takes a command into its **front** (one command) while the access before it
still runs, and prepares it there. The front is free again once the access it holds has
moved on to the HBM port. The accelerator's HBM ports (reads and tails both use several of
them side by side) count as one port, and two kinds of work hold it: an access's
**reads**, from the port taking it to the end of its HBM reads (its lookup, gather, decisions
and frame reads), and its **tail**. The port serves them one at a time, each whole,
in the order they become ready (an earlier access's tail first on a tie). With up to ``depth``
accesses past the front, access ``i`` (in command order):

- is accepted at ``accept_i = max(arrival_i, taken_{i-1} + 1)`` (:func:`accepted`: the front
  is free the cycle after the access before it left), and prepared by ``accept_i + prelude``;
- is ready for its reads at ``max(accept_i + prelude, idle_{i-depth})`` (:func:`taken`), and
  is taken (``taken_i``) when the port takes its reads; reads run in command order;
- issues its page reads at ``reads_i = taken_i + front`` (both of them, before any write of
  its own) and ends its HBM reads at ``ready_i = reads_i + hbm_reads[t_i]``;
- gets its page data over the host link, in order: the first byte comes back one round trip
  after the request, pages follow each other at the link's bandwidth, and access ``i``'s pages
  never overtake access ``i-1``'s;
- responds at ``max(data_i, ready_i, idle_{i-1}) + back[t_i]``: one back end at a time, in
  order; its answer leaves ``sealing`` later (``response_i``);
- is ready for its tail at its response, and is idle at ``idle_i = start + tail[t_i]`` once
  the port has taken its tail at ``start``;
- posts its page writes from its response on, in order behind earlier accesses' writes.

An access that touches no page (``t = 0``) has no pages to wait for: its whole work before the
response is HBM reads (``hbm_reads[0]``; ``back[0]`` is what follows them). With ``depth = 1``
this is the RTL as built: its front prepares the next command during the access before it,
whose host events all come first (``taken_i = max(accept_i + prelude, idle_{i-1})``); then one
access at a time, its reads issued together after the lookup, its answer before its writes.

Every time is a function of the arrivals and touch counts only, so the interleaving of different
accesses' events is public. A **hazard** is a read of a page that an earlier access in flight
will write after that read leaves (:func:`schedule` marks it): the read still leaves at its time
(the trace keeps its shape and timing), its bytes are ignored and the earlier access's sealed
plaintext is forwarded on chip instead, exactly as the second touch of ``x == y`` works on the
first touch's result. A key re-placed by an earlier access in flight is a hazard on trusted
state: reads run one at a time in command order, so every decision sees every earlier decision,
and back ends run in order, so a value is read after the earlier access wrote it. A decision
that reads a list or the free stack an earlier access's tail still changes is forwarded the
same way, from that access's flush and re-placement held on chip. The front reads nothing an
access changes (the keys and the DRBG, which only Setup's first command changes: the front
takes no command while they change).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["AccessPhases", "HostLink", "Schedule", "accepted", "taken", "schedule", "project",
           "best_depth"]


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

    ``prelude``: acceptance to its command prepared (PRF, draws; off the port); ``front``: the
    port taking it to its page read requests; ``hbm_reads[t]``: its page read requests to the
    end of its HBM reads; ``back[t]``: the later of its last page byte in and the end of its
    HBM reads to its response; ``tail[t]``: its response to the end of its writes and
    re-placement; ``sealing``: its response to its answer leaving the sealed channel (beside
    the tail; 0 without the channel).
    """

    front: float
    back: tuple[float, float, float]
    tail: tuple[float, float, float] = (0.0, 0.0, 0.0)
    hbm_reads: tuple[float, float, float] = (0.0, 0.0, 0.0)
    prelude: float = 0.0
    sealing: float = 0.0

    def port_cycles(self, t: int) -> float:
        """Cycles access of ``t`` touches holds the HBM port: its reads and its tail."""
        return self.front + self.hbm_reads[t] + self.tail[t]


def accepted(arrival: float, taken_before: float | None) -> float:
    """When the front takes a command that arrives at ``arrival``: once the access before it
    has left the front (was taken at ``taken_before``; None: there is none), the cycle after."""
    return arrival if taken_before is None else max(arrival, taken_before + 1)


def taken(accept: float, prelude: float, idle_before: float) -> float:
    """When an access accepted at ``accept`` is ready for its reads: prepared, and the access
    ``depth`` before it idle at ``idle_before`` (with one in flight, the RTL's back takes it
    then)."""
    return max(accept + prelude, idle_before)


@dataclass
class Schedule:
    """Per access (in command order): arrival, acceptance, the port taking its reads, read
    requests, end of its HBM reads, last page byte in, response, start and end of its tail and
    the end of its page writes, in cycles; and how many of its reads are forwarded
    (:func:`schedule`)."""

    arrival: list[float]
    accept: list[float]
    taken: list[float]
    reads: list[float]
    ready: list[float]
    data: list[float]
    response: list[float]
    tail_start: list[float]
    idle: list[float]
    writes_done: list[float]
    forwarded: list[int]


def schedule(arrivals, touches, pages, phases: AccessPhases, link: HostLink, page_bytes: int,
             depth: int = 1) -> Schedule:
    """The times of every access's events under the rule of this module.

    ``arrivals`` are in cycles (None: a closed loop, the host keeping ``depth`` commands
    outstanding: command ``i`` arrives as command ``i - depth`` is answered), ``touches`` the
    touch counts, ``pages`` each access's touched pages (to find the hazards; their values do
    not change any time).
    """
    if depth < 1:
        raise ValueError("depth must be at least 1")
    rtt = link.cycles(link.round_trip_s)
    page_time = link.cycles(page_bytes / link.bandwidth)
    n = len(touches)
    arrival, accept, taken_at, reads, ready, data, response, tail_start, idle, writes_done = (
        [0.0] * n for _ in range(10))
    forwarded = [0] * n
    responded = [0.0] * n      # the core's response, `sealing` before the answer
    link_free = write_free = port_free = 0.0
    # The port's next reads (access `nr`) and next tail (access `nw`): whichever is ready
    # first goes next, the tail on a tie. A tail is ready once its access has answered (its
    # reads have run: nw < nr); reads once the access may be in flight (nr - depth < nw).
    nr = nw = 0
    while nw < n:
        reads_ready = math.inf
        if nr < n and nr - depth < nw:
            if arrivals is None:     # a closed loop: at the answer `depth` commands before
                arrival[nr] = response[nr - depth] if nr >= depth else 0.0
            else:
                arrival[nr] = 0.0 if arrivals[nr] is None else arrivals[nr]
            accept[nr] = accepted(arrival[nr], taken_at[nr - 1] if nr else None)
            reads_ready = taken(accept[nr], phases.prelude,
                                idle[nr - depth] if nr >= depth else -math.inf)
        tail_ready = math.inf
        if nw < nr:
            t = touches[nw]
            before = idle[nw - 1] if nw else -math.inf
            responded[nw] = max(data[nw], ready[nw], before) + phases.back[t]
            response[nw] = responded[nw] + phases.sealing
            tail_ready = responded[nw]
        if reads_ready < tail_ready:
            i, t = nr, touches[nr]
            taken_at[i] = max(reads_ready, port_free)
            reads[i] = taken_at[i] + phases.front
            ready[i] = port_free = reads[i] + phases.hbm_reads[t]
            if t:
                first = max(reads[i] + rtt, link_free)
                data[i] = link_free = first + t * page_time
            else:
                data[i] = reads[i]
            nr += 1
        else:
            i, t = nw, touches[nw]
            tail_start[i] = max(responded[i], port_free)
            idle[i] = port_free = tail_start[i] + phases.tail[t]
            write_free = max(write_free, responded[i]) + t * page_time
            writes_done[i] = write_free
            nw += 1
    for i in range(n):
        # Hazards: an earlier access still in flight writes one of these pages after this
        # access's read leaves; its plaintext is forwarded.
        for j in range(max(0, i - depth), i):
            if writes_done[j] > reads[i] and set(pages[j]) & set(pages[i]):
                forwarded[i] += 1
    return Schedule(arrival, accept, taken_at, reads, ready, data, response, tail_start, idle,
                    writes_done, forwarded)


def project(touches, phases: AccessPhases, link: HostLink, page_bytes: int,
            depth: int = 1) -> dict:
    """Latency (mean, p99, in µs) and throughput (accesses per second) of ``touches`` run by a
    host that keeps ``depth`` commands outstanding (a closed loop: a new command as soon as
    one is answered, so a latency includes the wait for the accesses before it); and the mean
    latency of the same accesses each sent to an idle accelerator. The HBM port's cap is None
    where ``phases`` hold none of the port's time (not measured)."""
    n = len(touches)
    if n == 0:
        return {"depth": depth, "accesses": 0}
    timed = schedule(None, touches, [()] * n, phases, link, page_bytes, depth)
    latencies = sorted((r - a) / link.clock_hz for r, a in zip(timed.response, timed.arrival))
    span = max(timed.idle) / link.clock_hz
    rtt = link.cycles(link.round_trip_s)
    page_time = link.cycles(page_bytes / link.bandwidth)
    idle = sum(phases.prelude + phases.front
               + max(rtt + t * page_time if t else 0, phases.hbm_reads[t])
               + phases.back[t] + phases.sealing for t in touches) / n / link.clock_hz
    port = sum(phases.port_cycles(t) for t in touches)
    return {
        "depth": depth,
        "accesses": n,
        "idle accelerator: mean latency (us)": 1e6 * idle,
        "mean latency (us)": 1e6 * sum(latencies) / n,
        "p99 latency (us)": 1e6 * latencies[min(n - 1, math.ceil(0.99 * n) - 1)],
        "throughput (accesses/s)": n / span,
        "link cap (accesses/s)": link.bandwidth / (page_bytes * max(sum(touches) / n, 1e-9)),
        # None: the accesses' on-chip phases were not measured (only their totals were
        # recorded), so nothing of the port's time is known.
        "HBM port cap (accesses/s)": link.clock_hz * n / port if port else None,
    }


def best_depth(touches, phases: AccessPhases, link: HostLink, page_bytes: int,
               depths=range(1, 33)) -> dict:
    """The projection at the depth of most throughput (the smallest such depth within 1 %)."""
    runs = [project(touches, phases, link, page_bytes, d) for d in depths]
    top = max(run["throughput (accesses/s)"] for run in runs)
    return next(run for run in runs if run["throughput (accesses/s)"] >= 0.99 * top)

"""``bolt loadtest``: K clients at once on one map, every answer checked.

Each client works in a key space of its own (keys ``<run>.<client>.<i>``) and keeps its own
record of what it stored there, so it can check every answer by itself whatever the other
clients do: a GET must return the value it last stored (or miss), a PUT the value it replaces,
a DELETE must find exactly the keys it holds. After its operations each client reads back its
whole key space. A client is anything with the ``MutableMapping`` API of :class:`bolt.Map`
plus ``put``: the clients may share one in-process map (threads on one ``bolt.Map``) or each be
a ``bolt.connect`` client of a server.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["LoadResult", "run_clients", "client_keys"]

#: Shares of GET, PUT and DELETE in a client's operations.
OP_MIX = (0.45, 0.45, 0.10)
#: Operations between two progress-bar updates.
_PROGRESS_EVERY = 256


@dataclass
class LoadResult:
    """What a load test measured; latencies in seconds, one per operation."""

    clients: int
    ops: int = 0                  #: operations answered, all clients
    seconds: float = 0.0          #: wall time of the operations (not of the final read-back)
    wrong: int = 0                #: answers that disagree with the client's own record
    errors: list[str] = field(default_factory=list)   #: exceptions raised, one line each
    latencies: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def percentile_us(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1e6 if self.latencies.size else 0.0

    def summary(self) -> dict:
        return {"clients": self.clients, "ops": self.ops, "seconds": round(self.seconds, 3),
                "ops_per_s": round(self.ops_per_s, 1),
                "mean_us": round(float(self.latencies.mean()) * 1e6 if self.latencies.size
                                 else 0.0, 1),
                "p50_us": round(self.percentile_us(50), 1),
                "p99_us": round(self.percentile_us(99), 1), "wrong": self.wrong,
                "errors": len(self.errors)}


def client_keys(run: str, client: int, count: int, key_size: int) -> list[bytes]:
    """The key space of one client; raises ValueError if its keys would not fit ``key_size``."""
    keys = [b"%s.%d.%d" % (run.encode(), client, i) for i in range(count)]
    if keys and len(keys[-1]) > key_size:
        raise ValueError(f"load-test keys of {len(keys[-1])} bytes exceed key_size={key_size}")
    return keys


class _Client:
    """One client's workload and its own record of its key space."""

    def __init__(self, number: int, keys: list[bytes], value_size: int, seed: int):
        self.number = number
        self.keys = keys
        self.value_size = value_size
        self.random = random.Random(seed)
        self.record: dict[bytes, bytes] = {}
        self.wrong = 0
        self.errors: list[str] = []
        self.latencies: list[float] = []

    def _value(self, sequence: int) -> bytes:
        stamp = b"%d/%d" % (self.number, sequence)
        length = self.random.randrange(len(stamp), max(len(stamp), self.value_size) + 1)
        return (stamp * (length // len(stamp) + 1))[:length]

    def run(self, target, ops: int, progress: Callable[[int], None]) -> None:
        """``ops`` random operations, each checked; stops at the first exception (the client's
        connection may be gone; its error is recorded)."""
        rng, record, keys, clock = self.random, self.record, self.keys, time.perf_counter
        get_share, put_share = OP_MIX[0], OP_MIX[0] + OP_MIX[1]
        done = 0
        try:
            for sequence in range(ops):
                key = keys[rng.randrange(len(keys))]
                draw = rng.random()
                expected = record.get(key)
                if draw < get_share:
                    start = clock()
                    answer = target.get(key)
                elif draw < put_share:
                    value = self._value(sequence)
                    start = clock()
                    answer = target.put(key, value)
                    record[key] = value
                else:
                    start = clock()
                    try:
                        del target[key]
                        answer = True
                    except KeyError:
                        answer = None
                    expected = None if expected is None else True
                    record.pop(key, None)
                self.latencies.append(clock() - start)
                self.wrong += answer != expected
                done += 1
                if done == _PROGRESS_EVERY:
                    progress(done)
                    done = 0
        except Exception as error:   # a load test reports every failure, whatever it is
            self.errors.append(f"client {self.number}: {type(error).__name__}: {error}")
        finally:
            progress(done)

    def read_back(self, target) -> None:
        """Read the whole key space back and count the keys that disagree with the record."""
        try:
            for key in self.keys:
                self.wrong += target.get(key) != self.record.get(key)
        except Exception as error:
            self.errors.append(f"client {self.number} read-back: {type(error).__name__}: {error}")


def run_clients(open_client: Callable[[int], object], *, clients: int, ops: int,
                keys_per_client: int, key_size: int, value_size: int, seed: int = 0,
                run: str | None = None, progress: bool = True,
                close_client: Callable[[object], None] | None = None) -> LoadResult:
    """Run ``clients`` threads of ``ops`` checked operations each.

    Parameters
    ----------
    open_client : callable
        ``open_client(number)`` returns the map client ``number`` works on (the same object for
        every thread when they share an in-process map).
    keys_per_client : int
        The size of each client's key space.
    run : str, optional
        A tag that keeps this run's keys apart from other runs on the same map (random if
        omitted).
    close_client : callable, optional
        Called with each client's map when its thread is done.
    """
    from tqdm import tqdm

    run = run if run is not None else os.urandom(2).hex()
    workers = [_Client(n, client_keys(run, n, keys_per_client, key_size), value_size,
                       seed * 7919 + n) for n in range(clients)]
    targets = [open_client(n) for n in range(clients)]
    bar = tqdm(total=clients * ops, unit="op", disable=not progress, smoothing=0.1)
    bar_lock = threading.Lock()

    def advance(count: int) -> None:
        with bar_lock:
            bar.update(count)

    start_line = threading.Barrier(clients + 1)

    def work(worker: _Client, target) -> None:
        start_line.wait()
        worker.run(target, ops, advance)

    threads = [threading.Thread(target=work, args=pair, daemon=True)
               for pair in zip(workers, targets)]
    for thread in threads:
        thread.start()
    start_line.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    bar.close()
    for worker, target in zip(workers, targets):
        if not worker.errors:
            worker.read_back(target)
        if close_client is not None:
            close_client(target)
    latencies = np.fromiter((s for w in workers for s in w.latencies), dtype=np.float64)
    return LoadResult(clients=clients, ops=len(latencies), seconds=seconds,
                      wrong=sum(w.wrong for w in workers),
                      errors=[e for w in workers for e in w.errors], latencies=latencies)

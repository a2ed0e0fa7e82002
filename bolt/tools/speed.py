"""``bolt speed``: how fast the reference model runs (operations per second and Setup time).

The figures of the model issue: ops/s of a 50/50 GET/PUT workload on uniform keys at a given N
(the map bulk-loaded with N/2 items, keys drawn from a universe of N ids, so half the GETs
miss and half the PUTs insert), through the public ``bolt.Map`` API with full page crypto, and
the wall time of a Setup of N items (a full map), and the DRBG words each access drew (four
``U(M)`` samples, five with the pool of algorithm §13, plus rejections and ``c2`` redraws).
Wall-clock figures: run on a quiet machine.
"""

from __future__ import annotations

import gc
import time

import numpy as np

from ..map import Map
from ..params import Params
from .workloads import key_bytes

__all__ = ["measure"]


def measure(params: Params, *, ops: int, seed: int = 0, setup_full: bool = True,
            channel: bool = True) -> dict:
    """Ops/s of the 50/50 GET/PUT uniform workload and the Setup seconds for ``params``,
    through the sealed channel (the map's default) or calling the model directly."""
    rng = np.random.default_rng(seed)
    value = bytes(params.value_size)
    options = params.arguments()
    result = {"capacity": params.capacity, "value_size": params.value_size, "ops": ops,
              "placement": params.placement}
    options["channel"] = channel
    m = Map.from_items(((key_bytes(params, i), value) for i in range(params.capacity // 2)),
                       **options)
    keys = [key_bytes(params, i) for i in rng.integers(0, params.capacity, size=ops)]
    puts = rng.random(ops) < 0.5
    if m.host_view is not None:
        m.host_view.clear()
    else:
        m.trace.clear()
    accelerator = getattr(m._backend, "accelerator", m._backend)
    words = accelerator.drbg_words
    gc.collect()
    start = time.perf_counter()
    for key, put in zip(keys, puts):
        if put:
            m[key] = value
        else:
            m.get(key)
    seconds = time.perf_counter() - start
    result["ops_per_s"] = ops / seconds
    result["drbg_words_per_op"] = (accelerator.drbg_words - words) / ops
    result["host_bytes_per_op"] = m.trace.bytes_moved() / ops
    result["frame_bytes_per_op"] = (len(m.host_view.frame_bytes()) / ops
                                    if m.host_view is not None else 0)
    m.close()
    del m, keys
    if setup_full:
        items = [(key_bytes(params, i), value) for i in range(params.capacity)]
        gc.collect()
        start = time.perf_counter()
        Map.from_items(items, **options).close()
        result["setup_items"] = params.capacity
        result["setup_s"] = time.perf_counter() - start
        del items
    return result

"""The re-placement (:class:`bolt.hdl.replace.Replacement`) in Amaranth's simulator, against
the reference model: random accesses (PUT, GET, DELETE; the key found or not, in an HBM bin,
waiting in a host bin's eviction list or in a page; nb equal to x or not; room or not; the
flushes' pushes and nb's list before and after a flush) are run through the model's own take
and placement (``ReferenceAccelerator._place``) on a state the component's inputs describe,
and the component's frame, index entry, loads, list and free-stack change must give the state
the model reaches."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from bolt.hdl.replace import Replacement
from bolt.model import ReferenceAccelerator
from bolt.params import Params
from bolt.protocol import HBM, HOST, PENDING, Op


def _scenario(p, rng):
    """The component's inputs and the model's state before the re-placement (the flushes'
    pushes done, the key's item not yet taken)."""
    S, k = p.slots, p.hbm_bins
    op = rng.choice([Op.PUT, Op.GET, Op.DELETE])
    found = rng.random() < 0.7
    kind = rng.choice([HBM, PENDING, HOST]) if found else HBM
    x = rng.randrange(k) if found and kind == HBM else rng.randrange(k, p.bins)
    if not found and rng.random() < 0.3:
        x = rng.randrange(k)                     # a miss's random bin may be an HBM bin
    nb = x if rng.random() < 0.3 else rng.choice([rng.randrange(k), rng.randrange(k, p.bins)])
    replace = op == Op.PUT or (op == Op.GET and found)
    fits = replace and rng.random() < 0.8
    take = found and (op == Op.DELETE or fits)

    # Frames: fresh ones from `fresh` on; the free stack, then the flushes' pushes on it; the
    # key's own frame and nb's list's frames in use.
    fresh = rng.choice([p.frames, rng.randrange(3 * S, p.frames)])
    used = rng.sample(range(fresh), min(fresh, 4 * S + 1))
    stack = used[:rng.choice([0, 0, 1, rng.randrange(S)])]
    pushed = used[S:S + rng.choice([0, 0, 1, 2, rng.randrange(2 * S)])]
    own = used[3 * S]
    if fits and fresh == p.frames and not stack + pushed and not (take and kind != HOST):
        return _scenario(p, rng)        # no frame free: the decisions would not let it fit
    load_x = rng.randint(1 if found else 0, S)
    if fits and not (nb == x and take):
        load_x = min(load_x, S - 1) if nb == x else load_x
    load_nb = load_x if nb == x else rng.randrange(S if fits else S + 1)
    nb_host = nb >= k
    nb_flushed = nb_host and (nb == x or rng.random() < 0.3)
    listed = used[2 * S:2 * S + rng.randint(0, min(load_nb, S - 1))]
    key = rng.randbytes(rng.randint(1, p.key_size))
    put_value, old_value = (rng.randbytes(rng.randint(0, p.value_size)) for _ in range(2))
    inputs = {
        "put": op == Op.PUT, "found": found, "take": take, "fits": fits, "kind": kind,
        "loc": own if kind != HOST else rng.randrange(S),
        "pos": rng.randrange(1 << 10), "free_pos": rng.randrange(1 << 10),
        "klen": len(key), "key": int.from_bytes(key, "little"),
        "put_vlen": len(put_value), "put_value": int.from_bytes(put_value, "little"),
        "old_vlen": len(old_value), "old_value": int.from_bytes(old_value, "little"),
        "x": x, "load_x": load_x, "nb": nb, "load_nb": load_nb,
        "top": len(stack) + len(pushed), "fresh": fresh,
        "stack_top": stack[-1] if stack else rng.randrange(p.frames),
        "pushed_any": bool(pushed), "last_pushed": pushed[-1] if pushed else 0,
        "nb_list.count": len(listed), "nb_flushed": nb_flushed,
    }
    for i, frame in enumerate(listed):
        inputs[f"nb_list.frames.{i}"] = frame
    model = {"free": list(range(p.frames - 1, fresh - 1, -1)) + stack + pushed,
             "listed": [] if nb_flushed else listed, "key": key, "op": op,
             "value": put_value if op == Op.PUT else old_value}
    return inputs, model


def _signal(dut, path):
    signal = dut
    for part in path.split("."):
        signal = signal[int(part)] if part.isdigit() else getattr(signal, part)
    return signal


def _model_after(p, inputs, model):
    """The model's take (access step 4) and placement on the state ``inputs`` describe:
    (free frames, loads of x and nb, nb's pending list, the key's index entry and frame
    value)."""
    acc = ReferenceAccelerator(p, crypto=False, master_key=bytes(16), salt=bytes(15))
    state, k = acc._state, p.hbm_bins
    x, nb = inputs["x"], inputs["nb"]
    state.free_frames[:] = model["free"]
    state.loads[x], state.loads[nb] = inputs["load_x"], inputs["load_nb"]
    if nb >= k:
        state.pending[nb - k] = [(bytes([i]), f) for i, f in enumerate(model["listed"])]
    if inputs["take"]:
        if inputs["kind"] != HOST:
            state.frames[inputs["loc"]] = None
            state.free_frames.append(inputs["loc"])
        state.loads[x] -= 1
    if inputs["fits"]:
        acc._place(model["key"], model["value"], nb)
    entry = state.index.get(model["key"])
    return (state.free_frames, state.loads[x], state.loads[nb],
            [f for _, f in state.pending[nb - k]] if nb >= k else None,
            entry, state.frames[entry[2]] if entry else None)


def _rtl_free(p, inputs, stack, out):
    """The free frames the control keeps after the re-placement (``_allocate``): the free
    stack ``stack`` with the freed frame pushed, less the frame taken off its top, or a
    fresh frame gone."""
    fresh = inputs["fresh"]
    if out["push"]:
        stack = stack + [inputs["loc"]]
    if out["allocate"]:
        if stack:
            assert out["frame"] == stack[-1]
            stack = stack[:-1]
        else:
            assert out["frame"] == fresh
            fresh += 1
    return list(range(p.frames - 1, fresh - 1, -1)) + stack


@pytest.mark.parametrize("params", [Params(capacity=1024, value_size=8), Params(capacity=4096)],
                         ids=["N1024-V8", "N4096-V64"])
def test_replacement_reaches_the_models_state(params):
    p, k = params, params.hbm_bins
    rng = random.Random(6)
    dut = Replacement(params=p)
    scenarios = [_scenario(p, rng) for _ in range(300)]
    outputs = []

    async def bench(ctx):
        for inputs, _ in scenarios:
            for name in ("nb_list.frames." + str(i) for i in range(p.slots)):
                ctx.set(_signal(dut, name), 0)
            for name, value in inputs.items():
                ctx.set(_signal(dut, name), int(value))
            outputs.append({name: ctx.get(getattr(dut, name)) for name in (
                "frame", "frame_write", "ipos", "entry_write", "new_load_x", "new_load_nb",
                "list_write", "allocate", "push")}
                | {"record": ctx.get(dut.record), "entry": ctx.get(dut.entry),
                   "entry_bits": ctx.get(dut.entry.as_value()), "list": ctx.get(dut.list)})

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()

    seen = set()
    for (inputs, model), out in zip(scenarios, outputs):
        free, load_x, load_nb, listed, entry, value = _model_after(p, inputs, model)
        stack = model["free"][p.frames - inputs["fresh"]:]
        assert _rtl_free(p, inputs, stack, out) == free
        assert (out["new_load_x"], out["new_load_nb"]) == (load_x, load_nb)
        position = inputs["pos"] if inputs["found"] else inputs["free_pos"]
        assert out["entry_write"] == (inputs["fits"] or inputs["take"])
        assert out["frame_write"] == inputs["fits"]
        assert out["ipos"] == position
        if inputs["fits"]:
            kind, bin_, frame = entry
            assert (out["entry"].valid, out["entry"].kind, out["entry"].bin,
                    out["entry"].loc) == (1, kind, bin_, frame)
            assert (out["entry"].klen, out["entry"].key) == (inputs["klen"], inputs["key"])
            assert out["frame"] == frame
            record = out["record"]
            assert (record.vlen, record.value) == (len(value), int.from_bytes(value, "little"))
            assert (record.klen, record.key, record.ipos) == (inputs["klen"], inputs["key"],
                                                             position)
        else:
            assert entry is None and out["entry_bits"] == 0
        assert out["list_write"] == (inputs["fits"] and inputs["nb"] >= k)
        if out["list_write"]:
            assert [out["list"].frames[i] for i in range(out["list"].count)] == listed
        seen.add((inputs["fits"], inputs["take"], inputs["kind"] != HOST, out["allocate"],
                  inputs["pushed_any"], inputs["nb"] == inputs["x"]))
    # Every way a frame is found and freed came up.
    assert {(fits, take, own) for fits, take, own, *_ in seen} >= {
        (True, True, True), (True, True, False), (True, False, True), (False, True, True),
        (False, True, False), (False, False, True)}

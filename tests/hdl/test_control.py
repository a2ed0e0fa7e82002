"""The fixed schedule's arithmetic of :mod:`bolt.hdl.control`: a step's budget from its
requests (the whole control runs in the Verilator cosimulation, ``tests/sim``)."""

from __future__ import annotations

import random

import pytest

from bolt.hdl.control import step_cycles


def test_on_one_port_a_step_takes_the_sum_of_its_requests():
    rng = random.Random(1)
    for _ in range(50):
        cycles = [rng.choice([4, 6, 28]) for _ in range(rng.randrange(1, 40))]
        assert step_cycles([(0, c) for c in cycles]) == sum(cycles)


def test_ports_run_side_by_side_each_in_its_order():
    # Eight one-beat writes on the data port (4 cycles each), then 26 index writes: the index
    # queue begins at its first request's choice (cycle 8) and runs 104 cycles.
    requests = [(4, 4)] * 8 + [("index", 4)] * 26
    assert step_cycles(requests) == 8 + 26 * 4
    # A long burst first: the index writes run beside it, and the data port's last request
    # waits for the burst.
    requests = [(4, 28)] + [("index", 4)] * 3 + [(4, 4)]
    assert step_cycles(requests) == 28 + 4
    # The slower queue sets the end.
    assert step_cycles([(4, 6), ("index", 4), ("index", 4), (4, 6)]) == 12
    assert step_cycles([(4, 4), ("index", 4), ("index", 4), ("index", 4)]) == 1 + 12


@pytest.mark.parametrize("held_at", [0, 3, 5])
def test_a_held_request_delays_itself_and_every_later_choice(held_at):
    requests = [(4, 4)] * 5 + [("index", 4)] * 6
    free = step_cycles(requests)
    assert free == 5 + 24
    held = step_cycles(requests, hold=(held_at, 20))
    # Every request from `held_at` on is chosen 20 - held_at cycles later, so the index
    # queue's first request (the sixth) is chosen at 5 + 20 - held_at, and that queue, the
    # longer, ends last.
    assert held == 5 + 20 - held_at + 24
    # A hold that has passed when its request comes changes nothing.
    assert step_cycles(requests, hold=(held_at, held_at)) == free

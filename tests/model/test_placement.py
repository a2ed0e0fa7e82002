"""Setup's placement kernel: the numba-compiled and the plain-Python runs of the same function
agree (large Setups use the first, small ones the second)."""

import numpy as np
import pytest

from bolt.model import placement


def _run(function, samples, bins, slots, count):
    loads = np.zeros(bins, dtype=np.int64)
    chosen = np.full(count, -1, dtype=np.int64)
    ranks = np.full(count, -1, dtype=np.int64)
    placed, used = function(samples, loads, slots, count, chosen, ranks)
    return placed, used, loads, chosen, ranks


@pytest.mark.parametrize("bins, slots, count, n_samples, outcome", [
    (64, 14, 400, 2 * 400 + 16, "placed"),    # a normal Setup: everything placed
    (4, 3, 20, 200, "bound"),                 # bins fill up: a crossed bound at some item
    (64, 14, 400, 300, "short"),              # too few samples: the caller must draw more
    (2, 50, 30, 400, "placed"),               # c1 == c2 half the time: redraws
])
def test_compiled_and_python_placements_agree(bins, slots, count, n_samples, outcome):
    import numba

    samples = np.random.default_rng(bins + count).integers(0, bins, n_samples).astype(np.int64)
    compiled = numba.njit(placement.place_two_choice)
    expected = _run(placement.place_two_choice, samples, bins, slots, count)
    got = _run(compiled, samples, bins, slots, count)
    assert got[:2] == expected[:2]
    for a, b in zip(got[2:], expected[2:]):
        assert np.array_equal(a, b)
    placed, used, loads, chosen, _ = expected
    assert outcome == ("short" if used == placement.OUT_OF_SAMPLES
                       else "placed" if placed == count else "bound")
    assert loads.sum() == placed and loads.max() <= slots
    if used != placement.OUT_OF_SAMPLES and placed == count:
        assert np.array_equal(np.bincount(chosen, minlength=bins), loads)

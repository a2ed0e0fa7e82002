import json
import math
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

from bolt import Params
from bolt.params import HBM_BYTES, MAX_BINS


def test_defaults_follow_the_spec_formulas():
    p = Params()
    assert p.bins == math.ceil(65536 / 8) == 8192
    assert p.hbm_bins == math.floor(0.2 * 8192) == 1638
    assert p.host_bins == p.bins - p.hbm_bins == 6554
    assert p.slots == math.ceil(8 + math.log2(math.log2(65536)) + 1) == 13
    assert p.slot_bytes == 1 + 1 + 16 + 2 + 64
    assert p.page_sealed_bytes == 13 * 84 + 16
    assert p.page_stride % 64 == 0 and 0 <= p.page_stride - p.page_sealed_bytes < 64
    assert p.host_bytes == p.host_bins * p.page_stride


def test_bounds_and_frames():
    p = Params(capacity=2**20)
    L = 8 + math.log2(20) + 1
    assert p.bin_load_bound == pytest.approx(L)
    assert p.hbm_items_bound == pytest.approx(p.hbm_bins * 8 + L * math.sqrt(p.hbm_bins * math.log(2**20)))
    assert p.eviction_bound == pytest.approx(1.2 * p.host_bins / 2 + L * math.sqrt(p.host_bins * math.log(2**20)))
    assert p.frames == math.floor(p.hbm_items_bound + p.eviction_bound)
    # Sized from the bounds, far below N: the point of the design.
    assert p.frames < p.capacity // 2
    assert Params(capacity=64).frames == 64  # capped at N


def test_hbm_bins_use_the_decimal_fraction():
    assert Params(capacity=800, load=8, hbm_fraction=0.29).hbm_bins == 29


def test_budget_accounts_every_structure():
    budget = Params().hbm_budget()
    parts = [size for name, size in budget.items() if name != "total"]
    assert all(size > 0 for size in parts)
    assert budget.total == sum(parts)


@pytest.mark.parametrize("kwargs, error", [
    ({"capacity": 3}, ValueError), ({"capacity": 2.5}, ValueError), ({"key_size": 0}, ValueError),
    ({"capacity": "64"}, TypeError), ({"load": True}, TypeError),
    ({"capacity": float("inf")}, ValueError), ({"load": Fraction(9, 2)}, ValueError),
    ({"value_size": Decimal("8.5")}, ValueError), ({"hbm_fraction": float("nan")}, ValueError),
    ({"key_size": 256}, ValueError), ({"value_size": 65536}, ValueError),
    ({"load": 0}, ValueError), ({"hbm_fraction": 1.0}, ValueError),
    ({"hbm_fraction": -0.1}, ValueError), ({"hbm_fraction": "0.2"}, TypeError),
])
def test_bad_parameters_are_rejected(kwargs, error):
    with pytest.raises(error):
        Params(**kwargs)


def test_arguments_round_trip():
    """``arguments()`` is exactly what rebuilds the same parameters (the RTL build key and the
    simulation's JSON parameters rely on it)."""
    p = Params(capacity=4096, key_size=8, value_size=16, load=16, hbm_fraction=0.29)
    assert p.arguments() == {"capacity": 4096, "key_size": 8, "value_size": 16, "load": 16,
                             "hbm_fraction": 0.29}
    assert Params(**p.arguments()) == p


def test_integral_numbers_of_any_type_are_accepted_as_plain_ints():
    p = Params(capacity=np.int64(4096), key_size=np.uint8(8), value_size=Decimal(16),
               load=Fraction(16, 1), hbm_fraction=np.float32(0.25))
    assert p == Params(capacity=4096, key_size=8, value_size=16, load=16, hbm_fraction=0.25)
    assert all(type(value) in (int, float) for value in p.arguments().values())
    json.dumps(p.arguments())    # the simulation receives them as JSON
    assert Params(capacity=1024.0, hbm_fraction=Fraction(29, 100)).hbm_fraction == 0.29


@pytest.mark.parametrize("kwargs, reason", [
    ({"capacity": 2**34}, "GiB of trusted HBM"),
    ({"capacity": 2**28}, "GiB of trusted HBM"),                 # 20 GiB at the defaults
    ({"capacity": 2**33, "load": 1, "hbm_fraction": 0}, "2^32"),  # 2^33 host pages
])
def test_parameters_beyond_the_largest_supported_are_refused(kwargs, reason):
    with pytest.raises(ValueError, match=reason.replace("^", r"\^")):
        Params(**kwargs)


def test_the_largest_supported_parameters_are_stated_and_accepted():
    p = Params(capacity=2**27)
    assert p.hbm_budget().total <= HBM_BYTES and p.bins <= MAX_BINS

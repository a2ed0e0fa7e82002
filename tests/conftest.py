import pytest

from bolt import Params

MASTER_KEY = bytes(range(16))
SALT = bytes(range(100, 115))


@pytest.fixture
def small_params():
    """Small enough that every host page is touched often, big enough to have HBM bins."""
    return Params(capacity=256, key_size=8, value_size=16, load=4, hbm_fraction=0.25)

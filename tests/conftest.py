import itertools

import pytest

from bolt import Params

MASTER_KEY = bytes(range(16))
#: A salt for the model itself (``ReferenceAccelerator(salt=...)``), which takes any salt the
#: way the hardware's Setup command does; bolt.Map takes each test salt once per process.
SALT = bytes(range(100, 115))
_test_salts = itertools.count(1)


def unique_salt() -> bytes:
    """A test salt no other call in this process returns (for ``unsafe_test_salt=``)."""
    return next(_test_salts).to_bytes(15, "big")


@pytest.fixture
def small_params():
    """Small enough that every host page is touched often, big enough to have HBM bins."""
    return Params(capacity=256, key_size=8, value_size=16, load=4, hbm_fraction=0.25)

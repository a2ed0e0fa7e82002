"""bolt.Map against a dict under random GET/PUT/DELETE/bulk-load sequences."""

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import bolt

CAPACITY = 24
KEYS = st.one_of(st.binary(max_size=4), st.text(alphabet="abcé", max_size=2))
VALUES = st.binary(max_size=8)


def as_bytes(key):
    return key.encode() if isinstance(key, str) else key


class MapMachine(RuleBasedStateMachine):
    """A small capacity, so the map is often full, and a small key space, so hits are common."""

    #: The map's parameters besides the capacity.
    OPTIONS = dict(key_size=4, value_size=8, load=2, hbm_fraction=0.3)

    @initialize(items=st.dictionaries(KEYS, VALUES, max_size=CAPACITY))
    def bulk_load(self, items):
        self.map = bolt.Map.from_items(items, CAPACITY, **self.OPTIONS)
        self.model = {as_bytes(k): v for k, v in items.items()}

    @rule(key=KEYS, value=VALUES)
    def put(self, key, value):
        if as_bytes(key) not in self.model and len(self.model) == CAPACITY:
            try:
                self.map[key] = value
            except bolt.CapacityError:
                return
            raise AssertionError("a PUT into a full map was accepted")
        assert self.map.put(key, value) == self.model.get(as_bytes(key))
        self.model[as_bytes(key)] = value

    @rule(key=KEYS)
    def get(self, key):
        assert self.map.get(key) == self.model.get(as_bytes(key))

    @rule(key=KEYS)
    def delete(self, key):
        try:
            del self.map[key]
        except KeyError:
            assert as_bytes(key) not in self.model
        else:
            del self.model[as_bytes(key)]

    @rule(items=st.dictionaries(KEYS, VALUES, max_size=CAPACITY))
    def reload(self, items):
        self.map.load(items)
        self.model = {as_bytes(k): v for k, v in items.items()}

    @invariant()
    def same_keys(self):
        assert len(self.map) == len(self.model)
        assert set(self.map) == set(self.model)


class PoolMapMachine(MapMachine):
    """The trusted-pool placement (algorithm §13), with a pool smaller than the map so that
    Setup leaves items in bins and accesses displace pool holders into bins."""

    OPTIONS = dict(MapMachine.OPTIONS, placement="pool", pool_size=5)


for machine in (MapMachine, PoolMapMachine):
    machine.TestCase.settings = settings(max_examples=60, stateful_step_count=60,
                                         deadline=None)
TestMapAgainstDict = MapMachine.TestCase
TestPoolMapAgainstDict = PoolMapMachine.TestCase

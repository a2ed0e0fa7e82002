"""The fault campaign, bounded: every kind of fault is reported or harmless, never silent, and
no item is ever lost (the whole map is compared with a dict oracle after every fault)."""

import pytest

from bolt import Params
from bolt.tools import faults

#: The campaign's map under each placement (algorithm §13: a small pool, so that accesses move
#: items between the pool and the bins).
PLACEMENTS = {"two-choice": faults.CAMPAIGN_PARAMS,
              "pool": Params(**faults.CAMPAIGN_PARAMS.arguments(), placement="pool",
                             pool_size=12)}


@pytest.mark.parametrize("placement", sorted(PLACEMENTS))
@pytest.mark.parametrize("kind", list(faults.KINDS))
def test_no_fault_is_silent_and_no_item_is_lost(kind, placement):
    tally = faults.run_kind(kind, 150, seed=3, params=PLACEMENTS[placement])
    assert tally.faults == 150
    assert tally.silent == 0 and tally.lost == 0, tally.notes
    assert tally.detected + tally.harmless == tally.faults
    harmless_by_design = kind in ("padding bit flip", "extended store")
    assert (tally.harmless == tally.faults) if harmless_by_design else (tally.harmless == 0)


def test_exceptions_are_injected_at_every_kind_of_step():
    tally = faults.run_kind("exception mid-access", 300, seed=5)
    assert set(tally.notes) >= {"Drbg.uniforms", "index.get", "HostMemory.read_in_place",
                                "HostMemory.write_in_place", "PageCipher.open",
                                "PageCipher.seal"}


def test_contents_reads_every_item_and_catches_a_lost_one():
    run = faults._Run(faults.CAMPAIGN_PARAMS, seed=1)
    assert faults.contents(run.acc) == run.oracle
    state = run.acc._state
    key = next(k for k, where in state.index.items() if where[0] != faults.HOST)
    del state.index[key]                 # as if an access had dropped the item
    with pytest.raises(AssertionError):
        faults.contents(run.acc)


def test_bolt_faults_prints_the_table_and_the_nonce_check():
    from click.testing import CliRunner

    from bolt.cli import main
    result = CliRunner().invoke(main, ["faults", "--faults", "20", "--maps", "2", "--setups", "2",
                                       "--accesses", "20"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for kind in faults.KINDS:
        faults_, detected, harmless, silent, lost, _ = next(
            line for line in lines if line.startswith(kind)).split()[-6:]
        assert (faults_, silent, lost) == ("20", "0", "0")
        assert int(detected) + int(harmless) == 20
    assert "0 repeated (page key, nonce) pairs" in result.output

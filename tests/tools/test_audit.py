"""The audit (issue 15): conformance passes the reference against itself and flags every planted
variant; leakage measures the known leak of algorithm §8 in bits per access within the budget;
the statistics mean what they say. Sizes are small (seconds per test); `bolt audit` runs the
large ones."""

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from bolt import Params
from bolt.protocol import Op
from bolt.tools.audit import (FAMILY_ALPHA, LEAK_BUDGET_BITS_PER_OP, conformance, design_factory,
                              holm, ideal_view, information_estimate, leakage,
                              mutual_information_bits, placement_comparison, reaccess_leak,
                              run_statistics, write_report)
from bolt.tools.audit_report import (placement_lines, plot_conformance, plot_leakage,
                                     plot_placements, plot_reaccess)
from bolt.tools.features import extract, host_view
from bolt.tools.variants import VARIANTS, make_variant
from bolt.tools.workloads import WORKLOADS, make_workload, present_count
from bolt.trace import Trace

PARAMS = Params(capacity=256, key_size=8, value_size=16, load=4, hbm_fraction=0.25)


@pytest.fixture(scope="module")
def itself():
    return conformance(PARAMS, runs=5, ops=1024, seed=0)


# -- conformance ------------------------------------------------------------------------------------

def test_reference_conforms_to_itself_under_other_keys(itself):
    assert itself["passed"], itself["flagged"]
    assert set(itself["workloads"]) == set(WORKLOADS)
    assert "Holm" in itself["multiple_testing"] and str(FAMILY_ALPHA) in itself["multiple_testing"]
    assert not itself["setup"]["flagged"] and itself["setup"]["sizes"] == [0, 1, 32, 128]
    assert itself["shape_violations"] == 0
    applicable = [t for t in itself["tests"] if not t.get("not_applicable")]
    assert len(applicable) >= 14 * 16
    assert all(0 <= t["p_value"] <= 1 and t["min_detectable_effect"] > 0 for t in applicable)


def test_workloads_do_what_they_say(itself):
    statuses = itself["statuses"]["design"]
    runs_ops = 5 * 1024
    for name in ("hot_key", "scan", "zipf", "get_hits", "put_hits", "same_key_twice",
                 "reaccess", "value_lengths"):
        assert statuses[name] == {"FOUND": runs_ops}, name
    assert statuses["get_misses"] == {"ABSENT": runs_ops}
    assert statuses["delete_insert"] == {"FOUND": runs_ops // 2, "ABSENT": runs_ops // 2}
    # churn: PUT (absent) then GET and DELETE of the same key (found).
    assert statuses["churn"] == {"ABSENT": 5 * 342, "FOUND": 5 * 682}   # 1024 = 3 x 341 + 1
    assert 0 < statuses["deletes_only"]["FOUND"] <= 5 * present_count(PARAMS)
    churn = make_workload("churn", PARAMS, 9, seed=0)
    assert [op for op, _, _ in churn] == [Op.PUT, Op.GET, Op.DELETE] * 3
    assert len({key for _, key, _ in churn}) == 3
    lengths = make_workload("key_lengths", PARAMS, 4000, seed=0)
    keys = [key for _, key, _ in lengths] + [key for key, _ in lengths.preload]
    assert {len(key) for key in keys} == set(range(PARAMS.key_size + 1))
    values = make_workload("value_lengths", PARAMS, 4000, seed=0)
    sizes = {len(value) for op, _, value in values if op == Op.PUT}
    assert sizes == set(range(PARAMS.value_size + 1))
    probe = make_workload("reaccess", PARAMS, 4000, seed=0, gap=3)
    again = probe.labels == 1
    assert (probe.key_ids[3:][again[3:]] == probe.key_ids[:-3][again[3:]]).all()
    assert (probe.key_ids[3:][~again[3:]] != probe.key_ids[:-3][~again[3:]]).all()
    assert 0.45 < again.mean() < 0.55
    for name in WORKLOADS:
        one, two = make_workload(name, PARAMS, 300, seed=1), make_workload(name, PARAMS, 300, 1)
        assert list(one) == list(two) and len(list(one)) == 300


#: Each planted variant, and the smallest configuration in which conformance must flag it.
PLANTED = {name: (None, 6, 1024) for name in VARIANTS}
PLANTED["choose_before_decrement"] = (("hot_key", "same_key_twice"), 8, 8192)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_planted_variant_is_flagged_by_conformance(variant):
    workloads, runs, ops = PLANTED[variant]
    report = conformance(PARAMS, make_variant(variant), workloads=workloads or tuple(WORKLOADS),
                         runs=runs, ops=ops, seed=2, name=variant)
    assert not report["passed"], variant
    assert report["flagged"]


def test_flags_land_where_each_bug_lives():
    expected = {"miss_skips_x": "get_misses: touches", "short_key_skips_y": "key_lengths: touches",
                "max_value_skips_y": "value_lengths: touches", "c1_is_y": "hot_key: repeat_lag1",
                "pending_hit_skips_x": "churn: touches"}
    for variant, flag in expected.items():
        workload = flag.split(":")[0]
        report = conformance(PARAMS, make_variant(variant), workloads=(workload,), runs=5,
                             ops=1024, seed=4, name=variant)
        assert flag in report["flagged"], (variant, report["flagged"])
    setup = conformance(PARAMS, make_variant("setup_skips_empty_pages"), workloads=("get_hits",),
                        runs=2, ops=64, seed=4)
    assert setup["flagged"] == ["setup identity"] and setup["setup"]["differing_sizes"]


def test_exact_check_compares_every_access_under_the_same_keys():
    crypto = conformance(PARAMS, design_factory("reference", crypto=True), exact=True, runs=2,
                         ops=300, workloads=("uniform", "churn"), seed=1)
    assert crypto["passed"] and crypto["exact"]["ops_differing_from_reference"] == 0
    shifted = conformance(PARAMS, make_variant("c1_is_y"), exact=True, runs=2, ops=300,
                          workloads=("get_hits",), seed=1)
    assert shifted["exact"]["ops_differing_from_reference"] > 100
    assert "exact trace" in shifted["flagged"]


def test_run_statistics_from_a_handmade_trace():
    s = PARAMS.page_stride
    trace = Trace()
    for pages in ([3, 5], [5], [], [3, 3], [7, 3]):
        trace.begin_op()
        for kind in ("read", "write"):
            for page in pages:
                trace.record(kind, page * s, s)
    view = host_view(trace, PARAMS)
    assert view.pages.tolist() == [[3, 5], [5, -1], [-1, -1], [3, 3], [7, 3]]
    assert view.shape_violations == 0
    codes = extract(view, PARAMS, lag=1)
    assert codes["touches"].tolist() == [2, 1, 0, 2, 2]
    assert codes["page_x"].tolist() == [3, -1, -1, 3, 7]
    assert codes["x_repeat"].tolist() == [-1, -1, -1, -1, 0]
    assert codes["x_gap"].tolist() == [0, -1, -1, 2, 0]        # page 3 revealed 3 accesses ago
    assert codes["repeat_lag1"].tolist() == [1, 0, -1, 1, -1]
    assert codes["repeat_lag2"].tolist() == [0, 0, -1, -1, -1]
    stats = run_statistics(codes, PARAMS)
    assert stats["touches=0"] == 0.2 and stats["touches=2"] == 0.6
    trace.begin_op()
    trace.record("read", 2 * s, s)                            # a read without its write-back
    assert host_view(trace, PARAMS).shape_violations == 1


def test_ideal_simulator_follows_the_touch_law_with_the_exact_host_fraction():
    params = Params(capacity=40, key_size=8, value_size=16, load=4, hbm_fraction=0.29)
    counts = ideal_view(params, 200000, seed=1).counts
    h = params.host_fraction
    law = np.array([(1 - h) ** 2, 2 * h * (1 - h), h * h])
    assert np.abs(np.bincount(counts, minlength=3) / len(counts) - law).max() < 0.005


# -- statistics -------------------------------------------------------------------------------------

def test_holm_controls_the_family():
    assert holm([0.001, 0.02, 0.04], 0.05).tolist() == [True, True, True]
    assert holm([0.001, 0.03, 0.04], 0.05).tolist() == [True, False, False]
    assert holm([0.2, 0.001], 0.01).tolist() == [False, True]


def test_information_estimate_recovers_a_known_mutual_information():
    # Binary code: P(1) = 0.5 under a, 0.6 under b; I = H(0.55) - (H(0.5) + H(0.6)) / 2.
    def h(p):
        return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))
    truth = h(0.55) - (h(0.5) + h(0.6)) / 2
    rng = np.random.default_rng(0)
    a = [(rng.random(20000) < 0.5).astype(np.int64) for _ in range(10)]
    b = [(rng.random(20000) < 0.6).astype(np.int64) for _ in range(10)]
    entry = information_estimate(a, b, z=3.0)
    low, high = entry["interval"]
    assert low < truth < high and high - low < truth
    same = information_estimate(a, [(rng.random(20000) < 0.5).astype(np.int64)
                                    for _ in range(10)], z=3.0)
    assert same["decision_interval"][1] < truth / 5
    assert mutual_information_bits(np.array([10, 0]), np.array([0, 10])) > 0.9


# -- leakage ----------------------------------------------------------------------------------------

def test_leakage_measures_the_known_leak_within_the_budget():
    report = leakage(PARAMS, workloads=("hot_key", "get_misses", "uniform"), runs=8, ops=4096)
    assert not report["exceeded"], report["exceeded"]
    estimates = {(e["workload"], e["feature"]): e for e in report["estimates"]}
    # A hot key's x pages carry more recent reveals than independent uniform bins: measured.
    hot = estimates[("hot_key", "x_decay")]
    assert 0.02 < hot["bits_per_op"] < LEAK_BUDGET_BITS_PER_OP
    assert hot["interval"][0] > 10 * hot["noise_floor"]
    # Misses never re-place anything: every feature is at the noise level.
    for (workload, feature), entry in estimates.items():
        if workload == "get_misses":
            assert entry["decision_interval"][1] < 0.01, feature


def test_reaccess_probe_sees_the_page_history_leak_the_pair_statistic_understates():
    probe = reaccess_leak(PARAMS, runs=4, ops=32768, seed=1)
    history, pair = probe["page_history"], probe["pair_only"]
    assert 0.015 < history["interval"][0] and history["interval"][1] < LEAK_BUDGET_BITS_PER_OP
    assert pair["bits_per_op"] < history["bits_per_op"] / 10
    assert probe["ideal_page_history"]["interval"][1] < 0.002
    ratio = probe["x_repeat_ratio_to_chance"]
    assert ratio["same key"] > 1.15 and ratio["another key"] < 0.95
    assert 30 < probe["reaccesses_for_1000_to_1"] < 400


# -- reports and the command line -------------------------------------------------------------------

def test_reports_and_plots(itself, tmp_path):
    path = write_report(itself, str(tmp_path), "conformance")
    assert json.loads(open(path).read())["passed"] is True
    small = leakage(PARAMS, workloads=("get_hits",), runs=3, ops=1024)
    probes = [reaccess_leak(Params(capacity=n, key_size=8, value_size=16, load=4,
                                   hbm_fraction=0.25), runs=2, ops=4096) for n in (64, 256)]
    for png in (plot_conformance(itself, str(tmp_path / "c.png")),
                plot_leakage(small, str(tmp_path / "l.png")),
                plot_reaccess(probes, str(tmp_path / "s.png"))):
        with open(png, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_cli_audit(tmp_path):
    from bolt.cli import main
    base = ["audit", "-N", "256", "--key-size", "8", "-V", "16", "-c", "4", "-a", "0.25",
            "--runs", "3", "--ops", "512", "--no-plots", "--no-progress", "--out", str(tmp_path),
            "-w", "get_hits,get_misses,hot_key"]
    result = CliRunner().invoke(main, base + ["--conformance", "--leakage", "--probe-ops",
                                              "8192", "--probe-runs", "2"])
    assert result.exit_code == 0, result.output
    assert "conforms (nothing flagged)" in result.output and "RESULT: pass" in result.output
    assert {"conformance.json", "leakage.json", "section8.json"} <= {p.name for p in
                                                                    tmp_path.iterdir()}
    leaky = CliRunner().invoke(main, base + ["--conformance", "--variant", "miss_skips_x"])
    assert leaky.exit_code == 1 and "DIFFERS" in leaky.output


def test_variants_are_not_reachable_from_the_map():
    import bolt
    from bolt.map import BACKENDS
    assert not set(VARIANTS) & set(BACKENDS)
    assert not any(name in bolt.__all__ for name in VARIANTS)


@pytest.mark.rtl
def test_rtl_conforms_to_the_reference():
    # The conformance suite's parameters, so the cached Verilator build is shared.
    report = conformance(Params(capacity=1024, value_size=8), design_factory("rtl"), exact=True,
                         runs=2, ops=48, workloads=("get_hits", "churn"), seed=0)
    assert report["exact"]["ops_differing_from_reference"] == 0
    assert not report["setup"]["flagged"] and report["shape_violations"] == 0


class _MissFramesShorter:
    """A channel whose response to a miss is one block shorter (a length that tells hit or
    miss): only the frame features can see it."""

    def __init__(self, params, *, master_key, salt):
        from bolt.tools.audit import ChannelDesign
        self._inner = ChannelDesign(params, master_key=master_key, salt=salt)
        self.trace = self._inner.trace

    def setup(self, items, *, salt):
        self._inner.setup(items, salt=salt)
        self._misses = []

    def access(self, op, key, value=None):
        response = self._inner.access(op, key, value)
        self._misses.append(response.status.name == "ABSENT")
        return response

    def frame_lengths(self, accesses):
        lengths = self._inner.frame_lengths(accesses)
        lengths[np.array(self._misses), -1] -= 16
        return lengths


def test_channel_frames_join_the_features():
    channel = conformance(PARAMS, design_factory("channel"), exact=True, runs=3, ops=256,
                          workloads=("uniform", "churn"), seed=1)
    assert channel["passed"] and channel["exact"]["ops_differing_from_reference"] == 0
    frame_tests = [t for t in channel["tests"] if t["statistic"].startswith("frame_")]
    assert {t["statistic"] for t in frame_tests} == {"frame_count", "frame_bytes"}
    assert all(t["means"][0] == t["means"][1] for t in frame_tests)
    leaky = conformance(PARAMS, _MissFramesShorter, runs=3, ops=256, workloads=("uniform",),
                        seed=2)     # other salts: a map takes each test salt once per process
    assert "uniform: frame_bytes" in leaky["flagged"]


# -- the pool placement (algorithm §13) ---------------------------------------------------------------

POOL_PARAMS = Params(**PARAMS.arguments(), placement="pool")


def test_pool_design_conforms_to_its_own_reference_and_differs_from_two_choice():
    def two_choice(params, *, master_key, salt):
        from bolt.model import ReferenceAccelerator
        return ReferenceAccelerator(PARAMS, master_key=master_key, salt=salt, crypto=False)
    workloads = ("hot_key", "get_hits", "uniform")
    itself = conformance(POOL_PARAMS, workloads=workloads, runs=5, ops=1024, exact=True)
    assert itself["passed"], itself["flagged"]
    assert itself["exact"]["ops_differing_from_reference"] == 0
    other = conformance(POOL_PARAMS, design=two_choice, workloads=workloads, runs=5, ops=1024,
                        name="two-choice")
    assert not other["passed"] and any(f.startswith("hot_key") for f in other["flagged"])


def test_placement_comparison_shows_the_pool_cutting_the_page_history_leak(tmp_path):
    report = placement_comparison(PARAMS, [256], runs=4, ops=16384, seed=2)
    rows = {row["probe"]: row for row in report["rows"]}
    assert set(rows) == {"hot key", "gap 1", "gap M/8", "gap M", "gap 4M"}
    assert [rows[p]["gap"] for p in ("gap 1", "gap M/8", "gap M", "gap 4M")] == [1, 8, 64, 256]
    assert rows["gap 4M"]["pool"]["ops_per_run"] >= 2 * 4 * 64 + 4 * 256
    for probe in ("hot key", "gap 1"):
        two_choice = rows[probe]["two-choice"]["page_history"]
        assert two_choice["interval"][0] > 0.015
        assert rows[probe]["ratio"]["interval"][0] > 5, rows[probe]
    assert not report["pool_leaks_more"]
    assert "two-choice / pool" in "\n".join(placement_lines(report))
    with open(plot_placements(report, str(tmp_path / "p.png")), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_cli_audit_of_the_pool(tmp_path):
    from bolt.cli import main
    result = CliRunner().invoke(main, [
        "audit", "-N", "256", "--key-size", "8", "-V", "16", "-c", "4", "-a", "0.25",
        "--placement", "pool", "--conformance", "--runs", "3", "--ops", "512", "--no-plots",
        "--no-progress", "--out", str(tmp_path), "-w", "get_hits,hot_key"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "conformance.json").read_text())
    assert report["params"]["placement"] == "pool" and report["params"]["pool_size"] == 64

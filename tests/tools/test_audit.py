"""The trace-leakage audit (issue 6): it passes the real design on the tests the design is
claimed to pass, reports the known leak of algorithm §8 instead of hiding it, and flags the
deliberately leaky variants. Also: the trace-only model gives the full model's trace."""

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from bolt import Op, Params, Status
from bolt.tools.audit import (FEATURES, LEAKY_VARIANTS, T_THRESHOLD, audit, features, ideal_touches,
                        page_evenness_test, touch_law_test, trace_touches, welch_test,
                        write_report)
from bolt.model import ReferenceAccelerator
from bolt.trace import Trace
from bolt.tools.workloads import WORKLOADS, make_workload, present_count

from tests.conftest import MASTER_KEY, SALT

OPS = 4096
PARAMS = Params(capacity=256, key_size=8, value_size=16, load=4, hbm_fraction=0.25)


@pytest.fixture(scope="module")
def real():
    return audit(PARAMS, ops=OPS, seed=0)


@pytest.fixture(scope="module")
def leaky():
    return {variant: audit(PARAMS, ops=OPS, seed=0, variant=variant)
            for variant in LEAKY_VARIANTS}


def _find(report, test, feature, *workloads):
    matches = [t for t in report["tests"] if t["test"] == test and t["feature"] == feature
               and t["workloads"] == list(workloads)]
    assert len(matches) == 1, (test, feature, workloads)
    return matches[0]


# -- algorithm §9: the trace-only mode ---------------------------------------------------------

def test_trace_only_model_gives_the_full_models_trace():
    params = Params(capacity=64, key_size=8, value_size=16, load=4, hbm_fraction=0.25)
    workload = make_workload("uniform", params, 400, seed=3)
    runs = []
    for crypto in (True, False):
        acc = ReferenceAccelerator(params, master_key=MASTER_KEY, salt=SALT, crypto=crypto)
        acc.setup(workload.preload, salt=SALT)
        answers = [acc.access(op, key, value) for op, key, value in workload]
        runs.append((acc.trace, answers))
    (full, full_answers), (plain, plain_answers) = runs
    assert full.op_count == plain.op_count == 400 + 2   # empty Setup, Setup, 400 accesses
    assert len(full) > 400                              # the ops did touch pages
    assert full == plain
    assert full_answers == plain_answers
    statuses = {a.status for a in full_answers}
    assert {Status.FOUND, Status.ABSENT} <= statuses    # hits and misses both exercised


# -- the real design ------------------------------------------------------------------------------

def test_real_design_passes_every_test_expected_clean(real):
    assert real["passed"], real["summary"]["failures"]
    assert real["summary"]["clean_flagged"] == 0
    assert real["summary"]["clean_tests"] >= 50
    assert all(w["shape_violations"] == 0 for w in real["workloads"].values())
    assert real["summary"]["largest_clean_abs_t"] < T_THRESHOLD
    # The touch law and page uniformity are claimed for every workload but the frozen-load one.
    for name in WORKLOADS:
        law = _find(real, "touch_law", "touches", name)
        assert law["expectation"] == ("known-leak" if name == "hot_key" else "clean")
        assert not law["flagged"] or name == "hot_key"
    # op type and hit/miss pairs are claimed clean on the trace-shape features.
    for pair in (("get_hits", "put_hits"), ("get_hits", "get_misses"), ("get_hits", "deletes")):
        for feature in ("touches", "page", "distance"):
            test = _find(real, "welch", feature, *pair)
            assert test["expectation"] == "clean" and not test["flagged"]
            assert test["verdict"].startswith("pass (the sample could only see")


def test_workloads_do_what_they_say(real):
    statuses = {name: entry["statuses"] for name, entry in real["workloads"].items()}
    assert statuses["get_hits"] == {"FOUND": OPS}
    assert statuses["put_hits"] == {"FOUND": OPS}
    assert statuses["hot_key"] == {"FOUND": OPS}
    assert statuses["get_misses"] == {"ABSENT": OPS}
    assert statuses["deletes"] == {"FOUND": OPS // 2, "ABSENT": OPS // 2}
    assert 0.3 < statuses["uniform"]["FOUND"] / OPS < 0.7
    for name in WORKLOADS:
        workload = make_workload(name, PARAMS, 100, seed=1)
        assert len(workload.preload) == present_count(PARAMS)
        ops = list(workload)
        assert len(ops) == 100 and ops == list(make_workload(name, PARAMS, 100, seed=1))
    same = make_workload("same_key_twice", PARAMS, 10, seed=0)
    keys = [key for _, key, _ in same]
    assert all(keys[i] == keys[i + 1] for i in range(0, 10, 2))
    assert all(keys[i] != keys[i + 1] for i in range(1, 9, 2))


def test_known_leak_of_section_8_is_measured_not_hidden(real):
    s8 = real["section8"]["pooled"]
    assert s8["same key"]["transitions"] > 1000
    # The same key accessed again reveals a repeated bin above chance; misses do not.
    assert s8["same key"]["ratio_to_chance"] > 1.1
    assert s8["distinct present keys"]["ratio_to_chance"] < 1.0
    lo, hi = s8["next op a miss"]["ratio_ci95"]
    assert lo < 1.0 < hi
    # The hot key's touched pages follow the frozen least-loaded bins: reported as detected.
    hot = _find(real, "page_uniformity", "page", "hot_key")
    assert hot["expectation"] == "known-leak" and hot["flagged"]
    assert hot["verdict"] == "known leak (algorithm §8) detected"
    assert hot["bits_per_op"] > 0.01
    pair = _find(real, "welch", "x_repeat", "same_key_twice", "get_hits")
    assert pair["expectation"] == "known-leak"
    assert pair["effect_size"] > 0
    assert "known leak" in pair["verdict"]
    assert real["summary"]["known_leak_detected"] >= 1


def test_report_has_every_number_for_every_test(real, tmp_path):
    keys = {"statistic", "threshold", "sample_size", "effect_size", "min_detectable_effect",
            "bits_per_op", "min_detectable_bits_per_op", "flagged", "expectation", "verdict"}
    assert len(real["tests"]) == real["summary"]["tests"]
    for test in real["tests"]:
        assert keys <= set(test), test
        assert test["min_detectable_effect"] > 0
        assert test["bits_per_op"] >= 0
    assert {t["feature"] for t in real["tests"] if t["test"] == "welch"} == set(FEATURES)
    assert {t["workloads"][1] for t in real["tests"] if t["test"] == "welch"} >= {"ideal"}
    paths = write_report(real, str(tmp_path))
    data = json.loads((tmp_path / "audit.json").read_text())
    assert data["ops_per_workload"] == OPS and data["seed"] == 0
    assert data["passed"] is True
    pngs = [p for p in paths if p.endswith(".png")]
    assert len(pngs) >= 4
    for png in pngs:
        with open(png, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


# -- the leaky variants: an audit that cannot fail proves nothing ----------------------------------

def test_miss_skips_x_is_flagged_where_the_real_design_is_clean(real, leaky):
    report = leaky["miss_skips_x"]
    assert not report["passed"]
    for name in ("get_misses", "uniform", "deletes"):
        assert _find(report, "touch_law", "touches", name)["flagged"]
        assert not _find(real, "touch_law", "touches", name)["flagged"]
    bad = _find(report, "welch", "touches", "get_hits", "get_misses")
    good = _find(real, "welch", "touches", "get_hits", "get_misses")
    assert bad["flagged"] and abs(bad["statistic"]) > 10 * T_THRESHOLD
    assert not good["flagged"] and good["expectation"] == "clean"
    assert bad["bits_per_op"] > 100 * good["min_detectable_bits_per_op"] > 0
    # Hits never trigger the leak: their touch law still passes.
    assert not _find(report, "touch_law", "touches", "get_hits")["flagged"]


def test_sticky_bin_is_flagged_where_the_real_design_is_clean(real, leaky):
    report = leaky["sticky_bin"]
    assert not report["passed"]
    for name in ("get_hits", "put_hits", "scan"):
        assert _find(report, "page_uniformity", "page", name)["flagged"]
        assert not _find(real, "page_uniformity", "page", name)["flagged"]
    # The same key goes back to its bin: the section 8 ratio explodes far above the real one,
    # beyond the documented budget of the known leak.
    assert (report["section8"]["pooled"]["same key"]["ratio_to_chance"]
            > 10 * real["section8"]["pooled"]["same key"]["ratio_to_chance"])
    assert report["section8"]["budget"]["exceeded"]
    assert not real["section8"]["budget"]["exceeded"]


def test_leaky_variants_are_not_reachable_from_the_map():
    import bolt
    from bolt.map import BACKENDS
    assert not any("leak" in name or "sticky" in name or "skip" in name for name in BACKENDS)
    assert not any("leak" in name.lower() for name in bolt.__all__)


# -- the statistics themselves ---------------------------------------------------------------------

def test_welch_test_flags_a_shift_and_states_what_it_could_see():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, 20000)
    same = welch_test(a, rng.integers(0, 2, 20000), "x", ["a", "b"])
    shifted = welch_test(a, (rng.random(20000) < 0.56).astype(np.int64), "x", ["a", "c"])
    assert not same["flagged"] and shifted["flagged"]
    assert abs(shifted["effect_size"]) > shifted["min_detectable_effect"]
    assert shifted["bits_per_op"] > same["bits_per_op"]
    small = welch_test(a[:200], a[200:400], "x", ["a", "b"])
    assert small["min_detectable_effect"] > 5 * same["min_detectable_effect"]
    empty = welch_test(a[:1], a, "x", ["a", "b"])
    assert not empty["flagged"] and math.isnan(empty["statistic"])


def test_page_evenness_catches_counts_too_even_for_independent_touches():
    b = PARAMS.host_bins
    even = np.tile(np.arange(b), 100)                 # every page exactly 100 times
    ideal = features(ideal_touches(PARAMS, 4000, seed=4))["page"]
    too_even = page_evenness_test(even, PARAMS, "even")
    assert too_even["flagged"] and too_even["effect_size"] > 0.99
    fair = page_evenness_test(ideal, PARAMS, "ideal")
    assert not fair["flagged"] and abs(fair["effect_size"]) < 0.5
    assert 0 < fair["min_detectable_effect"] < 1


def test_touch_law_uses_the_exact_host_fraction():
    # capacity 40, load 4: M = 10 bins, K = floor(0.29 * 10) = 2, h = 0.8 (not 1 - 0.29).
    params = Params(capacity=40, key_size=8, value_size=16, load=4, hbm_fraction=0.29)
    assert params.host_fraction == 0.8
    ideal = ideal_touches(params, 200000, seed=1)
    assert not touch_law_test(ideal.counts, params, "ideal")["flagged"]
    # A law with alpha in place of K/M would be 0.71: the exact law must reject that sample.
    h = 0.71
    rng = np.random.default_rng(2)
    wrong = (rng.random((200000, 2)) < h).sum(axis=1).astype(np.int8)
    assert touch_law_test(wrong, params, "wrong")["flagged"]


def test_features_and_trace_shape_from_a_handmade_trace():
    params = PARAMS
    s = params.page_stride
    trace = Trace()
    for pages in ([3, 5], [5], [], [3, 3], [7, 3]):
        trace.begin_op()
        for page in pages:
            trace.record("read", page * s, s)
            trace.record("write", page * s, s)
    touches = trace_touches(trace, params)
    assert touches.counts.tolist() == [2, 1, 0, 2, 2] and touches.shape_violations == 0
    f = features(touches)
    assert f["page"].tolist() == [3, 5, 5, 3, 3, 7, 3]
    assert f["distance"].tolist() == [2, 0, 2, 0, 4, 4]
    assert f["repeat_next"].tolist() == [1, 0, 0, 1]
    assert f["repeat_next2"].tolist() == [0, 0, 0]
    assert f["x_repeat"].tolist() == [0]          # ops 3 -> 4: first pages 3 and 7
    trace.begin_op()
    trace.record("read", 2 * s, s)                 # a read without its write-back
    assert trace_touches(trace, params).shape_violations == 1


def test_ideal_simulator_passes_its_own_tests(real):
    for test in ("touch_law", "page_uniformity"):
        entry = [t for t in real["tests"] if t["test"] == test and t["workloads"] == ["ideal"]]
        assert len(entry) == 1 and not entry[0]["flagged"]


# -- the command line -------------------------------------------------------------------------------

def test_cli_audit_with_self_check(tmp_path):
    from bolt.cli import main
    result = CliRunner().invoke(main, [
        "audit", "-N", "256", "--key-size", "8", "-V", "16", "-c", "4", "-a", "0.25",
        "--ops", "2048", "--seed", "5", "--self-check", "--no-plots", "--no-progress",
        "--workloads", "get_hits,get_misses,hot_key", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "RESULT: pass" in result.output
    assert "SELF-CHECK miss_skips_x: flagged" in result.output
    assert "SELF-CHECK sticky_bin: flagged" in result.output
    report = json.loads((tmp_path / "audit.json").read_text())
    assert report["seed"] == 5 and report["ops_per_workload"] == 2048
    assert set(report["workloads"]) == {"get_hits", "get_misses", "hot_key"}
    assert (tmp_path / "selfcheck_miss_skips_x.json").exists()


def test_full_crypto_audit_matches_the_trace_only_model():
    report = audit(PARAMS, ops=300, seed=2, crypto=True, workloads=["uniform", "deletes"])
    assert report["crypto"] is True
    assert report["ops_differing_from_reference_model"] == {"uniform": 0, "deletes": 0}


@pytest.mark.rtl
def test_rtl_audit_matches_the_reference_model():
    # The conformance suite's parameters, so the cached Verilator build is shared.
    rtl_params = Params(capacity=1024, value_size=8)
    report = audit(rtl_params, ops=64, seed=0, backend="rtl",
                   workloads=["get_hits", "get_misses"])
    assert report["ops_differing_from_reference_model"] == {"get_hits": 0, "get_misses": 0}
    assert all(w["shape_violations"] == 0 for w in report["workloads"].values())

"""``bolt bench``: both systems measured from their traces, on a tiny configuration."""

import json

from click.testing import CliRunner

from bolt.tools.baseline import PathOramMap
from bolt.tools.bench import run_bench, table_rows, TABLE_HEADERS
from bolt.cli import main
from bolt.params import Params

FIELDS = {"system", "mode", "capacity", "value_size", "items", "setup_seconds", "ops",
          "op_seconds", "bytes_per_op", "bytes_per_op_min", "bytes_per_op_max",
          "touches_per_op", "events_per_op", "expected_bytes_per_op", "rtl",
          "ops_per_second", "bytes_per_op_per_value_byte"}


def test_cli_writes_json_table_and_plot(tmp_path):
    out = tmp_path / "bench"
    result = CliRunner().invoke(main, [
        "bench", "--capacities", "2^6,128", "--value-sizes", "8,32", "--ops", "40",
        "--baseline-ops", "6", "--baseline-full-max", "64", "--no-rtl", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "PathORAM-AVL" in result.output and "BOLT" in result.output
    data = json.loads((out / "bench.json").read_text())
    rows = data["rows"]
    assert "bolt bench" in data["meta"]["command"]
    assert len(rows) == 2 * 2 * 2
    assert all(set(r) == FIELDS for r in rows)
    assert {(r["capacity"], r["value_size"], r["system"]) for r in rows} == {
        (n, v, s) for n in (64, 128) for v in (8, 32) for s in ("BOLT", "PathORAM-AVL")}
    for r in rows:
        assert r["rtl"] is None
        p = Params(capacity=r["capacity"], value_size=r["value_size"])
        if r["system"] == "BOLT":
            assert r["ops"] == 40 and r["mode"] == "reference"
            # at most two touches (a page read and write each) per access
            assert 0 < r["bytes_per_op"] <= 4 * p.page_stride
            assert r["touches_per_op"] <= 2
        else:
            assert r["ops"] == 6
            assert r["mode"] == ("AES-GCM" if r["capacity"] <= 64 else "count-only")
            # every baseline op moves exactly the formula's bytes
            expected = PathOramMap(r["capacity"], value_size=r["value_size"],
                                   count_only=True).bytes_per_op
            assert r["bytes_per_op"] == r["bytes_per_op_min"] == r["bytes_per_op_max"] \
                == r["expected_bytes_per_op"] == expected
        assert r["bytes_per_op_per_value_byte"] == r["bytes_per_op"] / r["value_size"]
    assert (out / "bench.png").read_bytes()[:4] == b"\x89PNG"


def test_bolt_bytes_per_op_match_the_touch_law():
    # Over many ops BOLT's bytes per op approach 2·h·(read + write of one page).
    p = Params(capacity=256, value_size=16, load=8, hbm_fraction=0.5)
    (bolt_row, base_row) = run_bench([256], [16], ops=3000, baseline_ops=2, load=8,
                                     hbm_fraction=0.5, rtl=False, progress=False)
    assert bolt_row.system == "BOLT" and base_row.system == "PathORAM-AVL"
    expected = 2 * p.host_fraction * 2 * p.page_stride
    assert bolt_row.expected_bytes_per_op == expected
    # touches per op: a mean of 3000 binomial(2, h), sd 1.3% of 2h; 8% is over 6 sd
    assert abs(bolt_row.bytes_per_op - expected) < 0.08 * expected
    assert bolt_row.bytes_per_op_min == 0 and bolt_row.bytes_per_op_max == 4 * p.page_stride
    rows = table_rows([bolt_row, base_row])
    assert len(rows[0]) == len(TABLE_HEADERS)
    assert rows[0][-1] == "1.0x"


def test_speed_measures_the_model_through_the_map():
    from bolt.params import Params
    from bolt.tools.speed import measure

    p = Params(capacity=256, value_size=16)
    r = measure(p, ops=120, seed=3)
    assert r["setup_items"] == 256 and r["setup_s"] > 0 and r["ops_per_s"] > 0
    # Every op moves whole pages, read then written: a multiple of two page strides.
    total = round(r["host_bytes_per_op"] * 120)
    assert total % (2 * p.page_stride) == 0 and 0 < total <= 120 * 4 * p.page_stride


def test_speed_command_prints_a_row_per_capacity():
    from click.testing import CliRunner

    from bolt.cli import main

    result = CliRunner().invoke(main, ["speed", "--capacities", "64,128", "--ops", "40"])
    assert result.exit_code == 0, result.output
    assert [line.split()[0] for line in result.output.splitlines()[2:]] == ["2^6", "2^7"]


def test_speed_repeated_prints_the_median_and_the_best_of_its_runs(monkeypatch):
    from click.testing import CliRunner

    import bolt.cli.speed
    from bolt.cli import main

    runs = iter([{"ops_per_s": ops, "setup_s": setup, "drbg_words_per_op": 4.0,
                  "host_bytes_per_op": 3000.0, "frame_bytes_per_op": 187.0}
                 for ops, setup in [(30000, 2.0), (10000, 1.5), (20000, 3.0)]])
    monkeypatch.setattr(bolt.cli.speed, "measure", lambda *args, **kwargs: next(runs))
    result = CliRunner().invoke(main, ["speed", "--capacities", "64", "--repeat", "3"])
    assert result.exit_code == 0, result.output
    row = result.output.splitlines()[2]
    assert "20,000 (best 30,000, 3 runs)" in row and "2.00 (best 1.50, 3 runs)" in row


def test_speed_counts_the_pools_extra_draw():
    """Four U(M) draws per access (M = 32, a power of two: no rejection; a c2 redraw now and
    then), one more U(P) with the pool (P = 24: a word rejected with probability 1/4)."""
    from click.testing import CliRunner

    from bolt.cli import main

    result = CliRunner().invoke(main, ["speed", "--capacities", "256", "--ops", "400",
                                       "--no-setup", "--placement", "two-choice,pool",
                                       "-P", "24"])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()[2:]]
    assert [row[2] for row in rows] == ["two-choice", "pool"]
    two_choice, pool = float(rows[0][4]), float(rows[1][4])
    assert 4 <= two_choice < 4.2
    # U(24) takes 4/3 words on average; 400 accesses put the mean within about 0.05 of it.
    assert 1.2 < pool - two_choice < 1.5


def test_the_table_shows_the_rtl_projection_beside_the_paper():
    from bolt.host.backend import RtlStats

    stats = RtlStats(page_bytes=1152, value_size=64)
    for stamps, reads in [((300, 0, 0, 400, 0, 21, 0), 0),
                          ((330, 200, 220, 900, 210, 21, 0), 2)] * 10:
        stats.record(stamps, reads, reads * 2 * 1152)
    (bolt_row, base_row) = run_bench([64], [64], ops=20, baseline_ops=2, rtl=False,
                                     progress=False)
    bolt_row.rtl = stats.summary()
    one, best, paper, _ = table_rows([bolt_row, base_row])[0][-4:]
    summary = stats.summary()
    assert one.startswith(f"idle {summary['idle accelerator: mean latency (us)']:.2f} us; ")
    assert f"{summary['1 in flight: mean latency (us)']:.2f} / " in one
    assert best.startswith(f"{summary['best in flight: depth']}: ")
    assert paper == "6.99 us, 0.14 M/s"

"""Smoke test of ``gifnet benchmark`` on tiny inputs (it is a benchmark, so nothing here is timed)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from gifnet.paths import PROJECT_ROOT

SCRIPT = str(PROJECT_ROOT / "scripts" / "benchmark.py")


def _run(args: list[str], tmp_path) -> tuple[str, list[dict]]:
    out = tmp_path / "res.json"
    r = subprocess.run(
        [sys.executable, SCRIPT, *args, f"json={out}"], capture_output=True, text=True, timeout=600, check=False
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout, json.loads(out.read_text())


def test_fuse_benchmark_rows(tmp_path):
    stdout, res = _run(
        ["mode=fuse", "sizes=[24x20]", "fusion_paths=[optimised,full-frame,straightforward]", "devices=[cpu]",
         "repeat=1"], tmp_path,
    )  # fmt: skip
    assert [(r["path"], r["precision"]) for r in res] == [
        ("optimised", "fp32"), ("optimised", "bf16"), ("full-frame", "fp32"), ("full-frame", "bf16"),
        ("straightforward", "fp32"),
    ]  # fmt: skip
    for r in res:
        assert "error" not in r, r
        assert r["size"] == "20x24" and r["seconds"] > 0 and r["gflops"] > 0 and r["peak_rss_gb"] > 0.1
    assert "| cpu | 20×24 | optimised | fp32 |" in stdout


# The official protocol on 2 × 32² batches in fp32 with the cheap gradient weighting: tiny training cases.
TINY_FP32_CASE = ["tasks=[official]", "precisions=[fp32]", "batch=2", "crop=32", "weighting=gradient"]


@pytest.mark.slow
def test_train_benchmark_rows_and_loss_comparison(tmp_path):
    stdout, res = _run(
        ["mode=train", "tasks=[official]", "steps=1", "batch=2", "crop=32"], tmp_path
    )  # DenseNet weighting with random weights (timing only)
    assert [(r["task"], r["precision"]) for r in res] == [("official", "fp32"), ("official", "bf16")]
    for r in res:
        assert "error" not in r, r
        assert r["steps_per_iter"] == 2 and r["seconds_per_iter"] > 0 and len(r["loss_trace"]) == 2
        assert set(r["losses"]) == {"ivif/total", "mfif/total"}
    assert "bf16 vs fp32 loss terms over 2 iterations" in stdout
    assert " without the IVIF step (the random-weight DenseNet" in stdout  # the default weighting says so


def test_loss_comparison_leaves_out_named_steps():
    from gifnet.benchmark import _max_relative_difference

    x = {"loss_trace": [{"ivif/total": 2.0, "mfif/total": 1.0}, {"ivif/total": 1.0, "mfif/total": 1.1}]}
    y = {"loss_trace": [{"ivif/total": 1.0, "mfif/total": 1.0}, {"ivif/total": 1.0, "mfif/total": 1.0}]}
    assert _max_relative_difference(x, y) == pytest.approx(1.0)
    assert _max_relative_difference(x, y, skip=("ivif/",)) == pytest.approx(0.1)
    assert math.isnan(_max_relative_difference(x, y, skip=("ivif/", "mfif/")))


@pytest.mark.slow
def test_train_benchmark_plain_reference_and_profile(tmp_path):
    stdout, res = _run(
        ["mode=train", *TINY_FP32_CASE, "steps=1", "references=[plain,released]"], tmp_path
    )
    assert [(r["variant"], r["channels_last"]) for r in res] == [("gifnet", True), ("plain", False),
                                                                 ("released", False)]
    assert all("error" not in r and r["seconds_per_iter"] > 0 for r in res)
    assert "× the plain reference (fp32), " in stdout and "× the released-step reference (fp32) measured" in stdout
    # same seed, batches and weights: the released computation's losses are gifnet's up to round-off
    assert res[2]["loss_trace"][0] == pytest.approx(res[0]["loss_trace"][0], rel=1e-4)
    assert "released-step reference vs gifnet loss terms over 2 iterations" in stdout
    for profiler, top_n in (("default", 30), ("torch", 4)):
        stdout, res = _run(
            ["mode=profile", *TINY_FP32_CASE, "steps=1", f"top={top_n}"]
            + ([] if profiler == "default" else [f"profiler={profiler}"]), tmp_path
        )
        (r,) = res
        assert r["profiler"] == ("dispatch" if profiler == "default" else profiler)
        top = r["profile"]["top"]
        assert len(top) == top_n
        assert all(op["operator"].startswith("aten::") and op["self_ms_per_iter"] > 0 for op in top)
        shares = [op["share"] for op in top]
        assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1
        assert "| 1 | `aten::" in stdout
        if profiler == "default":  # the dispatch timer's rows
            # wall times of non-overlapping calls: together at most the iteration's time
            assert 0 < r["profile"]["total_self_ms_per_iter"] <= 1e3 * r["seconds_per_iter"]
            assert "aten::convolution_backward" in {op["operator"] for op in top}  # the backward is seen too
            assert any(" CL fp32" in d for op in top for d in op["inputs"])  # layout and dtype of inputs
            assert "under the dispatch timer" in stdout


def test_dispatch_timer_counts_every_call_once():
    """The dispatch timer sees forward and backward calls, each once, keyed by inputs."""
    import torch

    from gifnet.benchmark import _dispatch_timer, _top_operators

    x = torch.randn(2, 3, 8, 8).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    timer = _dispatch_timer()
    with timer:
        for _ in range(2):
            torch.nn.functional.conv2d(x, w).relu().sum().backward()
    calls = {(name, inputs): n for (name, inputs), (n, _) in timer.stats.items()}
    conv = [k for k in calls if k[0] == "convolution"]
    assert conv and calls[conv[0]] == 2 and conv[0][1][0] == "2×3×8×8 CL fp32"
    assert any(name == "convolution_backward" and n == 2 for (name, _), n in calls.items())
    prof = _top_operators(timer, 3, 2)
    assert len(prof["top"]) == 3 and prof["total_self_ms_per_iter"] > 0
    assert prof["top"][0]["calls_per_iter"] >= 1


def test_benchmark_rejects_an_unknown_profiler(tmp_path):
    r = subprocess.run(
        [sys.executable, SCRIPT, "mode=profile", "profiler=nsight"], capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert r.returncode != 0 and "profiler must be one of" in (r.stderr + r.stdout)


def test_process_benchmark_times_both_whole_processes(shared, tmp_path):
    r = subprocess.run(
        [sys.executable, SCRIPT, "mode=process", "process_sizes=[24x20]", "repeat=1"], capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert "| 20×24 | gifnet fuse | " in r.stdout and "| 20×24 | released-style | " in r.stdout
    assert "× the released-style process (ratio of the means)" in r.stdout
    diff = int(r.stdout.split("outputs differ by at most ")[1].split()[0])
    assert diff <= 1  # the same fusion: only the released truncation against gifnet's rounding


def test_process_benchmark_needs_the_checkpoint(tmp_path):
    r = subprocess.run(
        [sys.executable, SCRIPT, "mode=process", f"checkpoint={tmp_path / 'missing.model'}"], capture_output=True,
        text=True, timeout=600, check=False,
    )  # fmt: skip
    assert r.returncode == 2 and "checkpoint not found" in r.stderr


@pytest.mark.slow
def test_train_benchmark_alternates_weight_gradient_layouts(tmp_path):
    stdout, res = _run(
        ["mode=train", *TINY_FP32_CASE, "steps=2", "layouts=[native,nchw]"], tmp_path
    )
    (r,) = res
    assert "error" not in r, r
    assert list(r["layout_seconds"]) == ["native", "nchw"]
    assert all(len(v) == 2 and min(v) > 0 for v in r["layout_seconds"].values())
    assert len(r["loss_trace"]) == 5  # warm-up + 2 batches × 2 layouts
    assert "| official | fp32 | nchw | 2 × 32² | 2 |" in stdout
    assert "# official fp32: native / nchw = " in stdout


@pytest.mark.parametrize("layouts", [["sideways"], ["nchw", "nchw"]])
def test_train_benchmark_rejects_bad_layouts(layouts):
    from gifnet.benchmark import _check_layouts

    with pytest.raises(ValueError, match="layouts"):
        _check_layouts(layouts)


@pytest.mark.slow
def test_train_benchmark_rounds_alternate_and_report_the_median(tmp_path):
    stdout, res = _run(["mode=train", *TINY_FP32_CASE, "steps=1", "rounds=2", "references=[released]"], tmp_path)
    # ABBA: the second round runs the cases in the reverse order
    assert [(r["round"], r["variant"]) for r in res] == [(1, "gifnet"), (1, "released"), (2, "released"),
                                                         (2, "gifnet")]
    assert all("error" not in r and r["sgemm_gflops_before"] > 0 for r in res)
    ratios = [
        next(r for r in res if r["round"] == k and r["variant"] == "released")["seconds_per_iter"]
        / next(r for r in res if r["round"] == k and r["variant"] == "gifnet")["seconds_per_iter"]
        for k in (1, 2)
    ]
    line = next(x for x in stdout.splitlines() if x.startswith("# official fp32: gifnet is "))
    assert f"(median of 2 rounds: {ratios[0]:.2f}, {ratios[1]:.2f})" in line
    assert line.startswith(f"# official fp32: gifnet is {(ratios[0] + ratios[1]) / 2:.2f}× the released-step")
    assert "| official | fp32 | released | 2 | 2 × 32² |" in stdout
    assert "# official: sgemm probe " in stdout


def _rows(*rounds):
    return [{(name, prec): ({"error": "boom"} if sec is None else {"seconds_per_iter": sec})
             for (name, prec), sec in rnd.items()} for rnd in rounds]


def test_speedups_per_round_and_their_median(capsys):
    from gifnet.benchmark import _print_speedups, _speedups

    per_round = _rows(
        {("gifnet", "fp32"): 2.0, ("plain", "fp32"): 3.0, ("released", "fp32"): 8.0, ("gifnet", "bf16"): 1.0},
        {("gifnet", "fp32"): 2.0, ("plain", "fp32"): 4.0, ("released", "fp32"): 6.0, ("gifnet", "bf16"): None},
        {("gifnet", "fp32"): 4.0, ("plain", "fp32"): 4.0, ("released", "fp32"): 20.0, ("gifnet", "bf16"): 2.0},
    )
    got = _speedups(per_round)
    assert got[("fp32", "plain")] == [1.5, 2.0, 1.0]
    assert got[("fp32", "released")] == [4.0, 3.0, 5.0]
    assert got[("bf16", "released")] == [8.0, 10.0]  # the failed round gives no ratio
    assert ("bf16", "plain") not in got  # no bf16 plain reference was timed
    _print_speedups(per_round, "official")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("# official fp32: gifnet is 1.50× the plain reference (fp32) (median of 3 rounds: 1.50, 2.00, "
                      "1.00), 4.00× the released-step reference (fp32) (median of 3 rounds: 4.00, 3.00, 5.00) "
                      "measured beside it")
    assert out[1].startswith("# official bf16: gifnet is 9.00× the released-step reference (fp32) (median of 2")
    _print_speedups(per_round[:1], "joint")  # one round: the ratio alone, as before
    assert capsys.readouterr().out.splitlines()[0] == (
        "# joint fp32: gifnet is 1.50× the plain reference (fp32), 4.00× the released-step reference (fp32) "
        "measured beside it")


def test_drift_between_cases_is_reported(capsys):
    from gifnet.benchmark import _print_drift

    _print_drift([{"sgemm_gflops_before": 130.0}, {"sgemm_gflops_before": 125.0}], "official")
    line = capsys.readouterr().out.strip()
    assert line == "# official: sgemm probe 125–130 GFLOP/s before the cases"
    _print_drift([{"sgemm_gflops_before": 130.0}, {"error": "x"}, {"sgemm_gflops_before": 65.0}], "joint")
    line = capsys.readouterr().out.strip()
    assert "65–130 GFLOP/s" in line and "moved by 2.00×" in line and "rounds=3 or more" in line
    _print_drift([{"sgemm_gflops_before": 130.0}, {"sgemm_gflops_before": 65.0}], "joint", rounds=3)
    assert "read the rounds' spread" in capsys.readouterr().out


def test_sgemm_probe_measures_a_rate():
    from gifnet.benchmark import sgemm_rate

    assert 0.1 < sgemm_rate(n=256, repeat=2) < 1e5


@pytest.mark.parametrize("rounds", [0, -1, 1.5, True, "2"])
def test_train_benchmark_rejects_bad_rounds(rounds):
    from gifnet.benchmark import _check_rounds

    with pytest.raises(ValueError, match="rounds must be a positive integer"):
        _check_rounds(rounds)

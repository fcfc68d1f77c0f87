"""Tests of gifnet.evaluation / scripts/evaluate.py: tiny generated benchmarks, bad inputs, VIFB golden values."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import missing_shared

from gifnet.evaluation import (
    evaluate,
    evaluate_from_config,
    list_datasets,
    load_dataset,
    load_eval_config,
    select_datasets,
)
from gifnet.io import write_image_atomic
from gifnet.models import GIFNet, save_checkpoint
from gifnet.paths import PROJECT_ROOT

SIZE = 24


def _yaml(path: Path, name: str, task: str, sub: str, convention: str, metrics: str, sources: str = "[A, B]") -> None:
    path.write_text(
        f"name: {name}\ntask: {task}\nroot: ${{paths.data_root}}/{sub}\na: A\nb: B\n"
        f"convention: {convention}\nmetrics: {metrics}\nmetric_sources: {sources}\n"
    )


@pytest.fixture()
def bench(tmp_path: Path) -> dict[str, Path]:
    """A tiny checkpoint (trained on ivif, mfif), two toy datasets (ivif = seen, meif = unseen), two extra methods."""
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "tiny.pt", GIFNet(enc_width=6, window=4).eval(), trained_tasks=["ivif", "mfif"])
    rng = np.random.default_rng(0)
    root = tmp_path / "bench"
    flat, mean = tmp_path / "methods" / "Flat", tmp_path / "methods" / "Mean"
    for i in range(3):
        a = rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
        b = rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
        write_image_atomic(root / "ivif" / "Toy" / "A" / f"p{i}.png", a)
        write_image_atomic(root / "ivif" / "Toy" / "B" / f"p{i}.png", b)
        # "Mean": the pixel average minimises the mean of the two MSEs -> always best (lowest) MSE
        write_image_atomic(mean / "toy_ivif" / f"p{i}.png", ((a.astype(np.uint16) + b + 1) // 2).astype(np.uint8))
        if i != 1:  # one missing file -> a recorded failure
            write_image_atomic(flat / f"p{i}.png", np.full((SIZE, SIZE), 128, np.uint8))  # EN = SD = 0
    for i in range(2):
        for side in "AB":
            write_image_atomic(
                root / "meif" / "Toy" / side / f"m{i}.png", rng.integers(0, 256, (SIZE, SIZE, 3), np.uint8)
            )
    dsets = tmp_path / "eval"
    dsets.mkdir()
    _yaml(dsets / "toy_ivif.yaml", "toy_ivif", "ivif", "ivif/Toy", "standard", "[EN, SD, MSE]")
    _yaml(dsets / "toy_meif.yaml", "toy_meif", "meif", "meif/Toy", "mefb", "[Entropy, SD]")
    return {"ckpt": ckpt, "root": root, "dsets": dsets, "flat": flat, "mean": tmp_path / "methods" / "Mean",
            "out": tmp_path / "out"}  # fmt: skip


def _args(bench: dict[str, Path], *extra: str) -> list[str]:
    return [
        f"checkpoint={bench['ckpt']}", f"paths.data_root={bench['root']}", f"datasets_dir={bench['dsets']}",
        f"out={bench['out']}", "progress=false", *extra,
    ]  # fmt: skip


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _md_row(md: str, dataset: str, method: str) -> list[str]:
    block = md.split(f"### {dataset}")[1].split("\n### ")[0]
    for line in block.splitlines():
        if line.startswith(f"| {method} |"):
            return [c.strip() for c in line.strip("|").split("|")]
    raise AssertionError(f"no row {method} in {dataset}")


def test_end_to_end(bench):
    cfg = load_eval_config(
        _args(bench, "eval=all", f"methods.Flat.toy_ivif={bench['flat']}", f"methods.Mean={bench['mean']}")
    )
    res = evaluate_from_config(cfg)
    out = bench["out"]
    for name in ("per_image.csv", "failures.csv", "summary.md", "summary.csv", "summary.tex"):
        assert (out / name).is_file(), name
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary file
    assert sorted(p.name for p in (out / "fused" / "toy_ivif" / "GIFNet").iterdir()) == ["p0.png", "p1.png", "p2.png"]
    assert len(list((out / "fused" / "toy_meif" / "GIFNet").iterdir())) == 2

    # per-image values: 3 GIFNet + 3 Mean + 2 Flat images on toy_ivif (3 metrics), 2 GIFNet + 2 + 2 on toy_meif
    rows = _read_csv(out / "per_image.csv")
    assert set(rows[0]) == {"dataset", "method", "image", "metric", "value", "roundoff"}
    ivif = [r for r in rows if r["dataset"] == "toy_ivif"]
    assert {r["method"] for r in ivif} == {"GIFNet", "Flat", "Mean"}
    assert len([r for r in ivif if r["method"] == "Flat"]) == 2 * 3
    assert all(float(r["value"]) == 0.0 for r in ivif if r["method"] == "Flat" and r["metric"] in ("EN", "SD"))

    # the missing Flat file is a failure, in failures.csv and in the dataset's footer
    assert [(f.dataset, f.method, f.image) for f in res.failures] == [("toy_ivif", "Flat", "p1")]
    assert "missing fused file" in res.failures[0].error
    assert res.methods == {"toy_ivif": ["GIFNet", "Flat", "Mean"], "toy_meif": ["GIFNet"]}  # Mean/ is per dataset
    md = (out / "summary.md").read_text()
    assert "Failures (1):" in md and "- Flat / p1: missing fused file" in md
    assert "Failures (1)" in (out / "summary.tex").read_text()

    # seen (ivif) before unseen (meif); convention noted in each table header
    assert md.index("## Seen tasks") < md.index("### toy_ivif") < md.index("## Unseen tasks") < md.index("### toy_meif")
    assert "convention: standard" in md and "convention: mefb" in md

    # bold marks the better value, respecting the metric direction (MSE: lower is better)
    head = _md_row(md, "toy_ivif", "method")
    flat_row, mean_row = _md_row(md, "toy_ivif", "Flat"), _md_row(md, "toy_ivif", "Mean")
    assert head[:2] == ["method", "n"] and head[4] == "MSE ↓"
    assert flat_row[1] == "2/3" and mean_row[1] == "3/3"
    assert flat_row[2] == "0.0000 ± 0.0000" and not flat_row[2].startswith("**")  # EN = 0 is never the best
    assert mean_row[4].startswith("**") and not _md_row(md, "toy_ivif", "GIFNet")[4].startswith("**")
    summary = _read_csv(out / "summary.csv")
    best = {(r["dataset"], r["metric"]): r["method"] for r in summary if r["best"] == "1"}
    assert best[("toy_ivif", "MSE")] == "Mean"
    assert best[("toy_ivif", "EN")] != "Flat" and best[("toy_ivif", "SD")] != "Flat"
    sections = {r["dataset"]: r["section"] for r in summary}
    assert sections == {"toy_ivif": "seen", "toy_meif": "unseen"}
    mse = {r["method"]: float(r["mean"]) for r in summary if r["dataset"] == "toy_ivif" and r["metric"] == "MSE"}
    assert mse["Mean"] == min(mse.values())
    assert "\\textbf{" in (out / "summary.tex").read_text()


def test_peers_several_checkpoints_ranks_and_roundoff(tmp_path: Path, bench):
    """peers=true adds every published method of a dataset's ``peers`` folder; checkpoints.<name> adds more
    checkpoints; tables mark best and second and rank the methods; round-off values are flagged and left out."""
    torch.manual_seed(1)
    other = save_checkpoint(tmp_path / "other.pt", GIFNet(enc_width=6, window=4).eval(), trained_tasks=["ivif"])
    rng = np.random.default_rng(3)
    root, peers = bench["root"] / "meif" / "Flat", tmp_path / "peers"
    for i in range(2):
        a = rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
        b = rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
        a[:12, :14], b[:12, :14] = 254, 201  # flat in both sources: Liu's Qy is a ratio of round-off there
        write_image_atomic(root / "A" / f"q{i}.png", a)
        write_image_atomic(root / "B" / f"q{i}.png", b)
        mean = ((a.astype(np.uint16) + b) // 2).astype(np.uint8)
        write_image_atomic(peers / "Mean" / f"q{i}.png", mean)
        write_image_atomic(peers / "TakeA" / f"q{i}.jpg", a)
        write_image_atomic(peers / "Gray" / f"q{i}.png", np.full_like(a, 128))
    (bench["dsets"] / "toy_flat.yaml").write_text(
        "name: toy_flat\ntask: meif\nroot: ${paths.data_root}/meif/Flat\na: A\nb: B\nconvention: mefb\n"
        f"metrics: [Qy, SD, Psnr]\nmetric_sources: [A, B]\npeers: {peers}\n"
    )
    cfg = load_eval_config(_args(bench, "eval=toy_flat", "peers=true", f"checkpoints.Other={other}"))
    res = evaluate_from_config(cfg)
    assert res.methods["toy_flat"] == ["GIFNet", "Other", "Gray", "Mean", "TakeA"]  # checkpoints, then peers by name
    flagged = {(m, img) for _, m, img, metric in res.roundoff if metric == "Qy"}
    assert ("Mean", "q0") in flagged and ("Mean", "q1") in flagged
    assert not any(metric != "Qy" for *_, metric in res.roundoff)
    out = bench["out"]
    per = _read_csv(out / "per_image.csv")
    assert {(r["method"], r["image"]) for r in per if r["roundoff"] == "1"} == flagged
    summary = {(r["method"], r["metric"]): r for r in _read_csv(out / "summary.csv")}
    sd = {m: float(summary[(m, "SD")]["mean"]) for m in res.methods["toy_flat"]}
    best_sd = max(sd, key=sd.get)
    assert summary[(best_sd, "SD")]["best"] == "1" and summary[(best_sd, "SD")]["rank"] == "1.0"
    second = sorted(sd, key=sd.get)[-2]
    assert summary[(second, "SD")]["second"] == "1" and summary[(second, "SD")]["rank"] == "2.0"
    assert summary[("Gray", "SD")]["rank"] == "5.0"  # SD = 0: last of five
    mean_qy = summary[("Mean", "Qy")]
    assert mean_qy["roundoff"] == "2" and mean_qy["n"] == "0" and mean_qy["mean"] == "nan"
    ranks = {m: float(summary[(m, "SD")]["avg_rank"]) for m in res.methods["toy_flat"]}
    assert all(1.0 <= r <= 5.0 for r in ranks.values())
    md = (out / "summary.md").read_text()
    assert "rank ↓" in md and "<ins>" in md and "**" in md
    assert _md_row(md, "toy_flat", "Mean")[2] == "† (2)"
    assert "Qy: " in md and "Mean/q0" in md and "left out of the means" in md
    # the comparison figure: sources, both checkpoints and the 2 best-ranked published methods, atomically written
    from gifnet.evaluation import write_figures
    from gifnet.evaluation.figure import detail_box

    fig = write_figures(res, out / "fig", image="q1", top=2)["toy_flat"]
    from PIL import Image

    w, h = Image.open(fig).size
    assert fig.name == "toy_flat.png" and w > 4 * h / 2 and not list(fig.parent.glob(".*.tmp"))
    with pytest.raises(ValueError, match="not an evaluated image"):
        write_figures(res, out / "fig", image="nope")
    x = np.zeros((40, 50))
    x[25:33, 30:38] = np.indices((8, 8)).sum(0) % 2 * 255  # the only texture: the detail box must hold it
    r, c, side = detail_box(x)
    assert side == 8 and r <= 25 and c <= 30 and r + side >= 32 and c + side >= 37
    tex = (out / "summary.tex").read_text()
    assert "\\underline{" in tex and "\\textbf{" in tex and "$\\dagger$" in tex
    # a missing peers folder is named before any work; without peers=true nothing of it is read
    (bench["dsets"] / "toy_flat.yaml").write_text(
        (bench["dsets"] / "toy_flat.yaml").read_text().replace(str(peers), str(tmp_path / "nowhere"))
    )
    with pytest.raises(FileNotFoundError, match="peers folder not found"):
        evaluate_from_config(load_eval_config(_args(bench, "eval=toy_flat", "peers=true")))
    assert evaluate_from_config(load_eval_config(_args(bench, "eval=toy_flat"))).methods["toy_flat"] == ["GIFNet"]


def test_shared_datasets_name_their_published_methods(shared: Path) -> None:
    """Lytro (MFIFB, 30 methods), VIFB (5) and TNO (2) have published fused images for every pair."""
    from gifnet.evaluation.run import _pairs, _peer_dirs

    if not (shared / "data" / "peers").is_dir():
        missing_shared("peers data not available")
    counts = {}
    for name in ("mfif_lytro", "ivif_vifb", "ivif_tno"):
        spec = load_dataset(name)
        stems = {s for s, _, _ in _pairs(spec, None, None)}
        dirs = _peer_dirs(spec)
        counts[name] = len(dirs)
        for d in dirs.values():
            assert {p.stem for p in d.iterdir()} >= stems, d
    assert counts == {"mfif_lytro": 30, "ivif_vifb": 5, "ivif_tno": 2}


def test_selection_and_limit(bench):
    res = evaluate_from_config(load_eval_config(_args(bench, "eval=seen", "limit=2", "name=null")))
    assert [d.name for d in res.datasets] == ["toy_ivif"] and res.images["toy_ivif"] == ["p0", "p1"]
    assert res.methods["toy_ivif"] == ["tiny"]  # name=null -> the checkpoint stem
    assert not res.failures
    md = (bench["out"] / "summary.md").read_text()
    assert "## Seen tasks" in md and "## Unseen tasks" not in md and "Failures: none." in md
    assert [d.name for d in select_datasets("unseen", ["ivif", "mfif"], bench["root"], bench["dsets"])] == ["toy_meif"]
    assert [d.name for d in select_datasets("toy_meif,toy_ivif", [], bench["root"], bench["dsets"])] == [
        "toy_meif",
        "toy_ivif",
    ]


def test_cli_script(bench):
    from gifnet.cli import main

    assert main(["evaluate", *_args(bench, "eval=toy_meif", "metrics.toy_meif=[Entropy]")]) == 0
    summary = _read_csv(bench["out"] / "summary.csv")
    assert {r["metric"] for r in summary} == {"Entropy"}
    assert main(["evaluate", *_args(bench, "eval=nope")]) == 1
    assert main(["evaluate", *_args(bench, "bogus_option=1")]) == 1


def test_shipped_dataset_configs():
    names = list_datasets()
    for n in ("ivif_tno", "ivif_vifb", "mfif_lytro", "meif_mefb", "medical_pet", "nir_vis", "remote", "enhance"):
        assert n in names
    order = {n: load_dataset(n, data_root="/data").metric_sources for n in ("ivif_vifb", "ivif_tno", "meif_mefb")}
    assert order == {"ivif_vifb": ("B", "A"), "ivif_tno": ("A", "B"), "meif_mefb": ("A", "B")}
    spec = load_dataset("ivif_vifb", data_root="/data")
    assert spec.root == Path("/data/ivif/VIFB") and spec.convention == "vifb" and len(spec.metrics) == 13
    assert load_dataset("enhance", data_root="/data").source_methods == {"Original": "A"}


# ---------------------------------------------------------------------------------------------- bad inputs
def test_unknown_dataset(bench):
    with pytest.raises(ValueError, match=r"unknown dataset.*toy_ivif"):
        evaluate_from_config(load_eval_config(_args(bench, "eval=nope")))
    with pytest.raises(ValueError, match=r"unknown dataset.*ivif_vifb"):
        load_dataset("nope")


def test_unknown_metric(bench):
    with pytest.raises(ValueError, match=r"unknown metric.*Bogus.*valid metrics: EN, SD"):
        evaluate_from_config(load_eval_config(_args(bench, "eval=toy_ivif", "metrics.toy_ivif=[EN,Bogus]")))
    with pytest.raises(ValueError, match=r"metrics.<dataset>: unknown dataset"):
        evaluate_from_config(load_eval_config(_args(bench, "eval=toy_ivif", "metrics.nope=[EN]")))


def test_unknown_convention_and_option(bench):
    _yaml(bench["dsets"] / "bad.yaml", "bad", "ivif", "ivif/Toy", "bogus", "null")
    with pytest.raises(ValueError, match=r"unknown convention 'bogus'; valid conventions: vifb, tang"):
        load_dataset("bad", bench["root"], bench["dsets"])
    with pytest.raises(ValueError, match="unknown option"):
        load_eval_config(_args(bench, "nonsense=1"))
    with pytest.raises(ValueError, match="checkpoint"):
        load_eval_config([])


def test_size_mismatch(bench, tmp_path):
    # an extra method's fused image of the wrong size, and a source pair of mismatched sizes
    bad = tmp_path / "Small"
    for i in range(3):
        write_image_atomic(bad / f"p{i}.png", np.zeros((SIZE - 4, SIZE), np.uint8))
    write_image_atomic(bench["root"] / "ivif" / "Toy" / "B" / "p2.png", np.zeros((SIZE, SIZE + 2), np.uint8))
    res = evaluate(bench["ckpt"], "toy_ivif", out=bench["out"], methods={"Small": bad}, progress=False,
                   data_root=bench["root"], datasets_dir=bench["dsets"])  # fmt: skip
    fails = {(f.method, f.image): f.error for f in res.failures}
    assert set(fails) == {("Small", "p0"), ("Small", "p1"), ("Small", "p2"), ("GIFNet", "p2")}
    assert "size mismatch" in fails[("Small", "p0")] and "size mismatch" in fails[("GIFNet", "p2")]
    md = (bench["out"] / "summary.md").read_text()
    assert "Failures (4):" in md and _md_row(md, "toy_ivif", "Small")[1] == "0/3"
    assert _md_row(md, "toy_ivif", "GIFNet")[1] == "2/3"


# -------------------------------------------------------------------------------------- golden (../shared)
def test_official_vifb_matches_golden(shared, tmp_path):
    ckpt = shared / "official" / "Final.model"
    if not ckpt.is_file():
        missing_shared("official checkpoint not available")
    res = evaluate_from_config(load_eval_config([
        f"checkpoint={ckpt}", "eval=ivif_vifb", "images=[walkingnight]", "limit=1", f"out={tmp_path}", "progress=false",
        f"paths.data_root={shared / 'data' / 'benchmarks'}",
        f"methods.ADF={shared / 'data' / 'metrics_golden' / 'vifb' / 'fused' / 'ADF'}",
    ]))  # fmt: skip
    assert not res.failures
    (image,) = res.images["ivif_vifb"]
    golden = {
        r["metric"]: float(r["value"])
        for r in _read_csv(shared / "data" / "metrics_golden" / "vifb" / "golden.csv")
        if r["image"] == image and r["method"] == "ADF"
    }
    ours = {r["metric"]: float(r["value"]) for r in _read_csv(tmp_path / "per_image.csv") if r["method"] == "ADF"}
    assert len(golden) == 13 and set(ours) == set(golden)
    for metric, g in golden.items():
        tol = max(1e-4 * abs(g), 0.5 * 10 ** (math.floor(math.log10(abs(g))) - 4))
        assert abs(ours[metric] - g) <= tol, (metric, ours[metric], g)
    assert {r["method"] for r in _read_csv(tmp_path / "summary.csv")} == {"GIFNet", "ADF"}


def test_compare_eval_script_reads_csv_and_markdown(tmp_path):
    import subprocess
    import sys


    (tmp_path / "full.md").write_text(
        "### d1 — task ivif, 3 image(s)\n\n| method | n | EN ↑ | MSE ↓ |\n|---|---|---|---|\n"
        "| GIFNet | 3/3 | **6.0000 ± 0.5000** | 0.1000 ± 0.0200 |\n| Other | 3/3 | 1.0 ± 0.1 | 1.0 ± 0.1 |\n"
    )
    (tmp_path / "sub.csv").write_text(
        "section,dataset,task,convention,method,metric,better,n,mean,std,best\n"
        "seen,d1,ivif,standard,GIFNet,EN,higher,1,6.25,0.0,0\nseen,d1,ivif,standard,GIFNet,MSE,lower,1,0.1,0.0,0\n"
    )
    script = str(PROJECT_ROOT / "scripts" / "compare_eval.py")
    r = subprocess.run([sys.executable, script, f"full={tmp_path / 'full.md'}", f"subset={tmp_path / 'sub.csv'}"],
                       capture_output=True, text=True, check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "| d1 | EN | 6 (3) | 6.25 (1) | +0.25 | +0.50 |" in r.stdout
    assert "| d1 | MSE | 0.1 (3) | 0.1 (1) | +0 | +0.00 |" in r.stdout


def test_any_per_image_error_is_recorded_and_the_evaluation_goes_on(bench, monkeypatch):
    import gifnet.evaluation.run as ev
    import gifnet.metrics as metrics_mod

    real_fuse, real_compute = ev._fuse_one, metrics_mod.compute_checked

    def fuse(fuser, pa, pb):
        if pa.stem == "p0":
            raise RuntimeError("decoder exploded")  # not a ValueError/OSError
        return real_fuse(fuser, pa, pb)

    def compute(convention, a, b, f, metrics, **kw):
        if getattr(compute, "n", 0) == 0:  # the first image that reaches the metrics
            compute.n = 1
            raise ZeroDivisionError("flat window")
        return real_compute(convention, a, b, f, metrics, **kw)

    monkeypatch.setattr(ev, "_fuse_one", fuse)
    monkeypatch.setattr(metrics_mod, "compute_checked", compute)
    res = evaluate(bench["ckpt"], "toy_ivif", out=bench["out"], progress=False, data_root=bench["root"],
                   datasets_dir=bench["dsets"])  # fmt: skip
    fails = {(f.method, f.image): f.error for f in res.failures}
    assert fails[("GIFNet", "p0")] == "fusion failed: RuntimeError: decoder exploded"
    assert fails[("GIFNet", "p1")].endswith("ZeroDivisionError: flat window")
    assert {img for _, _, img, _, _ in res.values} == {"p2"}
    assert "Failures (2):" in (bench["out"] / "summary.md").read_text()


def test_quick_suite_names_existing_images(shared):
    from gifnet.evaluation import list_suites, load_suite

    assert "quick" in list_suites()
    specs = load_suite("quick", shared / "data" / "benchmarks")
    assert len(specs) == 7 and all(len(s.images) == 4 for s in specs)
    for s in specs:  # every named image exists (the selection itself raises on a missing stem)
        from gifnet.evaluation.run import _pairs

        assert [stem for stem, _, _ in _pairs(s, None, None)] == list(s.images)


def _scored(res):
    return sorted(res.values), sorted(res.roundoff), [(f.dataset, f.method, f.image, f.error) for f in res.failures]


def test_metric_workers_give_the_same_result(bench):
    """Metrics in 2 worker processes (overlapping the fusion): the same values and failures, in the same order."""
    (bench["flat"] / "p2.png").write_bytes(b"not an image")  # one unreadable fused file: a failure either way
    kw = dict(methods={"Flat": {"toy_ivif": bench["flat"]}, "Mean": bench["mean"]}, progress=False,
              data_root=bench["root"], datasets_dir=bench["dsets"])  # fmt: skip
    serial = evaluate(bench["ckpt"], "all", out=bench["out"] / "serial", workers=0, **kw)
    pooled = evaluate(bench["ckpt"], "all", out=bench["out"] / "pooled", workers=2, **kw)
    assert pooled.workers == 2 and serial.workers == 0
    assert pooled.worker_nice in (0, 19) and serial.worker_nice == 0  # auto: by the load; no workers: none
    assert pooled.values == serial.values and _scored(pooled) == _scored(serial)
    assert {(f.method, f.image) for f in pooled.failures} == {("Flat", "p1"), ("Flat", "p2")}
    for name in ("per_image.csv", "summary.csv", "summary.md", "failures.csv"):
        texts = [(bench["out"] / d / name).read_text() for d in ("pooled", "serial")]
        timeless = [re.sub(r"wall time [0-9.]+ s|\n- time per dataset[^\n]*", "", t) for t in texts]
        assert timeless[0] == timeless[1], name
    with pytest.raises(ValueError, match="workers must be 'auto' or an integer >= 0"):
        evaluate(bench["ckpt"], "all", out=bench["out"] / "bad", workers=-1, **kw)
    for bad in (-1, 20, True, "19", "high"):
        with pytest.raises(ValueError, match="worker_nice must be 'auto' or an integer from 0 to 19"):
            evaluate(bench["ckpt"], "all", out=bench["out"] / "bad", workers=2, worker_nice=bad, **kw)


@pytest.mark.skipif(not hasattr(os, "nice"), reason="no process niceness on this platform")
@pytest.mark.parametrize("nice", [0, 7, 19])
def test_metric_workers_run_below_the_fusion_priority(nice):
    """The workers' niceness is the parent's plus ``nice`` (the kernel caps it at 19); the parent's is unchanged."""
    from gifnet.evaluation.jobs import MetricPool

    before = os.nice(0)
    with MetricPool(1, nice) as pool:
        assert pool._pool is not None
        assert pool._pool.submit(os.nice, 0).result() == min(19, before + nice)
    assert os.nice(0) == before


def test_worker_niceness_follows_the_load(monkeypatch, caplog):
    """``auto``: 19 on a free CPU, 0 beside other busy processes (which niced workers would wait for); an explicit
    niceness is kept, with a warning when the CPU is busy."""
    import gifnet.evaluation.jobs as jobs

    cases = [  # (busy fraction, setting, niceness the workers get, message)
        (0.9, "auto", 0, "worker_nice=auto"), (0.1, "auto", 19, None), (None, "auto", 19, None),
        (0.9, 19, 19, "worker_nice=0 or auto"), (0.9, 0, 0, None), (0.1, 7, 7, None),
    ]  # fmt: skip
    for busy, setting, nice, message in cases:
        monkeypatch.setattr(jobs, "_busy_fraction", lambda busy=busy: busy)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="gifnet.evaluation.jobs"), jobs.MetricPool(1, setting) as pool:
            assert pool.nice == nice, (busy, setting)
            assert pool._pool is not None and pool._pool.submit(os.nice, 0).result() >= nice
        said = [r.message for r in caplog.records]
        assert any(message in m for m in said) if message else not said, (busy, setting, said)
    assert jobs.MetricPool(0, "auto").nice == 0  # no workers: nothing niced


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="no /proc/stat")
def test_busy_fraction_sees_a_busy_process():
    """A process spinning on one core makes at least a share of one core of the machine's CPU time busy."""
    import subprocess
    import sys
    import time

    from gifnet.evaluation.jobs import _busy_fraction

    cores = os.cpu_count() or 1
    spin = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time() + 30\nwhile time.time() < t: pass"])
    try:
        time.sleep(0.3)  # let it start
        busy = _busy_fraction(0.5)
    finally:
        spin.kill()
        spin.wait()
    assert busy is not None and 0.8 / cores <= busy <= 1.0


def test_worker_jobs_are_timed_in_cpu_seconds(monkeypatch, tmp_path):
    """In this process a job's seconds are wall time; in a worker (below the fusion's priority, where it waits for
    the CPU) they are CPU time, so a wait is not counted as the metric's cost."""
    import time as _time

    import cv2

    import gifnet.evaluation.jobs as jobs
    import gifnet.metrics as gm

    img = tmp_path / "x.png"
    write_image_atomic(img, np.full((8, 8), 128, np.uint8))
    monkeypatch.setitem(gm.CONVENTIONS, "napping", {"NAP": (lambda a, b, f: _time.sleep(0.3) or 1.0, None)})
    wall = jobs.score_file("napping", str(img), str(img), str(img), ["NAP"])
    assert wall["values"] == [("NAP", 1.0, False)] and wall["timings"]["NAP"] >= 0.3
    monkeypatch.setattr(jobs, "_CLOCK", jobs._CLOCK)  # restored after the test, like the variables below
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(k, os.environ.get(k, "1"))
    threads = cv2.getNumThreads()
    try:
        jobs._init_worker(0)  # what a worker process runs first (niceness 0: this process keeps its priority)
        cpu = jobs.score_file("napping", str(img), str(img), str(img), ["NAP"])
    finally:
        cv2.setNumThreads(threads)
    assert cpu["values"] == wall["values"] and cpu["timings"]["NAP"] < 0.1


def test_fused_output_cache(bench, tmp_path, monkeypatch, caplog, torch_threads):
    """A second evaluation of the same checkpoint reads its fused files from the cache; any change of checkpoint,
    setting or source fuses again; an unwritable cache is reported and the evaluation goes on."""
    import gifnet.evaluation.run as ev

    kw = dict(progress=False, data_root=bench["root"], datasets_dir=bench["dsets"], cache_dir=tmp_path / "cache")
    first = evaluate(bench["ckpt"], "toy_ivif", out=bench["out"] / "1", **kw)
    assert first.cache["misses"] == 3 and first.cache["hits"] == 0
    entries = sorted((tmp_path / "cache" / "fused").rglob("*.json"))
    assert len(entries) == 3
    material = json.loads(entries[0].read_text())
    assert set(material) == {"checkpoint_sha256", "settings", "fusion_code", "torch", "sources_sha256"}
    assert material["settings"] == {"task": "ivif", "color_mode": "standard", "precision": "fp32",
                                    "device": f"cpu-{torch.backends.cpu.get_cpu_capability()}-"
                                              f"{torch.get_num_threads()}threads"}

    fused = []
    real = ev._fuse_one
    monkeypatch.setattr(ev, "_fuse_one", lambda fuser, pa, pb: fused.append(pa.stem) or real(fuser, pa, pb))
    again = evaluate(bench["ckpt"], "toy_ivif", out=bench["out"] / "2", **kw)
    assert fused == [] and again.cache["hits"] == 3 and again.values == first.values
    for stem in ("p0", "p1", "p2"):
        a, b = (bench["out"] / d / "fused" / "toy_ivif" / "GIFNet" / f"{stem}.png" for d in ("1", "2"))
        assert a.read_bytes() == b.read_bytes()
    # another setting, another source file or another checkpoint: fused again
    evaluate(bench["ckpt"], "toy_ivif", out=bench["out"] / "3", color_mode="official", **kw)
    assert fused == ["p0", "p1", "p2"]
    fused.clear()
    write_image_atomic(bench["root"] / "ivif" / "Toy" / "A" / "p1.png", np.zeros((SIZE, SIZE), np.uint8))
    evaluate(bench["ckpt"], "toy_ivif", out=bench["out"] / "4", **kw)
    assert fused == ["p1"]
    fused.clear()
    torch.manual_seed(1)
    other = save_checkpoint(tmp_path / "other.pt", GIFNet(enc_width=6, window=4).eval(), trained_tasks=["ivif"])
    evaluate(other, "toy_ivif", out=bench["out"] / "5", **kw)
    assert fused == ["p0", "p1", "p2"]
    fused.clear()
    # another thread count (MKL's products may differ in the last bits): fused again
    torch.set_num_threads(torch.get_num_threads() + 1)
    evaluate(bench["ckpt"], "toy_ivif", out=bench["out"] / "5t", **kw)
    assert fused == ["p0", "p1", "p2"]
    # a cache that cannot be written: one warning, the evaluation is complete
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should be")
    res = evaluate(bench["ckpt"], "toy_ivif", out=bench["out"] / "6", **{**kw, "cache_dir": blocked})
    assert len(res.values) == len(first.values) and not res.failures
    assert sum("cannot be written" in r.message for r in caplog.records) == 1


def test_timings_are_reported(bench):
    cfg = load_eval_config(_args(bench, "eval=toy_ivif", "workers=0"))
    res = evaluate_from_config(cfg)
    t = json.loads((bench["out"] / "timings.json").read_text())
    assert t["workers"] == 0 and t["worker_nice"] == 0 and t["seconds"] == pytest.approx(res.seconds)
    d = t["datasets"]["toy_ivif"]
    assert d["images"] == 3 and d["fusion"] > 0 and set(d["per_metric"]) == {"EN", "SD", "MSE"}
    assert d["metrics"] == pytest.approx(sum(d["per_metric"].values()))
    with pytest.raises(ValueError, match="cache must be true or false"):
        evaluate_from_config(load_eval_config(_args(bench, "eval=toy_ivif", "cache=maybe")))
    cfg = load_eval_config(_args(bench, "eval=toy_ivif", "workers=1", "worker_nice=5"))
    res = evaluate_from_config(cfg)
    assert res.workers == 1 and res.worker_nice == 5
    assert json.loads((bench["out"] / "timings.json").read_text())["worker_nice"] == 5

"""Study runner: a tiny study trains, stops mid-way, resumes, evaluates and tabulates; a rerun trains nothing."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import gifnet.engine.trainer as trainer_mod
import gifnet.study as study_mod
from gifnet.study import StudyError, load_study, run_study, study_status

FAST = ["model=tiny", "data.images=[camera,coins]", "data.repeat=2", "data.crop_size=24", "train.batch_size=2",
        "train.tensorboard=false", "train.progress=false", "train.image_every=0", "train.epochs=10",
        "train.max_steps=2", "train.save_every=1", "train.log_every=1"]  # fmt: skip


def _bench(tmp_path):
    """A generated two-pair IVIF benchmark, its dataset YAML and a 'quick' suite naming one of the pairs."""
    rng = np.random.default_rng(0)
    for sub in ("A", "B"):
        (tmp_path / "bench" / "ivif" / sub).mkdir(parents=True)
        for name in ("p1", "p2"):
            img = (rng.random((20, 24)) * 255).astype(np.uint8)
            Image.fromarray(img).save(tmp_path / "bench" / "ivif" / sub / f"{name}.png")
    cfgs = tmp_path / "evalcfg"
    (cfgs / "suites").mkdir(parents=True)
    (cfgs / "tiny_ivif.yaml").write_text(
        "name: tiny_ivif\ntask: ivif\nroot: ${paths.data_root}/ivif\na: A\nb: B\nconvention: standard\n"
        "metrics: [EN, SF, Qabf]\nmetric_sources: [A, B]\n"
    )
    (cfgs / "suites" / "quick.yaml").write_text("datasets:\n  tiny_ivif: [p2]\n")
    return [f"paths.data_root={tmp_path / 'bench'}", f"datasets_dir={cfgs}"]


def _study(tmp_path):
    return load_study({
        "name": "tiny", "base": FAST, "seeds": [0, 1], "baseline": "base", "eval": "quick",
        "variants": {"base": {}, "fixed": {"overrides": ["model.gating=fixed"]}},
        "table": {"tiny_ivif": ["Qabf", "SF"]}, "references": {"ref": str(tmp_path / "ref.pt")},
    }, root=tmp_path / "runs")  # fmt: skip


def test_tiny_study_stops_resumes_and_tabulates(tmp_path, monkeypatch):
    from gifnet.models import GIFNet, save_checkpoint

    ev = _bench(tmp_path)
    torch.manual_seed(9)
    save_checkpoint(tmp_path / "ref.pt", GIFNet(enc_width=6, window=4, mlp_ratio=1.0), trained_tasks=["ivif"])
    study = _study(tmp_path)
    runs = study.runs()
    assert [(r.variant, r.seed) for r in runs] == [("base", 0), ("base", 1), ("fixed", 0), ("fixed", 1)]
    assert runs[0].run_dir == tmp_path / "runs" / "tiny" / "base" / "seed0"

    # stop in the middle: the third run dies after its first iteration (as a killed session would)
    real = trainer_mod.Trainer.train_iteration
    calls = {"n": 0}

    def dying(self, batch):
        calls["n"] += 1
        if calls["n"] == 6:  # runs 1 and 2 took 2 iterations each; this is run 3's second iteration
            raise KeyboardInterrupt
        return real(self, batch)

    monkeypatch.setattr(trainer_mod.Trainer, "train_iteration", dying)
    with pytest.raises(KeyboardInterrupt):
        run_study(study, results_dir=tmp_path / "res", eval_overrides=ev)
    states = [r["state"] for r in study_status(study)["runs"]]
    assert states == ["done", "done", "partial", "todo"]
    # the table fills as runs land: both finished runs are already evaluated and tabulated
    early = (tmp_path / "res" / "table.md").read_text()
    assert "`base`" in early
    assert all((r.run_dir / "eval" / "quick" / "per_image.csv").is_file() for r in runs[:2])
    st = study_status(study)
    assert st["runs"][2]["iteration"] == 1 and st["eta_s"] is not None and st["eta_s"] > 0
    monkeypatch.setattr(trainer_mod.Trainer, "train_iteration", real)

    # a finished run whose process stopped before scoring it is scored first, before any more training
    shutil.rmtree(runs[1].run_dir / "eval")
    real_train, scored_first = study_mod.train_run, []

    def train_checking(run, overrides):
        scored_first.append((runs[1].run_dir / "eval" / "quick" / "summary.csv").is_file())
        return real_train(run, overrides)

    monkeypatch.setattr(study_mod, "train_run", train_checking)
    out = run_study(study, results_dir=tmp_path / "res", eval_overrides=ev)
    assert scored_first == [True, True]
    assert out["trained"] == ["fixed/seed0", "fixed/seed1"]
    # the resumed run equals a straight run of the same variant and seed
    straight = load_study({**_raw(study), "name": "straight", "references": {}}, root=tmp_path / "runs")
    run_study(straight, results_dir=tmp_path / "res2", only=["fixed"], eval_overrides=ev)
    a = torch.load(runs[2].last, weights_only=True)["state_dict"]
    b = torch.load(straight.runs()[2].last, weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the resumed run's loss log has each iteration once
    rows = list(csv.DictReader(open(runs[2].run_dir / "losses.csv")))
    iters = [int(r["iteration"]) for r in rows if r["name"] == "ivif/total"]
    assert iters == [1, 2]

    table = (tmp_path / "res" / "table.md").read_text()
    assert "`base`" in table and "`fixed`" in table and "Δ" in table and "baseline range" in table
    assert "`ref` (reference)" in table and "percentage of the reference `ref`" in table
    with open(tmp_path / "res" / "table.csv") as f:
        cells = list(csv.DictReader(f))
    base_q = [c for c in cells if c["row"] == "base" and c["metric"] == "Qabf"][0]
    assert base_q["n_seeds"] == "2" and float(base_q["sd"]) >= 0
    per_run = [r for r in csv.DictReader(open(tmp_path / "res" / "runs.csv")) if r["metric"] == "Qabf"]
    vals = [float(r["value"]) for r in per_run if r["variant"] == "base"]
    assert float(base_q["mean"]) == pytest.approx(np.mean(vals), rel=1e-12)
    assert (tmp_path / "res" / "metrics.png").stat().st_size > 1000
    assert (tmp_path / "res" / "losses.png").stat().st_size > 1000
    # the suite evaluated only its image
    per_image = list(csv.DictReader(open(runs[0].run_dir / "eval" / "quick" / "per_image.csv")))
    assert {r["image"] for r in per_image} == {"p2"}

    # rerun: trains nothing, evaluates nothing new, rebuilds the same table
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs" / "tiny").rglob("*.pt")}
    again = run_study(study, results_dir=tmp_path / "res", eval_overrides=ev)
    assert again["trained"] == [] and (tmp_path / "res" / "table.md").read_text() == table
    assert mtimes == {p: p.stat().st_mtime_ns for p in (tmp_path / "runs" / "tiny").rglob("*.pt")}


def _raw(study):
    return {"name": study.name, "base": study.base, "baseline": study.baseline, "eval": study.eval,
            "variants": {k: {"overrides": v["overrides"], "seeds": v["seeds"]} for k, v in study.variants.items()},
            "table": study.table}  # fmt: skip


def test_dry_run_lists_and_trains_nothing(tmp_path, capsys):
    study = _study(tmp_path)
    out = run_study(study, dry_run=True)
    text = capsys.readouterr().out
    assert out["dry_run"] and "left 4" in text and "base" in text
    assert not (tmp_path / "runs").exists()


def test_diverging_run_is_recorded_and_the_study_goes_on(tmp_path, monkeypatch):
    ev = _bench(tmp_path)
    study = load_study({"name": "nan", "base": FAST, "variants": {"a": {}, "b": {}}, "eval": "quick"},
                       root=tmp_path / "runs")  # fmt: skip
    real = trainer_mod.compute_step_loss

    def poisoned(model, batch, spec, *args, **kwargs):
        loss, sc, im = real(model, batch, spec, *args, **kwargs)
        if model.config.gate_value == 0.1 and not getattr(poisoned, "done", False):
            poisoned.done = True
            loss = loss * float("nan")
        return loss, sc, im

    monkeypatch.setattr(trainer_mod, "compute_step_loss", poisoned)
    out = run_study(study, results_dir=tmp_path / "res", eval_overrides=ev)
    assert out["failed"] == ["a/seed0"] and out["trained"] == ["b/seed0"]
    assert "failed" in json.dumps(study_status(study)["runs"][0])
    assert "`a` seed 0 (failed" in (tmp_path / "res" / "table.md").read_text()


@pytest.mark.parametrize(
    "raw, match",
    [
        ({"name": "x", "variants": {}}, "variants is empty"),
        ({"name": "x", "variants": {"a": {"seeds": [-1]}}}, "seeds"),
        ({"name": "x", "variants": {"a": {"seeds": [1, 1]}}}, "repeats"),
        ({"name": "x", "variants": {"a": {"overrides": ["seed=3"]}}}, "set by the study runner"),
        ({"name": "x", "variants": {"a": {"oops": 1}}}, "unknown key"),
        ({"name": "x", "variants": {"a": {}}, "baseline": "b"}, "not a variant"),
        ({"name": "../x", "variants": {"a": {}}}, "plain folder name"),
        ({"name": "x", "variants": {"a": {}}, "colour": 1}, "unknown key"),
    ],
)
def test_bad_study_configs_are_clear(raw, match):
    with pytest.raises(StudyError, match=match):
        load_study(raw)


def test_every_study_config_composes_its_runs():
    from gifnet.config import compose
    from gifnet.paths import PROJECT_ROOT
    from gifnet.study import compose_train_config

    names = sorted(p.stem for p in (PROJECT_ROOT / "configs" / "study" / "study").glob("*.yaml"))
    assert "ablation_cpu" in names and "ablation_full" in names
    for name in names:
        cfg = compose("study", [f"study={name}"])
        study = load_study(cfg.study)
        for run in study.runs():
            tc = compose_train_config(run.overrides)
            assert tc.seed == run.seed and tc.data.seed == run.seed


def test_study_script_under_torchrun(tmp_path):
    """``torchrun`` with 2 CPU ranks: every run trains with DDP, rank 0 evaluates and writes the table."""
    import os
    import subprocess
    import sys

    from test_train import _free_port

    from gifnet.paths import PROJECT_ROOT

    ev = _bench(tmp_path)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", str(PROJECT_ROOT / "scripts" / "study.py"), "study=smoke",
           f"root={tmp_path / 'runs'}", f"results_dir={tmp_path / 'res'}", "study.seeds=[0]",
           "eval_overrides=[" + ",".join(f"'{o}'" for o in ev) + "]"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600, check=False,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    for v in ("base", "gating_fixed"):
        s = json.loads((tmp_path / "runs" / "smoke" / v / "seed0" / "summary.json").read_text())
        assert s["world_size"] == 2 and s["ranks_in_sync"] is True and s["iterations"] == 2
    assert "`gating_fixed`" in (tmp_path / "res" / "table.md").read_text()


def test_a_run_trained_with_another_recipe_is_not_reused(tmp_path):
    ev = _bench(tmp_path)
    raw = {"name": "drift", "base": FAST, "variants": {"a": {}}, "eval": "quick"}
    run_study(load_study(raw, root=tmp_path / "runs"), results_dir=tmp_path / "res", eval_overrides=ev)
    edited = load_study({**raw, "base": [*FAST, "optim.lr=1e-3"]}, root=tmp_path / "runs")
    with pytest.raises(StudyError, match=r"another configuration .*optim.lr: 0.0003 -> 0.001"):
        run_study(edited, results_dir=tmp_path / "res", eval_overrides=ev)


def test_committed_records_carry_a_study_into_a_fresh_checkout(tmp_path, monkeypatch):
    """runs/ is not kept: the records written beside the table keep finished runs (and the reference) finished."""
    from gifnet.models import GIFNet, save_checkpoint

    ev = _bench(tmp_path)
    torch.manual_seed(3)
    save_checkpoint(tmp_path / "ref.pt", GIFNet(enc_width=6, window=4, mlp_ratio=1.0), trained_tasks=["ivif"])
    raw = {"name": "rec", "base": FAST, "seeds": [0], "baseline": "a", "eval": "quick",
           "variants": {"a": {}, "b": {"overrides": ["model.gating=fixed"]}},
           "table": {"tiny_ivif": ["Qabf", "SF"]}, "references": {"ref": str(tmp_path / "ref.pt")}}  # fmt: skip
    res = tmp_path / "res"
    run_study(load_study(raw, root=tmp_path / "runs"), results_dir=res, only=["a"], eval_overrides=ev)
    rec = res / "records" / "a" / "seed0"
    record = json.loads((rec / "record.json").read_text())
    assert record["overrides"][-2:] == ["seed=0", "data.seed=0"] and len(record["checkpoint_sha256"]) == 64
    assert record["status"]["finished"] and (rec / "identity.yaml").is_file()
    losses = list(csv.DictReader(open(rec / "losses.csv")))
    assert losses and all(r["name"].endswith("/total") for r in losses)
    assert (res / "records" / "reference" / "ref" / "summary.csv").is_file()
    table = (res / "table.md").read_text()
    assert "`a`" in table and "`b` seed 0 (todo)" in table

    # a fresh checkout: the run folders are gone, the records (committed) are not
    shutil.rmtree(tmp_path / "runs")
    study = load_study(raw, root=tmp_path / "runs")
    study.results_dir = res
    assert [r["state"] for r in study_status(study)["runs"]] == ["recorded", "todo"]

    def no_eval(*a, **k):
        raise AssertionError("a recorded run or reference was evaluated again")

    monkeypatch.setattr(study_mod, "evaluate_checkpoint", no_eval)
    again = run_study(study, results_dir=res, train=False, eval_overrides=ev)
    assert again["trained"] == [] and (res / "table.md").read_text() == table
    assert (res / "losses.png").is_file()
    # training goes on with what is missing only
    monkeypatch.undo()
    trained = []
    monkeypatch.setattr(study_mod, "train_run", lambda run, extra: trained.append(run.variant) or {})
    run_study(study, results_dir=res, only=["a", "b"], eval_overrides=ev)
    assert trained == ["b"]
    # a record of another recipe is refused, as a run folder is
    edited = load_study({**raw, "base": [*FAST, "optim.lr=1e-3"]}, root=tmp_path / "runs")
    with pytest.raises(StudyError, match=r"res[/\\]records[/\\]a[/\\]seed0: trained with another configuration"):
        run_study(edited, results_dir=res, train=False, eval_overrides=ev)

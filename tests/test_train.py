"""Training engine: configs compose, every experiment smoke-runs, exact resume, NaN guard, DDP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import gifnet.engine.trainer as trainer_mod
from gifnet.engine.sampler import ResumableSampler
from gifnet.engine.steps import StepSpec, parse_steps
from gifnet.engine.trainer import NonFiniteLossError, Trainer
from gifnet.models import load_checkpoint
from gifnet.paths import PROJECT_ROOT

CONFIG_DIR = PROJECT_ROOT / "configs" / "train"  # the search-path root of `gifnet train`
EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
TASKS = sorted(p.stem for p in (CONFIG_DIR / "task").glob("*.yaml"))
# Tiny, fast runs: two demo photographs, 24-px crops, batch 2, no TensorBoard, no progress bar.
FAST = [
    "data.images=[camera,coins]",
    "data.repeat=2",
    "data.crop_size=24",
    "train.batch_size=2",
    "train.tensorboard=false",
    "train.progress=false",
    "train.image_every=0",
]


def compose_train(overrides: list[str]):
    from gifnet.config import compose

    return compose("train", overrides)


def test_main_config_defaults():
    cfg = compose_train([])
    assert cfg.task.name == "joint" and cfg.model.dual_stream and cfg.data.source == "demo"
    assert [s["task"] for s in cfg.task.steps] == ["ivif", "mfif", "meif"]


@pytest.mark.parametrize("task", TASKS)
def test_every_task_config_parses(task):
    cfg = compose_train([f"task={task}"])
    steps = parse_steps(list(cfg.task.steps))
    assert set(cfg.task.trained_tasks) == {s.task for s in steps}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_smoke_runs_one_step(experiment, tmp_path):
    # data=demo: the smoke run uses the embedded photographs whatever data the experiment names (cpu_joint: pairs)
    cfg = compose_train([f"experiment={experiment}", "data=demo", "train.max_steps=1", *FAST])
    summary = Trainer(cfg, tmp_path).fit()
    assert summary["iterations"] == 1
    totals = {k: v for k, v in summary["last_losses"].items() if k.endswith("/total")}
    assert totals and all(0 < v < 10 for v in totals.values())  # positive and sane (the trainer raises on NaN)
    model, meta = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert meta["trained_tasks"] == list(cfg.task.trained_tasks)
    assert model.config.to_dict() == {k: v for k, v in cfg.model.items() if k != "_target_"}


def test_experiment_official_is_the_released_protocol():
    cfg = compose_train(["experiment=official"])
    assert [s["task"] for s in cfg.task.steps] == ["ivif", "mfif"]
    assert cfg.optim.lr == 1e-3 and cfg.optim.scheduler == "constant" and cfg.optim.grad_clip is None
    assert cfg.train.batch_size == 8 and cfg.train.epochs == 2 and cfg.loss.msssim == "official"
    assert cfg.optim.warmup_steps == 0 and cfg.data.augment is False


def _params(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_resume_is_bit_identical(tmp_path):
    base = ["model=tiny", "train.save_every=2", "train.epochs=3", *FAST]
    straight = Trainer(compose_train([*base, "train.max_steps=4"]), tmp_path / "a")
    straight.fit()
    first = Trainer(compose_train([*base, "train.max_steps=2"]), tmp_path / "b")
    first.fit()
    ckpt = tmp_path / "b" / "checkpoints" / "iter_0000002.pt"
    resumed = Trainer(compose_train([*base, "train.max_steps=4", f"resume={ckpt}"]), tmp_path / "c")
    assert resumed.iteration == 2
    resumed.fit()
    a, c = _params(straight.model), _params(resumed.model)
    assert a.keys() == c.keys()
    assert all(torch.equal(a[k], c[k]) for k in a)
    sa, sc = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(sa[i]["exp_avg"], sc[i]["exp_avg"]) for i in sa)


def test_resume_crosses_epoch_boundary(tmp_path):
    # 4 samples, batch 2 → 2 iterations per epoch: resume at 3 lands mid-epoch 1
    base = ["model=tiny", "train.save_every=1", "train.epochs=3", *FAST]
    straight = Trainer(compose_train([*base, "train.max_steps=5"]), tmp_path / "a")
    straight.fit()
    Trainer(compose_train([*base, "train.max_steps=3"]), tmp_path / "b").fit()
    resumed = Trainer(
        compose_train([*base, "train.max_steps=5", f"resume={tmp_path / 'b/checkpoints/iter_0000003.pt'}"]),
        tmp_path / "c",
    )
    assert (resumed.epoch, resumed.batch_in_epoch) == (1, 1)
    resumed.fit()
    a, c = _params(straight.model), _params(resumed.model)
    assert all(torch.equal(a[k], c[k]) for k in a)


def test_resume_rejects_other_architecture(tmp_path):
    Trainer(compose_train(["model=tiny", "train.max_steps=1", *FAST]), tmp_path / "a").fit()
    with pytest.raises(ValueError, match="model config differs"):
        Trainer(
            compose_train(["model=tiny", "model.gating=fixed", f"resume={tmp_path / 'a/checkpoints/last.pt'}", *FAST]),
            tmp_path / "b",
        )


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    real = trainer_mod.compute_step_loss
    calls = {"n": 0}

    def poisoned(model, batch, spec, *args, **kwargs):
        calls["n"] += 1
        loss, sc, im = real(model, batch, spec, *args, **kwargs)
        if calls["n"] > 3:  # iteration 2's first step (3 steps per joint iteration)
            loss = loss * float("nan")
        return loss, sc, im

    monkeypatch.setattr(trainer_mod, "compute_step_loss", poisoned)
    t = Trainer(compose_train(["model=tiny", "train.max_steps=5", "train.save_every=1", *FAST]), tmp_path)
    with pytest.raises(NonFiniteLossError, match="non-finite ivif loss .* iteration 1"):
        t.fit()
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert ckpts == ["iter_0000001.pt", "last.pt"]
    _, meta = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert meta["progress"]["iteration"] == 1


def test_natural_images_without_ir_skip_the_ivif_loss(tmp_path):
    from gifnet.engine.steps import LossConfig, compute_step_loss
    from gifnet.losses import build_ivif_weighting
    from gifnet.models import GIFNet

    m = GIFNet(enc_width=6, window=4)
    batch = {k: torch.rand(2, 1, 16, 16) for k in ("ir", "vis", "near", "far", "under", "over")}
    spec = StepSpec(task="ivif", inputs=("ir", "vis"), stream="mm", loss="ivif", other=("near", "far"))
    w = build_ivif_weighting("gradient")
    batch["has_ir"] = torch.tensor([False, False])
    assert compute_step_loss(m, batch, spec, LossConfig(), w)[0] is None
    batch["has_ir"] = torch.tensor([True, False])
    loss, _, images = compute_step_loss(m, batch, spec, LossConfig(), w)
    assert loss is not None and images["fused"].shape[0] == 1


def test_bad_step_specs_are_rejected():
    with pytest.raises(ValueError, match="unknown sample member"):
        StepSpec(task="x", inputs=("ir", "thermal"), stream="mm", loss="ivif")
    with pytest.raises(ValueError, match="stream"):
        StepSpec(task="x", inputs=("near", "far"), stream="ivif", loss="dp")
    with pytest.raises(ValueError, match="needs inputs"):
        StepSpec(task="x", inputs=("near", "far"), stream="mm", loss="ivif")
    with pytest.raises(ValueError, match="repeats"):
        parse_steps([{"task": "a", "inputs": ["near", "far"], "stream": "dp", "loss": "dp"}] * 2)


def test_bad_config_values_are_clear(tmp_path):
    with pytest.raises(ValueError, match="precision"):
        Trainer(compose_train(["precision=fp8", *FAST]), tmp_path)
    with pytest.raises(ValueError, match="scheduler"):
        Trainer(compose_train(["optim.scheduler=linear", "model=tiny", *FAST]), tmp_path)


def test_sampler_shards_global_batches_and_resumes():
    one = ResumableSampler(10, batch_size=4, seed=3)
    two = [ResumableSampler(10, batch_size=2, seed=3, rank=r, world_size=2) for r in range(2)]
    b1 = one.rank_batches()
    b2 = [s.rank_batches() for s in two]
    assert len(b1) == len(b2[0]) == 3
    for g in range(3):
        assert sorted(b1[g]) == sorted(b2[0][g] + b2[1][g])
    one.set_epoch(0, start_batch=1)
    assert one.rank_batches() == b1[1:]
    one.set_epoch(1)
    assert one.rank_batches() != b1
    assert sorted(sum(one.rank_batches(), [])) == list(range(10))


def test_bf16_autocast_runs(tmp_path):
    # one iteration from the same initial weights and batch: bf16 changes the losses by rounding only
    bf16 = Trainer(compose_train(["model=tiny", "precision=bf16", "train.max_steps=1", *FAST]), tmp_path / "b").fit()
    fp32 = Trainer(compose_train(["model=tiny", "train.max_steps=1", *FAST]), tmp_path / "f").fit()
    totals = [k for k in fp32["last_losses"] if k.endswith("/total")]
    assert totals
    # autocast is active (the values differ) and only rounds (a few percent at most)
    assert any(bf16["last_losses"][k] != fp32["last_losses"][k] for k in totals)
    for k in totals:
        assert bf16["last_losses"][k] == pytest.approx(fp32["last_losses"][k], rel=0.05), k


def test_tensorboard_logs_written(tmp_path):
    overrides = [o for o in FAST if not o.startswith(("train.tensorboard", "train.image_every"))]
    Trainer(compose_train(["model=tiny", "train.max_steps=2", "train.image_every=1", *overrides]), tmp_path).fit()
    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 1000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_script(args: list[str], cwd: Path, torchrun: int = 0, env_extra: dict | None = None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    cmd = [sys.executable]
    if torchrun:
        cmd += ["-m", "torch.distributed.run", f"--nproc_per_node={torchrun}", "--master_addr=127.0.0.1",
                f"--master_port={_free_port()}"]
    cmd += [str(PROJECT_ROOT / "scripts" / "train.py"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False, cwd=cwd)


def test_ddp_two_processes_match_one_process(tmp_path):
    """2 CPU ranks × batch 2 == 1 process × batch 4 on the same global batches; ranks stay identical.

    The official MS-SSIM* pools statistics over the (per-rank) batch, so it is not decomposable across
    ranks; this check runs without the reconstruction loss term (everything else is rank-exact).
    """
    common = ["model=tiny", "train.max_steps=2", "loss.rec_weight=0", "data.images=[camera,coins]",
              "data.repeat=4", "data.crop_size=24", "train.tensorboard=false", "train.progress=false"]
    r2 = _run_script([*common, "train.batch_size=2", f"hydra.run.dir={tmp_path / 'ddp'}"], tmp_path, torchrun=2)
    assert r2.returncode == 0, r2.stderr[-3000:]
    r1 = _run_script([*common, "train.batch_size=4", f"hydra.run.dir={tmp_path / 'single'}"], tmp_path)
    assert r1.returncode == 0, r1.stderr[-3000:]
    s2 = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert s2["world_size"] == 2 and s2["ranks_in_sync"] is True
    # non-zero ranks create no folder or log file of their own (the subprocesses run in tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "single"]
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == sorted(
        p.name for p in (tmp_path / "single").iterdir()
    )
    m2, _ = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")
    m1, _ = load_checkpoint(tmp_path / "single" / "checkpoints" / "last.pt")
    for (k, a), (_, b) in zip(m1.state_dict().items(), m2.state_dict().items()):
        # all-reduce sums in another order; Adam's m/sqrt(v) turns that into ≤ a few 1e-6 on rare elements
        assert torch.allclose(a, b, atol=1e-5, rtol=0), (k, (a - b).abs().max())



def test_exit_after_distributed_run_flushes_and_keeps_the_code(tmp_path):
    """After a process group was used: buffered output and log lines reach their files, the code is kept.

    Without a process group it returns (one-process runs and this test process end normally).
    """
    from gifnet.engine.distributed import exit_after_distributed_run

    assert exit_after_distributed_run(0) is None  # no process group in this process: a no-op
    log = tmp_path / "run.log"
    code = (
        "import logging, sys\n"
        "import gifnet.engine.distributed as d\n"
        f"logging.basicConfig(filename={str(log)!r}, level=logging.INFO)\n"
        "logging.getLogger('x').info('last line')\n"
        "sys.stdout.write('unflushed')\n"
        "d._USED = True\n"
        "d.exit_after_distributed_run(3)\n"
        "print('not reached')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 3, r.stderr
    assert r.stdout == "unflushed"
    assert "last line" in log.read_text()

@pytest.mark.slow
def test_short_real_run_lowers_every_loss(shared, tmp_path):
    """A short CPU run on real LLVIP pairs lowers every loss term, measured on one fixed batch before/after."""
    from torch.utils.data import default_collate

    from gifnet.engine.steps import compute_step_loss

    root = shared / "data" / "train" / "ivif" / "LLVIP-samples"
    overrides = ["data=pairs", f"data.root={root}", "data.natural=null", "data.crop_size=64",
                 "train.batch_size=4", "train.max_steps=40", "optim.warmup_steps=10", "optim.lr=3e-4",
                 "train.progress=false", "train.image_every=0", "train.tensorboard=false"]
    t = Trainer(compose_train(overrides), tmp_path)
    fixed = default_collate([t.dataset[i] for i in range(8)])

    @torch.no_grad()
    def losses() -> dict[str, float]:
        out = {}
        for spec in t.steps:
            _, sc, _ = compute_step_loss(t.model, fixed, spec, t.loss_cfg, t.weighting)
            out.update({k: v for k, v in sc.items() if k.endswith(("/fuse", "/rec"))})
        return out

    before = losses()
    t.fit()
    after = losses()
    assert set(before) == {f"{s}/{k}" for s in ("ivif", "mfif", "meif") for k in ("fuse", "rec")}
    for k in before:
        assert after[k] < before[k], (k, before[k], after[k])


def test_validation_writes_best_checkpoint(tmp_path):
    val = ["val=${data}", "train.val_every=1"]  # validate on the (fixed-crop) training source
    t = Trainer(compose_train(["model=tiny", "train.max_steps=2", *val, *FAST]), tmp_path)
    t.fit()
    assert (tmp_path / "checkpoints" / "best.pt").is_file()
    _, meta = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert meta["best_val"] == t.best_val < float("inf")


def test_epoch_bookkeeping_when_the_run_ends_on_an_epoch_boundary(tmp_path):
    # 4 samples, batch 2 → 2 iterations per epoch; 4 iterations = exactly 2 epochs
    t = Trainer(compose_train(["model=tiny", "train.epochs=2", *FAST]), tmp_path)
    summary = t.fit()
    assert summary["iterations"] == 4 and summary["epochs_completed"] == 2
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["epoch_001.pt", "epoch_002.pt", "last.pt"]
    _, meta = load_checkpoint(tmp_path / "checkpoints" / "epoch_001.pt")
    assert meta["progress"] == {"iteration": 2, "epoch": 1, "batch_in_epoch": 0}


def test_init_starts_from_any_weights_with_a_fresh_optimiser(tmp_path):
    from gifnet.models.convert import sha256_of

    src = Trainer(compose_train(["model=tiny", "task=ivif", "train.max_steps=2", *FAST]), tmp_path / "src")
    src.fit()
    ckpt = tmp_path / "src" / "checkpoints" / "last.pt"
    t = Trainer(compose_train(["model=tiny", "task=meif", f"init={ckpt}", "train.max_steps=2", *FAST]),
                tmp_path / "ft")  # fmt: skip
    assert t.iteration == 0 and not t.optimizer.state_dict()["state"]  # fresh optimiser and schedule
    assert all(torch.equal(a, b) for a, b in zip(_params(src.model).values(), _params(t.model).values()))
    assert t.trained_tasks == ["ivif", "meif"]  # union: the source's, then the run's
    t.fit()
    _, meta = load_checkpoint(tmp_path / "ft" / "checkpoints" / "last.pt")
    assert meta["trained_tasks"] == ["ivif", "meif"]
    init = meta["provenance"]["init_from"]
    assert init["format"] == "gifnet" and init["sha256"] == sha256_of(ckpt) and init["trained_tasks"] == ["ivif"]
    # resuming the fine-tuning run keeps what it was trained on and where its weights came from
    r = Trainer(compose_train(["model=tiny", "task=meif", f"init={ckpt}", "train.max_steps=3",
                               f"resume={tmp_path / 'ft' / 'checkpoints' / 'last.pt'}", *FAST]), tmp_path / "ft")
    assert r.iteration == 2 and r.trained_tasks == ["ivif", "meif"] and r.init_from["sha256"] == init["sha256"]


def test_init_from_the_official_format(tmp_path):
    from test_checkpoint import _official_like_state_dict

    from gifnet.models import GIFNet

    torch.manual_seed(4)
    src = GIFNet()
    torch.save(_official_like_state_dict(src), tmp_path / "Final.model")
    t = Trainer(compose_train([f"init={tmp_path / 'Final.model'}", "train.max_steps=1", *FAST]), tmp_path / "run")
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), t.model.state_dict().values()))
    assert t.trained_tasks == ["ivif", "mfif", "meif"] and t.init_from["format"] == "official"


def test_init_with_another_architecture_names_the_differences(tmp_path):
    Trainer(compose_train(["model=tiny", "train.max_steps=1", *FAST]), tmp_path / "a").fit()
    with pytest.raises(ValueError, match=r"init=.*gating: 'learned' \(init\) vs 'fixed' \(run\)"):
        Trainer(compose_train(["model=tiny", "model.gating=fixed", f"init={tmp_path / 'a/checkpoints/last.pt'}",
                               *FAST]), tmp_path / "b")  # fmt: skip


def test_losses_are_logged_to_csv_and_console(tmp_path, caplog):
    import csv
    import logging

    with caplog.at_level(logging.INFO, logger="gifnet.engine.trainer"):
        Trainer(compose_train(["model=tiny", "train.max_steps=2", "train.log_every=1", *FAST]), tmp_path).fit()
    rows = list(csv.DictReader(open(tmp_path / "losses.csv")))
    assert {r["name"] for r in rows} >= {"ivif/total", "mfif/total", "meif/total"}
    assert sorted({int(r["iteration"]) for r in rows}) == [1, 2]
    assert any("iter 2/2" in m and "ivif=" in m for m in caplog.messages)
    start = [m for m in caplog.messages if m.startswith("run folder ")]
    assert len(start) == 1 and str(tmp_path) in start[0] and "samples per epoch" in start[0]
    assert "2 iterations (from 0); losses every 1 iterations" in start[0]
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["finished"] and status["iteration"] == 2 and status["seconds_per_iter"] > 0


def test_the_trainer_builds_its_loader_with_the_one_builder(tmp_path):
    """gifnet.data.build_dataloader is the project's one loader builder: the trainer's resumable batches go
    through it (worker seeding included)."""
    from gifnet.data.datasets import seed_worker
    from gifnet.engine.sampler import BatchListSampler

    t = Trainer(compose_train(["model=tiny", "train.max_steps=1", *FAST]), tmp_path)
    assert isinstance(t.loader.batch_sampler, BatchListSampler) and t.loader.worker_init_fn.func is seed_worker
    batches = [b["vis"].shape for b in t.loader]
    assert batches == [(2, 1, 24, 24)] * t.iters_per_epoch

"""Training runner: alternating per-task optimiser steps, logging, atomic checkpoints, exact resume, DDP.

One iteration takes one batch and runs every :class:`~gifnet.engine.steps.StepSpec` of the task config in
order, each with its own ``zero_grad`` / ``backward`` / ``optimizer.step()`` on one shared optimiser
(the released protocol: IVIF step, then MFIF step with the weights just updated).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from gifnet.data.datasets import build_dataloader
from gifnet.devices import TRAINING_PRECISIONS, check_precision, resolve_device, warn_if_slow_precision
from gifnet.losses import build_ivif_weighting
from gifnet.models import GIFNet
from gifnet.models.checkpoint import read_checkpoint, save_checkpoint
from gifnet.paths import atomic_path
from gifnet.runtime import keep_freed_memory

from .distributed import DistInfo, average_gradients, broadcast_parameters, init_distributed
from .resume import check_same_recipe
from .sampler import BatchListSampler, ResumableSampler
from .settings import check_memory, check_total_iters, validate_train_config
from .steps import LossConfig, compute_step_loss, parse_steps

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """A loss became NaN/Inf; the run stops and the last good checkpoint is kept."""


def autocast_context(precision: str, device: torch.device) -> contextlib.AbstractContextManager | None:
    check_precision(precision, TRAINING_PRECISIONS)
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    if precision == "fp16":
        if device.type != "cuda":
            raise ValueError("precision=fp16 needs CUDA; use bf16 on CPU")
    return torch.autocast(device_type="cuda", dtype=torch.float16)


def rng_state() -> dict[str, Any]:
    """All global RNG states, as tensors and plain types only (checkpoints load with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 - global state of third-party code
    state = {
        "python": random.getstate(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeds third-party users of the global generator
    torch.manual_seed(seed)


def build_optimizer(params, cfg: DictConfig) -> torch.optim.Optimizer:
    name = str(cfg.get("name", "adam")).lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)
    raise ValueError(f"optim.name must be adam or adamw, got {name!r}")


def build_scheduler(opt: torch.optim.Optimizer, cfg: DictConfig, total_iters: int):
    kind = str(cfg.get("scheduler", "constant"))
    warmup = int(cfg.get("warmup_steps", 0))
    min_ratio = float(cfg.get("min_lr", 0.0)) / float(cfg.lr) if cfg.lr else 0.0
    if kind not in ("constant", "cosine"):
        raise ValueError(f"optim.scheduler must be constant or cosine, got {kind!r}")

    def factor(it: int) -> float:
        if warmup and it < warmup:
            return (it + 1) / warmup
        if kind == "constant":
            return 1.0
        t = min(1.0, (it - warmup) / max(1, total_iters - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


class Trainer:
    """Builds everything from a composed ``configs/train/train.yaml`` and runs the training loop."""

    def __init__(self, cfg: DictConfig, run_dir: str | Path):
        validate_train_config(cfg)  # every numeric/choice setting, with its key and range (engine/settings.py)
        self.cfg = cfg
        self.device = resolve_device(str(cfg.device))
        if cfg.get("keep_freed_memory", True):
            keep_freed_memory()  # ~2x faster CPU steps: no page faults on every new activation (gifnet/runtime.py)
        self.dist: DistInfo = init_distributed(str(self.device))
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.run_dir = self._shared_run_dir(Path(run_dir))
        self.autocast = autocast_context(str(cfg.precision), self.device)
        warn_if_slow_precision(str(cfg.precision), self.device)
        seed_everything(int(cfg.seed))

        from hydra.utils import instantiate

        self.model: GIFNet = instantiate(cfg.model).to(self.device)
        if cfg.get("channels_last", True):
            self.model.to_channels_last()  # ~1.8x faster CPU convolutions; identical values
        self.steps = parse_steps(OmegaConf.to_container(cfg.task.steps, resolve=True))
        self.trained_tasks = list(cfg.task.trained_tasks)
        self.init_from: dict | None = None
        if cfg.get("init") and not cfg.get("resume"):
            self._init_weights(cfg.init)
        broadcast_parameters(self.model)
        lc = cfg.loss
        self.loss_cfg = LossConfig(rec_weight=lc.rec_weight, msssim=lc.msssim, dp_ssim_weight=lc.dp_ssim_weight)
        self.weighting = None
        if any(s.loss == "ivif" for s in self.steps):
            self.weighting = build_ivif_weighting(
                lc.ivif_weighting, weights_path=lc.densenet_weights, fixed=tuple(lc.fixed_weights)
            ).to(self.device)

        self.dataset = instantiate(cfg.data, _convert_="partial")
        if len(self.dataset) == 0:
            raise ValueError("the training dataset is empty")
        loader_opts = dict(getattr(self.dataset, "loader_defaults", {}) or {})
        tc = cfg.train
        self.batch_size = int(tc.batch_size if tc.get("batch_size") else loader_opts.get("batch_size", 8))
        check_memory(getattr(self.dataset, "crop_size", None), self.batch_size, self.device,
                     width_ratio=float(cfg.model.get("enc_width", 32)) / 32)  # fmt: skip
        self.sampler = ResumableSampler(
            len(self.dataset), self.batch_size, seed=int(cfg.seed), shuffle=bool(loader_opts.get("shuffle", True)),
            rank=self.dist.rank, world_size=self.dist.world_size, drop_last=bool(loader_opts.get("drop_last", False)),
        )  # fmt: skip
        nw = int(tc.num_workers if tc.get("num_workers") is not None else loader_opts.get("num_workers", 0))
        self.loader = build_dataloader(
            self.dataset, batch_sampler=BatchListSampler(self.sampler), num_workers=nw, seed=int(cfg.seed),
            rank=self.dist.rank, pin_memory=self.device.type == "cuda",
        )  # fmt: skip
        self.iters_per_epoch = self.sampler.batches_per_epoch()
        self.total_iters = int(tc.epochs) * self.iters_per_epoch
        if tc.get("max_steps"):
            self.total_iters = min(self.total_iters, int(tc.max_steps))
        check_total_iters(self.total_iters, epochs=int(tc.epochs), max_steps=tc.get("max_steps"),
                          n_samples=len(self.dataset), batch_size=self.batch_size, world_size=self.dist.world_size)
        self.optimizer = build_optimizer(self.model.parameters(), cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, self.total_iters)
        self.iteration, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best_val = math.inf
        self._train_seconds, self._iter_at_start = 0.0, 0
        self.val_loader = self._build_val_loader()
        self.writer = None
        if self.dist.is_main and tc.get("tensorboard", True):
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tb"))
        if cfg.get("resume"):
            self.load_state(cfg.resume)
        self._iter_at_start = self.iteration

    # -- set-up helpers -----------------------------------------------------------------------------------
    def _shared_run_dir(self, run_dir: Path) -> Path:
        """All ranks use rank 0's run directory."""
        if self.dist.enabled:
            obj = [str(run_dir)]
            dist.broadcast_object_list(obj, src=0)
            run_dir = Path(obj[0])
        if self.dist.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
        return run_dir

    def _build_val_loader(self) -> DataLoader | None:
        if self.cfg.get("val") is None:
            return None
        from hydra.utils import instantiate

        ds = instantiate(self.cfg.val, _convert_="partial")
        if hasattr(ds, "online"):
            ds.online = False
        return build_dataloader(ds, batch_size=self.batch_size, shuffle=False, drop_last=False, num_workers=0)

    def _init_weights(self, path: str | Path) -> None:
        """``init=PATH``: start from the weights of any checkpoint (ours or the official ``Final.model``).

        Fresh optimiser, schedule and progress (unlike ``resume=``). The architecture must match the run's
        model config; the run's trained tasks become the union of the source's and the run's.
        """
        from gifnet.data.datasets import resolve_path
        from gifnet.models.convert import read_any_checkpoint

        ck = read_any_checkpoint(resolve_path(path))
        mine = self.model.config.to_dict()
        diff = sorted(k for k in set(mine) | set(ck.model_config) if mine.get(k) != ck.model_config.get(k))
        if diff:
            pairs = ", ".join(f"{k}: {ck.model_config.get(k)!r} (init) vs {mine.get(k)!r} (run)" for k in diff)
            raise ValueError(f"init={path}: its model differs from this run's in {pairs}; choose the matching "
                             f"model=... config")
        self.model.load_state_dict(ck.state_dict, strict=True)
        self.trained_tasks = list(dict.fromkeys([*ck.trained_tasks, *self.trained_tasks]))
        self.init_from = {"path": str(path), "format": ck.format, "sha256": ck.sha256,
                          "trained_tasks": list(ck.trained_tasks)}
        if ck.format == "gifnet" and "provenance" in ck.raw:
            self.init_from["provenance"] = ck.raw["provenance"]
        log.info("initialised from %s (%s checkpoint, trained tasks %s); trained tasks of this run: %s", path,
                 ck.format, ck.trained_tasks, self.trained_tasks)

    # -- state ----------------------------------------------------------------------------------------------
    def state_extra(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "progress": {"iteration": self.iteration, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch},
            "best_val": self.best_val,
            "rng": rng_state(),
            "train_config": OmegaConf.to_container(self.cfg, resolve=True),
        }

    def save(self, name: str) -> Path | None:
        if not self.dist.is_main:
            return None
        path = save_checkpoint(
            self.run_dir / "checkpoints" / name, self.model, trained_tasks=self.trained_tasks,
            provenance=self._provenance(), **self.state_extra(),
        )  # fmt: skip
        self._write_status()
        return path

    def _provenance(self) -> dict[str, Any]:
        prov: dict[str, Any] = {"run_dir": str(self.run_dir), "task": str(self.cfg.task.name)}
        if self.init_from is not None:
            prov["init_from"] = self.init_from
        return prov

    def _write_status(self) -> None:
        """``status.json``: progress and measured speed, for study dry runs and ETAs (rank 0)."""
        done = self.iteration - self._iter_at_start
        status = {
            "iteration": self.iteration, "total_iters": self.total_iters, "epoch": self.epoch,
            "seconds_this_process": self._train_seconds,
            "seconds_per_iter": (self._train_seconds / done) if done else None,
            "finished": self.iteration >= self.total_iters,
        }  # fmt: skip
        with atomic_path(self.run_dir / "status.json") as tmp:
            tmp.write_text(json.dumps(status, indent=2))

    def load_state(self, path: str | Path) -> None:
        obj = read_checkpoint(path)
        if obj["model_config"] != self.model.config.to_dict():
            raise ValueError(f"{path}: model config differs from this run's (resume needs the same architecture)")
        self.model.load_state_dict(obj["state_dict"], strict=True)
        if "optimizer" not in obj:
            raise ValueError(f"{path}: holds weights only (no optimiser state); use it as model init, not resume")
        if "train_config" in obj:  # a resume continues the same run: recipe changes are refused (engine/resume.py)
            check_same_recipe(path, obj["train_config"], OmegaConf.to_container(self.cfg, resolve=True))
        self.optimizer.load_state_dict(obj["optimizer"])
        self.scheduler.load_state_dict(obj["scheduler"])
        p = obj["progress"]
        self.iteration, self.epoch, self.batch_in_epoch = p["iteration"], p["epoch"], p["batch_in_epoch"]
        self.best_val = obj.get("best_val", math.inf)
        set_rng_state(obj["rng"])
        self.trained_tasks = list(obj["trained_tasks"])  # a resume never rewrites what the run was trained on
        self.init_from = obj.get("provenance", {}).get("init_from")
        self._trim_losses_csv()
        log.info("resumed from %s at iteration %d (epoch %d, batch %d)", path, self.iteration, self.epoch,
                 self.batch_in_epoch)

    # -- one iteration --------------------------------------------------------------------------------------
    def train_iteration(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, float], dict]:
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        set_to_none = bool(self.cfg.optim.get("set_to_none", True))
        clip = self.cfg.optim.get("grad_clip")
        params = [p for p in self.model.parameters() if p.requires_grad]
        scalars: dict[str, float] = {}
        images: dict[str, dict] = {}
        for spec in self.steps:
            self.optimizer.zero_grad(set_to_none=set_to_none)
            loss, sc, im = compute_step_loss(self.model, batch, spec, self.loss_cfg, self.weighting, self.autocast)
            if loss is None:
                continue
            self._check_finite(loss, spec.task)
            loss.backward()
            average_gradients(params, self.dist.world_size)
            if clip:
                sc[f"{spec.task}/grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, float(clip)))
            self.optimizer.step()
            scalars.update(sc)
            images[spec.task] = im
        self.scheduler.step()
        return scalars, images

    def _check_finite(self, loss: torch.Tensor, task: str) -> None:
        bad = torch.tensor(float(not torch.isfinite(loss.detach()).item()), device=self.device)
        if self.dist.enabled:
            dist.all_reduce(bad)
        if bad.item():
            raise NonFiniteLossError(
                f"non-finite {task} loss ({float(loss.detach())}) at iteration {self.iteration} (epoch {self.epoch}); "
                f"stopping. The last good checkpoint in {self.run_dir / 'checkpoints'} is kept. Try a lower "
                f"optim.lr, optim.grad_clip, or precision=fp32."
            )

    # -- logging --------------------------------------------------------------------------------------------
    def _losses_csv(self) -> Path:
        return self.run_dir / "losses.csv"

    def _trim_losses_csv(self) -> None:
        """On resume: drop logged rows past the checkpoint's iteration (they are trained again)."""
        path = self._losses_csv()
        if not self.dist.is_main or not path.is_file():
            return
        lines = path.read_text().splitlines(keepends=True)
        keep = [ln for i, ln in enumerate(lines) if i == 0 or int(ln.split(",", 1)[0]) <= self.iteration]
        with atomic_path(path) as tmp:
            tmp.write_text("".join(keep))

    def log_scalars(self, scalars: dict[str, float], samples_per_s: float) -> None:
        """Losses to ``losses.csv`` (iteration, lr, name, value), the console/log and TensorBoard (rank 0)."""
        if not self.dist.is_main:
            return
        lr = self.optimizer.param_groups[0]["lr"]
        path = self._losses_csv()
        new = not path.is_file()
        with open(path, "a", encoding="utf-8") as f:
            if new:
                f.write("iteration,lr,name,value\n")
            f.writelines(f"{self.iteration},{lr!r},{k},{v!r}\n" for k, v in sorted(scalars.items()))
        totals = " ".join(f"{k.split('/')[0]}={v:.4f}" for k, v in scalars.items() if k.endswith("/total"))
        log.info("iter %d/%d lr %.3g %s (%.1f samples/s)", self.iteration, self.total_iters, lr, totals,
                 samples_per_s)
        if self.writer is None:
            return
        it = self.iteration
        for k, v in scalars.items():
            self.writer.add_scalar(f"loss/{k}", v, it)
        self.writer.add_scalar("lr", self.optimizer.param_groups[0]["lr"], it)
        self.writer.add_scalar("throughput/samples_per_s", samples_per_s, it)
        fusion = self.model.fusion
        if fusion.gating == "learned":
            for s, alpha in fusion.alpha.items():
                for k in range(0, fusion.depth, 2):
                    self.writer.add_scalar(f"alpha/{s}_block{k}", float(alpha[k].detach()), it)

    def log_images(self, images: dict[str, dict]) -> None:
        if self.writer is None:
            return
        from torchvision.utils import make_grid

        for task, im in images.items():
            cols = [im[k].float().cpu() for k in ("a", "b", "fused", "rec") if k in im]
            grid = make_grid(torch.cat(cols, 0), nrow=cols[0].shape[0], padding=2, pad_value=1.0)
            self.writer.add_image(f"images/{task} (rows: a, b, fused, rec)", grid, self.iteration)

    def log_data_preview(self) -> None:
        if self.writer is None:
            return
        from gifnet.data.preview import make_preview_grid

        n = min(4, len(self.dataset))
        samples = [self.dataset[i] for i in range(n)]
        label = "ir (SIMULATED)" if getattr(self.dataset, "simulated_ir", False) else None
        grid = make_preview_grid(samples, ir_label=label)
        self.writer.add_image("data/preview", grid, 0, dataformats="HWC")

    # -- validation -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> float | None:
        if self.val_loader is None:
            return None
        totals = []
        for batch in self.val_loader:
            batch = {k: v.to(self.device) for k, v in batch.items()}
            loss_sum = 0.0
            for spec in self.steps:
                loss, _, _ = compute_step_loss(self.model, batch, spec, self.loss_cfg, self.weighting, self.autocast)
                if loss is not None:
                    loss_sum += float(loss)
            totals.append(loss_sum)
        value = float(np.mean(totals)) if totals else math.nan
        if self.writer is not None:
            self.writer.add_scalar("val/total", value, self.iteration)
        if value < self.best_val:
            self.best_val = value
            self.save("best.pt")
        return value

    # -- loop -----------------------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        from tqdm import tqdm

        tc = self.cfg.train
        if self.dist.is_main:
            val = len(self.val_loader.dataset) if self.val_loader is not None else 0
            log.info("run folder %s; task %s; data %r: %d samples per epoch (%d batches of %d%s), %d validation "
                     "sample(s); %d iterations (from %d); losses every %d iterations (losses.csv)", self.run_dir,
                     self.cfg.task.name, self.dataset, len(self.dataset), self.iters_per_epoch, self.batch_size,
                     f" x {self.dist.world_size} ranks" if self.dist.world_size > 1 else "", val, self.total_iters,
                     self.iteration, int(tc.log_every))  # fmt: skip
        if self.iteration == 0:
            self.log_data_preview()
        pbar = tqdm(total=self.total_iters, initial=self.iteration, disable=not self.dist.is_main or not tc.progress,
                    desc=f"train {self.cfg.task.name}", dynamic_ncols=True)
        last: dict[str, float] = {}
        t_start, n_samples = time.perf_counter(), 0
        while self.iteration < self.total_iters:
            self.sampler.set_epoch(self.epoch, self.batch_in_epoch)
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(self.epoch)
            ran = 0
            for batch in self.loader:
                ran += 1
                t0 = time.perf_counter()
                scalars, images = self.train_iteration(batch)
                n_batch = len(next(iter(batch.values()))) * self.dist.world_size
                self.iteration += 1
                self.batch_in_epoch += 1
                n_samples += n_batch
                last = scalars
                # epoch bookkeeping first, so that every checkpoint holds a normalised position
                epoch_done = self.batch_in_epoch >= self.iters_per_epoch
                if epoch_done:
                    self.epoch += 1
                    self.batch_in_epoch = 0
                dt = time.perf_counter() - t0
                self._train_seconds += dt
                if self.iteration % int(tc.log_every) == 0 or self.iteration == 1:
                    self.log_scalars(scalars, n_batch / dt)
                if tc.image_every and self.iteration % int(tc.image_every) == 0:
                    self.log_images(images)
                pbar.update(1)
                pbar.set_postfix(
                    {k.replace("/total", ""): f"{v:.4f}" for k, v in scalars.items() if k.endswith("total")}
                )
                if tc.save_every and self.iteration % int(tc.save_every) == 0:
                    self.save(f"iter_{self.iteration:07d}.pt")
                    self.save("last.pt")
                if epoch_done:
                    self.save(f"epoch_{self.epoch:03d}.pt")
                if tc.val_every and (epoch_done or self.iteration % int(tc.val_every) == 0):
                    self.validate()
                if self.iteration >= self.total_iters or epoch_done:
                    break
            if ran == 0:  # nothing left in this epoch (defensive): move on
                self.epoch += 1
                self.batch_in_epoch = 0
        pbar.close()
        path = self.save("last.pt")
        elapsed = time.perf_counter() - t_start
        summary = {
            "iterations": self.iteration,
            "epochs_completed": self.epoch,
            "last_losses": last,
            "seconds": elapsed,
            "samples_per_s": n_samples / elapsed if elapsed else None,
            "world_size": self.dist.world_size,
            "ranks_in_sync": self.ranks_in_sync(),
            "checkpoint": str(path) if path else None,
        }
        if self.dist.is_main:
            tmp = self.run_dir / ".summary.json.tmp"
            tmp.write_text(json.dumps(summary, indent=2))
            os.replace(tmp, self.run_dir / "summary.json")
        if self.writer is not None:
            self.writer.close()
        return summary

    def ranks_in_sync(self) -> bool:
        """Whether every rank holds bit-identical parameters (always true for one process)."""
        if not self.dist.enabled:
            return True
        flat = torch.cat([p.detach().reshape(-1).double() for p in self.model.parameters()])
        lo, hi = flat.clone(), flat.clone()
        dist.all_reduce(lo, op=dist.ReduceOp.MIN)
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
        return bool(torch.equal(lo, hi))


"""``resume=PATH`` means the same run: the configuration comes from the checkpoint, recipe changes are refused.

Every checkpoint the trainer writes stores its resolved training configuration (``train_config``). Resuming:

* ``gifnet train resume=runs/x/checkpoints/last.pt`` alone restores that configuration (model, task,
  data, loss, optimiser, seed, precision) and continues in the run's own folder (``runs/x``);
* settings that do not change what is trained may be given again or changed (:data:`RUNTIME_KEYS`: device,
  data locations (``paths``), logging, progress, checkpoint cadence, validation, workers);
* the run's length (``train.epochs``, ``train.max_steps``) may be changed to extend or shorten it; the learning-rate
  schedule is then recomputed for the new total (logged as a warning when the schedule is not constant);
* any other override that changes a stored value is refused with the list of differing keys: changing the recipe
  is a new run (``init=PATH`` starts one from the same weights).

Keys missing from an older checkpoint's stored configuration are not compared (settings added since).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

#: Settings that never change what a run trains: free to set on resume (prefix match on dotted keys).
RUNTIME_KEYS = (
    "resume", "device", "val", "keep_freed_memory", "channels_last", "paths",
    "train.progress", "train.log_every", "train.tensorboard", "train.num_workers", "train.save_every",
    "train.image_every", "train.val_every",
)  # fmt: skip
#: The run's length: may change on resume (the schedule is recomputed for the new total).
LENGTH_KEYS = ("train.epochs", "train.max_steps")


class ResumeMismatchError(ValueError):
    """A resume asked for another recipe than the checkpoint's run was trained with."""


def _matches(key: str, prefixes: Iterable[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}`` (lists are leaves)."""
    if isinstance(d, Mapping):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out if out or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1]: d}


def recipe_differences(stored: Mapping, current: Mapping, keys: Sequence[str] | None = None) -> list[str]:
    """Dotted keys (under ``keys`` prefixes, or all) whose values differ between two resolved training configs,
    ignoring :data:`RUNTIME_KEYS` and :data:`LENGTH_KEYS`, and keys that one side lacks (settings added or removed
    between gifnet versions)."""
    fs, fc = flatten(stored), flatten(current)
    out = []
    for k in sorted(set(fs) & set(fc)):
        if _matches(k, RUNTIME_KEYS) or _matches(k, LENGTH_KEYS) or k.startswith("hydra."):
            continue
        if keys is not None and not _matches(k, keys):
            continue
        if fs[k] != fc[k]:
            out.append(k)
    return out


def describe(keys: Sequence[str], stored: Mapping, current: Mapping, limit: int = 10) -> str:
    fs, fc = flatten(stored), flatten(current)
    shown = [f"{k}: {fs.get(k)!r} (checkpoint) vs {fc.get(k)!r} (given)" for k in keys[:limit]]
    more = f", and {len(keys) - limit} more" if len(keys) > limit else ""
    return "; ".join(shown) + more


def check_same_recipe(path: str | Path, stored: Mapping, current: Mapping) -> None:
    """Refuse (:class:`ResumeMismatchError`) when ``current`` trains another recipe than ``stored``."""
    diff = recipe_differences(stored, current)
    if diff:
        raise ResumeMismatchError(
            f"resume={path}: this configuration differs from the checkpoint's run in "
            f"{describe(diff, stored, current)}. "
            "A resume continues the same run: drop these overrides (resume=PATH alone restores the run's "
            "configuration), or start a new run from these weights with init=PATH."
        )


def override_key(override: str) -> str:
    """``"+model.gating=fixed"`` → ``"model.gating"``."""
    return override.split("=", 1)[0].lstrip("+~").strip()


def restore_config(
    given: DictConfig, overrides: Sequence[str], stored: Mapping, path: str | Path, groups: Iterable[str] = ()
) -> DictConfig:
    """The configuration a ``resume=`` run continues with.

    ``given``: the config composed from the command line; ``overrides``: the command line's overrides;
    ``stored``: the checkpoint's ``train_config``; ``groups``: the config group names (``model``, ``data``...):
    a group override (``data=pairs``) must match the stored group as a whole. Refuses recipe changes
    (:class:`ResumeMismatchError`); returns the stored config with the runtime and length overrides applied.
    """
    groups = set(groups)
    cur = OmegaConf.to_container(given, resolve=True)
    checked: list[str] = []
    explicit: list[str] = []
    for o in overrides:
        key = override_key(o)
        if not key or key.startswith("hydra"):
            continue
        if _matches(key, RUNTIME_KEYS) or _matches(key, LENGTH_KEYS):
            explicit.append(key)
            continue
        if key == "experiment":
            # an experiment sets many keys: each one the composed config holds is compared
            checked.append("")
            continue
        checked.append(key)
    if "" in checked:
        diff = recipe_differences(stored, cur)
    else:
        diff = recipe_differences(stored, cur, keys=checked) if checked else []
        # a group override names the whole group: keys the stored group has and the given one lacks differ too
        for g in (k for k in checked if k in groups):
            fs, fc = flatten(stored.get(g, {})), flatten(cur.get(g, {}))
            diff += [f"{g}.{k}" for k in sorted(set(fs) ^ set(fc)) if f"{g}.{k}" not in diff]
    if diff:
        raise ResumeMismatchError(
            f"resume={path}: the overrides change the run's recipe: {describe(sorted(diff), stored, cur)}. "
            "A resume continues the same run: drop these overrides (resume=PATH alone restores the run's "
            "configuration), or start a new run from these weights with init=PATH."
        )
    restored = OmegaConf.create(dict(stored))
    for key in explicit:
        OmegaConf.update(restored, key, OmegaConf.select(given, key), merge=False, force_add=True)
    OmegaConf.update(restored, "resume", str(path), force_add=True)
    fs = flatten(stored)
    for key in LENGTH_KEYS:
        if key in explicit and fs.get(key) != OmegaConf.select(given, key):
            sched = OmegaConf.select(restored, "optim.scheduler")
            msg = f"resume={path}: {key} {fs.get(key)!r} -> {OmegaConf.select(given, key)!r}"
            if sched not in (None, "constant"):
                log.warning("%s: the %s learning-rate schedule is recomputed for the new length", msg, sched)
            else:
                log.info("%s", msg)
    return restored


def run_dir_of(checkpoint: str | Path) -> Path | None:
    """The run folder a checkpoint belongs to (``<run>/checkpoints/<file>.pt`` → ``<run>``), else None."""
    p = Path(checkpoint)
    return p.parent.parent if p.parent.name == "checkpoints" else None


def resume_argv(argv: Sequence[str]) -> list[str]:
    """Command-line arguments for Hydra: with ``resume=PATH`` and no ``hydra.run.dir``, the run continues in the
    checkpoint's own folder, and Hydra writes no ``.hydra/`` snapshot there (the run's original one stays; the
    restored configuration is written to ``resume.yaml`` by the training script)."""
    args = list(argv)
    paths = [a.split("=", 1)[1] for a in args if a.startswith("resume=")]
    if not paths or not paths[-1] or paths[-1] == "null":
        return args
    if not any(a.startswith(("hydra.run.dir=", "+hydra.run.dir=")) for a in args):
        run = run_dir_of(paths[-1].strip("'\""))
        if run is not None:
            quoted = str(run).replace("\\", "\\\\").replace("'", "\\'")
            args.append(f"hydra.run.dir='{quoted}'")
    if not any(a.startswith("hydra.output_subdir=") for a in args):
        args.append("hydra.output_subdir=null")
    return args


def restore_run_config(cfg: DictConfig, run_dir: str | Path, overrides: Sequence[str]) -> DictConfig:
    """``resume=PATH`` of ``gifnet train``: the checkpoint's stored configuration with this command line's runtime
    settings (``overrides``: the command line's); the result is also written to ``<run_dir>/resume.yaml``."""
    import os

    from gifnet.config import group_names
    from gifnet.models.checkpoint import read_checkpoint
    from gifnet.paths import atomic_path, resolve_path

    path = resolve_path(cfg.resume)
    stored = read_checkpoint(path).get("train_config")
    if stored is None:
        log.warning("%s stores no training configuration (an early gifnet checkpoint): resuming with the composed one",
                    path)  # fmt: skip
        return cfg
    restored = restore_config(cfg, list(overrides), stored, cfg.resume, group_names("train"))
    if int(os.environ.get("RANK", "0")) == 0:
        with atomic_path(Path(run_dir) / "resume.yaml") as tmp:
            tmp.write_text(OmegaConf.to_yaml(restored))
    return restored

"""The ``gifnet`` command line: one command with subcommands, each a Hydra application of its own config.

``gifnet <command> [key=value ...]``; every command composes its primary config from its folder of ``configs/``
(see :mod:`gifnet.config`), so all of them take the same overrides, answer ``--help`` with their groups and their
options file, print the composed configuration with ``--cfg job`` and sweep with ``-m``. ``scripts/<name>.py``
are thin wrappers of the same commands (``python scripts/train.py task=joint`` = ``gifnet train task=joint``).

Only ``train`` and ``study`` write a Hydra run folder (its ``.hydra/`` configs and a log); the other commands log
to the console and write only their outputs. A bad command line and a failure of the job are one readable line
and exit code 1 (2 for the trainer's setting and input errors and the study's errors, as before).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gifnet.config import adapt_overrides, compose, primary_file, register, root_of


@dataclass(frozen=True)
class Command:
    config: str                       # primary config name (gifnet.config.PRIMARY_ROOTS)
    job: Callable[[Any], int]         # the work: composed config -> exit code
    summary: str                      # one line for `gifnet --help`
    usage: str                        # examples for `gifnet <command> --help`
    run_folder: bool = False          # Hydra run folder (.hydra/, log file) as configured in the primary config
    one_line_errors: bool = True      # any exception of the job is one log line and exit code 1 (False: the job
                                      # reports its own expected errors; anything else reaches Hydra's report)


# --------------------------------------------------------------------------------------------------- jobs
def _log(name: str) -> logging.Logger:
    return logging.getLogger(f"gifnet.{name}")


def _train(cfg) -> int:
    from hydra.core.hydra_config import HydraConfig

    from gifnet.engine.distributed import cleanup
    from gifnet.engine.resume import ResumeMismatchError, restore_run_config
    from gifnet.engine.settings import SettingError
    from gifnet.engine.trainer import NonFiniteLossError, Trainer
    from gifnet.io import DataError
    from gifnet.models.checkpoint import CheckpointError

    log = _log("train")
    run_dir = HydraConfig.get().runtime.output_dir
    finished = False
    try:
        if cfg.get("resume"):
            cfg = restore_run_config(cfg, run_dir, list(HydraConfig.get().overrides.task))
        summary = Trainer(cfg, run_dir).fit()
        finished = True
    except (NonFiniteLossError, SettingError, ResumeMismatchError, CheckpointError, DataError) as e:
        log.error("%s", e)  # a bad setting or input, or a diverged run: one readable line, no traceback
        return 2
    finally:
        cleanup(synchronize=finished)
    log.info("done: %s", summary)
    return 0


def _fuse(cfg) -> int:
    from gifnet.inference.fusion import check_fuse_config, fuse_from_config

    check_fuse_config(cfg)
    summary = fuse_from_config(cfg)
    _log("fuse").info("%s", summary)
    return int(bool(summary.failed))


def _evaluate(cfg) -> int:
    from gifnet.evaluation import check_eval_config, evaluate_from_config

    check_eval_config(cfg)
    _log("evaluate").info("%s", evaluate_from_config(cfg))
    return 0  # images that could not be scored are listed in the reports (they do not change the exit code)


def _study(cfg) -> int:
    from omegaconf import OmegaConf

    from gifnet.paths import PROJECT_ROOT
    from gifnet.study import StudyError, load_study, run_study

    c = OmegaConf.to_container(cfg, resolve=True)
    try:
        study = load_study(cfg.study, root=c["root"])
        results = c["results_dir"] or PROJECT_ROOT / "docs" / "results" / study.name
        out = run_study(study, results_dir=results, dry_run=c["dry_run"], only=c["only"], train=c["train"],
                        train_overrides=c["train_overrides"], eval_overrides=c["eval_overrides"],
                        retry_failed=c["retry_failed"])  # fmt: skip
    except StudyError as e:
        _log("study").error("%s", e)
        return 2
    if not c["dry_run"]:
        _log("study").info("done: %s", out)
    return 0


def _import(cfg) -> int:
    if cfg.format == "official":
        from gifnet.models.convert import import_official

        out = import_official(cfg.src, cfg.dst)
    elif cfg.format == "legacy":
        from gifnet.models.checkpoint import convert_legacy_checkpoint

        out = convert_legacy_checkpoint(cfg.src, cfg.dst, trust=bool(cfg.trust))
    else:
        raise ValueError(f"format must be official or legacy, got {cfg.format!r}")
    _log("import").info("wrote %s", out)
    return 0


def _data(cfg):
    from hydra.utils import instantiate

    return instantiate(cfg.data, _convert_="partial")


def _preview(cfg) -> int:
    import numpy as np

    from gifnet.data.preview import make_preview_grid
    from gifnet.io import write_image_atomic

    ds = _data(cfg)
    ds.set_epoch(int(cfg.epoch))
    n = min(int(cfg.n), len(ds))
    indices = np.linspace(0, len(ds) - 1, n).round().astype(int)  # spread over the dataset: different scenes
    grid = make_preview_grid([ds[int(i)] for i in indices],
                             ir_label="ir (SIMULATED)" if cfg.data.source == "demo" else None)
    out = write_image_atomic(cfg.out, grid)
    _log("preview").info("wrote %s (%d samples from %r)", out, n, ds)
    return 0


def _prepare(cfg) -> int:
    from gifnet.data.export import export_official_layout

    ds = _data(cfg)
    out = export_official_layout(ds, cfg.out, num=cfg.num, split=cfg.split, ext=cfg.ext, epoch=int(cfg.epoch),
                                 overwrite=bool(cfg.overwrite), progress=bool(cfg.progress))  # fmt: skip
    _log("prepare").info("wrote %d samples to %s from %r", cfg.num or len(ds), out, ds)
    return 0


def _compare(cfg) -> int:
    from gifnet.evaluation.compare import compare_table
    from gifnet.paths import atomic_path

    text = compare_table(cfg.full, cfg.subset, cfg.method)
    if cfg.out:
        with atomic_path(cfg.out) as tmp:
            tmp.write_text(text, encoding="utf-8")
        _log("compare").info("wrote %s", cfg.out)
    else:
        print(text, end="")
    return 0


def _demo(cfg) -> int:
    from gifnet.inference.demo import fuse_demo

    _log("demo").info("%s", fuse_demo(cfg.checkpoint, cfg.out, released=cfg.paths.official))
    return 0


def _benchmark(cfg) -> int:
    from gifnet.benchmark import run_benchmark

    return run_benchmark(cfg)


COMMANDS: dict[str, Command] = {
    "train": Command("train", _train, "train GIFNet (Hydra run folder under runs/)",
                     "gifnet train task=joint\n  gifnet train experiment=cpu_joint seed=1\n"
                     "  gifnet train resume=runs/<run>/checkpoints/last.pt\n"
                     "  gifnet train -m model=gating_off,gating_fixed",
                     run_folder=True, one_line_errors=False),
    "fuse": Command("fuse", _fuse, "fuse image pairs (folders, a file pair or an exposure stack)",
                    "gifnet fuse checkpoint='${paths.official}' task=ivif input.a=IR_DIR input.b=VIS_DIR out=DIR\n"
                    "  gifnet fuse checkpoint=CKPT task=meif input.stack=STACK_DIR out=fused.png"),
    "evaluate": Command("evaluate", _evaluate, "score checkpoints on benchmark datasets into paper-style tables",
                        "gifnet evaluate checkpoint='${paths.official}' eval=seen\n"
                        "  gifnet evaluate checkpoint=CKPT eval=[ivif_tno,mfif_lytro] peers=true figure=true\n"
                        "  gifnet evaluate -m checkpoint=a.pt,b.pt eval=quick"),
    "compare": Command("compare", _compare, "compare one method's means in two evaluations (e.g. quick vs all)",
                       "gifnet compare full=docs/results/eval_official_all.md subset=outputs/eval/x/summary.csv"),
    "study": Command("study", _study, "train, evaluate and tabulate a named study (resumable)",
                     "gifnet study study=ablation_cpu dry_run=true\n  gifnet study study=smoke root=/tmp/studies",
                     run_folder=True),
    "import": Command("import", _import, "convert the released Final.model (or an old pickle checkpoint)",
                      "gifnet import\n  gifnet import src=Final.model dst=checkpoints/gifnet_official.pt\n"
                      "  gifnet import format=legacy trust=true src=old.pt dst=new.pt"),
    "benchmark": Command("benchmark", _benchmark, "speed and memory of fusion, training and the metrics",
                         "gifnet benchmark mode=fuse sizes=[480x640]\n"
                         "  gifnet benchmark mode=train references=[released]\n"
                         "  gifnet benchmark mode=profile tasks=[official] precisions=[fp32]\n"
                         "  gifnet benchmark mode=metrics"),
    "preview": Command("preview", _preview, "draw a grid of training samples of a data config",
                       "gifnet preview\n  gifnet preview data=pairs n=8 out=outputs/pairs_preview.png\n"
                       "  gifnet preview data=pairs data.crop_size=256 'data.focus.blur_radius=[4,8]'"),
    "prepare": Command("prepare", _prepare, "write fixed training files in the released layout",
                       "gifnet prepare data=pairs num=2000 out=data/joint_fixed\n"
                       "  gifnet prepare data=demo num=64 out=/tmp/demo_fixed ext=.jpg"),
    "demo": Command("demo", _demo, "fuse a generated demo pair (released weights when ../shared is present)",
                    "gifnet demo\n  gifnet demo checkpoint=CKPT out=outputs/demo"),
}


# ------------------------------------------------------------------------------------------------ plumbing
_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                     "--config-dir", "-cd", "--experimental-rerun", "--shell-completion", "-sc"}  # fmt: skip
_NO_JOB_FLAGS = {"-h", "--help", "--hydra-help", "--cfg", "-c", "--info", "-i", "--shell-completion", "-sc",
                 "--version"}  # fmt: skip


def split_argv(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(Hydra flags with their values, overrides): flags start with ``-``, overrides never do."""
    flags, overrides, it = [], [], iter(argv)
    for a in it:
        if a.startswith("-"):
            flags.append(a)
            if a in _FLAGS_WITH_VALUE:
                flags.append(next(it, ""))
        else:
            overrides.append(a)
    return flags, overrides


def _help_text(kind: str, config_name: str) -> str:
    from gifnet.paths import PROJECT_ROOT

    name = next(n for n, c in COMMANDS.items() if c.config == config_name)
    cmd = COMMANDS[name]
    if kind == "header":
        text = f"gifnet {name}: {cmd.summary}\n\nExamples:\n  {cmd.usage}"
    else:
        path = primary_file(config_name)
        text = f"(defaults and meaning: {path.relative_to(PROJECT_ROOT)})\n\n{path.read_text().rstrip()}"
    return text.replace("$", "$$")  # the help template is a string.Template


def _register_resolvers() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("gifnet_help"):
        OmegaConf.register_new_resolver("gifnet_help", _help_text)


def _hydra_settings(name: str, cmd: Command) -> list[str]:
    out = [f"hydra.job.name={name}"]
    if not cmd.run_folder:
        out += ["hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=console",
                f"hydra.sweep.dir=multirun/${{now:%Y-%m-%d_%H-%M-%S}}_{name}"]  # fmt: skip
    if int(os.environ.get("RANK", "0")) > 0:  # DDP: non-zero ranks write no run folder or log file of their own
        out += ["hydra.output_subdir=null", "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]
    return out


def run_command(name: str, argv: Sequence[str]) -> int:
    """Run ``gifnet <name> argv`` in this process; returns the exit code."""
    import hydra

    cmd = COMMANDS[name]
    flags, overrides = split_argv(argv)
    if name == "train":
        from gifnet.engine.resume import resume_argv

        overrides = resume_argv(overrides)  # resume=PATH continues in the run's own folder
    multirun = any(f in ("-m", "--multirun") for f in flags)
    try:
        adapted = adapt_overrides(cmd.config, overrides)
        if not multirun and not any(f in _NO_JOB_FLAGS for f in flags):
            compose(cmd.config, overrides)  # a bad option is one line here, before Hydra starts the job
    except ValueError as e:
        print(f"gifnet {name}: {e}", file=sys.stderr)
        return 1
    _register_resolvers()
    register()
    codes: list[int] = []

    def task(cfg) -> None:
        from gifnet.runtime import keep_freed_memory

        if cfg.get("keep_freed_memory", True):
            keep_freed_memory()  # faster CPU steps and inference, same values (gifnet/runtime.py)
        try:
            codes.append(cmd.job(cfg))
        except Exception as e:  # noqa: BLE001 - the message is the user-facing error
            if not cmd.one_line_errors:
                raise
            logging.getLogger(f"gifnet.{name}").error("%s", e)
            codes.append(1)

    saved = sys.argv
    sys.argv = [f"gifnet-{name}", *flags, *adapted, *_hydra_settings(name, cmd)]
    try:
        hydra.main(config_path=str(root_of(cmd.config)), config_name=cmd.config, version_base="1.3")(task)()
    finally:
        sys.argv = saved
    code = max(codes, default=0)
    distributed = sys.modules.get("gifnet.engine.distributed")  # loaded only by a job that may have used one
    if distributed is not None:
        distributed.exit_after_distributed_run(code)  # a process that used a process group leaves here
    return code


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: gifnet <command> [key=value ...] [--help] [--cfg job] [-m]", "", "commands:"]
    lines += [f"  {n:<{width}}  {c.summary}" for n, c in COMMANDS.items()]
    lines += ["", "`gifnet <command> --help` lists a command's config groups and options (configs/<command>/)."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"gifnet: unknown command {argv[0]!r}; commands: {', '.join(COMMANDS)} (see gifnet --help)",
              file=sys.stderr)  # fmt: skip
        return 2
    return run_command(argv[0], argv[1:])


if __name__ == "__main__":
    sys.exit(main())

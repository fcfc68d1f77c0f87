"""Resumable training studies: named lists of variants × seeds, trained, evaluated and tabulated.

``gifnet study study=ablation_cpu`` (studies: ``configs/study/study/*.yaml``, runner options
``configs/study/study.yaml``). A study is

- ``base``: training overrides of every run (e.g. ``experiment=cpu_joint``),
- ``variants``: ``{name: {overrides: [...], seeds: [...]}}`` (seeds default to ``seeds``),
- ``references``: checkpoints that are evaluated but not trained (e.g. the released ``Final.model``),
- ``eval``: the evaluation selection (a suite such as ``quick``), and ``table``: the metrics of the study table.

Every run lives in ``<root>/<study>/<variant>/seed<k>/`` (deterministic). Running the same command again
skips finished runs, resumes unfinished ones from ``checkpoints/last.pt`` (bit-identically on CPU, as
``resume=``), evaluates every finished run once (``eval/``, keyed by the checkpoint's SHA-256) and rebuilds
the table (Markdown, CSV, PNG figures) in ``results_dir``.

Each evaluated run also leaves a *record* in ``results_dir/records/<variant>/seed<k>/`` (``record.json``: overrides,
checkpoint SHA-256, training status; ``identity.yaml``; the evaluation's ``summary.csv``; the total losses
``losses.csv``), small files meant to be committed with the table. A run whose folder is gone (``runs/`` is not
kept) but whose record is there counts as finished (state ``recorded``): it is not trained again and its row stays
in the table, so a study continues in a fresh checkout from what was committed. A record whose identity differs
from what the study composes now is refused, as a run folder is. References are recorded the same way
(``results_dir/records/reference/<name>/``) and not evaluated again while the checkpoint's SHA-256 matches.

``dry_run=true`` lists what is done, running and left, with an ETA from the measured iteration times. Under
``torchrun`` every rank trains each run together; rank 0 evaluates and writes the table.
"""

from __future__ import annotations

import json
import logging
import math
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gifnet.paths import atomic_path, sha256_of

log = logging.getLogger(__name__)

__all__ = ["RunSpec", "Study", "StudyError", "load_study", "run_study", "study_status", "write_study_table"]


class StudyError(ValueError):
    """A study configuration problem (unknown key, empty variant list, bad seed...)."""


_STUDY_KEYS = {"name", "description", "base", "seeds", "variants", "baseline", "references", "eval", "table",
               "notes"}  # fmt: skip
_VARIANT_KEYS = {"overrides", "seeds", "description"}


@dataclass(frozen=True)
class RunSpec:
    """One training run of a study: a variant at one seed."""

    variant: str
    seed: int
    overrides: tuple[str, ...]
    run_dir: Path
    record_dir: Path | None = None  # results_dir/records/<variant>/seed<k>: the committed record of a finished run

    @property
    def last(self) -> Path:
        return self.run_dir / "checkpoints" / "last.pt"


@dataclass
class Study:
    """A parsed study config (see the module docstring)."""

    name: str
    root: Path
    base: list[str]
    variants: dict[str, dict[str, Any]]
    baseline: str | None
    references: dict[str, str]
    eval: str
    table: dict[str, list[str]]
    description: str = ""
    notes: list[str] = field(default_factory=list)
    results_dir: Path | None = None  # where the table and the run records go (set by run_study)

    @property
    def dir(self) -> Path:
        return self.root / self.name

    def record_dir(self, *parts: str) -> Path | None:
        return None if self.results_dir is None else self.results_dir / "records" / Path(*parts)

    def runs(self) -> list[RunSpec]:
        out = []
        for v, spec in self.variants.items():
            for s in spec["seeds"]:
                ov = (*self.base, *spec["overrides"], f"seed={s}", f"data.seed={s}")  # the seed sets init and data
                out.append(RunSpec(v, int(s), ov, self.dir / v / f"seed{s}", self.record_dir(v, f"seed{s}")))
        return out


def load_study(cfg: DictConfig | dict, root: str | Path = "runs/studies") -> Study:
    """Validate a study config (``configs/study/study/<name>.yaml`` as composed) into a :class:`Study`."""
    c = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    unknown = sorted(set(c) - _STUDY_KEYS)
    if unknown:
        raise StudyError(f"study: unknown key(s) {unknown}; allowed: {sorted(_STUDY_KEYS)}")
    name = str(c.get("name") or "")
    if not name or "/" in name or name.startswith("."):
        raise StudyError(f"study.name must be a plain folder name, got {name!r}")
    default_seeds = c.get("seeds") if c.get("seeds") is not None else [0]
    variants: dict[str, dict[str, Any]] = {}
    for v, spec in (c.get("variants") or {}).items():
        spec = dict(spec or {})
        bad = sorted(set(spec) - _VARIANT_KEYS)
        if bad:
            raise StudyError(f"study.variants.{v}: unknown key(s) {bad}; allowed: {sorted(_VARIANT_KEYS)}")
        seeds = spec.get("seeds") if spec.get("seeds") is not None else default_seeds
        if not seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds):
            raise StudyError(f"study.variants.{v}.seeds must be a non-empty list of integers >= 0, got {seeds}")
        if len(set(seeds)) != len(seeds):
            raise StudyError(f"study.variants.{v}.seeds repeats a seed: {seeds}")
        ov = [str(o) for o in (spec.get("overrides") or [])]
        if any(o.split("=", 1)[0].lstrip("+~") in ("seed", "data.seed", "resume", "hydra.run.dir") for o in ov):
            raise StudyError(f"study.variants.{v}: seed, resume and the run folder are set by the study runner")
        variants[str(v)] = {"overrides": ov, "seeds": list(seeds), "description": str(spec.get("description", ""))}
    if not variants:
        raise StudyError("study.variants is empty")
    baseline = c.get("baseline")
    if baseline is not None and baseline not in variants:
        raise StudyError(f"study.baseline {baseline!r} is not a variant; variants: {', '.join(variants)}")
    table = {str(k): [str(m) for m in v] for k, v in (c.get("table") or {}).items()}
    return Study(
        name=name, root=Path(root), base=[str(o) for o in (c.get("base") or [])], variants=variants,
        baseline=baseline, references={str(k): str(v) for k, v in (c.get("references") or {}).items()},
        eval=str(c.get("eval") or "quick"), table=table, description=str(c.get("description") or ""),
        notes=[str(n) for n in (c.get("notes") or [])],
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------- state
def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=str))


FINISHED = ("done", "recorded")


def _record(run: RunSpec) -> dict | None:
    """The committed record of a finished run (``record.json`` + ``summary.csv``), or None."""
    if run.record_dir is None or not (run.record_dir / "summary.csv").is_file():
        return None
    return _read_json(run.record_dir / "record.json")


def run_state(run: RunSpec) -> tuple[str, dict]:
    """``("done" | "recorded" | "failed" | "partial" | "todo", status dict)`` of one run: from its folder, else
    from its committed record (``recorded``: finished and evaluated, folder gone or not finished here)."""
    status = _read_json(run.run_dir / "status.json") or {}
    if (run.run_dir / "failed.json").is_file():
        return "failed", {**status, **(_read_json(run.run_dir / "failed.json") or {})}
    if status.get("finished") and (run.run_dir / "summary.json").is_file() and run.last.is_file():
        return "done", status
    record = _record(run)
    if record is not None:
        return "recorded", dict(record.get("status") or {})
    if run.last.is_file():
        return "partial", status
    return "todo", status


def _running(run: RunSpec, stale_s: float = 900.0) -> bool:
    """A run whose ``status.json`` changed recently (another process is probably training it)."""
    p = run.run_dir / "status.json"
    return p.is_file() and time.time() - p.stat().st_mtime < stale_s and run_state(run)[0] == "partial"


def study_status(study: Study) -> dict[str, Any]:
    """Per-run state, iterations and an ETA (seconds) from the measured seconds per iteration."""
    rows, rates = [], []
    for run in study.runs():
        state, st = run_state(run)
        if st.get("seconds_per_iter"):
            rates.append(float(st["seconds_per_iter"]))
        rows.append({"variant": run.variant, "seed": run.seed, "state": state, "running": _running(run),
                     "iteration": st.get("iteration", 0), "total": st.get("total_iters"),
                     "seconds_per_iter": st.get("seconds_per_iter"), "error": st.get("error")})  # fmt: skip
    typical = statistics.median(rates) if rates else None
    known_total = [r["total"] for r in rows if r["total"]]
    default_total = statistics.median(known_total) if known_total else None
    eta = 0.0
    for r in rows:
        if r["state"] in ("done", "recorded", "failed"):
            r["eta_s"] = 0.0
            continue
        rate = r["seconds_per_iter"] or typical
        total = r["total"] or default_total
        r["eta_s"] = None if rate is None or total is None else rate * (total - r["iteration"])
        eta = None if (eta is None or r["eta_s"] is None) else eta + r["eta_s"]
    return {"runs": rows, "eta_s": eta, "seconds_per_iter": typical}


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "unknown (no iteration measured yet)"
    h, m = divmod(int(round(s / 60)), 60)
    return f"{h} h {m:02d} min" if h else f"{m} min"


def format_status(study: Study) -> str:
    st = study_status(study)
    lines = [f"study {study.name} ({study.dir}):"]
    for r in st["runs"]:
        what = r["state"] + (" (running elsewhere)" if r["running"] else "")
        it = f"{r['iteration']}/{r['total']}" if r["total"] else "-"
        extra = f"  error: {r['error']}" if r.get("error") else ""
        lines.append(f"  {r['variant']:<24} seed {r['seed']:<3} {what:<28} iter {it:<10} "
                     f"eta {_fmt_s(r['eta_s']) if r['state'] not in ('done', 'recorded', 'failed') else '-'}{extra}")
    counts = {k: sum(r["state"] == k for r in st["runs"]) for k in ("done", "recorded", "partial", "todo", "failed")}
    lines.append(f"  done {counts['done'] + counts['recorded']} ({counts['recorded']} from committed records), "
                 f"in progress {counts['partial']}, left {counts['todo']}, "
                 f"failed {counts['failed']}; time left {_fmt_s(st['eta_s'])}"
                 + (f" at {st['seconds_per_iter']:.2f} s/iteration" if st["seconds_per_iter"] else ""))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- training
def compose_train_config(overrides: Sequence[str]) -> DictConfig:
    """``configs/train/train.yaml`` composed with ``overrides``, as ``gifnet train`` composes it."""
    from gifnet.config import compose

    return compose("train", overrides)


def _identity(run: RunSpec) -> dict:
    """The resolved training config of a run's own overrides: what the run *is* (device and the like excluded).

    The ``paths`` group is left out: it says where the data lives, and the data roots it resolves to are part of
    the identity themselves (``data.root``, ``init``)."""
    ident = OmegaConf.to_container(compose_train_config(run.overrides), resolve=True)
    ident.pop("paths", None)
    return ident


def check_identity(run: RunSpec, folder: Path | None = None) -> None:
    """Refuse to reuse a run folder (or a run record: ``folder``) whose stored configuration differs from what the
    study composes today (an edited experiment or study config): its results would be labelled with a recipe they
    were not trained with.
    """
    import yaml

    from gifnet.engine.resume import flatten

    folder = run.run_dir if folder is None else folder
    path = folder / "identity.yaml"
    if not path.is_file():
        return
    stored, now = flatten(yaml.safe_load(path.read_text())), flatten(_identity(run))
    diff = sorted(k for k in set(stored) | set(now) if stored.get(k) != now.get(k))
    if diff:
        shown = ", ".join(f"{k}: {stored.get(k)!r} -> {now.get(k)!r}" for k in diff[:8])
        raise StudyError(f"{folder}: trained with another configuration than the study composes now ({shown}"
                         f"{', ...' if len(diff) > 8 else ''}); restore the config or move the folder away to retrain")


def train_run(run: RunSpec, extra: Sequence[str] = ()) -> dict:
    """Train (or resume) one run in this process; returns the trainer's summary."""
    import yaml

    from gifnet.engine.trainer import Trainer

    check_identity(run)
    overrides = [*run.overrides, *extra]
    if run.last.is_file():
        overrides.append(f"resume={run.last}")
    cfg = compose_train_config(overrides)
    if int(os.environ.get("RANK", "0")) == 0:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        _write_json(run.run_dir / "overrides.json", {"overrides": list(run.overrides), "extra": list(extra)})
        if not (run.run_dir / "identity.yaml").is_file():
            with atomic_path(run.run_dir / "identity.yaml") as tmp:
                tmp.write_text(yaml.safe_dump(_identity(run), sort_keys=True))
        with atomic_path(run.run_dir / "config.yaml") as tmp:
            tmp.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    log.info("study run %s/seed%d: %s", run.variant, run.seed, " ".join(overrides))
    return Trainer(cfg, run.run_dir).fit()


# -------------------------------------------------------------------------------------------- evaluation
def _eval_dir(run_dir: Path, selection: str) -> Path:
    return run_dir / "eval" / selection


def evaluate_checkpoint(checkpoint: Path, out: Path, selection: str, name: str, eval_overrides: Sequence[str] = (),
                        digest: str | None = None):  # fmt: skip
    """Evaluate ``checkpoint`` into ``out`` unless ``out/summary.csv`` is already there for the same file
    (``digest``: its SHA-256, when the caller has it)."""
    from gifnet.evaluation import evaluate_from_config, load_eval_config

    digest = digest or sha256_of(checkpoint)
    stamp = _read_json(out / "stamp.json") or {}
    if stamp.get("sha256") == digest and stamp.get("overrides") == list(eval_overrides) \
            and (out / "summary.csv").is_file():  # fmt: skip
        return
    cfg = load_eval_config([f"checkpoint={checkpoint}", f"eval={selection}", f"out={out}", f"name={name}",
                            "progress=false", *eval_overrides])  # fmt: skip
    evaluate_from_config(cfg)
    _write_json(out / "stamp.json", {"sha256": digest, "checkpoint": str(checkpoint),
                                     "overrides": list(eval_overrides)})  # fmt: skip


def _copy_if_changed(src: Path, dst: Path, keep=None) -> None:
    """Write ``src`` (its lines filtered by ``keep``) to ``dst`` atomically, untouched when the text is the same."""
    text = src.read_text()
    if keep is not None:
        lines = text.splitlines(keepends=True)
        text = "".join(lines[:1] + [ln for ln in lines[1:] if keep(ln)])
    if dst.is_file() and dst.read_text() == text:
        return
    with atomic_path(dst) as tmp:
        tmp.write_text(text)


def _write_record(run: RunSpec, selection: str) -> None:
    """The run's committed record (see the module docstring); rewritten only where its content changed."""
    if run.record_dir is None:
        return
    ev = _eval_dir(run.run_dir, selection)
    stamp = _read_json(ev / "stamp.json") or {}
    status = {k: v for k, v in (_read_json(run.run_dir / "status.json") or {}).items() if k != "pid"}
    record = {"variant": run.variant, "seed": run.seed, "overrides": list(run.overrides),
              "checkpoint_sha256": stamp.get("sha256"), "eval": selection,
              "eval_overrides": stamp.get("overrides", []), "status": status,
              "source": "written by the study runner from the run folder"}  # fmt: skip
    run.record_dir.mkdir(parents=True, exist_ok=True)
    for name in ("identity.yaml", "config.yaml"):
        if (run.run_dir / name).is_file():
            _copy_if_changed(run.run_dir / name, run.record_dir / name)
    if (run.run_dir / "losses.csv").is_file():  # the total loss per task only (the terms stay in the run folder)
        _copy_if_changed(run.run_dir / "losses.csv", run.record_dir / "losses.csv",
                         keep=lambda ln: ln.count(",") >= 3 and ln.split(",")[2].endswith("/total"))
    _copy_if_changed(ev / "summary.csv", run.record_dir / "summary.csv")
    old = _read_json(run.record_dir / "record.json")
    if old != json.loads(json.dumps(record, default=str)):
        _write_json(run.record_dir / "record.json", record)


def _summary_of(run: RunSpec, selection: str) -> Path | None:
    """The evaluation summary of a finished run: its folder's, else its record's."""
    state = run_state(run)[0]
    if state == "done" and (_eval_dir(run.run_dir, selection) / "summary.csv").is_file():
        return _eval_dir(run.run_dir, selection) / "summary.csv"
    if state == "recorded":
        return run.record_dir / "summary.csv"
    return None


def _reference_summary(study: Study, ref: str) -> Path | None:
    p = _eval_dir(study.dir / "reference" / ref, study.eval) / "summary.csv"
    if p.is_file():
        return p
    rec = study.record_dir("reference", ref)
    return rec / "summary.csv" if rec is not None and (rec / "summary.csv").is_file() else None


# -------------------------------------------------------------------------------------------------- table
def _read_summary(path: Path) -> dict[tuple[str, str], float]:
    import csv

    out: dict[tuple[str, str], float] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out[(row["dataset"], row["metric"])] = float(row["mean"])
    return out


def _directions(path: Path) -> dict[tuple[str, str], str]:
    import csv

    with open(path, newline="") as f:
        return {(r["dataset"], r["metric"]): r["better"] for r in csv.DictReader(f)}


def collect_results(study: Study) -> dict[str, Any]:
    """Per-variant and per-reference metric values (dataset means per run) from the runs' ``eval`` folders."""
    rows: dict[str, dict[str, Any]] = {}
    directions: dict[tuple[str, str], str] = {}
    for run in study.runs():
        row = rows.setdefault(run.variant, {"kind": "variant", "seeds": [], "values": {}, "state": {}})
        state, st = run_state(run)
        row["state"][run.seed] = state if state != "failed" else f"failed: {st.get('error', '')}"
        summary = _summary_of(run, study.eval)
        if summary is not None:
            row["seeds"].append(run.seed)
            directions.update(_directions(summary))
            for k, v in _read_summary(summary).items():
                row["values"].setdefault(k, []).append(v)
    for ref in study.references:
        summary = _reference_summary(study, ref)
        row = {"kind": "reference", "seeds": [], "values": {}, "state": {}}
        if summary is not None:
            directions.update(_directions(summary))
            row["values"] = {k: [v] for k, v in _read_summary(summary).items()}
        rows[ref] = row
    return {"rows": rows, "directions": directions}


def _columns(study: Study, directions: dict[tuple[str, str], str]) -> list[tuple[str, str]]:
    if study.table:
        return [(d, m) for d, ms in study.table.items() for m in ms]
    return sorted(directions)


def _mean_sd(vals: Sequence[float]) -> tuple[float, float | None]:
    m = float(sum(vals) / len(vals))
    return m, (float(statistics.stdev(vals)) if len(vals) > 1 else None)


def _num(x: float) -> str:
    ax = abs(x)
    return f"{x:.4f}" if ax < 10 else f"{x:.3f}" if ax < 100 else f"{x:.2f}"


def write_study_table(study: Study, results_dir: str | Path) -> dict[str, Path]:
    """``table.md``, ``table.csv``, ``runs.csv`` and the figures ``metrics.png`` / ``losses.png``."""
    import csv
    import io

    results_dir = Path(results_dir)
    res = collect_results(study)
    rows, directions = res["rows"], res["directions"]
    cols = _columns(study, directions)
    base = rows.get(study.baseline) if study.baseline else None
    base_stats = {k: _mean_sd(base["values"][k]) for k in cols if base and base["values"].get(k)}
    base_range = {k: max(base["values"][k]) - min(base["values"][k]) for k in cols
                  if base and len(base["values"].get(k, [])) > 1}  # fmt: skip

    # CSV: one row per (row, dataset, metric)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["row", "kind", "dataset", "metric", "better", "n_seeds", "mean", "sd", "delta_vs_baseline",
                "baseline_range", "within_baseline_range"])
    for name, r in rows.items():
        for k in cols:
            vals = r["values"].get(k)
            if not vals:
                continue
            m, sd = _mean_sd(vals)
            delta = m - base_stats[k][0] if k in base_stats and name != study.baseline else None
            rng = base_range.get(k)
            within = None if delta is None or rng is None else abs(delta) <= rng
            w.writerow([name, r["kind"], k[0], k[1], directions.get(k, ""), len(vals), repr(m),
                        "" if sd is None else repr(sd), "" if delta is None else repr(delta),
                        "" if rng is None else repr(rng), "" if within is None else int(within)])  # fmt: skip
    paths = {}
    results_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(results_dir / "table.csv") as tmp:
        tmp.write_text(buf.getvalue())
    paths["csv"] = results_dir / "table.csv"

    # per-run CSV (every seed's values): the raw material of the means
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["variant", "seed", "dataset", "metric", "value"])
    for run in study.runs():
        summary = _summary_of(run, study.eval)
        if summary is not None:
            for (d, m), v in sorted(_read_summary(summary).items()):
                if (d, m) in cols:
                    w.writerow([run.variant, run.seed, d, m, repr(v)])
    with atomic_path(results_dir / "runs.csv") as tmp:
        tmp.write_text(buf.getvalue())
    paths["runs_csv"] = results_dir / "runs.csv"

    # Markdown
    arrow = {"higher": "↑", "lower": "↓"}
    head = ["row", "seeds"] + [f"{d} {m} {arrow.get(directions.get((d, m), ''), '')}".strip() for d, m in cols]
    lines = [f"# Study `{study.name}`", ""]
    if study.description:
        lines += [study.description, ""]
    lines += [
        f"Evaluation: `eval={study.eval}`; cells: mean ± SD over seeds of the per-run dataset means (a single "
        "seed has no SD); Δ = difference from the baseline's mean. "
        + (f"Baseline: `{study.baseline}`; its seed-to-seed range (max − min) is the row *baseline range*; a Δ "
           "within it is marked ≈ (not larger than seed noise)." if study.baseline else ""),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]  # fmt: skip
    for name, r in rows.items():
        cells = [f"`{name}`" + (" (reference)" if r["kind"] == "reference" else ""),
                 ",".join(str(s) for s in r["seeds"]) if r["kind"] == "variant" else "–"]
        for k in cols:
            vals = r["values"].get(k)
            if not vals:
                cells.append("–")
                continue
            m, sd = _mean_sd(vals)
            txt = _num(m) + (f" ± {_num(sd)}" if sd is not None else "")
            if k in base_stats and name != study.baseline:
                d = m - base_stats[k][0]
                mark = " ≈" if k in base_range and abs(d) <= base_range[k] else ""
                txt += f" (Δ {d:+.4f}{mark})"
            cells.append(txt)
        lines.append("| " + " | ".join(cells) + " |")
    if base_range:
        lines.append("| *baseline range* | | " + " | ".join(_num(base_range[k]) if k in base_range else "–"
                                                         for k in cols) + " |")  # fmt: skip
    for ref in study.references:
        ref_vals = {k: _mean_sd(rows[ref]["values"][k])[0] for k in cols if rows.get(ref, {}).get("values", {}).get(k)}
        if not ref_vals:
            continue
        lines += ["", f"As a percentage of the reference `{ref}` (mean over seeds / reference; for ↓ metrics lower is "
                  "better):", "", "| row | " + " | ".join(head[2:]) + " |", "|" + "---|" * (len(head) - 1)]
        for name, r in rows.items():
            if r["kind"] != "variant" or not any(r["values"].get(k) for k in cols):
                continue
            cells = [f"`{name}`"]
            for k in cols:
                vals = r["values"].get(k)
                ok = vals and k in ref_vals and ref_vals[k] != 0
                cells.append(f"{100 * _mean_sd(vals)[0] / ref_vals[k]:.0f} %" if ok else "–")
            lines.append("| " + " | ".join(cells) + " |")
    missing = [(n, s, st) for n, r in rows.items() if r["kind"] == "variant" for s, st in r["state"].items()
               if st not in FINISHED]  # fmt: skip
    lines += ["", "Runs not in the table: " + ("none." if not missing else
              "; ".join(f"`{n}` seed {s} ({st})" for n, s, st in missing) + ".")]  # fmt: skip
    if study.notes:
        lines += ["", *[f"- {n}" for n in study.notes]]
    with atomic_path(results_dir / "table.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    paths["md"] = results_dir / "table.md"
    paths.update(_figures(study, rows, cols, directions, base_stats, base_range, results_dir))
    return paths


def _figures(study, rows, cols, directions, base_stats, base_range, results_dir: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, Path] = {}
    # 1. metrics: per column, every row's mean (error bar = SD over seeds), baseline's range shaded
    names = [n for n, r in rows.items() if any(r["values"].get(k) for k in cols)]
    if names and cols:
        ncol = min(4, len(cols))
        nrow = math.ceil(len(cols) / ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 0.28 * len(names) * nrow + 1.4 * nrow),
                                 squeeze=False)  # fmt: skip
        for ax, k in zip(axes.flat, cols):
            ys, ms, sds, colors = [], [], [], []
            for i, n in enumerate(names):
                vals = rows[n]["values"].get(k)
                if not vals:
                    continue
                m, sd = _mean_sd(vals)
                ys.append(i), ms.append(m), sds.append(sd or 0.0)
                colors.append("tab:gray" if rows[n]["kind"] == "reference" else
                              "tab:blue" if n == study.baseline else "tab:orange")  # fmt: skip
            ax.barh(ys, ms, xerr=sds, color=colors, height=0.7)
            if k in base_stats:
                vals = rows[study.baseline]["values"][k]
                ax.axvspan(min(vals), max(vals), color="tab:blue", alpha=0.15, lw=0)
            ax.set_yticks(range(len(names)))
            ax.set_yticklabels(names if ax in axes[:, 0] else [""] * len(names), fontsize=7)
            ax.invert_yaxis()
            better = {"higher": "↑", "lower": "↓"}.get(directions.get(k, ""), "")
            ax.set_title(f"{k[0]}: {k[1]} {better}", fontsize=8)
            ax.tick_params(axis="x", labelsize=7)
        for ax in list(axes.flat)[len(cols):]:
            ax.axis("off")
        fig.suptitle(f"study {study.name} (eval={study.eval}); blue band = baseline seed range", fontsize=9)
        fig.tight_layout()
        with atomic_path(results_dir / "metrics.png") as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)
        out["metrics_png"] = results_dir / "metrics.png"
    # 2. loss curves of every run: total loss per task against the iteration
    curves = _loss_curves(study)
    if curves:
        tasks = sorted({t for c in curves.values() for t in c})
        fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.4), squeeze=False)
        variants = list(study.variants)
        cmap = plt.get_cmap("tab10")
        for ax, t in zip(axes[0], tasks):
            for (v, s), c in curves.items():
                if t in c:
                    it, val = zip(*c[t])
                    ax.plot(it, val, lw=0.8, color=cmap(variants.index(v) % 10),
                            label=f"{v} s{s}", ls="-" if s == min(study.variants[v]["seeds"]) else "--")
            ax.set_title(f"{t} total loss", fontsize=9)
            ax.set_xlabel("iteration", fontsize=8)
            ax.set_yscale("log")
            ax.tick_params(labelsize=7)
        axes[0][-1].legend(fontsize=6, loc="upper right", ncol=1 + len(curves) // 12)
        fig.tight_layout()
        with atomic_path(results_dir / "losses.png") as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)
        out["losses_png"] = results_dir / "losses.png"
    return out


def _loss_curves(study: Study) -> dict[tuple[str, int], dict[str, list[tuple[int, float]]]]:
    import csv

    curves = {}
    for run in study.runs():
        path = run.run_dir / "losses.csv"
        if not path.is_file() and run.record_dir is not None:
            path = run.record_dir / "losses.csv"
        if not path.is_file():
            continue
        c: dict[str, list[tuple[int, float]]] = {}
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                if r["name"].endswith("/total"):
                    c.setdefault(r["name"].split("/")[0], []).append((int(r["iteration"]), float(r["value"])))
        if c:
            curves[(run.variant, run.seed)] = c
    return curves


# ---------------------------------------------------------------------------------------------------- run
def run_study(
    study: Study,
    results_dir: str | Path | None = None,
    dry_run: bool = False,
    only: Sequence[str] | None = None,
    train_overrides: Sequence[str] = (),
    eval_overrides: Sequence[str] = (),
    retry_failed: bool = False,
    train: bool = True,
) -> dict[str, Any]:
    """Train what is missing, evaluate what is new, rebuild the table; see the module docstring."""
    from gifnet.engine.trainer import NonFiniteLossError

    rank = int(os.environ.get("RANK", "0"))
    study.results_dir = Path(results_dir) if results_dir is not None else study.dir / "results"
    if only:
        unknown = sorted(set(only) - set(study.variants))
        if unknown:
            raise StudyError(f"only: unknown variant(s) {unknown}; variants: {', '.join(study.variants)}")
    if dry_run:
        text = format_status(study)
        if rank == 0:
            print(text)
        return {"dry_run": True, "status": study_status(study)}
    trained, failed = [], []
    single = int(os.environ.get("WORLD_SIZE", "1")) == 1
    if single and train and any(run_state(r)[0] == "done" for r in study.runs()):
        # runs that finished in a process that stopped before scoring them are evaluated before more training
        _evaluate_and_tabulate(study, eval_overrides)
    for run in study.runs() if train else []:
        if only and run.variant not in only:
            continue
        state, _ = run_state(run)
        if state in FINISHED or (state == "failed" and not retry_failed):
            continue
        if state == "failed":
            (run.run_dir / "failed.json").unlink()
        try:
            train_run(run, train_overrides)
            trained.append(f"{run.variant}/seed{run.seed}")
            if single:  # the table fills as runs land (under torchrun the ranks stay together: tables at the end)
                _evaluate_and_tabulate(study, eval_overrides)
        except NonFiniteLossError as e:  # a recipe that diverges is a result: recorded, the study goes on
            log.error("run %s/seed%d failed: %s", run.variant, run.seed, e)
            if rank == 0:
                _write_json(run.run_dir / "failed.json", {"error": str(e).split(";")[0]})
            failed.append(f"{run.variant}/seed{run.seed}")
    from gifnet.engine.distributed import cleanup

    cleanup(synchronize=True)  # every rank got here: the run loop records failures and goes on
    if rank != 0:
        return {"trained": trained, "failed": failed}
    paths = _evaluate_and_tabulate(study, eval_overrides)
    log.info("%s", format_status(study))
    log.info("study table: %s", paths.get("md"))
    return {"trained": trained, "failed": failed, "tables": {k: str(v) for k, v in paths.items()}}


def _evaluate_and_tabulate(study: Study, eval_overrides: Sequence[str]) -> dict[str, Path]:
    """Evaluate every finished run and reference not evaluated yet (SHA-256 stamps), then rebuild the table in
    ``study.results_dir`` (set by :func:`run_study`)."""
    from gifnet.data.datasets import resolve_path

    for run in study.runs():
        state = run_state(run)[0]
        if state == "done":
            check_identity(run)
            evaluate_checkpoint(run.last, _eval_dir(run.run_dir, study.eval), study.eval, run.variant,
                                eval_overrides)  # fmt: skip
            _write_record(run, study.eval)
        elif state == "recorded":
            check_identity(run, run.record_dir)
    for ref, path in study.references.items():
        p = resolve_path(path)
        rec = study.record_dir("reference", ref)
        old = _read_json(rec / "record.json") or {}
        if not p.is_file():
            log.warning("reference %s: %s not found; %s", ref, p,
                        "its committed record is used" if old else "row left empty")  # fmt: skip
            continue
        digest = sha256_of(p)
        if old.get("checkpoint_sha256") == digest and old.get("eval") == study.eval \
                and old.get("eval_overrides") == list(eval_overrides) and (rec / "summary.csv").is_file():  # fmt: skip
            continue
        out = _eval_dir(study.dir / "reference" / ref, study.eval)
        evaluate_checkpoint(p, out, study.eval, ref, eval_overrides, digest=digest)
        rec.mkdir(parents=True, exist_ok=True)
        _copy_if_changed(out / "summary.csv", rec / "summary.csv")
        _write_json(rec / "record.json", {"reference": ref, "checkpoint": path, "checkpoint_sha256": digest,
                                          "eval": study.eval, "eval_overrides": list(eval_overrides)})  # fmt: skip
    return write_study_table(study, study.results_dir)

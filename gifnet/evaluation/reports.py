"""The evaluation's reports: per-image CSV, per-dataset Markdown, CSV and LaTeX tables (best bold, second marked,
average rank, round-off flags, failures, timings) and the comparison figures."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gifnet.io import read_image
from gifnet.metrics import METRICS
from gifnet.paths import atomic_path

from .datasets import CONVENTION_NOTES, DatasetSpec, EvaluationError

if TYPE_CHECKING:
    from .run import EvalResult, Failure

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------ reports
@dataclass
class _Cell:
    n: int  # values in the mean (round-off-dominated ones excluded)
    mean: float
    std: float
    best: bool = False
    second: bool = False
    rank: float = math.nan  # 1 = best in the column (ties share the mean rank)
    roundoff: int = 0  # values left out because round-off decides them


def _write_text_atomic(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")
    return path


def _csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _stats(result: EvalResult, spec: DatasetSpec) -> dict[tuple[str, str], _Cell]:
    """(method, metric) -> mean/std (population SD over images), best/second flags and rank per column.

    Round-off-dominated values are left out of the mean and counted. Best and second need >= 2 (>= 3) methods
    with finite means; ranks are 1-based, ties share their mean rank.
    """
    acc: dict[tuple[str, str], list[float]] = {}
    flagged: dict[tuple[str, str], int] = {}
    for ds, m, img, metric, v in result.values:
        if ds != spec.name:
            continue
        if (ds, m, img, metric) in result.roundoff:
            flagged[(m, metric)] = flagged.get((m, metric), 0) + 1
            acc.setdefault((m, metric), [])
        else:
            acc.setdefault((m, metric), []).append(v)
    cells = {
        k: _Cell(len(v), float(np.mean(v)) if v else math.nan, float(np.std(v)) if v else math.nan,
                 roundoff=flagged.get(k, 0))
        for k, v in acc.items()
    }  # fmt: skip
    for metric in spec.metrics:
        col = [cells[(m, metric)] for m in result.methods.get(spec.name, []) if (m, metric) in cells]
        col = [c for c in col if math.isfinite(c.mean)]
        if not col:
            continue
        lower = METRICS[spec.convention][metric].direction == "lower"
        key = (lambda c: c.mean) if lower else (lambda c: -c.mean)
        order = sorted(col, key=key)
        for c in col:
            better = sum(1 for o in col if key(o) < key(c) and not _same(o.mean, c.mean))
            ties = sum(1 for o in col if _same(o.mean, c.mean))
            c.rank = better + (ties + 1) / 2
        if len(col) < 2:
            continue
        best = order[0].mean
        for c in col:
            c.best = _same(c.mean, best)
        rest = [c for c in order if not c.best]
        if len(col) >= 3 and rest:
            for c in rest:
                c.second = _same(c.mean, rest[0].mean)
    return cells


def _same(x: float, y: float) -> bool:
    return math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-15)


def _avg_rank(cells: dict[tuple[str, str], _Cell], method: str, metrics: Sequence[str]) -> float:
    """Mean of the method's ranks over the metrics where it has one (NaN if none)."""
    ranks = [c.rank for c in (cells.get((method, k)) for k in metrics) if c is not None and math.isfinite(c.rank)]
    return float(np.mean(ranks)) if ranks else math.nan


def _decimals(x: float) -> int:
    ax = abs(x) if math.isfinite(x) else 0.0
    return 4 if ax < 10 else 3 if ax < 100 else 2 if ax < 1000 else 1


def _cell_text(c: _Cell, pm: str | None = "±", dagger: str = "†") -> str:
    """``mean ± std`` (``pm=None``: the mean only) with decimals chosen from the mean's magnitude; ``(†k)`` when
    k values were left out as round-off, ``† (k)`` when all were."""
    if not math.isfinite(c.mean) and c.roundoff:
        return f"{dagger} ({c.roundoff})"
    d = _decimals(c.mean)
    text = f"{c.mean:.{d}f}" if pm is None else f"{c.mean:.{d}f} {pm} {c.std:.{d}f}"
    return f"{text} ({dagger}{c.roundoff})" if c.roundoff else text


def _roundoff_note(result: EvalResult, spec: DatasetSpec) -> list[str]:
    """Footer lines naming the round-off-dominated values of ``spec``, per metric and method."""
    per: dict[str, list[str]] = {}
    for ds, m, img, metric in sorted(result.roundoff):
        if ds == spec.name:
            per.setdefault(metric, []).append(f"{m}/{img}")
    return [f"{metric}: {len(v)} value(s) — {', '.join(v)}" for metric, v in per.items()]


_ROUNDOFF_TEXT = ("† values that floating-point round-off decides (Liu's C = 2e-16 on flat windows; docs/metrics.md) "
                  "are left out of the means and ranks, with their count; per-image values in per_image.csv")


def _arrow(spec: DatasetSpec, metric: str) -> bool:
    return METRICS[spec.convention][metric].direction == "lower"


def _header_note(spec: DatasetSpec) -> str:
    order = f"metric arguments a = {spec.metric_sources[0]}, b = {spec.metric_sources[1]}"
    return f"convention: {spec.convention} ({CONVENTION_NOTES.get(spec.convention, '')}); {order}"


def _sections(result: EvalResult) -> list[tuple[str, list[DatasetSpec]]]:
    seen = [s for s in result.datasets if result.seen(s)]
    unseen = [s for s in result.datasets if not result.seen(s)]
    return [(title, specs) for title, specs in (("Seen tasks", seen), ("Unseen tasks", unseen)) if specs]


def _failures_of(result: EvalResult, spec: DatasetSpec) -> list[Failure]:
    return [f for f in result.failures if f.dataset == spec.name]


def _markdown(result: EvalResult, stats: dict[str, dict[tuple[str, str], _Cell]]) -> str:
    lines = [
        "# Evaluation summary", "",
        f"- checkpoint: `{result.checkpoint}` (trained tasks: {', '.join(result.trained_tasks) or 'none'})",
        "- cells: mean ± population SD over the images scored (n); ↑ higher is better, ↓ lower is better; "
        "best mean per column in **bold**, second <ins>underlined</ins>; rank = the method's mean rank over the "
        "metrics (1 = best)",
        f"- failures: {len(result.failures)}; wall time {result.seconds:.1f} s",
    ]  # fmt: skip
    if result.timings:
        where = (f"metrics in CPU seconds of {result.workers} worker processes, run beside the fusion"
                 if result.workers else "in turn")
        lines.append(f"- time per dataset, fusion + metrics ({where}; timings.json per metric): " + "; ".join(
            f"{k} {v['fusion']:.1f} + {v['metrics']:.1f} s" for k, v in result.timings.items()))
    lines.append("")
    for title, specs in _sections(result):
        lines += [f"## {title}", ""]
        for spec in specs:
            n_img = len(result.images.get(spec.name, []))
            lines += [f"### {spec.name} — task {spec.task}, {n_img} image(s)", ""]
            if spec.description:
                lines += [f"{spec.description}.", ""]
            lines += [_header_note(spec), ""]
            head = ["method", "n"] + [f"{m} {'↓' if _arrow(spec, m) else '↑'}" for m in spec.metrics] + ["rank ↓"]
            lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            cells = stats[spec.name]
            for m in result.methods.get(spec.name, []):
                row = [m]
                ns = [cells[(m, k)].n + cells[(m, k)].roundoff for k in spec.metrics if (m, k) in cells]
                row.append(f"{max(ns) if ns else 0}/{n_img}")
                for k in spec.metrics:
                    c = cells.get((m, k))
                    if c is None:
                        row.append("–")
                        continue
                    s = _cell_text(c)
                    row.append(f"**{s}**" if c.best else f"<ins>{s}</ins>" if c.second else s)
                r = _avg_rank(cells, m, spec.metrics)
                row.append(f"{r:.2f}" if math.isfinite(r) else "–")
                lines.append("| " + " | ".join(row) + " |")
            fails = _failures_of(result, spec)
            lines.append("")
            notes = _roundoff_note(result, spec)
            if notes:
                lines += [_ROUNDOFF_TEXT + ":", *[f"- {n}" for n in notes], ""]
            if fails:
                lines.append(f"Failures ({len(fails)}):")
                lines += [f"- {f.method} / {f.image}: {f.error}" for f in fails]
            else:
                lines.append("Failures: none.")
            lines.append("")
    return "\n".join(lines)


def _tex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                 ("$", r"\$"), ("{", r"\{"), ("}", r"\}"), ("±", r"$\pm$"), ("–", "--"), ("—", "---"),
                 ("^", r"\^{}"), ("≤", r"$\leq$"), ("§", r"\S{}")):  # fmt: skip
        s = s.replace(a, b) if a != "\\" else s.replace(a, "\x00")
    return s.replace("\x00", r"\textbackslash{}")


def _latex(result: EvalResult, stats: dict[str, dict[tuple[str, str], _Cell]]) -> str:
    lines = [
        "% GIFNet evaluation summary (generated by scripts/evaluate.py); needs \\usepackage{booktabs}",
        f"% checkpoint: {result.checkpoint}; trained tasks: {', '.join(result.trained_tasks)}",
    ]
    for title, specs in _sections(result):
        lines += ["", f"\\section*{{{title}}}"]
        for spec in specs:
            n_img = len(result.images.get(spec.name, []))
            cells = stats[spec.name]
            lines += [
                "\\begin{table}[ht]", "\\centering", "\\scriptsize",
                f"\\caption{{{_tex_escape(spec.name)} (task {_tex_escape(spec.task)}, {n_img} images). "
                f"{_tex_escape(_header_note(spec))}. Mean over the images; best in bold, second underlined; "
                "Rank: mean rank over the metrics.}",
                "\\begin{tabular}{l" + "c" * (len(spec.metrics) + 2) + "}", "\\toprule",
                " & ".join(["Method", "n"] + [f"{_tex_escape(k)}$\\{'downarrow' if _arrow(spec, k) else 'uparrow'}$"
                                              for k in spec.metrics] + ["Rank$\\downarrow$"]) + " \\\\",
                "\\midrule",
            ]  # fmt: skip
            for m in result.methods.get(spec.name, []):
                ns = [cells[(m, k)].n + cells[(m, k)].roundoff for k in spec.metrics if (m, k) in cells]
                row = [_tex_escape(m), f"{max(ns) if ns else 0}/{n_img}"]
                for k in spec.metrics:
                    c = cells.get((m, k))
                    if c is None:
                        row.append("--")
                        continue
                    s = _cell_text(c, None, "$\\dagger$")
                    row.append(f"\\textbf{{{s}}}" if c.best else f"\\underline{{{s}}}" if c.second else s)
                r = _avg_rank(cells, m, spec.metrics)
                row.append(f"{r:.2f}" if math.isfinite(r) else "--")
                lines.append(" & ".join(row) + " \\\\")
            lines += ["\\bottomrule", "\\end{tabular}"]
            notes = _roundoff_note(result, spec)
            if notes:
                note = _tex_escape(_ROUNDOFF_TEXT).replace("†", "$\\dagger$") + ": " + _tex_escape("; ".join(notes))
                lines.append("\\\\[2pt]\\parbox{\\linewidth}{\\tiny " + note + "}")
            fails = _failures_of(result, spec)
            if fails:
                lines.append(
                    f"\\\\[2pt]\\parbox{{\\linewidth}}{{\\tiny Failures ({len(fails)}): "
                    + "; ".join(_tex_escape(f"{f.method}/{f.image}: {f.error}") for f in fails)
                    + "}"
                )
            lines += ["\\end{table}"]
    return "\n".join(lines) + "\n"


def write_figures(result: EvalResult, out: str | Path, image: str | None = None, top: int = 4) -> dict[str, Path]:
    """One comparison figure per dataset, ``out/figures/<dataset>.png`` (:mod:`gifnet.evaluation.figure`).

    Panels: source A (and B), every checkpoint, then the ``top`` other methods (published, extra, source rows)
    with the best mean rank over the dataset's metrics, for ``image`` (default: the first image evaluated).
    Methods without a scored file for that image are left out.
    """
    from gifnet.evaluation.figure import write_figure

    paths = {}
    for spec in result.datasets:
        stems = result.images.get(spec.name, [])
        if not stems:
            continue
        stem = Path(image).stem if image else stems[0]
        if stem not in stems:
            raise EvaluationError(f"figure_image {image!r} is not an evaluated image of {spec.name}")
        pa, pb = result.sources[(spec.name, stem)]
        panels = [("source A", read_image(pa))] + ([("source B", read_image(pb))] if pb is not None else [])
        cells = _stats(result, spec)
        others = [m for m in result.methods[spec.name] if m not in result.checkpoint_names]
        others.sort(key=lambda m: (_avg_rank(cells, m, spec.metrics), m))
        for m in [*result.checkpoint_names, *others[:top]]:
            f = result.files.get((spec.name, m, stem))
            if f is not None:
                rank = _avg_rank(cells, m, spec.metrics)
                panels.append((m if not math.isfinite(rank) else f"{m} (rank {rank:.1f})", read_image(f)))
        paths[spec.name] = write_figure(Path(out) / "figures" / f"{spec.name}.png", panels,
                                        f"{spec.name} / {stem} (task {spec.task})")  # fmt: skip
    return paths


def write_reports(result: EvalResult, out: str | Path) -> dict[str, Path]:
    """Write ``per_image.csv``, ``failures.csv``, ``summary.md``, ``summary.csv`` and ``summary.tex`` atomically."""
    out = Path(out)
    stats = {spec.name: _stats(result, spec) for spec in result.datasets}
    paths = {}
    paths["per_image"] = _write_text_atomic(
        out / "per_image.csv",
        _csv_text(["dataset", "method", "image", "metric", "value", "roundoff"],
                  [(*r[:4], repr(r[4]), int(tuple(r[:4]) in result.roundoff)) for r in result.values]),
    )  # fmt: skip
    paths["failures"] = _write_text_atomic(
        out / "failures.csv",
        _csv_text(["dataset", "method", "image", "error"], [(f.dataset, f.method, f.image, f.error)
                                                            for f in result.failures]),
    )  # fmt: skip
    rows = []
    for title, specs in _sections(result):
        for spec in specs:
            for m in result.methods.get(spec.name, []):
                for k in spec.metrics:
                    c = stats[spec.name].get((m, k))
                    if c is not None:
                        rows.append((title.split()[0].lower(), spec.name, spec.task, spec.convention, m, k,
                                     METRICS[spec.convention][k].direction, c.n, repr(c.mean), repr(c.std),
                                     int(c.best), int(c.second), repr(c.rank), c.roundoff,
                                     repr(_avg_rank(stats[spec.name], m, spec.metrics))))  # fmt: skip
    paths["summary_csv"] = _write_text_atomic(
        out / "summary.csv",
        _csv_text(["section", "dataset", "task", "convention", "method", "metric", "better", "n", "mean", "std",
                   "best", "second", "rank", "roundoff", "avg_rank"], rows),
    )  # fmt: skip
    timings = {"seconds": result.seconds, "workers": result.workers, "worker_nice": result.worker_nice,
               "cache": result.cache,
               "datasets": {d: {**t, "images": len(result.images.get(d, [])),
                                "per_metric": result.metric_seconds.get(d, {})} for d, t in result.timings.items()}}
    paths["timings"] = _write_text_atomic(out / "timings.json", json.dumps(timings, indent=1) + "\n")
    paths["summary_md"] = _write_text_atomic(out / "summary.md", _markdown(result, stats))
    paths["summary_tex"] = _write_text_atomic(out / "summary.tex", _latex(result, stats))
    return paths



"""Side-by-side per-dataset means of two evaluations of one method (e.g. ``eval=quick`` against ``eval=all``).

``gifnet compare full=FULL subset=SUBSET [method=GIFNet] [out=FILE]`` where FULL and SUBSET are evaluation outputs:
a ``summary.csv``, or a ``summary.md`` written by ``gifnet evaluate`` (its tables are parsed; values are the 4-5
significant digits shown there). The result is a Markdown table: dataset, metric, both means, the difference and
the difference in units of the full evaluation's per-image SD.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path


def read_means(path: Path, method: str) -> dict[tuple[str, str], tuple[float, float, int]]:
    """(dataset, metric) -> (mean, SD over images, n) of ``method``."""
    out = {}
    if path.suffix == ".csv":
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                if r["method"] == method:
                    out[(r["dataset"], r["metric"])] = (float(r["mean"]), float(r["std"]), int(r["n"]))
        return out
    dataset, header = None, None
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^### (\S+) — ", line)
        if m:
            dataset, header = m.group(1), None
            continue
        if dataset and line.startswith("| method |"):
            header = [c.strip().rsplit(" ", 1)[0] for c in line.strip("|").split("|")]
            continue
        if dataset and header and line.startswith(f"| {method} |"):
            cells = [c.strip().strip("*") for c in line.strip("|").split("|")]
            n = int(cells[1].split("/")[0])
            for name, cell in zip(header[2:], cells[2:]):
                if "±" in cell:
                    mean, sd = (float(x) for x in cell.split("±"))
                    out[(dataset, name)] = (mean, sd, n)
    return out



def compare_table(full: str | Path, subset: str | Path, method: str = "GIFNet") -> str:
    """The Markdown comparison of ``method``'s means in two evaluation outputs (``ValueError`` if none shared)."""
    a, b = read_means(Path(full), method), read_means(Path(subset), method)
    keys = [k for k in b if k in a]
    if not keys:
        raise ValueError(f"no (dataset, metric) of method {method!r} in both {full} and {subset}")
    lines = ["| dataset | metric | full (n) | subset (n) | subset − full | in full-eval SDs |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for k in keys:
        (mf, sf, nf), (ms, _, ns) = a[k], b[k]
        z = (ms - mf) / sf if sf > 0 else float("nan")
        lines.append(f"| {k[0]} | {k[1]} | {mf:.4g} ({nf}) | {ms:.4g} ({ns}) | {ms - mf:+.4g} | {z:+.2f} |")
    return "\n".join(lines) + "\n"

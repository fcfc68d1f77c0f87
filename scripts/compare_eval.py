#!/usr/bin/env python
"""Side-by-side per-dataset means of two evaluations of one method (e.g. ``eval=quick`` against ``eval=all``).

``python scripts/compare_eval.py FULL SUBSET [--method GIFNet] [--out FILE]`` where FULL and SUBSET are evaluation
outputs: a ``summary.csv``, or a ``summary.md`` written by ``scripts/evaluate.py`` (its tables are parsed; values
are the 4-5 significant digits shown there). Writes a Markdown table: dataset, metric, both means, the difference
and the difference in units of the full evaluation's per-image SD.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
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


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("full", type=Path)
    p.add_argument("subset", type=Path)
    p.add_argument("--method", default="GIFNet")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    full, sub = read_means(a.full, a.method), read_means(a.subset, a.method)
    keys = [k for k in sub if k in full]
    if not keys:
        print(f"error: no (dataset, metric) of method {a.method!r} in both files", file=sys.stderr)
        return 1
    lines = ["| dataset | metric | full (n) | subset (n) | subset − full | in full-eval SDs |",
             "|---|---|---|---|---|---|"]
    for k in keys:
        (mf, sf, nf), (ms, _, ns) = full[k], sub[k]
        z = (ms - mf) / sf if sf > 0 else float("nan")
        lines.append(f"| {k[0]} | {k[1]} | {mf:.4g} ({nf}) | {ms:.4g} ({ns}) | {ms - mf:+.4g} | {z:+.2f} |")
    text = "\n".join(lines) + "\n"
    if a.out:
        a.out.write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

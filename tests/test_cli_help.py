"""Every script answers --help; a bad option is one readable line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gifnet.paths import PROJECT_ROOT

SCRIPTS = sorted(p.name for p in (PROJECT_ROOT / "scripts").glob("*.py"))


def _run(*args, timeout=180):
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=PROJECT_ROOT,
                          timeout=timeout, env=env)  # fmt: skip


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_answers_help(script):
    r = _run(PROJECT_ROOT / "scripts" / script, "--help")
    assert r.returncode == 0, r.stderr[-1500:]
    out = r.stdout + r.stderr
    assert len(out.strip().splitlines()) >= 3 and "Traceback" not in out


def test_help_of_the_config_file_tools_lists_their_options():
    out = _run(PROJECT_ROOT / "scripts" / "fuse.py", "--help").stdout
    assert "configs/fuse/fuse.yaml" in out and "checkpoint" in out and "input" in out


@pytest.mark.parametrize(
    "args, needle",
    [
        (["fuse.py", "no_such_option=1"], "unknown option"),
        (["fuse.py", "oops"], "key=value"),
        (["evaluate.py", "checkpoint=no_such.pt"], "checkpoint not found: no_such.pt"),
        (["evaluate.py", "no_such_option=1"], "unknown option"),
        (["train.py", "no_such_key=1"], "no_such_key"),
        (["train.py", "model=no_such_model"], "no_such_model"),
        (["study.py", "study=no_such_study"], "no_such_study"),
        (["demo_fuse.py", "chekpoint=x.pt"], "unknown option: chekpoint"),
    ],
)
def test_a_bad_option_is_one_readable_line(args, needle):
    r = _run(PROJECT_ROOT / "scripts" / args[0], *args[1:])
    out = r.stdout + r.stderr
    assert r.returncode != 0 and needle in out
    assert "Traceback" not in out

"""Shared plumbing of the config-file command-line tools (``scripts/fuse.py``, ``scripts/evaluate.py``).

These tools read ``configs/<name>.yaml`` with OmegaConf and take Hydra-style ``key=value`` overrides, but not
through ``@hydra.main``: their ``task``/``eval`` keys would clash with the training config groups of the same
names in ``configs/``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from gifnet.paths import PROJECT_ROOT
from gifnet.runtime import keep_freed_memory


def load_cli_config(name: str, overrides: Sequence[str] = (), open_keys: Sequence[str] = ()):
    """``configs/<name>.yaml`` merged with ``key=value`` overrides.

    Struct mode: an unknown key is a ``ValueError`` naming it, except below ``open_keys`` (free-form maps).
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

    base = OmegaConf.load(PROJECT_ROOT / "configs" / f"{name}.yaml")
    OmegaConf.set_struct(base, True)
    for key in open_keys:
        OmegaConf.set_struct(base[key], False)
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ValueError(f"overrides must look like key=value, got {bad}")
    try:
        return OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))
    except ConfigKeyError as e:
        raise ValueError(f"unknown option: {e.msg.splitlines()[0]} (see configs/{name}.yaml)") from e
    except OmegaConfBaseException as e:
        raise ValueError(f"bad option: {str(e).splitlines()[0]}") from e


def wants_help(argv: Sequence[str]) -> bool:
    return any(a in ("-h", "--help", "help") for a in argv)


def cli_help(doc: str | None, config: str | None = None) -> str:
    """A script's ``--help``: its docstring, then its options file (``configs/<config>.yaml``, comments included)."""
    text = (doc or "").strip()
    if config:
        path = PROJECT_ROOT / "configs" / f"{config}.yaml"
        text += f"\n\nOptions (key=value; defaults and meaning from {path.relative_to(PROJECT_ROOT)}):\n\n"
        text += path.read_text()
    return text


def run_cli(
    logger_name: str,
    argv: Sequence[str],
    load: Callable[[Sequence[str]], Any],
    run: Callable[[Any], Any],
    exit_code: Callable[[Any], int] = lambda result: 0,
    help_text: str | None = None,
) -> int:
    """Load the config, run, log the result; any exception becomes one clear error line and exit code 1.

    ``-h``/``--help`` prints ``help_text`` (see :func:`cli_help`) and exits 0.
    """
    if help_text is not None and wants_help(argv):
        print(help_text)
        return 0
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    log = logging.getLogger(logger_name)
    keep_freed_memory()  # faster CPU inference, same values (gifnet/runtime.py)
    try:
        result = run(load(argv))
    except Exception as e:  # noqa: BLE001 - the message is the user-facing error
        log.error("%s", e)
        return 1
    log.info("%s", result)
    return exit_code(result)

"""The project's configuration: where each command's Hydra configs live and how they are composed.

Every ``gifnet`` command composes its own *primary* config from its own folder of ``configs/`` (its search-path
root), so each command sees only its own config groups: ``gifnet fuse task=ivif`` sets a key while
``gifnet train task=joint`` selects a config group, and ``--help`` of a command lists only the groups it uses.
Shared groups live in further roots that :class:`GifnetSearchPath` appends for the commands that use them:

=================  ===============================  =====================================================
root               primary configs                  groups
=================  ===============================  =====================================================
configs/train      train                            model, task, loss, optim, experiment (+ data, paths)
configs/data       preview, prepare                 data (+ paths)
configs/fuse       fuse, demo                       (paths)
configs/evaluate   evaluate, compare                (paths); datasets: configs/eval/*.yaml (not a group)
configs/study      study                            study (+ paths)
configs/import     import                           (paths)
configs/benchmark  benchmark                        (paths)
configs/common     --                               paths, hydra/help/gifnet, hydra/job_logging/console
=================  ===============================  =====================================================

:func:`compose` is the in-process twin of the command line (the study, the benchmark and the tests use it); the
command line itself (:mod:`gifnet.cli`) runs the same configs through ``hydra.main``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from gifnet.paths import PROJECT_ROOT

CONFIG_ROOT: Path = PROJECT_ROOT / "configs"
COMMON_ROOT: Path = CONFIG_ROOT / "common"

# primary config name -> search-path root (a folder of configs/)
PRIMARY_ROOTS: dict[str, str] = {
    "train": "train", "preview": "data", "prepare": "data", "fuse": "fuse", "evaluate": "evaluate",
    "study": "study", "import": "import", "benchmark": "benchmark", "demo": "fuse",
    "compare": "evaluate",
}  # fmt: skip
# search-path root -> further roots (besides configs/common) whose groups its primary configs compose
EXTRA_ROOTS: dict[str, tuple[str, ...]] = {"train": ("data",)}
# keys whose children are free-form maps (new keys allowed: ``methods.<name>=DIR``), per primary config
OPEN_KEYS: dict[str, tuple[str, ...]] = {"evaluate": ("methods", "checkpoints", "metrics")}


def root_of(config_name: str) -> Path:
    """The search-path root (folder) of a primary config; ``ValueError`` naming the valid ones if unknown."""
    if config_name not in PRIMARY_ROOTS:
        raise ValueError(f"unknown command config {config_name!r}; valid: {', '.join(PRIMARY_ROOTS)}")
    return CONFIG_ROOT / PRIMARY_ROOTS[config_name]


def primary_file(config_name: str) -> Path:
    return root_of(config_name) / f"{config_name}.yaml"


def group_names(config_name: str) -> list[str]:
    """The config groups a primary config can select (``group=option``), as its ``--help`` lists them."""
    roots = [root_of(config_name), *[CONFIG_ROOT / r for r in EXTRA_ROOTS.get(PRIMARY_ROOTS[config_name], ())],
             COMMON_ROOT]  # fmt: skip
    return sorted({p.name for r in roots for p in r.iterdir() if p.is_dir() and p.name != "hydra"})


def _search_path_plugin():
    from hydra.core.config_search_path import ConfigSearchPath
    from hydra.plugins.search_path_plugin import SearchPathPlugin

    class GifnetSearchPath(SearchPathPlugin):
        """Appends the shared roots to the search path of a gifnet command's root (and of nothing else)."""

        def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
            ours = {str(CONFIG_ROOT / r): r for r in set(PRIMARY_ROOTS.values())}
            main = [e.path.removeprefix("file://").rstrip("/") for e in search_path.get_path() if e.provider == "main"]
            root = next((ours[p] for p in main if p in ours), None)
            if root is None:
                return
            for extra in EXTRA_ROOTS.get(root, ()):
                search_path.append("gifnet", f"file://{CONFIG_ROOT / extra}")
            search_path.append("gifnet", f"file://{COMMON_ROOT}")

    return GifnetSearchPath


_registered = False


def register() -> None:
    """Register the search-path plugin with Hydra (idempotent; every composition of this module calls it)."""
    global _registered
    if _registered:
        return
    from hydra.core.plugins import Plugins

    Plugins.instance().register(_search_path_plugin())
    _registered = True


def adapt_overrides(config_name: str, overrides: Sequence[str]) -> list[str]:
    """Check that overrides look like ``key=value`` and let keys under the free-form maps be added.

    ``methods.X=DIR`` becomes Hydra's ``++methods.X=DIR`` (add or replace); everything else is passed as given.
    """
    bad = [o for o in overrides if "=" not in o and not o.startswith("~")]
    if bad:
        raise ValueError(f"overrides must look like key=value, got {bad} (see `gifnet {config_name} --help`)")
    out = []
    for o in overrides:
        key = o.split("=", 1)[0]
        if not key.startswith(("+", "~")) and key.split(".", 1)[0] in OPEN_KEYS.get(config_name, ()) and "." in key:
            o = "++" + o
        out.append(o)
    return out


def hydra_error_message(e: BaseException, config_name: str) -> str:
    """One readable line for a Hydra composition error (unknown key, unknown group option, parse error)."""
    msg = str(e).strip()
    cause = e.__cause__ or e.__context__
    if "Could not override" in msg or "not in struct mode" in msg or (cause and "not in struct mode" in str(cause)):
        key = msg.split("'")[1] if "'" in msg else msg
        return (f"unknown option: {key} (see {primary_file(config_name).relative_to(PROJECT_ROOT)}, "
                f"or `gifnet {config_name} --help`)")
    lines = msg.splitlines()
    if "Available options" in msg:  # an unknown group option: list the valid ones on the same line
        i = next(k for k, line in enumerate(lines) if "Available options" in line)
        options = []
        for line in lines[i + 1:]:
            if not line.startswith(("\t", " ")) or not line.strip():
                break
            options.append(line.strip())
        return f"bad option: {lines[0]}; available: {', '.join(options)}"
    first = lines[0] if lines else type(e).__name__
    rest = [line for line in lines[1:] if line.strip() and "HYDRA_FULL_ERROR" not in line]
    return f"bad option: {first}" + (f" ({rest[0].strip()})" if rest else "")


@contextlib.contextmanager
def _initialized(config_name: str) -> Iterator[None]:
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register()
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(root_of(config_name)), version_base="1.3"):
        yield


def compose(config_name: str, overrides: Sequence[str] = ()):
    """A command's primary config composed with ``key=value`` overrides, as the command line composes it.

    Raises ``ValueError`` with one readable line for an unknown key, an unknown group option or a malformed
    override (struct mode: new keys only below the free-form maps of :data:`OPEN_KEYS`).
    """
    from hydra import compose as hydra_compose
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    adapted = adapt_overrides(config_name, list(overrides))
    with _initialized(config_name):
        try:
            return hydra_compose(config_name=config_name, overrides=adapted)
        except (HydraException, OmegaConfBaseException) as e:
            raise ValueError(hydra_error_message(e, config_name)) from e


def compose_group(group: str, option: str, overrides: Sequence[str] = (), config_name: str = "preview"):
    """One group's config (e.g. ``data``/``pairs``) as composed inside ``config_name``, interpolations resolved.

    ``overrides`` are relative to the group (``crop_size=64`` means ``data.crop_size=64``; ``data.crop_size=64``
    is accepted too), except ``paths.*`` (the locations the group's paths interpolate).
    """
    from omegaconf import OmegaConf

    rel = []
    for o in overrides:
        sign = o[: len(o) - len(o.lstrip("+~"))]
        body = o[len(sign):]
        if not body.startswith((f"{group}.", "paths.")):
            body = f"{group}.{body}"
        rel.append(sign + body)
    cfg = compose(config_name, [f"{group}={option}", *rel])
    OmegaConf.resolve(cfg)
    return cfg[group]

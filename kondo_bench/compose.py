"""The one place configs are composed: the pre-run check, figures, sweeps, tables and tests.

Composition starts from the package's `conf/` and honours the user's search path, as
`kondo-bench run` does: `--config-dir DIR` (Hydra's flag) and `hydra.searchpath=[file://DIR]`
(an override). A task, method or device of one's own is a YAML in `DIR/<group>/`.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_CONF = Path(__file__).parent / "conf"


def searchpath_line(overrides: list[str], config_dir: str | None = None) -> tuple[list[str], list[str]]:
    """(the overrides without `hydra.searchpath=`, the search path entries): the entries of that
    override, with `config_dir` first as `file://` (what --config-dir adds)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    rest, entries = [], []
    for line in overrides:
        if line.lstrip("+").startswith("hydra.searchpath="):
            value = OverridesParser.create().parse_overrides([line])[0].value()
            entries += [str(v) for v in (value if isinstance(value, list) else [value])]
        else:
            rest.append(line)
    if config_dir:
        entries.insert(0, f"file://{Path(config_dir).expanduser().absolute()}")
    return rest, entries


def compose(overrides=(), *, config_dir: str | None = None, hydra_node: bool = False):
    """The config `kondo-bench run [--config-dir DIR] OVERRIDES` runs (Hydra's `hydra` node
    too when `hydra_node`). Raises Hydra's own errors; callers word them for the user."""
    from hydra import compose as hydra_compose, initialize_config_module

    from .config import register

    register()
    rest, entries = searchpath_line(list(overrides), config_dir)
    if entries:
        rest.append(f"hydra.searchpath=[{','.join(entries)}]")
    with initialize_config_module("kondo_bench.conf", version_base="1.3"):
        return hydra_compose("config", overrides=rest, return_hydra_config=hydra_node)


def search_dirs(overrides=(), config_dir: str | None = None) -> list[Path]:
    """The folders composition reads YAML from: the package's conf/, then the user's."""
    import importlib.resources

    dirs = [PACKAGE_CONF]
    for entry in searchpath_line(list(overrides), config_dir)[1]:
        if entry.startswith("file://"):
            dirs.append(Path(entry[len("file://"):]))
        elif entry.startswith("pkg://"):
            try:
                dirs.append(Path(str(importlib.resources.files(entry[len("pkg://"):]))))
            except (ModuleNotFoundError, TypeError):
                continue
        else:
            dirs.append(Path(entry))
    return dirs


def group_options(group: str, overrides=(), config_dir: str | None = None) -> list[str]:
    """Every choice of a config group (`task`, `method`, ...) on the search path."""
    return sorted({p.stem for d in search_dirs(overrides, config_dir) for p in (d / group).glob("*.yaml")})


def groups(overrides=(), config_dir: str | None = None) -> set[str]:
    return {p.name for d in search_dirs(overrides, config_dir) if d.is_dir() for p in d.iterdir()
            if p.is_dir() and not p.name.startswith(("_", "."))}


def job_searchpath(job: Path) -> tuple[list[str], str | None]:
    """A finished job's search path, from its `.hydra/hydra.yaml`: (overrides, config dir), so that
    tables and figures compose its config as the run did."""
    import yaml

    try:
        hydra = (yaml.safe_load((Path(job) / ".hydra" / "hydra.yaml").read_text()) or {}).get("hydra", {})
    except (OSError, yaml.YAMLError):
        return [], None
    entries = [str(e) for e in hydra.get("searchpath") or []]
    dirs = [s.get("path") for s in (hydra.get("runtime") or {}).get("config_sources") or []
            if s.get("provider") == "command-line" and s.get("schema") == "file"]
    return ([f"hydra.searchpath=[{','.join(entries)}]"] if entries else []), (dirs[0] if dirs else None)

"""Each job of a `kondo-bench run` command line as Hydra will run it, worked out before Hydra
runs any: the overrides parsed with Hydra's own parser, each job's config composed (once per
choice of config groups; the other keys are set on a copy), its `${hydra:...}` interpolations
resolved as inside the job, and the sub-folder each job of a sweep writes. Hydra's and
OmegaConf's errors become one `UserError` line (`OneJobError` for a value of one job's own that
cannot be set, which costs a sweep that job only). The checks themselves are `preflight.py`.
"""

from __future__ import annotations

import contextlib
import copy

from .compose import compose, group_options
from .errors import OneJobError, UserError


def _job_folder(full, combo, num: int, folders: dict, group_keys: set[str]) -> str | None:
    """The sub-folder a sweep's job writes (hydra.sweep.subdir, resolved as the job will), and a
    refusal when two jobs would write the same one. None where it cannot be resolved here."""
    from omegaconf import OmegaConf, open_dict

    raw = OmegaConf.select(full, "hydra.sweep.subdir", throw_on_resolution_failure=False)
    template = OmegaConf.to_container(full.hydra.sweep, resolve=False).get("subdir")
    if template == "${hydra.job.num}":
        sub = str(num)
    else:
        job = copy.deepcopy(full)
        try:
            with open_dict(job):
                job.hydra.job.num = num
                job.hydra.job.override_dirname = _override_dirname(job, combo)
                for o, v in combo:
                    if o.key_or_group not in group_keys and not o.key_or_group.startswith("hydra"):
                        OmegaConf.update(job, o.key_or_group, v, merge=True)
            sub = str(OmegaConf.select(job, "hydra.sweep.subdir"))
        except Exception:  # noqa: BLE001 - known only inside the job
            return None if raw is None else str(raw)
    if sub in folders:
        raise UserError(f"jobs {folders[sub]} and {num} of this sweep would write the same folder {sub!r} "
                        f"(hydra.sweep.subdir={template}); make it tell them apart, e.g. "
                        "hydra.sweep.subdir=${hydra.job.num}")
    folders[sub] = num
    return sub


def _override_dirname(job, combo) -> str:
    """hydra.job.override_dirname by Hydra's own function, over the override lines Hydra's sweeper
    gives this job: a key is excluded however it is written (`++seed` is `seed`)."""
    from hydra._internal.config_loader_impl import get_overrides_dirname

    c = job.hydra.job.config.override_dirname
    return get_overrides_dirname(overrides=_parse([_line(o, v) for o, v in combo]), kv_sep=c.kv_sep,
                                 item_sep=c.item_sep, exclude_keys=list(c.get("exclude_keys") or []))


def _parse(args: list[str]):
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        return OverridesParser.create().parse_overrides([a for a in args if not a.startswith("-")])
    except OverrideParseException as e:
        raise UserError(f"cannot read the command line: {_one_line(e)}") from None


def _values(o) -> list:
    """The typed values an override takes: one, or each value of a sweep (a,b,c or range(...))."""
    if not o.is_sweep_override():
        return [o.value()]
    try:
        return list(o.sweep_iterator())
    except Exception:  # glob(...): Hydra's basic sweeper cannot expand it here either
        raise UserError(f"{o.input_line}: list the values instead (a,b,c or range(a,b)); "
                        "glob and interval sweeps are not supported") from None


def _check_choices(group: str, values: list[str], search: list[str], config_dir: str | None) -> None:
    """One-line errors for `task=nope` (Hydra's own message lists its whole search path)."""
    options = group_options(group, search, config_dir)
    for value in values:
        if value not in options:
            raise UserError(f"unknown {group} '{value}': choose one of {', '.join(options)}")


def _compose(combo, hydra_lines: list[str], cache: dict, group_keys: set[str], config_dir: str | None):
    """The config of one job (with Hydra's node, and without). Composed once per choice of
    groups; other keys are set on a copy."""
    from omegaconf import OmegaConf, open_dict

    simple = all(o.key_or_group in group_keys or not (o.is_add() or o.is_delete() or o.is_force_add() or o.package)
                 for o, _ in combo)  # plain key=value overrides: set on a copy of the composed groups
    base_lines = [_line(o, v) for o, v in combo if o.key_or_group in group_keys or not simple]
    key = tuple(base_lines)
    if key not in cache:
        full = _compose_lines(base_lines + hydra_lines, config_dir)
        job = copy.deepcopy(full)
        with open_dict(job):
            del job["hydra"]  # Hydra's own settings: not the job's config
        cache[key] = (full, job)
    cfg = copy.deepcopy(cache[key][1])
    if simple:
        for o, v in combo:
            if o.key_or_group in group_keys:
                continue
            try:
                OmegaConf.update(cfg, o.key_or_group, v, merge=True)
            except Exception as e:
                line = f"cannot set {_line(o, v)}: {_one_line(e)}"
                if not _has_key(cfg, o.key_or_group):  # a key this config lacks (misspelt): the sweep's fault
                    raise UserError(line) from None
                error = OneJobError(line)  # a value of this job's own: it alone cannot run
                error.full = cache[key][0]  # its Hydra node still holds: the folder it would write is known
                raise error from None
    return cache[key][0], cfg


def _has_key(cfg, key: str) -> bool:
    from omegaconf import OmegaConf

    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, throw_on_resolution_failure=False) if parent else cfg
    return OmegaConf.is_dict(node) and leaf in node.keys()  # `in node` is False for a ??? value


@contextlib.contextmanager
def _as_job(full, num: int | None):
    """Hydra's node of the job numbered `num` (None in a single run, as in Hydra), set as Hydra
    sets it inside a job, so that the job's `${hydra:...}` interpolations (e.g.
    `device.name=cuda:${hydra:job.num}`) resolve now as they will there; one that cannot is
    one line, as any other refusal."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict
    from omegaconf.errors import OmegaConfBaseException

    full = copy.deepcopy(full)
    if num is not None:
        with open_dict(full):
            full.hydra.job.num = num
    before = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(full)
    try:
        yield
    except OmegaConfBaseException as e:
        raise UserError(f"cannot resolve the config: {_one_line(e)}") from None
    finally:
        HydraConfig.instance().cfg = before


def _line(o, value) -> str:
    if not o.is_sweep_override():
        return o.input_line
    from hydra.core.override_parser.types import Override

    return f"{o.get_key_element()}={Override._get_value_element_as_str(value)}"


def _compose_lines(lines: list[str], config_dir: str | None = None):
    """Compose as Hydra will (its own node included, for the run and sweep folders)."""
    try:
        return compose(lines, config_dir=config_dir, hydra_node=True)
    except UserError:
        raise
    except Exception as e:
        raise UserError(_one_line(e)) from None


def _hydra_dirs(cfg) -> dict:
    """The run or sweep folder Hydra will use, resolved now (None where it cannot be)."""
    from omegaconf import OmegaConf

    out = {}
    for name, key in (("run_dir", "hydra.run.dir"), ("sweep_dir", "hydra.sweep.dir")):
        try:
            out[name] = str(OmegaConf.select(cfg, key))
        except Exception:  # e.g. ${hydra.job.num}, known only inside the job
            out[name] = None
    return out


def _one_line(e: Exception) -> str:
    """Hydra's and OmegaConf's messages, their cause included, on one line, without the
    `full_key:`/`object_type=` lines."""
    parts, seen = [], set()
    while e is not None:
        for line in str(e).splitlines():
            line = line.strip()
            if line and not line.startswith(("full_key:", "object_type=", "reference_type=", "See ", "To append")) \
                    and line not in seen:
                parts.append(line.rstrip("."))
                seen.add(line)
        e = e.__cause__
    return "; ".join(parts)

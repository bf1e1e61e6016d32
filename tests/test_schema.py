"""Every numeric key declares its range in the schema, and one check enforces it.

The walk is generic: every option of every config group is composed, every numeric key
of its typed nodes is pushed below and above its range (and to NaN and +-inf for floats),
and each value must be refused by name. Most of it runs on composed configs in-process;
one key per option goes through the real `kondo-bench run` entry point (in-process), which
must exit 2 with one line on stderr before any folder exists.
"""

import copy
import dataclasses
import functools
import importlib
import math
from pathlib import Path

import pytest
from omegaconf import DictConfig, ListConfig, OmegaConf

from conftest import make_cfg
from kondo_bench import cli, config, schema as schema_mod, validation
from kondo_bench.errors import UserError
from kondo_bench.tasks import TASKS, task_schema

CONF = Path(config.__file__).parent / "conf"
NO_NUMBERS = ("logger",)  # groups with no numeric key to push out of range (logger: switches and names)
OPTIONS = [(g.name, p.stem) for g in sorted(CONF.iterdir()) if g.is_dir() and not g.name.startswith("_")
           and g.name not in NO_NUMBERS for p in sorted(g.glob("*.yaml"))]
# options that run on one task only: composed with it (a VAE encoder estimator on task=mnist is refused)
RUNS_ON = {("method", "reparam"): ("task=vae", "task.latent=gaussian"), ("method", "gumbel"): ("task=vae",),
           ("method", "silent"): ("task=vae",)}


def option(group: str, name: str) -> tuple[str, ...]:
    """The overrides that choose an option, with the task it runs on."""
    return (f"{group}={name}", *RUNS_ON.get((group, name), ()))


@functools.lru_cache(maxsize=None)
def _composed(*overrides: str):
    return make_cfg(*overrides)


def composed(*overrides: str):
    """The composed config (cached: composing costs a quarter second here)."""
    return copy.deepcopy(_composed(*overrides))


def schemas() -> list[type]:
    """Every schema dataclass: the common ones (config.py, schema.py) and each task's, beside it."""
    modules = [config, schema_mod, *(importlib.import_module(task_schema(t).__module__) for t in TASKS)]
    return list({v for m in modules for v in vars(m).values()
                 if isinstance(v, type) and dataclasses.is_dataclass(v) and v.__module__ == m.__name__
                 and v is not schema_mod.Range})


def test_every_numeric_key_declares_a_range_and_a_meaning():
    assert len(schemas()) >= 6
    seen = 0
    for schema in schemas():
        for name, (kind, valid, means) in schema_mod.numeric_fields(schema).items():
            seen += 1
            assert isinstance(valid, schema_mod.Range), f"{schema.__name__}.{name} has no range: declare it with num()"
            assert means, f"{schema.__name__}.{name} does not say what it means"
    assert seen >= 30


def numeric_keys(node, prefix=""):
    """(dotted key, int | float, Range) of every numeric key of the composed config's typed nodes."""
    schema = OmegaConf.get_type(node)
    declared = schema_mod.numeric_fields(schema) if dataclasses.is_dataclass(schema) else {}
    for key in node:
        value = node[key]
        if isinstance(value, DictConfig):
            yield from numeric_keys(value, f"{prefix}{key}.")
        elif key in declared:
            kind, valid, _ = declared[key]
            yield f"{prefix}{key}", kind, valid, isinstance(value, ListConfig)


def bad_values(kind, valid: schema_mod.Range) -> list:
    """Just outside each finite bound; for floats also NaN and +-inf."""
    out = []
    step = 1 if kind is int else 0.5
    if valid.lo is not None:
        out.append(kind(valid.lo) if valid.lo_open else kind(valid.lo - step))
    if valid.hi is not None:
        out.append(kind(valid.hi) if valid.hi_open else kind(valid.hi + step))
    if kind is float:
        out += [math.nan, math.inf, -math.inf]
    return out


def test_no_numeric_key_without_its_walk():
    """The walk below covers every numeric field the schemas declare (a new key is walked too)."""
    walked = set()
    for group, name in OPTIONS:
        walked |= {key.rsplit(".", 1)[-1] for key, *_ in numeric_keys(composed(*option(group, name)))}
    declared = {name for s in schemas() for name in schema_mod.numeric_fields(s)}
    assert declared <= walked, f"numeric keys no composed config carries: {declared - walked}"


@pytest.mark.parametrize("group, name", [*OPTIONS, ("", "top level")])
def test_schema_walk_refuses_every_value_out_of_range(group, name):
    """Each option's own keys (`task.*` for a task), and the top-level keys once."""
    base = composed(*option(group, name)) if group else composed()
    validation.validate(base)  # the defaults themselves are valid
    keys = [k for k in numeric_keys(base) if (k[0].startswith(f"{group}.") if group else "." not in k[0])]
    assert keys
    for key, kind, valid, is_list in keys:
        bads = bad_values(kind, valid)
        assert bads, f"{key}: a range with no bound on an int"
        for bad in bads:
            cfg = copy.deepcopy(base)
            OmegaConf.update(cfg, key, [bad] if is_list else bad, merge=False)
            with pytest.raises(UserError) as err:
                validation.validate(cfg)
            msg = str(err.value)
            assert "\n" not in msg and msg.startswith(f"{key}=") and str(valid) in msg, msg
            assert f"({key}: " in msg  # what the key means


def _cli(args, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", *args])
    err = capsys.readouterr().err
    return exit_.value.code, err


@pytest.mark.parametrize("group, name", OPTIONS)
def test_cli_refuses_out_of_range_with_one_line_and_no_folder(group, name, tmp_path, capsys):
    """One key of each option through `kondo-bench run` (in-process): exit 2, one line, no folder."""
    base = composed(*option(group, name))
    key, kind, valid, is_list = next(k for k in numeric_keys(base) if k[0].startswith(group))
    bad = bad_values(kind, valid)[0]
    value = f"[{bad}]" if is_list else str(bad)
    run = tmp_path / "run"
    code, err = _cli([*option(group, name), f"{key}={value}", f"hydra.run.dir={run}"], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"kondo-bench: error: {key}="), err
    assert "Traceback" not in err and not run.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1"])
def test_cli_refuses_non_finite_floats(value, tmp_path, capsys):
    code, err = _cli(["task=bandit", f"task.step_size={value}", f"hydra.run.dir={tmp_path}/run"], capsys)
    assert code == 2 and err.count("\n") == 1 and "task.step_size=" in err and "finite number > 0" in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("args, message", [
    (["task=bandit", "task.eval_every=0"], "task.eval_every=0 is out of range"),
    (["task=bandit", "seed=-1"], "seed=-1 is out of range"),
    (["task=mnist", "task.lr=-1"], "task.lr=-1.0 is out of range"),
    (["task=bandit_multi", "task.contexts=0"], "task.contexts=0 is out of range"),
    (["task=bandit", "task.step_size=-1"], "task.step_size=-1.0 is out of range"),
    (["task=bandit", "checkpoint_every=15", "task.eval_every=10"], "multiple of task.eval_every"),
    (["task=reversal", "task.batch_size=15"], "multiple of task.samples_per_prompt"),
    (["task=reversal", "task.heads=5"], "divisible by task.heads"),
    (["task=bandit", "task.stepz=3"], "Key 'stepz' not in"),
    (["task=bandit", "seed=1.5"], "could not be converted to Integer"),
    (["task=bandit", "price=0,1"], "add -m"),
    (["-m", "task=bandit", "price=-1,-2"], "price=-1.0 is out of range"),  # every job: one refusal
    (["-m", "--cfg", "job", "task=bandit"], "drop -m"),
    (["task=bandit", "hydra.run.dir=/proc/x"], "cannot write results under /proc/x"),
])
def test_cli_bad_input_one_line_no_folder(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default run and sweep folders are relative
    code, err = _cli([*args, "task.steps=2"], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not list(tmp_path.iterdir())

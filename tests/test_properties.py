"""Every key of every task and method, tried as a hostile user would (property-based).

Hypothesis draws a task, a method, one key of their composed config and a value for it:
outside the key's range, at its bounds, extreme (1e308, NaN, +-inf, 2^63), of the wrong type,
or an ordinary one. Each either passes the pre-run check `kondo-bench run` makes before Hydra
writes anything, or is refused with one line (a UserError): never another exception, never a
hang (each attempt is bounded in time). A smaller sample goes through the real command line,
where a value must run a tiny budget (exit 0, or 1 with a failed summary for numerics) or be
refused with exit 2 and one line on stderr, and never print a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, ListConfig, OmegaConf

from conftest import kb, make_cfg
from kondo_bench import schema as config
from kondo_bench.errors import UserError
from kondo_bench.compose import group_options
from kondo_bench.preflight import check_run

TASKS = group_options("task")
METHODS = group_options("method")
TINY = ("task.steps=2", "task.eval_every=1", "progress=false", "device=cpu", "device.threads=1")
SECONDS = 60  # one attempt's limit: the check is arithmetic and one composition, far below this


@contextmanager
def time_limit(seconds: int):
    def timeout(*_):
        raise TimeoutError(f"no answer within {seconds} s: a hang")

    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def leaves(node: DictConfig, prefix: str = ""):
    """(dotted key, its value, (int | float, Range) for a numeric key else None) of every leaf."""
    schema = OmegaConf.get_type(node)
    numeric = config.numeric_fields(schema) if schema is not None and dataclasses.is_dataclass(schema) else {}
    for key in node:
        value = node._get_node(key)._value() if not OmegaConf.is_missing(node, key) else None
        if isinstance(node[key] if value is not None else None, DictConfig):
            yield from leaves(node[key], f"{prefix}{key}.")
        else:
            kind = numeric.get(key)
            yield f"{prefix}{key}", node[key], (kind[0], kind[1]) if kind else None


@pytest.fixture(scope="module")
def keys() -> dict[tuple[str, str], list]:
    """Every leaf key of each (task, method) pair's composed config."""
    return {(t, m): list(leaves(make_cfg(f"task={t}", f"method={m}"))) for t in TASKS for m in METHODS}


EXTREME = [0, -1, 1, 2**31, 2**63, -(2**63), 10**30, 1e308, -1e308, 1e-320, math.nan, math.inf, -math.inf, -0.0]
WRONG_TYPE = ["abc", "'12'", "[1,2]", "{a: 1}", "true", "null", "1.5", "''", "[]", "[abc]", "${nope}"]


def _text(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    return str(v)


@st.composite
def value_for(draw, kind_range, current):
    """A value for a key: around its range when numeric, else wrong or odd ones."""
    kinds = [st.sampled_from(EXTREME).map(_text), st.sampled_from(WRONG_TYPE)]
    if kind_range is not None:
        kind, valid = kind_range
        edges = [b for b in (valid.lo, valid.hi) if b is not None]
        near = [e + d for e in edges for d in (-1, -0.5, 0, 0.5, 1)]
        near = [int(x) for x in near if float(x).is_integer()] if kind is int else near
        kinds.append(st.sampled_from(near or [0]).map(_text))
        if kind is int:
            lo = int(valid.lo) if valid.lo is not None else -1000
            kinds.append(st.integers(lo, lo + 1000).map(str))
        else:
            kinds.append(st.floats(allow_nan=True, allow_infinity=True).map(_text))
        if isinstance(current, ListConfig):  # a list key (task.hidden): one bad element among good ones
            kinds.append(st.lists(st.sampled_from(near or [1]), min_size=0, max_size=3)
                         .map(lambda xs: "[" + ",".join(_text(x) for x in xs) + "]"))
    return draw(st.one_of(kinds))


def _pick(keys, task, method, index):
    pairs = keys[(task, method)]
    return pairs[index % len(pairs)]


@pytest.mark.parametrize("task", TASKS)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow])
@given(data=st.data())
def test_any_value_of_any_key_passes_the_check_or_is_one_line(task, keys, tmp_path, data):
    method = data.draw(st.sampled_from(METHODS), label="method")
    key, current, kind_range = _pick(keys, task, method, data.draw(st.integers(0, 10_000), label="key"))
    value = data.draw(value_for(kind_range, current), label="value")
    args = [f"task={task}", f"method={method}", *TINY, f"{key}={value}", f"hydra.run.dir={tmp_path}/run"]
    with time_limit(SECONDS):
        try:
            check_run(args, lock=False)
        except UserError as e:
            assert str(e) and "\n" not in str(e), (args, str(e))
    assert not (tmp_path / "run").exists()  # the check writes nothing


def test_the_walk_reaches_every_key_of_every_pair(keys):
    """The draws above pick among all leaf keys; each pair carries the numeric keys of its schemas."""
    for (task, method), pairs in keys.items():
        names = {k for k, _, kr in pairs if kr is not None}
        assert {"seed", "price", "cost_ratio", "task.steps", "task.batch_size", "method.eta"} <= names, (task, method)


def test_every_integer_key_has_an_upper_bound(keys):
    """A size, a count or a length without an upper bound reaches the allocator (or a loop that
    never ends) before anything refuses it: every integer key of every pair declares one."""
    unbounded = sorted({(task, k) for (task, _), pairs in keys.items() for k, _, kr in pairs
                        if kr is not None and kr[0] is int and kr[1].hi is None})
    assert not unbounded, unbounded


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                               HealthCheck.too_slow])
@given(data=st.data())
def test_a_sample_through_the_command_line_runs_or_is_refused_in_one_line(keys, tmp_path_factory, data):
    task = data.draw(st.sampled_from(TASKS), label="task")
    method = data.draw(st.sampled_from(METHODS), label="method")
    key, current, kind_range = _pick(keys, task, method, data.draw(st.integers(0, 10_000), label="key"))
    # out of range, wrong or extreme values, or a key's lower bound: nothing that asks for a long run
    values = [*map(_text, EXTREME), *WRONG_TYPE]
    if kind_range is not None and kind_range[1].lo is not None:
        values.append(_text(kind_range[0](kind_range[1].lo)))
    value = data.draw(st.sampled_from(values), label="value")
    tmp = tmp_path_factory.mktemp("cli")
    res = kb("run", f"task={task}", f"method={method}", *TINY, f"{key}={value}", f"hydra.run.dir={tmp}/run",
             cwd=tmp, timeout=240)
    assert "Traceback" not in res.stderr, res.stderr
    summary = Path(tmp / "run" / "summary.json")
    if res.returncode == 2:
        assert res.stderr.count("\n") == 1 and res.stderr.startswith("kondo-bench: error: "), res.stderr
        assert not summary.exists()
    else:
        assert res.returncode in (0, 1), (res.returncode, res.stderr)
        status = json.loads(summary.read_text())["status"]
        assert status == ("complete" if res.returncode == 0 else "failed"), (status, res.stderr)

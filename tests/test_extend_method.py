"""An estimator and a gate of one's own: a class each in a module outside the package and a
method YAML on the search path; the knob rule follows what the classes declare."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import make_cfg
from kondo_bench.errors import UserError
from kondo_bench.validation import validate

MODULE = textwrap.dedent('''
    import torch
    from kondo_bench.core import Estimator, Gate, register_estimator, register_gate

    @register_estimator("signed")
    class Signed(Estimator):
        """sign(U) grad log pi: each kept unit pushed by the sign of its advantage only."""
        def coef(self, advantage, logp, chi):
            return advantage.sign()

    @register_gate("first_rows")
    class FirstRows(Gate):
        """The first ceil(rho n) units of the batch, whatever their score: a control."""
        knobs, fixed_rate = ("keep_rate",), True
        def __init__(self, keep_rate):
            self.keep_rate = keep_rate
        def keep(self, score):
            keep = torch.zeros_like(score, dtype=torch.bool)
            keep.view(-1)[: max(1, round(self.keep_rate * score.numel()))] = True
            return keep, None
''')
YAML = textwrap.dedent('''
    defaults:
      - /schema/method/method@_here_
    name: signed_first
    estimator: mine.Signed
    gate: mine.FirstRows
''')


@pytest.fixture
def own(tmp_path, monkeypatch):
    (tmp_path / "mine.py").write_text(MODULE)
    (tmp_path / "conf" / "method").mkdir(parents=True)
    (tmp_path / "conf" / "method" / "signed_first.yaml").write_text(YAML)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_own_estimator_and_gate_run_from_their_yaml(own):
    env = {**os.environ, "PYTHONPATH": str(own)}
    r = subprocess.run([sys.executable, "-m", "kondo_bench.cli", "run", "--config-dir", "conf", "task=bandit",
                        "method=signed_first", "keep_rate=0.25", "task.steps=20", "hydra.run.dir=run"],
                       cwd=own, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    s = json.loads((own / "run" / "summary.json").read_text())
    assert (s["method"], s["estimator"], s["gate"]) == ("signed_first", "mine.Signed", "mine.FirstRows")
    assert s["backward_samples"] == s["forward_samples"] // 4


def test_a_knob_the_own_gate_does_not_declare_is_refused(own):
    cfg = make_cfg("task=bandit", "method=dgk", "method.gate=mine.FirstRows", "keep_rate=0.2", "method.eta=0.5")
    with pytest.raises(UserError, match="method.eta=0.5 is ignored .* only the dg estimator and the price and quantile"):
        validate(cfg)
    validate(make_cfg("task=bandit", "method=dgk", "method.gate=mine.FirstRows", "keep_rate=0.2"))
    with pytest.raises(UserError, match="method.gate=mine.Nope"):
        validate(make_cfg("task=bandit", "method=dgk", "method.gate=mine.Nope", "keep_rate=0.2"))

"""An estimator and a gate of one's own: a class each in a module outside the package and a
method YAML on the search path; the knob rule follows what the classes declare."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, make_cfg
from kondo_bench.errors import UserError
from kondo_bench.validation import validate

DOC = (REPO / "docs" / "extending.md").read_text()
MODULE = DOC.split("```python\n# mine.py\n", 1)[1].split("```", 1)[0]  # the documented example, verbatim
YAML = DOC.split("```yaml\n# DIR/method/signed_first.yaml\n", 1)[1].split("```", 1)[0]


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

"""`kondo-bench plot` on runs whose error is exactly 0, and the run folder of task=bandit_multi."""

import json
import warnings

from kondo_bench.cli import main
from kondo_bench.results import metrics_digest


def _sweep(tmp_path, monkeypatch, *overrides):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "-m", "task=bandit", "task.steps=2", "task.eval_every=1", "progress=false",
                 "hydra.sweep.dir=sweep", *overrides]) == 0
    return tmp_path / "sweep"


def test_plot_draws_zero_error_at_a_marked_floor(tmp_path, monkeypatch, capsys):
    """A bandit run that ends at error exactly 0 (as 1,000 steps do): no empty log panels, no warning."""
    sweep = _sweep(tmp_path, monkeypatch, "method=pg,dg")
    for summary in sweep.glob("*/summary.json"):
        metrics = summary.with_name("metrics.jsonl")
        rows = [json.loads(line) for line in metrics.read_text().splitlines()]
        rows[-1]["error"] = 0.0  # the curve reaches 0 at its last evaluation
        metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
        s = json.loads(summary.read_text())  # the digest follows the edited rows: still a complete run
        summary.write_text(json.dumps({**s, "final_quality": 0.0, "best_quality": 0.0,
                                       **metrics_digest(summary.parent)}))
    import matplotlib.axes

    floors = []
    original = matplotlib.axes.Axes.axhline
    monkeypatch.setattr(matplotlib.axes.Axes, "axhline", lambda ax, y=0, *a, **k: floors.append(y) or original(ax, y, *a, **k))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Data has no positive values, and therefore cannot be log-scaled"
        assert main(["plot", str(sweep)]) == 0
    assert (sweep / "plots" / "tradeoff.png").stat().st_size > 0 and (sweep / "plots" / "curves.png").exists()
    # every log-quality panel (3 trade-off, 2 curves) marks its floor, below the smallest nonzero error
    assert len(floors) == 5 and all(0 < f < 0.1 for f in floors)


def test_bandit_multi_is_named_and_logged_apart(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "task=bandit_multi", "task.steps=2", "task.eval_every=1", "progress=false"]) == 0
    (folder,) = (tmp_path / "runs").glob("*/*")
    assert folder.name.endswith("_bandit_multi_dgk")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["task"] == "bandit" and summary["task_config"] == "bandit_multi"  # tables keep `bandit`
    assert "task=bandit_multi" in (folder / "cli.log").read_text()
    assert f"results in {folder.relative_to(tmp_path)}" in capsys.readouterr().out


def test_a_figure_redrawn_from_the_same_data_is_the_same_pdf(tmp_path):
    # committed figures should change in git only when what they show changes
    import matplotlib.pyplot as plt

    from kondo_bench.plots import save

    def draw(stem):
        fig, ax = plt.subplots()
        ax.plot([1, 2, 3], [3, 1, 2])
        return save(fig, tmp_path / stem)

    first, second = draw("a"), draw("b")
    assert first[1].read_bytes() == second[1].read_bytes()
    assert b"CreationDate" not in first[1].read_bytes()

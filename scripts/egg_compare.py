"""The reversal transformer side by side with the official code: learning speed per form.

Runs task=reversal (H = 10, M = 2, 1,000 steps of 10 prompts x 10 samples, the official
code's defaults) for PG and DG and each network form of ours:

    default      task.init=torch task.final_ln=true   (PyTorch's initialisation, a final LayerNorm)
    official     task.init=flax  task.final_ln=false  (the official code's network)
    flax_init    task.init=flax  task.final_ln=true   (each difference alone)
    no_final_ln  task.init=torch task.final_ln=false

and, given a checkout of the official JAX code (--egg) and a Python that has its packages
(--egg-python: jax, flax, optax, pandas, absl-py, fancyflags), its experiments/kondo/run.py
at the same settings (PG is its loss=reinforce, DG its loss=dg with eta = 1), one thread each.

    python scripts/egg_compare.py --seeds 0 1 2
    python scripts/egg_compare.py --egg EGG_DIR --egg-python EGG_PYTHON --only egg

Per run it records, in --out (default results/egg_compare.csv; rows already there are kept,
not run again):
- cumulative_error: sum over steps of 1 - the step's mean training reward (the official
  code's steps - cum_reward; ours steps x cumulative_error);
- final_error: 1 - the mean training reward over the last tenth of the steps (901 .. 1,000:
  the window the official code's last log row averages), the same measure in both codes;
- eval_error: the official code's 1 - learner_reward (100 fresh episodes of the final
  policy), ours expected_error (200 fresh prompts, Rao-Blackwellised).
The summary table (mean and s.e. over seeds) goes beside it, as .md.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

FORMS = {
    "default": ["task.init=torch", "task.final_ln=true"],
    "official": ["task.init=flax", "task.final_ln=false"],
    "flax_init": ["task.init=flax", "task.final_ln=true"],
    "no_final_ln": ["task.init=torch", "task.final_ln=false"],
}
EGG_LOSS = {"pg": "reinforce", "dg": "dg"}  # the official code's names for PG and DG
STUCK = 0.25  # a final error above this: the run never learned (chance is 0.5)
FIELDS = ["code", "form", "method", "seed", "steps", "cumulative_error", "final_error", "final_window",
          "eval_error", "wall_seconds", "command"]
# Single-threaded XLA on CPU: one core per run, as ours runs with device.threads=1.
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

# Run inside the official code's environment: its own run_experiment at its defaults but the
# loss, seed and steps, printing the full-precision log rows (its console rounds to 3 digits).
EGG_DRIVER = """
import json, sys
from experiments.kondo import run
cfg = run.SweepConfig(loss=sys.argv[1], seed=int(sys.argv[2]), num_steps=int(sys.argv[3]))
df = run.run_experiment(cfg)
print("EGG_ROWS " + df[["step", "time", "reward", "cum_reward", "learner_reward"]].to_json(orient="records"))
"""

# The official network's initial weights and its logits on a few prompts, for
# tests/test_reversal_forms.py: our official form, given these weights, must compute these logits.
EGG_FIXTURE = """
import sys, jax, numpy as np
from egg.networks import transformers
net = transformers.NetworkConfig(vocab_size=3, sequence_length=8, embed_dim=16, num_heads=2, num_layers=2,
                                 ff_dim=32).make()
tokens = jax.random.randint(jax.random.PRNGKey(1), (4, 8), 0, 3)
params = net.init(jax.random.PRNGKey(0), tokens)
flat = {".".join(str(k.key) for k in path): np.asarray(v)
        for path, v in jax.tree_util.tree_flatten_with_path(params["params"])[0]}
np.savez_compressed(sys.argv[1], tokens=np.asarray(tokens), logits=np.asarray(net.apply(params, tokens)), **flat)
"""


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=["pg", "dg"], choices=sorted(EGG_LOSS))
    p.add_argument("--forms", nargs="+", default=list(FORMS), choices=list(FORMS), help="our network forms")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--egg", default=None, help="a checkout of the official code (its experiments/kondo/run.py)")
    p.add_argument("--egg-python", default="python3", help="a Python with the official code's packages")
    p.add_argument("--only", choices=["ours", "egg"], default=None, help="run one code's rows only")
    p.add_argument("--out", default="results/egg_compare.csv")
    p.add_argument("--runs", default=None, help="folder for our run folders (default: a temporary one)")
    p.add_argument("--fixture", default=None, help="write the official network's weights and logits here "
                   "(an .npz for the tests) and stop")
    return p.parse_args(argv)


def window_error(rows: list[tuple[int, float]], steps: int) -> tuple[float, int]:
    """1 - mean reward over the last window, from (step, cumulative reward) rows: the window
    starts after the last row at or before steps - steps / 10. Returns the error and its length."""
    last = dict(rows)[steps]
    start = max((s for s, _ in rows if s <= steps - max(steps // 10, 1)), default=0)
    before = dict(rows).get(start, 0.0)
    return 1 - (last - before) / (steps - start), steps - start


def run_ours(form: str, method: str, seed: int, steps: int, runs: Path) -> dict:
    from hydra import compose, initialize_config_module

    from kondo_bench.config import register
    from kondo_bench.results import read_metrics
    from kondo_bench.train import run_experiment

    overrides = ["task=reversal", f"method={method}", f"seed={seed}", f"task.steps={steps}",
                 f"task.eval_every={min(50, steps)}", *FORMS[form], "device=cpu", "device.threads=1",
                 "progress=false", "logger=none"]
    register()
    with initialize_config_module("kondo_bench.conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    folder = runs / f"{form}_{method}_seed{seed}"
    summary = run_experiment(cfg, folder)
    rows = read_metrics(folder)
    episodes = lambda r: r["step"] * cfg.task.batch_size  # noqa: E731
    # cumulative_error is 1 - mean R over every training episode so far: back to a reward sum per step
    cum = [(r["step"], r["step"] * (1 - r["cumulative_error"])) for r in rows if episodes(r)]
    final, window = window_error(cum, steps)
    return {"cumulative_error": steps - dict(cum)[steps], "final_error": final, "final_window": window,
            "eval_error": rows[-1]["expected_error"], "wall_seconds": summary["wall_seconds"],
            "command": "python -m kondo_bench run " + " ".join(o for o in overrides if o != "logger=none")}


def in_egg(code: str, args: list[str], egg: Path, python: str) -> str:
    """Run `code` with the official code's Python in its checkout, one XLA thread; its stdout."""
    env = {**os.environ, "XLA_FLAGS": XLA_ONE_THREAD, "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(egg), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([python, "-c", code, *args], cwd=egg, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"egg_compare: the official code failed ({' '.join(args)}): "
                 f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    return done.stdout


def run_egg(method: str, seed: int, steps: int, egg: Path, python: str) -> dict:
    loss = EGG_LOSS[method]
    out = in_egg(EGG_DRIVER, [loss, str(seed), str(steps)], egg, python)
    line = next((ln for ln in out.splitlines() if ln.startswith("EGG_ROWS ")), None)
    if line is None:
        sys.exit(f"egg_compare: the official code printed no log rows ({loss}, seed {seed})")
    rows = json.loads(line.split(" ", 1)[1])
    cum = [(r["step"], r["cum_reward"]) for r in rows]
    final, window = window_error(cum, steps)
    return {"cumulative_error": steps - dict(cum)[steps], "final_error": final, "final_window": window,
            "eval_error": 1 - rows[-1]["learner_reward"], "wall_seconds": rows[-1].get("time", float("nan")),
            "command": f"official code (EGG_DIR at d005eac), experiments/kondo/run.py run_experiment("
                       f"SweepConfig(loss={loss}, seed={seed}, num_steps={steps})), one XLA thread on CPU; "
                       f"the same run from its CLI: cd EGG_DIR && python -m experiments.kondo.run "
                       f"--sweep.loss={loss} --sweep.seed={seed} --sweep.num_steps={steps}"}


def summarise(rows: list[dict], command: str) -> str:
    """A markdown table: per code, form and method, mean and s.e. over seeds, the median
    cumulative error and how many runs never learned (final error above STUCK)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["code"], r["form"], r["method"], int(r["steps"])), []).append(r)

    def stat(vals: list[float], digits: int) -> str:
        m = sum(vals) / len(vals)
        se = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1) / len(vals)) if len(vals) > 1 else float("nan")
        return f"{m:.{digits}f} ± {se:.{digits}f}"

    lines = [f"| code | form | method | seeds | cumulative error | median | final error | final error > {STUCK} | eval error |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    order = lambda kv: (kv[0][2], kv[0][0] != "egg", list(FORMS).index(kv[0][1]) if kv[0][1] in FORMS else -1)  # noqa: E731
    for (code, form, method, steps), rs in sorted(groups.items(), key=order):
        vals = lambda k: [float(r[k]) for r in rs]  # noqa: E731
        cum = sorted(vals("cumulative_error"))
        median = (cum[(len(cum) - 1) // 2] + cum[len(cum) // 2]) / 2
        stuck = sum(v > STUCK for v in vals("final_error"))
        lines.append(f"| {code} | {form} | {method} | {len(rs)} | {stat(cum, 1)} | {median:.1f} "
                     f"| {stat(vals('final_error'), 4)} | {stuck} of {len(rs)} | {stat(vals('eval_error'), 4)} |")
    steps = sorted({int(r["steps"]) for r in rows})
    return ("# The reversal transformer beside the official code\n\n"
            f"H = 10, M = 2, {', '.join(map(str, steps))} steps of 10 prompts x 10 samples, Adam 3e-4; mean ± s.e. "
            "over seeds. cumulative error: sum over steps of 1 - the step's mean training reward; final error: "
            "1 - the mean training reward over the last tenth of the steps; final error > 0.25: runs that "
            f"never learned (chance is 0.5); eval error: egg's 1 - learner_reward (100 episodes), ours expected_error "
            "(200 prompts). egg: the official JAX code (its loss=reinforce for pg, loss=dg for dg); "
            "kondo-bench forms: " + "; ".join(f"{k} = {' '.join(v)}" for k, v in FORMS.items()) + ".\n\n"
            + "\n".join(lines) + f"\n\nMade by `{command}` (each run's own command is in the CSV).\n")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.fixture:
        if not args.egg:
            sys.exit("egg_compare: --fixture needs --egg (a checkout of the official code)")
        in_egg(EGG_FIXTURE, [str(Path(args.fixture).resolve())], Path(args.egg), args.egg_python)
        return 0
    out = Path(args.out)
    rows = list(csv.DictReader(out.open())) if out.exists() else []
    have = {(r["code"], r["form"], r["method"], r["seed"], r["steps"]) for r in rows}
    jobs = []
    if args.only != "ours" and args.egg:
        jobs += [("egg", "egg", m, s) for m in args.methods for s in args.seeds]
    if args.only != "egg":
        jobs += [("kondo-bench", f, m, s) for f in args.forms for m in args.methods for s in args.seeds]
    runs = Path(args.runs) if args.runs else Path(tempfile.mkdtemp(prefix="egg_compare_"))
    for code, form, method, seed in jobs:  # one at a time: each run has one thread
        if (code, form, method, str(seed), str(args.steps)) in have:
            continue
        row = (run_egg(method, seed, args.steps, Path(args.egg), args.egg_python) if code == "egg"
               else run_ours(form, method, seed, args.steps, runs))
        rows.append({"code": code, "form": form, "method": method, "seed": seed, "steps": args.steps, **row})
        print(f"{code:<11} {form:<11} {method} seed {seed}: cumulative error {row['cumulative_error']:.1f}, "
              f"final error {row['final_error']:.4f}", flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="") as f:  # after every run: a long comparison keeps what it has
            w = csv.DictWriter(f, FIELDS)
            w.writeheader()
            w.writerows({k: r[k] for k in FIELDS} for r in rows)
    command = "python scripts/egg_compare.py " + " ".join(
        a if a not in (args.egg, args.egg_python) else ("EGG_DIR" if a == args.egg else "EGG_PYTHON")
        for a in (argv if argv is not None else sys.argv[1:]))
    if rows:
        out.with_suffix(".md").write_text(summarise(rows, command.strip()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

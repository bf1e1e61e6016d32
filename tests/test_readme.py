"""README.md and docs/, run: every command in their ```bash blocks, in order, on a tiny budget.

README runs first, on a fresh machine (an empty HOME, no MNIST anywhere, a mirror on
127.0.0.1 standing in for the internet: `make demo` must fetch the data itself); the docs
pages follow in one scratch folder of their own, as a reader who has run `make demo`.

Each command (a `kondo-bench ...`, `make ...` or `python scripts/...` line, or any other line
of a bash block) goes through `plan()`, which either shrinks it and names the files README
promises for it, or skips it with a reason listed in SKIPS. A command no rule knows fails the
test, so a command added to README later either runs here or is listed with its reason.

How commands are shrunk (nothing else is changed):
- `kondo-bench run`: the budget keys are replaced by `task.steps=2 task.eval_every=1`
  (reversal also evaluates on 10 prompts), `progress=false`; in a sweep, `seed=` keeps its
  first value and any other list its first two, except `method=` lists, which stay whole;
  `hydra.launcher.n_jobs=N` becomes 1 (joblib then runs the jobs in this process).
- `kondo-bench figures --scale S`: `--scale test`, and `--only bandit` where no `--only` is given
  (every figure at test scale is 43 sweeps, each a fresh process: minutes here); with
  `--dry-run` it must only succeed (it writes nothing).
- `make T`: the target's recipe lines from the Makefile, each planned like a README line
  (`setup`, which makes .venv, is not run: this test runs inside it).
- `python scripts/X.py`: the script's own smallest options (see SCRIPTS).
- `kondo-bench data mnist`: `--mirror` the local mirror (tests/conftest.py: Mirror).
Commands run in-process (torch and Hydra are imported once) in one scratch folder, so later
commands read what earlier ones wrote, as on a fresh clone; `results/figures/report` there
is the repository's committed one. Only `figures` launches and `bench_core.py` start
subprocesses.
"""

from __future__ import annotations

import contextlib
import io
import re
import runpy
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from conftest import REPO
from kondo_bench.cli import main
from kondo_bench.figures import expand

README = REPO / "README.md"
MAKEFILE = REPO / "Makefile"
DOCS = REPO / "docs"
MIRROR = "{mirror}"  # replaced by the local mirror's URL when a command runs


def doc_pages() -> list[Path]:
    """The docs pages in the site's order (mkdocs.yml's nav), then any page the nav lacks."""
    nav = re.findall(r":\s*([\w/.-]+\.md)\s*$", (REPO / "mkdocs.yml").read_text(), flags=re.M)
    pages = [DOCS / p for p in nav]
    return pages + sorted(set(DOCS.rglob("*.md")) - set(pages))


def all_commands() -> list[str]:
    return bash_commands(README.read_text()) + [c for p in doc_pages() for c in bash_commands(p.read_text())]

# The one list of commands that cannot run here, each with its reason: nothing else in README.md
# or docs/ is skipped. Keys are regular expressions matched against the whole command (`re.search`).
SKIPS = {
    r"submitit_slurm": "SLURM: needs a cluster (submitit_local runs in tests/test_sweeps.py)",
    r"CUDA_VISIBLE_DEVICES|device=cuda|cuda:\$": "needs a CUDA GPU (or several)",
    r"^(python3? -m venv|\S*pip install)": "creates a virtual environment / installs from the network; "
                                           "test_install_lines_match_make_setup checks what it installs",
    r"^(\S*python3? -m pytest|make test$)": "runs the test suite, which includes this test",
    r"^python3? scripts/(bench_(speed|reversal|trl|bf16|sampler|views)|lm_regime|regime_map|profile_step|step_overhead|step_times)\.py":
        "a timing benchmark: minutes of timed runs, figures not tests (tests/test_bench_scripts.py runs "
        "profile_step, step_overhead and bench_speed's pieces; tests/test_lm.py the LM task they time)",
    r"^tensorboard ": "starts a server",
}

# python scripts/X.py: the smallest run of each script, and the files it must write.
SCRIPTS = {
    "report_numbers.py": lambda args: (args, []),
    "perf_tables.py": lambda args: (["--check"], []),  # --write would rewrite the repository's pages
    "hstar.py": lambda args: (_set_opts(args, {"--horizons": ["4"], "--steps": ["2"], "--out": ["hstar"]})
                              + ["task.eval_prompts=10"], ["hstar/H4_seed0/summary.json"]),
    "reversal_gate_mechanism.py": lambda args: (_set_opts(args, {"--steps": ["0", "2"], "--batches": ["1"],
                                                                 "--reference": ["1"]})
                                                + ["task.eval_prompts=10"], []),
    "demo_numbers.py": lambda args: (args, [_opt(args, "--out") or "results/demo.csv"]),
    # reads the committed curve tables (its defaults name them in the repository), writes --out
    "form_compare.py": lambda args: (args, [_opt(args, "--out")] if _opt(args, "--out") else []),
    # ours only (the official code needs its own checkout and Python): one form, one method, 2 steps
    "egg_compare.py": lambda args: (_set_opts(_drop_opts(args, ("--egg", "--egg-python", "--only")),
                                              {"--steps": ["2"], "--seeds": ["0"], "--forms": ["official"],
                                               "--methods": ["dg"], "--runs": ["egg_runs"]}),
                                    [_opt(args, "--out") or "results/egg_compare.csv",
                                     (_opt(args, "--out") or "results/egg_compare.csv").replace(".csv", ".md")]),
    "bench_core.py": lambda args: (_set_opts([a for a in args if not a.startswith(BUDGET)],
                                             {"--tasks": ["bandit"], "--methods": ["dgk"], "--repeats": ["1"]})
                                   + ["task.steps=2", "task.eval_every=1"], [_opt(args, "--out")] if _opt(args, "--out") else []),
}

BUDGET = ("task.steps=", "task.eval_every=", "checkpoint_every=", "progress=")


@dataclass
class Step:
    """One command to run: `kind` is kondo-bench, script or skip."""
    line: str
    kind: str
    argv: list = field(default_factory=list)
    env: dict = field(default_factory=dict)
    files: list = field(default_factory=list)  # paths (globs) relative to the scratch folder
    jobs: int = 0  # run folders a sweep must leave (each with summary.json), 0: not a sweep
    reason: str = ""


# ---------------------------------------------------------------- reading README and the Makefile
def bash_commands(text: str) -> list[str]:
    """The commands of README's ```bash blocks: continuations joined, comments dropped,
    `a && b` split."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words:
                cut = words.index("&&") if "&&" in words else len(words)
                out.append(shlex.join(words[:cut]))
                words = words[cut + 1:]
    return out


def run_files() -> list[str]:
    """What the "What a run writes" block of docs/concepts.md lists for one run's folder."""
    block = re.search(r"## What a run writes\n+```\n(.*?)```", (DOCS / "concepts.md").read_text(), flags=re.S)
    assert block, "docs/concepts.md lost its 'What a run writes' block"
    return [line.split()[0] for line in block.group(1).splitlines()[1:] if line.strip()]


def make_recipe(target: str) -> list[str]:
    text = MAKEFILE.read_text()
    m = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n?)*)", text, flags=re.M)
    assert m, f"README runs `make {target}`, which the Makefile does not define"
    subs = {"$(KB)": "kondo-bench", "$(PY)": "python", "$(PYTHON)": "python"}
    lines = []
    for line in m.group(1).splitlines():
        line = line.strip().lstrip("@")
        for k, v in subs.items():
            line = line.replace(k, v)
        lines.append(line)
    return lines


# ---------------------------------------------------------------- shrinking
def _opt(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def _drop_opts(args: list[str], names: tuple[str, ...]) -> list[str]:
    """args without these options and their values."""
    return _set_opts(args, dict.fromkeys(names, []))[:-len(names)]  # _set_opts appends each name last


def _set_opts(args: list[str], opts: dict) -> list[str]:
    """args with each `--opt v1 v2 ...` replaced (values up to the next --option or KEY=VALUE)."""
    out, i = [], 0
    while i < len(args):
        if args[i] in opts:
            i += 1
            while i < len(args) and not args[i].startswith("-") and "=" not in args[i]:
                i += 1
            continue
        out.append(args[i])
        i += 1
    for k, v in opts.items():
        out += [k, *v]
    return out


def shrink_run(args: list[str]) -> list[str]:
    multirun = "-m" in args or "--multirun" in args
    out = []
    for a in args:
        if a.startswith(BUDGET):
            continue
        key, _, value = a.partition("=")
        if key == "hydra.launcher.n_jobs":
            a = f"{key}=1"
        elif multirun and "," in value and not value.startswith(("[", "'")) and key != "method":
            a = f"{key}={','.join(value.split(',')[:1 if key == 'seed' else 2])}"
        out.append(a)
    out += ["task.steps=2", "task.eval_every=1", "progress=false"]
    if "task=reversal" in args:
        out.append("task.eval_prompts=10")
    return out


def plan(line: str) -> Step:
    for pattern, reason in SKIPS.items():
        if re.search(pattern, line):
            return Step(line, "skip", reason=reason)
    words = shlex.split(line)
    env = {}
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        k, _, v = words.pop(0).partition("=")
        env[k] = v
    cmd, args = words[0].removeprefix(".venv/bin/"), words[1:]
    if cmd == "make":
        return Step(line, "make", argv=args)
    if cmd in ("python", "python3") and args[:2] == ["-m", "kondo_bench.reference"]:
        return Step(line, "module", argv=args[1:], env=env, files=[_opt(args, "--write")] if "--write" in args else [])
    if cmd in ("python", "python3") and args and args[0].startswith("scripts/"):
        name = Path(args[0]).name
        if name not in SCRIPTS:
            raise AssertionError(f"README runs scripts/{name}, which tests/test_readme.py has no rule for: "
                                 "add one to SCRIPTS or a reason to SKIPS")
        argv, files = SCRIPTS[name](args[1:])
        return Step(line, "script", argv=[args[0], *argv], env=env, files=files)
    if cmd != "kondo-bench":
        raise AssertionError(f"README command `{line}` has no rule in tests/test_readme.py: add one, "
                             "or a reason to SKIPS")
    sub = args[0] if args else ""
    if sub == "run":
        rest = args[1:]
        if "--cfg" in rest or "-c" in rest:
            return Step(line, "kondo-bench", argv=args, env=env)
        rest = shrink_run(rest)
        if "-m" in rest or "--multirun" in rest:
            grid, _ = expand([a for a in rest if a not in ("-m", "--multirun") and not a.startswith("hydra")])
            folder = _value(rest, "hydra.sweep.dir") or "multirun/*/*"
            return Step(line, "kondo-bench", argv=["run", *rest], env=env,
                        files=[f"{folder}/*/{f}" for f in run_files()], jobs=len(grid))
        folder = _value(rest, "hydra.run.dir") or "runs/*/*"
        return Step(line, "kondo-bench", argv=["run", *rest], env=env, files=[f"{folder}/{f}" for f in run_files()])
    if sub == "summarize":
        stem = _opt(args, "--out") or f"{args[1]}/sweep"
        return Step(line, "kondo-bench", argv=args, env=env, files=[f"{stem}.csv"])
    if sub == "plot":
        out = _opt(args, "--out") or f"{args[1]}/plots"
        return Step(line, "kondo-bench", argv=args, env=env, files=[f"{out}/tradeoff.png", f"{out}/curves.png"])
    if sub == "figures":
        argv = _set_opts(args, {"--scale": ["test"]})
        only = [argv[i + 1] for i, a in enumerate(argv) if a == "--only"] or ["bandit"]
        if "--only" not in argv:
            argv += ["--only", "bandit"]
        out = f"{_opt(argv, '--out') or 'results/figures'}/test"
        if "--dry-run" in argv or "-n" in argv:  # plans, and writes nothing
            return Step(line, "kondo-bench", argv=argv, env=env)
        return Step(line, "kondo-bench", argv=argv, env=env,
                    files=[f"{out}/{name}{ext}" for name in only for ext in (".png", "_runs.csv", "_curves.csv")])
    if sub == "data" and "--verify-only" not in args:  # the local mirror, never the internet
        return Step(line, "kondo-bench", argv=[*args, "--mirror", MIRROR, "--timeout", "10"], env=env)
    if sub in ("data", "--help", "-h", "--version", "summarize", "plot"):
        return Step(line, "kondo-bench", argv=args, env=env)
    raise AssertionError(f"README command `{line}` has no rule in tests/test_readme.py")


def _value(args: list[str], key: str) -> str | None:
    return next((a.split("=", 1)[1] for a in args if a.startswith(key + "=")), None)


# ---------------------------------------------------------------- running
def run_step(step: Step, cwd: Path, monkeypatch, mirror: str = "") -> tuple[int, str]:
    """Run in-process; returns the exit status and everything printed."""
    buf = io.StringIO()
    code = 0
    argv = [mirror if a == MIRROR else a for a in step.argv]
    with monkeypatch.context() as m, contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        m.chdir(cwd)
        for k, v in step.env.items():
            m.setenv(k, v)
        try:
            if step.kind == "kondo-bench":
                code = main(argv)
            elif step.kind == "module":
                m.setattr(sys, "argv", argv)
                for f in step.files:
                    (cwd / f).parent.mkdir(parents=True, exist_ok=True)
                runpy.run_module(argv[0], run_name="__main__")
            else:
                m.setattr(sys, "argv", argv)
                m.syspath_prepend(str(REPO / "scripts"))
                runpy.run_path(str(REPO / step.argv[0]), run_name="__main__")
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return code or 0, buf.getvalue()


def expand_make(step: Step) -> list[Step]:
    (target,) = step.argv
    return [plan(line) for line in make_recipe(target)]


def run_commands(lines: list[str], scratch: Path, monkeypatch, mirror: str, real_mnist: bool = True) -> str:
    """Every command, shrunk, in order, in one scratch folder; fails with every failure at once.
    Returns everything they printed."""
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    (scratch / "results" / "figures").mkdir(parents=True)
    (scratch / "results" / "figures" / "report").symlink_to(REPO / "results" / "figures" / "report")
    steps = []
    for line in lines:
        step = plan(line)
        steps += expand_make(step) if step.kind == "make" else [step]
    assert sum(s.kind != "skip" for s in steps) >= 10, "the commands were not found"
    failures, printed, ran = [], [], set()
    for step in steps:
        if not real_mnist and step.argv[:1] == ["figures"]:
            # figures launches its jobs in new processes, which check MNIST against the canonical
            # checksums: the stand-in files (no real MNIST on this machine) pass only in this process
            print(f"skipped: {step.line}  (no real MNIST here: its jobs' processes would refuse the stand-ins)")
            continue
        if step.kind == "skip":
            print(f"skipped: {step.line}  ({step.reason})")
            continue
        if (key := (step.kind, tuple(step.argv), tuple(step.env.items()))) in ran:
            print(f"skipped: {step.line}  (the same command as an earlier one, once shrunk)")
            continue
        ran.add(key)
        before, started = set(scratch.rglob("summary.json")), time.perf_counter()
        code, out = run_step(step, scratch, monkeypatch, mirror)
        print(f"ran in {time.perf_counter() - started:.1f} s: {shlex.join(step.argv)}")
        printed.append(out)
        missing = [f for f in step.files if not list(scratch.glob(f))]
        if code != 0 or missing:
            failures.append(f"`{step.line}` (ran as {shlex.join(step.argv)}): exit {code}, "
                            f"missing {missing}\n{out[-1500:]}")
            continue
        if step.jobs:  # a named sweep folder holds every job (a rerun skips them); else count new ones
            named = _value(step.argv, "hydra.sweep.dir")
            found = set(scratch.glob(f"{named}/*/summary.json")) if named else set(scratch.rglob("summary.json")) - before
            if len(found) != step.jobs:
                failures.append(f"`{step.line}`: {len(found)} run folders with summary.json, expected {step.jobs}")
    assert not failures, "\n\n".join(failures)
    return "\n".join(printed)


def test_readme_commands_on_a_fresh_machine(fresh_machine, mirror, monkeypatch, mnist_source):
    """README top to bottom where nothing is installed: no MNIST in HOME, beside the checkout or
    the current directory; `make demo` must fetch it (from the local mirror) and use it."""
    printed = run_commands(bash_commands(README.read_text()), Path.cwd(), monkeypatch, mirror.url, mnist_source[1])
    assert sorted(name for name, _ in mirror.requests) == sorted(mirror.files), "make demo fetched no MNIST"
    assert sorted(p.name for p in fresh_machine.iterdir()) == sorted(mirror.files)
    check_sample_lines(printed)


def test_docs_commands(fresh_machine, mirror, monkeypatch, mnist_source):
    """Every docs page's commands, in the site's order, as a reader who has run `make demo`
    (the MNIST files in the per-user folder: `kondo-bench data mnist` then finds them)."""
    fresh_machine.mkdir(parents=True)
    for name, body in mirror.files.items():
        (fresh_machine / name).write_bytes(body)
    lines = [c for p in doc_pages() for c in bash_commands(p.read_text())]
    run_commands(lines, Path.cwd(), monkeypatch, mirror.url, mnist_source[1])
    assert mirror.requests == [], "the docs' `kondo-bench data mnist` downloaded files already there"


def check_sample_lines(printed: str) -> None:
    """README's sample output lines (plain ``` blocks starting `complete:`) have the shape of
    a line the commands above printed: the same words, any numbers."""
    for sample in re.findall(r"```\n(complete:[^\n]*)\n```", README.read_text()):
        number = r"[\d,]+(?:\.\d+)?"
        pattern = re.sub(r"\\?[\d,]+(?:\\\.\d+)?", lambda _: number, re.escape(sample))
        assert re.search(pattern, printed), f"README's sample line matches no line the commands printed:\n{sample}"


# ---------------------------------------------------------------- the rules themselves
def test_every_command_has_a_rule():
    """No README or docs command falls through: each is planned or skipped with a reason (cheap, no runs)."""
    for line in all_commands():
        step = plan(line)
        if step.kind == "make":
            for sub in expand_make(step):
                assert sub.kind != "make"
        assert step.kind != "skip" or step.reason


def test_unknown_commands_fail_loudly():
    with pytest.raises(AssertionError, match="no rule"):
        plan("kondo-bench frobnicate")
    with pytest.raises(AssertionError, match="no rule"):
        plan("python scripts/new_script.py")
    with pytest.raises(AssertionError, match="no rule"):
        plan("curl https://example.org")
    with pytest.raises(AssertionError, match="does not define"):
        make_recipe("no-such-target")


def test_shrinking_keeps_the_command_and_cuts_the_budget():
    argv = plan("kondo-bench run -m task=reversal task.horizon=8,12,16 method=pg,dg seed=0,1,2 task.steps=10000").argv
    assert argv[:3] == ["run", "-m", "task=reversal"]
    assert "task.horizon=8,12" in argv and "method=pg,dg" in argv and "seed=0" in argv
    assert "task.steps=10000" not in argv and "task.steps=2" in argv
    argv = plan("kondo-bench figures --scale report -j 2").argv
    assert argv[argv.index("--scale") + 1] == "test" and "report" not in argv and "--only" in argv
    assert plan("kondo-bench run -m hydra/launcher=submitit_slurm task=mnist").kind == "skip"


def test_install_lines_match_make_setup():
    """README's install-by-hand line installs the extras `make setup` installs (joblib included:
    `figures --jobs 2` needs it)."""
    extras = lambda text: set(re.findall(r"-e ['\"]?\.\[([\w,]+)\]", text))  # noqa: E731
    by_hand = extras(" ".join(all_commands()))
    assert by_hand, "README shows no `pip install -e .[...]` line"
    assert by_hand == extras(MAKEFILE.read_text())


def test_makefile_targets_the_docs_name_exist():
    for line in all_commands():
        if line.startswith("make "):
            target = line.split()[1]
            assert re.search(rf"^{re.escape(target)}:", MAKEFILE.read_text(), flags=re.M), target


def test_without_make_is_make_demo():
    """README's "Without make" block runs what `make demo` runs (after the install line)."""
    block = re.search(r"Without `make`, the same thing is:\n+```bash\n(.*?)```", README.read_text(), flags=re.S)
    assert block, "README lost its 'Without make' block"
    by_hand = [c.removeprefix(".venv/bin/") for c in bash_commands(f"```bash\n{block.group(1)}```")]
    by_hand = [c for c in by_hand if plan(c).kind != "skip"]
    recipe = [c for c in make_recipe("demo") if plan(c).kind != "skip"]
    assert by_hand == [shlex.join(shlex.split(c)) for c in recipe]


def test_demo_table_matches_its_csv():
    """README's demo table is results/demo.csv (written by scripts/demo_numbers.py from a
    `make demo`), row by row, and the note under it names that CSV's machine and load."""
    import pandas as pd

    csv = pd.read_csv(REPO / "results" / "demo.csv")
    block = re.search(r"<!-- demo table: [^>]*-->\n(.*?)<!-- end demo table -->", README.read_text(), flags=re.S)
    assert block, "README lost its demo table markers"
    rows = [[c.strip() for c in r.strip().strip("|").split("|")] for r in block.group(1).splitlines()[2:]]
    assert len(rows) == len(csv)
    for cells, r in zip(rows, csv.itertuples()):
        assert cells == [r.configuration, f"{r.final_test_error:.4f}", f"{r.backward_samples:,}",
                         f"{r.forward_samples:,}", f"{r.cost_c2:,}", f"{r.train_s}"]
    note = README.read_text()[block.end():].split("\n\n")[1]
    assert csv.cpu[0] in note and f"{csv.load_avg_15min[0]}" in note and f"{csv.cores[0]} cores" in note

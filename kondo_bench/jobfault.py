"""A sweep's job whose own value cannot be set (`task.steps=abc` in `task.steps=5,abc`): that job
is recorded failed in its folder and the other jobs run.

Hydra composes each job of a multirun itself (`load_sweep_config`: in the sweep's process for
the basic launcher and for the sweeper's check of each batch, in a worker for joblib, on the
node for SLURM), and a job that cannot be composed raises there and ends the whole sweep.
`guard_sweep_composition` wraps that method: such a job is composed without the override(s)
that cannot be set, its `.hydra/overrides.yaml` still lists every one of its overrides (so
`summarize` and the sweep's end know which job it is), and its Hydra node carries the reason
(`hydra.job.env_set.KONDO_BENCH_JOB_FAULT`). The job reads it (`job_fault`) and, instead of
training, writes the failed summary any failed job writes (`record`). A fault that concerns
every job (an unknown key, every value bad) never gets here: the pre-run check refuses the
sweep first (preflight.py).
"""

from __future__ import annotations

import json
import sys

MARK = "KONDO_BENCH_JOB_FAULT"


def guard_sweep_composition() -> None:
    """Wrap Hydra's `load_sweep_config` (once per process): a job it cannot compose becomes a job
    that records why (see the module's doc)."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    load = ConfigLoaderImpl.load_sweep_config
    if getattr(load, "guarded", False):
        return

    def load_sweep_config(self, master_config, sweep_overrides):
        try:
            return load(self, master_config, sweep_overrides)
        except Exception:
            stand_in = _without_bad(load, self, master_config, list(sweep_overrides))
            if stand_in is None:  # no single override to blame: Hydra's own error, as before
                raise
            return stand_in

    load_sweep_config.guarded = True
    ConfigLoaderImpl.load_sweep_config = load_sweep_config


def _without_bad(load, loader, master, lines: list[str]):
    """The job composed from the overrides that can be set, marked with why the others cannot;
    None when each override can be set on its own (their combination is at fault)."""
    from hydra._internal.config_loader_impl import get_overrides_dirname
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import open_dict

    from .jobconfigs import _one_line

    parsed = OverridesParser.create().parse_overrides(lines)
    # config-group choices (task=reversal) first: a later task.KEY=VALUE is set on the task it names
    order = sorted(range(len(lines)), key=lambda i: "." in parsed[i].key_or_group)
    kept, bad, cfg = [], [], None
    for i in order:
        try:
            cfg = load(loader, master, [lines[j] for j in sorted(kept + [i])])
            kept.append(i)
        except Exception as e:  # noqa: BLE001 - Hydra's or OmegaConf's: its cause says what
            bad.append((lines[i], e))
    if not bad:
        return None
    if cfg is None:
        cfg = load(loader, master, [])
    reason = "; ".join(f"cannot set {line}: {_one_line(e.__cause__ or e)}" for line, e in bad)
    app = [o for o in parsed if not o.is_hydra_override()]
    with open_dict(cfg.hydra):  # the job as Hydra would have run it: its folder, its overrides.yaml
        cfg.hydra.overrides.task = [o.input_line for o in app]
        c = cfg.hydra.job.config.override_dirname
        cfg.hydra.job.override_dirname = get_overrides_dirname(overrides=app, kv_sep=c.kv_sep, item_sep=c.item_sep,
                                                               exclude_keys=c.exclude_keys)
        cfg.hydra.job.env_set[MARK] = json.dumps({"error": reason, "overrides": [line for line, _ in bad]})
    return cfg


# At import, not from the command line's code alone: a joblib worker composes its jobs before it
# runs any of ours, and it imports this module when it unpickles the task function, which names
# `job_fault` (run as `python -m kondo_bench.cli`, that function comes by value, without its module).
guard_sweep_composition()


def job_fault(hydra_cfg) -> dict | None:
    """{"error": the one-line reason, "overrides": the lines that cannot be set} for a job
    `guard_sweep_composition` could not compose, else None."""
    raw = (hydra_cfg.job.get("env_set") or {}).get(MARK)
    return json.loads(raw) if raw else None


def record(cfg, out_dir: str, fault: dict, shown: str) -> None:
    """The job's failed summary, its config holding the values as given (`task.steps: abc`, so
    that `summarize` shows what was asked for), and the line every failed job prints."""
    from omegaconf import OmegaConf

    from .faults import job_failed

    asked = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    for line in fault["overrides"]:
        key, _, value = line.partition("=")
        if not key.startswith("~"):
            try:
                OmegaConf.update(asked, key.lstrip("+"), value, merge=False)
            except Exception:  # noqa: BLE001 - the reason still names it
                pass
    job_failed(out_dir, asked, fault["error"])
    print(f"kondo-bench: error: job {shown} failed: {fault['error']}", file=sys.stderr)


def announce(failed: dict[int, str], jobs: int) -> None:
    """At a sweep's start, the jobs the pre-run check found cannot run (preflight.py)."""
    first = min(failed)
    print(f"kondo-bench: warning: {len(failed)} of {jobs} jobs cannot run (the first: job {first}: {failed[first]}); "
          "each is recorded failed in its folder and the other jobs run", file=sys.stderr)

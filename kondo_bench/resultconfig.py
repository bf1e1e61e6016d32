"""Which run a config is: the part of it that decides a run's results (`result_config`), and
a stored result config read in today's keys (`upgraded`), so that a run finished before a key
existed is still recognised as the same computation.
"""

from __future__ import annotations

from omegaconf import OmegaConf

NOT_RESULTS = ("progress", "resume", "checkpoint_every", "logger")  # keys that do not change what a run computes


def result_config(cfg) -> dict:
    c = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    return {k: v for k, v in c.items() if k not in NOT_RESULTS}


# Keys added to the schema after results were committed, with the value that reproduces what
# runs before them computed. A stored config without such a key ran with that value, so it is
# the same computation as today's config with the key at that value (and a different one
# with any other). Add a key here when adding it to config.py with a behaviour-keeping default.
ADDED_KEYS = {
    "solved_below": None,  # a top-level key: no dot
    "method.unit": "token",
    "method.unit_reduce": "mean",
    "device.force_bf16": False,
}
# Keys added to one task's schema: (task.name, key) -> the value runs before them had.
TASK_ADDED_KEYS = {
    ("mnist", "model"): None,  # the network as a config axis; null is the task's own MLP
    ("reversal", "model"): None,  # null is the task's own transformer
    ("reversal", "init"): "torch",  # PyTorch's initialisation, a final LayerNorm: the form before the choice
    ("reversal", "final_ln"): True,
}


def upgraded(stored: dict) -> dict:
    """A stored result config in today's keys, so that a finished run of the same computation
    is still recognised.

    Keys added since (ADDED_KEYS) take the value runs had before them. A config stored before
    estimators and gates were split: its method had no `estimator` (the preset's),
    every preset but dgk was ungated whatever `gate` said, and there was no
    device.deterministic (CPU results do not change with it). PPO's are left as they were:
    their metrics rows carry the old, wrong keep rate, so they are run again."""
    method = stored.get("method")
    if not isinstance(method, dict) or method.get("name") == "ppo" and "estimator" not in method:
        return stored
    from .config import PRESETS

    if "estimator" not in method:
        if method.get("name") not in PRESETS:
            return stored
        gate = method.get("gate") if method.get("name") == "dgk" else "none"
        device = {"deterministic": True, **(stored.get("device") or {})}
        stored = {**stored, "method": {**method, "estimator": PRESETS[method["name"]], "gate": gate},
                  "device": device}
    for key, value in ADDED_KEYS.items():
        if "." not in key:
            stored = stored if key in stored else {**stored, key: value}
            continue
        group, name = key.split(".", 1)
        node = stored.get(group)
        if isinstance(node, dict) and name not in node:
            stored = {**stored, group: {**node, name: value}}
    task = stored.get("task")
    for (task_name, name), value in TASK_ADDED_KEYS.items():
        if isinstance(task, dict) and task.get("name") == task_name and name not in task:
            task = {**task, name: value}
            stored = {**stored, "task": task}
    return stored

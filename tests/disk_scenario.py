"""Run inside a mount namespace of its own (tests/test_disk.py): mount a 2 MiB tmpfs at DISK,
fill it up under a run and under a sweep, start a run on it full; then mount a read-only one
at RO and point every command's output at it. Prints what each command returned and printed,
as JSON.

Python, not a shell script: the fill must happen at a moment the run is writing, and the
read-only checks call the commands in this process (one start-up of torch, not five).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

DISK, RO = Path(sys.argv[1]), Path(sys.argv[2])
KB = [sys.executable, "-m", "kondo_bench.cli", "run"]
LONG = ["task=bandit", "task.steps=10000000", "task.eval_every=1", "progress=false", "device.threads=1"]


def fill() -> None:
    """Write zeros until the disk is full."""
    with contextlib.suppress(OSError), open(DISK / "filler", "ab", buffering=0) as f:
        while True:
            f.write(b"\0" * 65536)


def filled_under(args: list[str], watch: Path) -> dict:
    """Start the command, fill the disk once it has written its first metrics row, let it end."""
    proc = subprocess.Popen(KB + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (watch.exists() and watch.stat().st_size):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            out, err = proc.communicate()
            return {"rc": "never wrote a row", "err": err}
        time.sleep(0.2)
    fill()
    out, err = proc.communicate(timeout=300)
    return {"rc": proc.returncode, "err": err}


def in_process(argv: list[str]) -> dict:
    from kondo_bench import cli

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = cli.main(argv)
        except SystemExit as e:
            rc = e.code
        except Exception:  # noqa: BLE001 - reported to the test, which expects none
            rc = "raised"
            err.write(traceback.format_exc())
    return {"rc": rc, "err": err.getvalue()}


def main() -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(DISK)], check=True)
    out = {"run": filled_under([*LONG, f"hydra.run.dir={DISK}/run"], DISK / "run" / "metrics.jsonl")}
    out["run"]["summary"] = (DISK / "run" / "summary.json").exists()
    out["full_at_start"] = in_process(["run", "task=bandit", "task.steps=5", f"hydra.run.dir={DISK}/again"])
    out["full_at_start"]["made"] = (DISK / "again").exists()
    shutil.rmtree(DISK / "run")
    (DISK / "filler").unlink()
    out["sweep"] = filled_under(["-m", *LONG, "seed=0,1,2", f"hydra.sweep.dir={DISK}/sweep"],
                                DISK / "sweep" / "0" / "metrics.jsonl")
    (DISK / "filler").unlink()
    shutil.rmtree(DISK / "sweep")
    done = in_process(["run", "task=bandit", "task.steps=5", "progress=false", f"hydra.run.dir={DISK}/sweep/0"])
    assert done["rc"] == 0, done
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(RO)], check=True)
    out["read_only"] = {
        "run": in_process(["run", "task=bandit", "task.steps=5", f"hydra.run.dir={RO}/run"]),
        "summarize": in_process(["summarize", f"{DISK}/sweep", "--out", f"{RO}/table"]),
        "plot": in_process(["plot", f"{DISK}/sweep", "--out", f"{RO}/plots"]),
        "figures": in_process(["figures", "--scale", "test", "--only", "bandit", "--out", f"{RO}/figures"]),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()

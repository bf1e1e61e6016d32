"""A real disk that fills up, and one that is read-only: a 2 MiB tmpfs in a mount namespace of
the test's own (root, or an unprivileged user namespace), so nothing of the machine's is
touched and the mount ends with the process. Where neither is allowed the test is skipped;
tests/test_faults.py covers the same lines with the faults simulated."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCENARIO = Path(__file__).with_name("disk_scenario.py")


def namespace(tmp_path) -> list[str]:
    """The command prefix that runs a command in a mount namespace of its own, where it may mount."""
    prefix = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]
    probe = tmp_path / "probe"
    probe.mkdir()
    if shutil.which("unshare") is None or subprocess.run(
            [*prefix, "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (no root, no unprivileged user namespaces)")
    return prefix


def one_line(result: dict, *expect: str) -> bool:
    err = result["err"]
    return err.count("\n") == 1 and "Traceback" not in err and all(e in err for e in expect)


def test_a_disk_that_fills_up_or_is_read_only_is_one_line_per_fault(tmp_path):
    disk, ro = tmp_path / "disk", tmp_path / "ro"
    disk.mkdir()
    ro.mkdir()
    res = subprocess.run([*namespace(tmp_path), sys.executable, str(SCENARIO), str(disk), str(ro)], capture_output=True,
                         text=True, timeout=900, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.splitlines()[-1])

    run = out["run"]  # the disk fills up under a run: one line naming the disk, nothing that looks complete
    errors = [line for line in run["err"].splitlines() if "kondo-bench" in line or "Error" in line]
    assert run["rc"] == 2 and "Traceback" not in run["err"], run["err"]
    assert errors == [f"kondo-bench: error: no space left on the disk holding {disk}/run: free some space, or "
                      "choose another folder with hydra.run.dir=... (hydra.sweep.dir=... for a sweep)"], errors
    assert not run["summary"]

    start = out["full_at_start"]  # a run started on the full disk: refused before anything is made
    assert start["rc"] == 2 and one_line(start, f"no space left on the disk holding {disk}/again (") and \
        not start["made"], start

    sweep = out["sweep"]  # under a sweep: each job one line, the sweep goes on, its last line says why
    lines = sweep["err"].splitlines()
    assert sweep["rc"] == 1 and "Traceback" not in sweep["err"], sweep["err"]
    assert [line.split(":")[2].strip() for line in lines if line.startswith("kondo-bench: error: job")] == [
        f"job disk/sweep/{j} failed" for j in "012"], lines  # shown relative to the current folder
    assert lines[-1].startswith(f"kondo-bench: error: the disk holding {disk}/sweep is full"), lines

    out = out["read_only"]  # every command's output on a read-only disk
    assert out["run"]["rc"] == 2 and one_line(out["run"], f"{ro}/run", "Read-only", "hydra.run.dir="), out["run"]
    for command in ("summarize", "plot", "figures"):
        assert out[command]["rc"] == 2 and one_line(out[command], str(ro), "ead-only"), out[command]

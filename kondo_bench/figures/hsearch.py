"""H* by search instead of a grid: the next horizons to run for each series and seed.

At the paper's budget (1 M forward samples, up to H = 32 and beyond) a grid of every
horizon for every series and seed is days of CPU, and most of it says nothing: far below
H* every run solves, far above it every run fails. The search runs, for each series and
seed, only the horizons that narrow its H* down:

1. start at a horizon the series is expected to solve (`start`);
2. while everything run so far is solved, double the largest solved H (up to `top`);
3. once a horizon fails, bisect between the largest solved H below the smallest failed H
   (`lo`) and that failed H (`hi`) until they are adjacent, or until `hi - lo` is within the
   search's relative `resolution` of `lo` (1/8: H* to within 12.5 %, [32, 36) rather than
   exactly): H* = lo, the largest H known solved, so a coarser search reads H* low, never high;
4. if the start itself fails, halve downward until something is solved (or H = 1 fails).

It assumes **monotonicity**: a seed that solves H within the budget solves every shorter H.
That is what makes the bisection valid; it is checked where it costs one run per series
(`check`: seed 0 also runs H* - 1 once its H* is pinned down, once: not again where a seed
already contradicts it), and every pair of runs of one seed that contradicts it is reported
(`violations`).

A job is solved when its run stopped as `solved` (quality below `solved_below`) or its best
quality is below the threshold; it has failed when it finished its whole budget without.
The sweeps' `select` reads the finished jobs and proposes the next horizons, so a rerun of
the same command continues the search, and `--dry-run` lists what it would run next. Within
one `kondo-bench figures` command the proposed jobs run **shortest horizon first** (`cost`),
and the search is proposed again after each batch: every seed's short horizons finish (and
are recorded) before anything waits on a long one, so a command stopped part-way has spent
its time on jobs that finished. A series whose launch fails (a job's error, its folder busy) is
left alone for the rest of that command while the others go on; the command then exits 1, and
a rerun tries it again.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ..results import is_finished

HORIZON = "task.horizon"


def outcome(summary: dict | None, threshold: float) -> bool | None:
    """True: solved; False: the whole budget spent without; None: not finished (or unknown)."""
    if not is_finished(summary):
        return None
    if summary.get("status") == "solved":
        return True
    best = summary.get("best_quality")
    return best is not None and best < threshold


def next_horizons(results: dict[int, bool], start: int, top: int, resolution: float = 0.0) -> list[int]:
    """The horizons to run next for one series and seed, given its finished ones (H -> solved);
    [] when its H* is pinned down to within `resolution` × H* (0: exactly), or `top` is solved
    (H* >= top, the search's ceiling)."""
    if not results:
        return [start]
    solved = [h for h, ok in results.items() if ok]
    failed = [h for h, ok in results.items() if not ok]
    if not failed:
        best = max(solved)
        return [] if best >= top else [min(2 * best, top)]
    hi = min(failed)
    below = [h for h in solved if h < hi]
    if not below:  # nothing solved under the smallest failure: look lower
        return [] if hi <= 1 else [max(1, hi // 2)]
    lo = max(below)
    return [] if hi - lo <= max(1, int(resolution * lo)) else [(lo + hi) // 2]


def hstar_of(results: dict[int, bool]) -> int:
    """H* as the search defines it: the largest solved H below the smallest failed one."""
    failed = [h for h, ok in results.items() if not ok]
    hi = min(failed) if failed else float("inf")
    return max([h for h, ok in results.items() if ok and h < hi], default=0)


def violations(results: dict[int, bool]) -> list[tuple[int, int]]:
    """(failed H, solved H) pairs with the failure shorter: evidence against monotonicity."""
    return sorted((f, s) for f, ok_f in results.items() if not ok_f
                  for s, ok_s in results.items() if ok_s and s > f)


@dataclass(frozen=True)
class Search:
    """A sweep's `select`: given its grid's jobs and its finished summaries, the jobs to run
    and draw now (every finished one, and the next horizons of every series and seed)."""

    start: int
    top: int
    threshold: float
    check: bool = True  # seed 0 also runs H* - 1 once its H* is known (unless it already contradicts monotonicity)
    resolution: float = 0.0  # stop bisecting when the bracket [H*, first failure) is this close (relative)

    def groups(self, jobs: list[tuple[dict, str]]) -> dict[tuple, dict[int, str]]:
        """(the job's overrides but the horizon) -> {H: job folder name}."""
        out: dict[tuple, dict[int, str]] = defaultdict(dict)
        for overrides, name in jobs:
            rest = tuple(sorted((k, v) for k, v in overrides.items() if k != HORIZON))
            out[rest][int(overrides[HORIZON])] = name
        return out

    def results(self, by_h: dict[int, str], finished: dict[str, dict]) -> dict[int, bool]:
        out = {h: outcome(finished.get(name), self.threshold) for h, name in by_h.items()}
        return {h: ok for h, ok in out.items() if ok is not None}

    def __call__(self, jobs: list[tuple[dict, str]], finished: dict[str, dict]) -> set[str]:
        chosen = set()
        for rest, by_h in self.groups(jobs).items():
            results = self.results(by_h, finished)
            chosen |= {by_h[h] for h in results}  # drawn
            todo = next_horizons(results, self.start, self.top, self.resolution)
            # the check runs once: where a seed already contradicts monotonicity (the check
            # failed, or the search met it), H* - 1 of the new H* would only test it again, at
            # the cost of another run near the budget's edge
            if (not todo and self.check and dict(rest).get("seed") == "0" and (h := hstar_of(results)) > 1
                    and not violations(results)):
                todo = [h - 1] if h - 1 not in results else []
            chosen |= {by_h[h] for h in todo if h in by_h}
        return chosen

    def cost(self, overrides: list[str]) -> int:
        """What a job costs relative to the others: its horizon (a step samples H tokens)."""
        return int(dict(o.split("=", 1) for o in overrides)[HORIZON])

    def state(self, jobs: list[tuple[dict, str]], finished: dict[str, dict]) -> list[dict]:
        """Where the search stands for each series and seed: what it ran, H*, what is next."""
        rows = []
        for rest, by_h in self.groups(jobs).items():
            results = self.results(by_h, finished)
            rows.append({**dict(rest), "tried": dict(sorted(results.items())), "hstar": hstar_of(results),
                         "next": next_horizons(results, self.start, self.top, self.resolution), "violations": violations(results)})
        return rows

"""Benchmark: the reversal sampler, before and after its decode path was rewritten.

Times acting (one pass over the distinct prompts, then H decode steps for the whole batch) at
the default model (d_model 64, 3 layers, 4 heads, FFN 128) and batch (10 prompts x 10 samples),
one thread, for

  before  the sampler as it was: each decode step runs the model's forward on the new position
          and concatenates its key and value onto the cache of every earlier position
          (torch.cat per layer and step: O(H^2) copying), each row holding its prompt's keys
  after   kondo_bench.tasks.reversal_model.sample: the `Decoder` (prompt keys and values shared by
          a prompt's samples, answer keys and values written in place into buffers allocated
          once per batch, every buffer and view made once, about 15 ops per layer and step)

interleaved (before, after, before, after, ...) after a warm-up, so a busy neighbour slows both
alike; prints the median and min-max of process CPU time per horizon (one thread: CPU time is
the work done, which a busy neighbour inflates less than wall-clock), the speedup, the thread
count, the CPU and the load average before and after. The two differ only in floating-point
order: for the same generator they draw the same tokens but where two tokens' odds are within
rounding, and their log pi agree to about 1e-6 (both printed here at every horizon). This prints
figures; it is not a test.

    python scripts/bench_sampler.py                         # H = 10, 20, 30; 15 repeats
    python scripts/bench_sampler.py --horizons 30 --repeats 31 --csv results/bench_sampler_cpu.csv
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import time

import torch

from kondo_bench.tasks.reversal_model import Transformer, sample, select_context


@torch.no_grad()
def sample_cat(net: Transformer, prompt: torch.Tensor, samples: int, generator: torch.Generator | None = None):
    """The sampler before (its decode steps run the model's forward and grow the cache by torch.cat)."""
    p, h = prompt.shape
    logits, kv = net(prompt)
    rows = torch.arange(p).repeat_interleave(samples)
    logits, kv = logits[rows, -1], select_context(kv, rows)
    answer, logp = [], []
    for t in range(h):
        lp = logits.float().log_softmax(-1)
        noise = torch.empty_like(lp).exponential_(generator=generator)
        a = (lp.exp() / noise).argmax(-1)
        answer.append(a)
        logp.append(lp)
        if t + 1 < h:
            logits, kv = net(a[:, None], h + t, kv)
            logits = logits[:, 0]
    answer = torch.stack(answer, 1)
    return answer, torch.stack(logp, 1).gather(-1, answer[..., None])[..., 0]


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--horizons", type=int, nargs="+", default=[10, 20, 30])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--vocab", type=int, default=2)
    ap.add_argument("--csv", default=None, help="also write the rows to this CSV file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    rows = []
    for h in args.horizons:
        torch.manual_seed(0)
        net = Transformer(args.vocab, 2 * h, 64, 3, 4, 128).eval()
        prompt = torch.randint(args.vocab, (10, h))
        a1, l1 = sample_cat(net, prompt, 10, torch.Generator().manual_seed(1))
        a2, l2 = sample(net, prompt, 10, generator=torch.Generator().manual_seed(1))
        same = (a1 == a2).float().mean().item()
        logp_diff = (l1 - l2).abs().max().item() if torch.equal(a1, a2) else float("nan")
        times = {"before": [], "after": []}
        fns = {"before": lambda: sample_cat(net, prompt, 10), "after": lambda: sample(net, prompt, 10)}
        for _ in range(2):  # warm-up
            for f in fns.values():
                f()
        for _ in range(args.repeats):
            for name, f in fns.items():
                start = time.process_time()
                f()
                times[name].append(time.process_time() - start)
        med = {k: statistics.median(v) for k, v in times.items()}
        for name, v in times.items():
            rows.append({"horizon": h, "sampler": name, "median_ms": round(med[name] * 1e3, 2),
                         "min_ms": round(min(v) * 1e3, 2), "max_ms": round(max(v) * 1e3, 2),
                         "speedup_vs_before": round(med["before"] / med[name], 2), "same_tokens": round(same, 4),
                         "logp_max_diff": logp_diff,
                         "repeats": args.repeats, "threads": args.threads, "cpu": cpu_name(),
                         "load_before": round(load0[0], 2), "load_after": round(os.getloadavg()[0], 2),
                         "torch": torch.__version__})
        print(f"H = {h:3d}: before {med['before'] * 1e3:7.1f} ms, after {med['after'] * 1e3:7.1f} ms "
              f"(min-max {min(times['after']) * 1e3:.1f}-{max(times['after']) * 1e3:.1f}): "
              f"{med['before'] / med['after']:.2f}x; same tokens: {same:.2%}, log pi within {logp_diff:.1e}", flush=True)
    print(f"{args.threads} thread(s), {cpu_name()}, load average {load0[0]:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()

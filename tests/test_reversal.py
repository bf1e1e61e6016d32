"""Token reversal: rewards, grouped baseline, per-token gates, the transformer, and real runs."""

import json
import math
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from conftest import REPO, kb, make_cfg, sigterm_at_evaluation
from kondo_bench.tasks.reversal_config import ReversalConfig
from kondo_bench.errors import UserError
from kondo_bench.methods import Method, topk_gate
from kondo_bench.tasks import draw
from kondo_bench.tasks.reversal import (ReversalTask, answer_dist, answer_logp, expected_error, grouped_advantage,
                                        reward_of, sample, target_of)
from kondo_bench.train import learn_step, run_experiment

T = torch.tensor


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_task(**kw) -> ReversalTask:
    base = dict(horizon=4, vocab=3, batch_size=12, samples_per_prompt=3, d_model=16, layers=2,
                heads=2, ffn=32, eval_prompts=20)
    return ReversalTask(OmegaConf.structured(ReversalConfig(**{**base, **kw})), torch.device("cpu"))


# ---- the environment ----

def test_targets_of_each_variant():
    prompt = T([[0, 1, 2, 2]])
    assert target_of(prompt, "reverse", 3).tolist() == [[2, 2, 1, 0]]
    assert target_of(prompt, "copy", 3).tolist() == [[0, 1, 2, 2]]
    assert target_of(prompt, "flip", 3).tolist() == [[1, 2, 0, 0]]


@pytest.mark.parametrize("scoring, kappa, expected", [
    # answers against the target [1, 1, 0, 1]:
    #   all right | first wrong | last wrong | 2nd and 4th wrong | all wrong
    ("fraction", 1.0, [1, 3 / 4, 3 / 4, 2 / 4, 0]),
    ("sequential", 1.0, [1, 0, 3 / 4, 1 / 4, 0]),
    ("fraction", 0.5, [1, 3 / 8, 3 / 8, 2 / 8, 0]),  # 0.5 * fraction + 0.5 * 1{all right}
    ("sequential", 0.0, [1, 0, 0, 0, 0]),  # kappa = 0: only a perfect answer pays
])
def test_reward_on_hand_made_answers(scoring, kappa, expected):
    target = T([[1, 1, 0, 1]]).expand(5, -1)
    answer = T([[1, 1, 0, 1], [0, 1, 0, 1], [1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0]])
    got = reward_of(answer, target, scoring, kappa)
    assert torch.allclose(got, T(expected, dtype=torch.float)), got


@pytest.mark.parametrize("variant", ["reverse", "copy", "flip"])
def test_reward_through_target_for_each_variant(variant):
    prompt = T([[0, 1, 1], [2, 0, 1]])
    right = {"reverse": [[1, 1, 0], [1, 0, 2]], "copy": [[0, 1, 1], [2, 0, 1]],
             "flip": [[1, 2, 2], [0, 1, 2]]}[variant]
    target = target_of(prompt, variant, 3)
    assert reward_of(T(right), target).tolist() == [1.0, 1.0]
    wrong_last = T(right).clone()
    wrong_last[:, -1] = (wrong_last[:, -1] + 1) % 3
    assert torch.allclose(reward_of(wrong_last, target), T([2 / 3, 2 / 3]))
    assert reward_of(wrong_last, target, "sequential", 0.5).tolist() == pytest.approx([1 / 3, 1 / 3])


def test_task_rewards_its_own_batch_correctly():
    task = tiny_task(variant="flip")
    batch = task.act()
    prompt, answer = batch.data["prompt"][batch.data["group"]], batch.data["action"]
    by_hand = [sum(int(a) == (int(p) + 1) % 3 for a, p in zip(ar, pr)) / 4 for ar, pr in zip(answer, prompt)]
    assert batch.reward.tolist() == pytest.approx(by_hand)
    assert batch.data["group"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]  # 4 prompts x 3, prompt-major


# ---- baseline, delight and the per-token gate ----

def test_grouped_baseline_delight_and_gate_by_hand():
    reward = T([1.0, 0.5, 0.0, 0.0, 1.0, 0.5])  # 2 prompts x 3 samples
    u = grouped_advantage(reward, 3)
    assert torch.allclose(u, T([0.5, 0.0, -0.5, -0.5, 0.5, 0.0]))  # baselines 0.5 and 0.5
    adv = u[:, None].expand(-1, 2).contiguous()  # H = 2 tokens, the sequence's U on each
    logp = torch.log(T([[0.5, 0.25], [0.9, 0.9], [0.8, 0.1], [0.5, 0.5], [0.2, 0.9], [0.6, 0.6]]))
    chi = -u[:, None] * logp  # delight = U * surprisal, per token
    sel = Method("dg", eta=1.0).select(adv, logp)
    assert torch.allclose(sel.delight, chi)
    assert torch.allclose(sel.coef, torch.sigmoid(chi) * adv)
    assert sel.keep.all()
    # top 2 of 12 tokens by delight: 0.5 * log 5 (row 4, token 0) and 0.5 * log 4 (row 0, token 1)
    keep = topk_gate(chi, 2 / 12)
    assert keep.nonzero().tolist() == [[0, 1], [4, 0]]
    sel = Method("dgk", gate="topk", keep_rate=2 / 12).select(adv, logp)
    assert torch.equal(sel.keep, keep)
    assert torch.allclose(sel.coef, torch.where(keep, adv, torch.zeros_like(adv)))  # kept: plain PG, unit weight


def test_act_broadcasts_the_grouped_advantage_to_tokens():
    task = tiny_task()
    batch = task.act()
    assert batch.logp.shape == batch.advantage.shape == (12, 4) and batch.reward.shape == (12,)
    u = batch.reward.reshape(4, 3) - batch.reward.reshape(4, 3).mean(1, keepdim=True)
    assert torch.allclose(batch.advantage, u.reshape(12, 1).expand(-1, 4))


def test_compacted_rows_give_the_masked_full_batch_gradient():
    task = tiny_task()
    captured = {}

    def keep_grads(loss):
        task.net.zero_grad()
        loss.backward()
        captured["g"] = torch.cat([p.grad.reshape(-1) for p in task.net.parameters()])

    task.learn = keep_grads
    batch = task.act()
    batch.advantage = torch.randn(12, 1).expand(-1, 4).contiguous()  # no all-zero groups
    sel = Method("dgk", gate="topk", keep_rate=0.2).select(batch.advantage, batch.logp)
    learned = learn_step(task, batch, sel)
    assert learned.kept_units == learned.backward_units == 10 and learned.backward_rows < 12  # some rows skipped, so the re-forward really was compacted
    compacted = captured["g"]
    full = task.logp(batch, torch.arange(12))
    keep_grads(-(sel.coef * sel.keep * full).sum() / 48)
    assert torch.allclose(compacted, captured["g"], atol=1e-6)


@pytest.mark.parametrize("gate,reduce", [("topk", "mean"), ("topk", "sum"), ("quantile", "mean")])
def test_sequence_gate_keeps_whole_answers_and_compacts_to_them(gate, reduce):
    """method.unit=sequence: the gate ranks (or prices) rows by their tokens' mean or summed
    score, keeps whole answers, counts their tokens, and re-runs only their rows."""
    task = tiny_task(batch_size=60, samples_per_prompt=3)
    captured = {}

    def keep_grads(loss):
        task.net.zero_grad()
        loss.backward()
        captured["g"] = torch.cat([p.grad.reshape(-1) for p in task.net.parameters()])

    task.learn = keep_grads
    batch = task.act()
    batch.advantage = torch.randn(60, 1).expand(-1, 4).contiguous()
    method = Method("dgk", gate=gate, keep_rate=0.2, unit="sequence", unit_reduce=reduce, eta=0.3)
    sel = method.select(batch.advantage, batch.logp)
    rows = sel.keep.any(1)
    assert torch.equal(sel.keep, rows[:, None].expand(-1, 4))  # all of a row's tokens, or none
    if gate == "topk":  # exactly round(0.2 * 60) = 12 answers: the 12 best by their reduced delight
        assert int(rows.sum()) == 12
        chi = batch.advantage * -batch.logp
        seq = chi.sum(1) if reduce == "sum" else chi.mean(1)
        assert seq[rows].min() >= seq[~rows].max()
    learned = learn_step(task, batch, sel, method)
    assert learned.backward_rows == int(rows.sum()) and learned.kept_units == 4 * int(rows.sum())
    compacted = captured["g"]
    full = task.logp(batch, torch.arange(60))
    keep_grads(-(sel.coef * sel.keep * full).sum() / 240)
    assert torch.allclose(compacted, captured["g"], atol=1e-6)


def test_sequence_gate_keep_rate_is_the_share_of_answers(tmp_path):
    s = run_experiment(make_cfg("task=reversal", "method=dgk", "keep_rate=0.1", "method.unit=sequence",
                                "task.steps=3", "task.eval_every=3", "task.horizon=3", "task.d_model=16",
                                "task.ffn=32", "task.eval_prompts=10", "progress=false"), tmp_path)
    assert s["status"] == "complete" and s["final"]["keep_rate"] == pytest.approx(0.1)
    assert s["backward_units"] == 3 * s["backward_samples"] == 3 * 3 * 10  # 10 answers a step, 3 tokens each


@pytest.mark.parametrize("overrides,needle", [
    (("task=mnist", "method=dgk", "keep_rate=0.1", "method.unit=sequence"), "one unit each"),
    (("task=reversal", "method=dg", "method.unit=sequence"), "only a gate read it"),
    (("task=reversal", "method=dgk", "keep_rate=0.1", "method.unit_reduce=sum"), "method.unit=sequence"),
])
def test_sequence_gate_refused_where_it_would_mean_nothing(overrides, needle):
    from kondo_bench.validation import validate

    with pytest.raises(UserError, match=needle):
        validate(make_cfg(*overrides))


# ---- the transformer ----

def test_causal_mask_later_tokens_do_not_change_earlier_logits():
    net = tiny_task().net
    seq = torch.randint(3, (5, 7))
    other = seq.clone()
    other[:, 4] = (other[:, 4] + 1) % 3
    (a, _), (b, _) = net(seq), net(other)
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-6)
    assert not torch.allclose(a[:, 4:], b[:, 4:])


def test_shared_prompt_pass_equals_the_plain_full_sequence_pass():
    task = tiny_task()
    prompt, answer = torch.randint(3, (4, 4)), torch.randint(3, (12, 4))
    group = T([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    shared = answer_logp(task.net, prompt, answer, group)
    logits, _ = task.net(torch.cat([prompt[group], answer[:, :-1]], 1))  # 2H - 1 positions, no sharing
    plain = logits[:, 3:].log_softmax(-1).gather(-1, answer[..., None])[..., 0]
    assert shared.shape == (12, 4) and torch.allclose(shared, plain, atol=1e-5)
    rows = T([1, 7, 8])  # the compacted re-forward of a few rows agrees too
    batch = task.act()
    batch.data.update(prompt=prompt, action=answer, group=group)
    assert torch.allclose(task.logp(batch, rows), plain[rows], atol=1e-5)


def test_sampler_kv_cache_matches_teacher_forcing_and_grad_modes_agree():
    task = tiny_task()
    torch.manual_seed(1)
    screened = task.act()  # log pi from the KV-cache sampler
    torch.manual_seed(1)
    acted = task.act_with_grad()  # one teacher-forced forward with autograd
    assert torch.equal(screened.data["action"], acted.data["action"])
    assert acted.logp_grad.requires_grad and not acted.logp.requires_grad
    assert torch.allclose(acted.logp_grad.detach(), acted.logp)
    assert torch.allclose(screened.logp, acted.logp, atol=1e-5)
    assert torch.allclose(task.logp(screened, torch.arange(12)), screened.logp, atol=1e-5)
    assert (screened.logp <= 0).all()


def test_the_oracle_trains_on_the_true_answer_without_task_code():
    task = tiny_task()
    torch.manual_seed(3)
    sampled = task.act()
    torch.manual_seed(3)
    batch = draw(task, grad=True, oracle=True)
    assert torch.equal(batch.data["action"], batch.data["prompt"][batch.data["group"]].flip(1))
    assert torch.equal(batch.reward, sampled.reward)  # train_reward stays the policy's own
    assert (batch.advantage == 1).all() and batch.logp_grad.requires_grad
    truth = answer_logp(task.net, batch.data["prompt"], batch.data["target"], batch.data["group"])
    assert torch.allclose(batch.logp, truth.detach(), atol=1e-6)
    screened = draw(task, grad=False, oracle=True)  # a gate's screen: the target's log pi, no graph
    assert screened.logp_grad is None and screened.logp.shape == sampled.logp.shape


def test_evaluate_reports_errors_and_leaves_the_training_rng_alone():
    task = tiny_task()
    task.act()
    state = torch.get_rng_state()
    out = task.evaluate()
    assert torch.equal(state, torch.get_rng_state())
    assert set(out) == {"expected_error", "expected_error_se", "seq_error", "greedy_error", "cumulative_error"}
    assert all(0 <= v <= 1 for v in out.values()) and task.quality == "expected_error"


# ---- the expected error: exact, or Rao-Blackwellised, against enumeration and sampling ----

def exact_error(task: ReversalTask, prompt: torch.Tensor, scoring: str, kappa: float) -> float:
    """1 - E[R | prompt] by enumerating all M^H answers with their teacher-forced probabilities."""
    h, m = prompt.shape[1], task.M
    answers = torch.cartesian_prod(*[torch.arange(m)] * h)  # [M^H, H]
    with torch.no_grad():
        p = answer_logp(task.net, prompt, answers, torch.zeros(len(answers), dtype=torch.long)).double().sum(-1).exp()
    target = target_of(prompt, "reverse", m).expand(len(answers), -1)
    assert p.sum().item() == pytest.approx(1, abs=1e-5)
    return 1 - (p * reward_of(answers, target, scoring, kappa).double()).sum().item()


@pytest.mark.parametrize("scoring, kappa", [("sequential", 1.0), ("sequential", 0.0), ("fraction", 0.0),
                                            ("sequential", 0.5)])
def test_expected_error_is_exact_by_teacher_forcing(scoring, kappa):
    torch.manual_seed(0)
    task = tiny_task(horizon=3, vocab=3)
    prompt = T([[0, 2, 1]])
    target = target_of(prompt, "reverse", 3)
    with torch.no_grad():
        forced = answer_dist(task.net, prompt, target, T([0]))
    _, dist = sample(task.net, prompt, full=True)
    got = expected_error(dist, target, scoring, kappa, forced).item()
    assert got == pytest.approx(exact_error(task, prompt, scoring, kappa), abs=1e-6)


def test_rao_blackwellised_fraction_error_is_unbiased_and_less_noisy_than_sampling():
    """The fraction score's estimate (pi of the target along sampled answers) averages to the
    exact expectation, and varies far less from answer to answer than the sampled score."""
    torch.manual_seed(0)
    task = tiny_task(horizon=3, vocab=3)
    prompt = T([[0, 2, 1]])
    answers, dist = sample(task.net, prompt, samples=4000, full=True)
    target = target_of(prompt, "reverse", 3).expand(len(answers), -1)
    rb = expected_error(dist, target)
    sampled = 1 - reward_of(answers, target).double()
    exact = exact_error(task, prompt, "fraction", 1.0)
    se = rb.std().item() / len(rb) ** 0.5
    assert abs(rb.mean().item() - exact) < 4 * se and abs(sampled.mean().item() - exact) < 4 * sampled.std().item() / 4000 ** 0.5
    assert rb.std() < sampled.std() / 3


def test_evaluate_agrees_with_the_sampled_error_within_its_noise():
    torch.manual_seed(1)
    task = tiny_task(eval_prompts=2000)
    out = task.evaluate()
    noise = (out["expected_error_se"] ** 2 + out["seq_error"] * (1 - out["seq_error"]) / 2000) ** 0.5
    assert 0 < out["expected_error_se"] < 0.01 and abs(out["expected_error"] - out["seq_error"]) < 4 * noise


@pytest.mark.parametrize("scoring, expected", [("fraction", 1e-9), ("sequential", 5.5e-9)])
def test_expected_error_resolves_a_near_deterministic_policy(scoring, expected):
    """pi(target) = 1 - 1e-9 at every token: sampling 200 prompts x 10 tokens sees no error (its
    grain is 5e-4), the expected error is 1e-9 (sequential: mean over t of 1 - (1 - 1e-9)^t)."""
    target = torch.randint(2, (200, 10), generator=torch.Generator().manual_seed(0))
    dist = torch.full((200, 10, 2), math.log(1e-9)).scatter(-1, target[..., None], math.log1p(-1e-9))
    answers = torch.distributions.Categorical(logits=dist).sample()
    assert reward_of(answers, target).mean().item() == 1  # sampling: exactly 0 error
    got = expected_error(dist, target, scoring, 1.0, forced=dist).mean().item()
    assert got == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("override, match", [
    ({"batch_size": 10}, "multiple of task.samples_per_prompt"),
    ({"variant": "sort"}, "task.variant"),
    ({"scoring": "all"}, "task.scoring"),
    ({"kappa": 1.5}, "task.kappa"),
    ({"d_model": 10, "heads": 4}, "divisible"),
])
def test_bad_settings_are_user_errors(override, match):
    with pytest.raises(UserError, match=match):
        tiny_task(**override)


# ---- real runs ----

def test_dg_learns_short_reversal(tmp_path):
    cfg = make_cfg("task=reversal", "method=dg", "device=cpu", "progress=false", "task.horizon=3",
                   "task.steps=100", "task.eval_every=50", "task.lr=0.003")
    summary = run_experiment(cfg, tmp_path)
    assert summary["status"] == "complete" and summary["final_quality"] < 0.1
    assert summary["final"]["greedy_error"] < 0.1
    assert summary["forward_samples"] == summary["backward_samples"] == 100 * 100


def test_cli_dgk_counts_tokens(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "run"
    r = kb("run", "task=reversal", "method=dgk", "keep_rate=0.1", "task.steps=20", "task.eval_every=10",
           "device=cpu", "progress=false", f"hydra.run.dir={out}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [10, 20]
    for row in rows:
        assert row["backward_units"] == row["steps"] * 100  # 10% of 1,000 tokens per step
        assert row["backward_units"] < row["backward_samples"] * 10 and row["backward_samples"] < row["forward_samples"]
        assert row["keep_rate"] == pytest.approx(0.1) and not math.isnan(row["seq_error"])
    assert json.loads((out / "summary.json").read_text())["status"] == "complete"


def test_checkpoint_resume_reproduces_the_uninterrupted_run(tmp_path):
    args = ("task=reversal", "task.horizon=3", "task.steps=30", "task.eval_every=5", "task.eval_prompts=20",
            "checkpoint_every=10", "progress=false", "device=cpu", "method=dgk", "keep_rate=0.2", "seed=3")
    run_experiment(make_cfg(*args), tmp_path / "full")
    with sigterm_at_evaluation(ReversalTask, 5):  # a SIGTERM arrives while step 25 is evaluated
        assert run_experiment(make_cfg(*args), tmp_path / "cut")["status"] == "interrupted"
    resumed = run_experiment(make_cfg(*args), tmp_path / "cut")
    assert resumed["status"] == "complete" and resumed["resumed_from_step"] == 20

    def rows(d):
        return [{k: v for k, v in json.loads(line).items() if not k.startswith("time_")}
                for line in (d / "metrics.jsonl").read_text().splitlines()]
    assert rows(tmp_path / "cut") == rows(tmp_path / "full")


def test_hstar_script_runs_a_tiny_sweep(tmp_path):
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "hstar.py"), "--horizons", "1", "2",
                        "--steps", "5", "--threads", "1", "--out", str(tmp_path), "task.eval_prompts=20"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "H*" in r.stdout


def test_sampler_log_probs_agree_with_teacher_forcing_and_its_answers_follow_the_policy():
    """The sampler's KV cache (preallocated buffers written in place) computes the same policy as
    the teacher-forced pass the learner differentiates: the log pi of each sampled token agrees
    to 1e-5, and the answers of one prompt are distributed as the policy says (chi-square over
    all M^H = 8 answers, 4,000 draws, critical value 24.3 for 7 degrees of freedom at p = 0.001)."""
    torch.manual_seed(0)
    task = tiny_task(horizon=6, vocab=3)
    prompt = torch.randint(3, (4, 6))
    answers, logp = sample(task.net, prompt, samples=5, generator=torch.Generator().manual_seed(1))
    group = torch.arange(4).repeat_interleave(5)
    with torch.no_grad():
        forced = answer_logp(task.net, prompt, answers, group)
    assert torch.allclose(logp, forced, atol=1e-5)

    task = tiny_task(horizon=3, vocab=2)
    prompt = T([[1, 0, 1]])
    answers, _ = sample(task.net, prompt, samples=4000, generator=torch.Generator().manual_seed(2))
    every = torch.cartesian_prod(*[torch.arange(2)] * 3)  # [8, 3]
    with torch.no_grad():
        p = answer_logp(task.net, prompt, every, torch.zeros(8, dtype=torch.long)).double().sum(-1).exp()
    counts = (answers[:, None, :] == every[None]).all(-1).sum(0).double()
    chi2 = ((counts - 4000 * p) ** 2 / (4000 * p)).sum().item()
    assert chi2 < 24.3, (counts.tolist(), (4000 * p).tolist())


@pytest.mark.parametrize("horizon", [1, 2, 27, 40])  # the answer buffers: padded to 25 positions, exactly 26, longer
def test_decode_steps_agree_with_teacher_forcing_at_every_length(horizon):
    """Sampled, greedy and full: every position's log pi(. | prompt, answer_<t) from the decode
    steps (`Decoder`) is the teacher-forced one to 1e-5, and greedy answers take its argmax."""
    torch.manual_seed(0)
    task = tiny_task(horizon=horizon, vocab=3, layers=1)
    prompt = torch.randint(3, (3, horizon))
    group = torch.arange(3).repeat_interleave(4)
    for greedy in (False, True):
        answers, dist = sample(task.net, prompt, samples=4, greedy=greedy, full=True,
                               generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            forced = answer_dist(task.net, prompt, answers, group)
        assert dist.shape == (12, horizon, 3) and torch.allclose(dist, forced, atol=1e-5)
        if greedy:
            assert torch.equal(answers, forced.argmax(-1))


def test_sampler_under_a_bf16_autocast_decodes_in_bf16():
    """The bf16 screen acts under autocast: the decode steps follow the prompt pass into bf16
    (their buffers fix each op's dtype) and their log pi stay near the fp32 teacher-forced one."""
    torch.manual_seed(0)
    task = tiny_task(horizon=6, vocab=3)
    prompt = torch.randint(3, (4, 6))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        answers, logp = sample(task.net, prompt, samples=5, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        forced = answer_logp(task.net, prompt, answers, torch.arange(4).repeat_interleave(5))
    assert logp.dtype == torch.float32 and (logp - forced).abs().max() < 0.05

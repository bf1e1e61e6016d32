"""task=lm: a Hugging Face causal LM on text problems, gated like every task (kondo_bench/tasks/lm)."""

import pytest
import torch

pytest.importorskip("transformers")

from conftest import make_cfg  # noqa: E402
from kondo_bench.errors import UserError  # noqa: E402
from kondo_bench.methods import Method  # noqa: E402
from kondo_bench.tasks import make_task  # noqa: E402
from kondo_bench.tasks.lm.model import completion_logp, sample  # noqa: E402
from kondo_bench.tasks.lm.problems import (addition_reward, digits, draw, reversal_reward,  # noqa: E402
                                           sorting_reward)
from kondo_bench.tasks.lm.task import group_advantage, trimmed_length  # noqa: E402
from kondo_bench.tasks.lm.tokenizer import char_tokenizer, load_tokenizer  # noqa: E402
from kondo_bench.tasks.reversal import reward_of  # noqa: E402
from kondo_bench.train import learn_step, run_experiment  # noqa: E402

TINY = ("task.model.hidden_size=32", "task.model.layers=1", "task.model.heads=2", "task.model.intermediate_size=32",
        "task.batch_size=12", "task.samples_per_prompt=4", "task.eval_prompts=6")
CPU = torch.device("cpu")


def tiny_task(*overrides):
    return make_task(make_cfg("task=lm", *TINY, *overrides), CPU)


# ---- tokenizer ----

def test_character_tokenizer_round_trips_and_pads_left():
    tok = char_tokenizer()
    for s in ["0110=", "27+305=", "9,8,7", ""]:
        ids = tok(s, add_special_tokens=False)["input_ids"]
        assert len(ids) == len(s) and tok.decode(ids) == s
    enc = tok(["1+2=", "10+20="], padding=True, return_tensors="pt", add_special_tokens=False)
    assert enc["attention_mask"].tolist() == [[0, 0, 1, 1, 1, 1], [1] * 6]
    assert enc["input_ids"][0, :2].tolist() == [tok.pad_token_id] * 2
    assert tok.decode([tok.convert_tokens_to_ids("7"), tok.eos_token_id], skip_special_tokens=True) == "7"


def test_a_saved_tokenizer_loads_from_its_folder(tmp_path):
    char_tokenizer().save_pretrained(tmp_path)
    tok = load_tokenizer(str(tmp_path))
    assert tok.decode(tok("123=", add_special_tokens=False)["input_ids"]) == "123=" and tok.padding_side == "left"
    with pytest.raises(UserError, match="does not exist"):
        load_tokenizer(str(tmp_path / "nope"))


# ---- problems and rewards ----

def test_rewards_on_hand_made_answers():
    assert reversal_reward(["011="], ["110"], answer=["110"]) == [1.0]
    assert reversal_reward(["011="] * 3, ["011", "11", "1101"], answer=["110"] * 3) == [pytest.approx(1 / 3),
                                                                                        pytest.approx(2 / 3), 1.0]
    assert sorting_reward(["31="], ["13"], answer=["13"]) == [1.0]
    # addition: matches over the longer of the two; too long costs like too short
    assert addition_reward(["9+3="] * 4, ["12", "1", "120", ""], answer=["12"] * 4) == [1.0, 0.5, pytest.approx(2 / 3), 0.0]


def test_drawn_prompts_carry_their_answers():
    prompts, answers = draw("reversal", 5, 4, 3)
    assert all(p[:-1][::-1] == a and p.endswith("=") and set(a) <= set("012") for p, a in zip(prompts, answers))
    prompts, answers = draw("sorting", 5, 6, 10)
    assert all("".join(sorted(p[:-1])) == a for p, a in zip(prompts, answers))
    prompts, answers = draw("addition", 20, 3, 10)
    assert all(int(p[:-1].split("+")[0]) + int(p[:-1].split("+")[1]) == int(a) for p, a in zip(prompts, answers))
    assert len({len(p) for p in prompts}) > 1  # varying lengths: the left padding is exercised


def test_reversal_as_text_agrees_with_task_reversal_on_rewards():
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(3, (64, 7), generator=g)
    target = prompt.flip(-1)
    answer = torch.where(torch.rand(64, 7, generator=g) < 0.6, target, torch.randint(3, (64, 7), generator=g))
    text = reversal_reward([p + "=" for p in digits(prompt)], digits(answer), answer=digits(target))
    assert torch.allclose(torch.tensor(text), reward_of(answer, target, "fraction"))
    # the same prompt draws: task=lm's reversal digits are task=reversal's tokens under one seed
    torch.manual_seed(3)
    prompts, _ = draw("reversal", 4, 7, 3)
    torch.manual_seed(3)
    assert digits(torch.randint(3, (4, 7))) == [p[:-1] for p in prompts]


def test_group_advantage_is_grpos():
    r = torch.tensor([1.0, 0.0, 0.5, 0.5, 0.2, 0.2, 0.2, 0.2])
    u = group_advantage(r, 4, scale=True)
    g = r.reshape(2, 4)
    ref = ((g - g.mean(1, keepdim=True)) / (g.std(1, keepdim=True) + 1e-4)).reshape(-1)
    assert torch.allclose(u, ref) and torch.all(u[4:] == 0)
    assert torch.allclose(group_advantage(r, 4, scale=False), (g - g.mean(1, keepdim=True)).reshape(-1))


# ---- sampling, screening and the padding after EOS ----

@pytest.mark.parametrize("family", ["qwen2", "llama", "gpt2"])
def test_sampler_log_pi_is_the_learning_forwards(family):
    task = tiny_task("task=lm_addition", f"task.model.family={family}")
    torch.manual_seed(0)
    batch = task.act()
    d = batch.data
    lp = completion_logp(task.model, d["prompt"][d["group"]], d["prompt_mask"][d["group"]], d["action"], d["valid"],
                         task.T)
    assert torch.allclose(lp[d["valid"]], batch.logp[d["valid"]], atol=1e-5)


def test_after_eos_is_padding_never_kept():
    task = tiny_task("task=lm_addition")
    eos, pad = task.eos, task.pad
    with torch.no_grad():  # make <eos> likely so that rows end at different points
        task.model.get_output_embeddings().weight[eos].fill_(0.3)
    torch.manual_seed(1)
    batch = task.act()
    c, v = batch.data["action"], batch.data["valid"]
    ended = (c == eos) & v
    assert ended.any() and not v.all()
    for row in range(len(c)):  # valid up to and including the first <eos>, padding after
        n = int(v[row].sum())
        assert v[row, :n].all() and (c[row, n:] == pad).all() and (batch.logp[row, n:] == 0).all()
        assert n == c.shape[1] or c[row, n - 1] == eos
    assert (batch.advantage[~v] == 0).all()
    sel = Method("dgk", keep_rate=0.5).select(batch.advantage, batch.logp, v)
    assert not (sel.keep & ~v).any() and int(sel.keep.sum()) == round(0.5 * int(v.sum()))
    seq = Method("dgk", keep_rate=0.5, unit="sequence").select(batch.advantage, batch.logp, v)
    assert not (seq.keep & ~v).any() and (seq.keep == (seq.keep.any(1, keepdim=True) & v)).all()


# ---- compaction and right-trimming: the gradient of the masked batch ----

def grads(task, loss):
    task.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in task.parameters()]


def gated_batch(task, keep_rate):
    torch.manual_seed(2)
    batch = task.act()
    # random advantages: a random tiny model's rewards are mostly 0, and the test is about the gradient
    batch.advantage = torch.randn(batch.reward.shape)[:, None] * batch.data["valid"]
    sel = Method("dgk", keep_rate=keep_rate).select(batch.advantage, batch.logp, batch.data["valid"])
    return batch, sel


def masked_loss(task, batch, sel):
    """The reference: every row, every position, the loss masked to the kept tokens."""
    d = batch.data
    lp = completion_logp(task.model, d["prompt"][d["group"]], d["prompt_mask"][d["group"]], d["action"], d["valid"],
                         task.T)
    return -(sel.coef * lp).sum() / sel.keep.numel()


@pytest.mark.parametrize("problem", ["lm", "lm_addition"])
def test_compacted_right_trimmed_rows_give_the_masked_batchs_gradient(problem):
    task = tiny_task(f"task={problem}")
    batch, sel = gated_batch(task, 0.15)
    ref = grads(task, masked_loss(task, batch, sel))
    rows = sel.keep.any(1).nonzero()[:, 0]
    assert 0 < len(rows) < len(sel.keep)  # compaction drops rows
    batch.data["keep"] = sel.keep
    lp = task.logp(batch, rows)
    got = grads(task, -(sel.coef[rows] * lp).sum() / sel.keep.numel())
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ref, got))
    assert max(float(a.abs().max()) for a in ref) > 0


def test_right_trimming_stops_at_the_last_kept_token():
    task = tiny_task("task.length=8")
    batch, sel = gated_batch(task, 0.05)
    keep = torch.zeros_like(sel.keep)
    keep[0, 2] = keep[3, 4] = True  # the last kept token is at position 4: 5 positions computed, not 8
    assert trimmed_length(batch.data["valid"], keep) == 5
    batch.data["keep"] = keep
    sel.coef = torch.where(keep, batch.advantage + 0.5, torch.zeros_like(batch.advantage))
    sel.keep = keep
    ref = grads(task, masked_loss(task, batch, sel))
    before = task.tokens["learn_tokens"]
    rows = torch.tensor([0, 3])
    got = grads(task, -(sel.coef[rows] * task.logp(batch, rows)).sum() / keep.numel())
    assert task.tokens["learn_tokens"] - before == 2 * (9 + 5 - 1)  # prompt 9 + 4 completion inputs per row
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ref, got))


def test_learn_step_hands_the_keep_mask_to_the_task():
    task = tiny_task()
    batch, sel = gated_batch(task, 0.1)
    learned = learn_step(task, batch, sel, Method("dgk", keep_rate=0.1))
    assert batch.data["keep"] is sel.keep and learned.kept_units == int(sel.keep.sum())
    assert learned.backward_rows == int(sel.keep.any(1).sum())


# ---- models, paths, rewards by _target_ ----

def test_a_local_pretrained_folder_loads_and_a_bad_one_is_one_line(tmp_path):
    task = tiny_task("task.model.family=llama")
    task.model.save_pretrained(tmp_path / "m")
    task.tokenizer.save_pretrained(tmp_path / "m")
    loaded = tiny_task(f"task.model.path={tmp_path / 'm'}")
    assert type(loaded.model).__name__ == "LlamaForCausalLM"
    x = torch.tensor([[3, 4, 5]])
    assert torch.allclose(loaded.model(input_ids=x).logits, task.model(input_ids=x).logits)
    with pytest.raises(UserError, match="does not exist"):
        tiny_task(f"task.model.path={tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no model"):
        tiny_task(f"task.model.path={tmp_path / 'empty'}", f"task.model.tokenizer={tmp_path / 'm'}")


def test_a_users_reward_by_target():
    task = tiny_task("+task.reward._target_=kondo_bench.tasks.lm.problems.addition_reward")
    assert task.reward_fn.func is addition_reward
    with pytest.raises(UserError, match="task.reward"):
        tiny_task("+task.reward._target_=no.such.module.fn")


def test_bad_settings_are_one_line():
    for bad, match in [("task.problem=chess", "task.problem"), ("task.model.family=bert", "family"),
                       ("task.batch_size=10", "multiple"), ("task.model.max_positions=8", "max_positions"),
                       ("task.precision=fp8", "precision")]:
        with pytest.raises(UserError, match=match):
            tiny_task(bad)


@pytest.mark.parametrize("method", [("method=pg",), ("method=dgk", "keep_rate=0.1"),
                                    ("method=ppo", "method.epochs=2"), ("method=dg", "task.precision=bf16"),
                                    ("method=dgk", "keep_rate=0.2", "method.unit=sequence", "task.problem=sorting")])
def test_runs_through_the_loop(tmp_path, method):
    cfg = make_cfg("task=lm", *TINY, "task.steps=2", "task.eval_every=1", "device=cpu", "progress=false",
                   "logger=none", *method)
    summary = run_experiment(cfg, tmp_path)
    assert summary["status"] == "complete" and summary["steps"] == 2
    assert summary["final"]["gen_tokens"] > 0 and summary["final"]["learn_tokens"] > 0
    if "keep_rate=0.1" in method:
        assert summary["final"]["keep_rate"] == pytest.approx(0.1, abs=0.03)


@pytest.mark.gpu
def test_runs_on_cuda_in_bf16(tmp_path):
    cfg = make_cfg("task=lm", *TINY, "task.steps=2", "task.eval_every=1", "device=cuda", "progress=false",
                   "logger=none", "task.precision=bf16", "method=dgk", "keep_rate=0.1")
    summary = run_experiment(cfg, tmp_path)
    assert summary["status"] == "complete" and summary["device"].startswith("cuda")


def test_checkpoint_resume_reproduces_the_uninterrupted_run(tmp_path):
    from conftest import sigterm_at_evaluation
    from kondo_bench.results import read_metrics
    from kondo_bench.tasks.lm.task import LmTask

    args = ("task=lm", *TINY, "task.steps=6", "task.eval_every=1", "checkpoint_every=2", "progress=false",
            "logger=none", "device=cpu", "method=dgk", "keep_rate=0.2", "seed=5")
    full = run_experiment(make_cfg(*args), tmp_path / "full")
    with sigterm_at_evaluation(LmTask, 5):  # a SIGTERM arrives while step 5 is evaluated
        cut = run_experiment(make_cfg(*args), tmp_path / "cut")
    assert cut["status"] == "interrupted"
    resumed = run_experiment(make_cfg(*args), tmp_path / "cut")
    assert resumed["status"] == "complete" and resumed["resumed_from_step"] == 4
    strip = lambda rs: [{k: v for k, v in r.items() if not k.startswith("time_")} for r in rs]  # noqa: E731
    assert strip(read_metrics(tmp_path / "cut")) == strip(read_metrics(tmp_path / "full"))

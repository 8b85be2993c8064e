"""TRL's native environment mode (``GRPOTrainer(environment_factory=...)``) on our env, inside TRL, on
the tiny model: TRL calls the env's tools, masks exactly the env's text (the same ids and mask our own
rollout builds for the same episode), optimises the env's reward, and takes an optimizer step."""

from __future__ import annotations

import os

import gymnasium as gym
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import deepresearch  # noqa: F401 - registers the env ids
from deepresearch.agents import RolloutConfig, TurnEncoder, default_tiny_model, run_rollouts
from deepresearch.agents.adapters.trl_environment import (
    environment_reward,
    tool_environment_class,
    trl_environment_dataset,
    trl_environment_factory,
)
from deepresearch.agents.template_check.checks import mask_runs
from deepresearch.agents.template_check.scripted_episode import ScriptedEngine
from deepresearch.agents.train.sft import SFTConfig, collect_oracle_trajectories, sft_train
from deepresearch.envs import get_protocol, load_qa
from deepresearch.envs.oracle import OraclePolicy

trl = pytest.importorskip("trl", reason="TRL not installed (pip install 'trl>=1.16')")

ENV_RULES = {"protocol": "tool_call", "max_turns": 3, "top_k": 1}


def make_env():
    return gym.make("DeepResearch-Wiki-v0", **ENV_RULES)


def test_the_environment_exposes_exactly_reset_and_the_protocols_tools():
    import inspect

    environment = trl_environment_factory(make_env)()
    public = sorted(name for name, _ in inspect.getmembers(type(environment), predicate=inspect.isfunction) if not name.startswith("_"))
    assert public == ["reset", "web_search"]  # the Wiki env cannot browse: no web_browse tool
    assert environment.reset(question="Where was Jerved Gruvar born?", golden_answers=["Phokaelmath"]) == "Where was Jerved Gruvar born?"
    body = environment.web_search(query=["Jerved Gruvar born"])
    assert body.startswith('Results for "Jerved Gruvar born":') and "Phokaelmath" in body
    assert environment_reward([[{"role": "assistant", "content": "<answer> Phokaelmath </answer>"}]], [environment]) == [1.0]
    browsing = tool_environment_class(get_protocol("deepresearcher").tags, browse=True)
    assert {"web_search", "browse_webpage"} <= set(vars(browsing))
    with pytest.raises(ValueError, match="rollout_func"):
        trl_environment_factory(lambda: gym.make("DeepResearch-Wiki-v0", protocol="research"))


def qwen_chat_tokenizer():
    """The tiny tokenizer with Qwen2.5's template (one TRL knows how to parse tool calls from)."""
    from trl.chat_template_utils import qwen2_5_chat_template

    tokenizer = AutoTokenizer.from_pretrained(default_tiny_model())
    tokenizer.chat_template = qwen2_5_chat_template
    tokenizer.eos_token, tokenizer.pad_token = "<|im_end|>", "<|endoftext|>"
    return tokenizer


class ClosingOracle(OraclePolicy):
    """The oracle without thoughts, ending each tool-call turn as a Qwen chat model does."""

    def act(self) -> str:
        turn = super().act()
        return turn if "<answer>" in turn else turn + "<|im_end|>"


def shorter_is_better(completion_ids, **_):
    """A second reward that always varies, so the step's advantages and gradient are not all zero."""
    return [-len(ids) / 100 for ids in completion_ids]


def replay_through_our_rollout(tokenizer, row, ids, tool_mask):
    """The same episode through our own rollout: TRL's sampled ids replayed, our env and TurnEncoder
    adding the env's text. Returns our response ids and loss mask."""
    policy_turns = [run for flag, run in mask_runs(ids, tool_mask) if flag]
    env = make_env()
    reset = {"options": {"id": row["id"], "question": row["question"], "golden_answers": row["golden_answers"]}}
    config = RolloutConfig(max_new_tokens_per_turn=len(ids), max_response_tokens=len(ids), temperature=0.0, schedule="sync")
    episodes, stats = run_rollouts(ScriptedEngine(tokenizer, policy_turns), [env], [reset], [0], config, TurnEncoder(tokenizer, "chat"))
    assert episodes, stats.drop_reasons
    return episodes[0].response_ids, episodes[0].loss_mask


@pytest.mark.slow
def test_grpo_trainer_runs_our_env_through_its_environment_factory(tmp_path):
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    tokenizer = qwen_chat_tokenizer()
    model = AutoModelForCausalLM.from_pretrained(default_tiny_model())
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    warm_env = make_env()  # a short warm start so the policy calls the tool in Qwen's format
    episodes = collect_oracle_trajectories(warm_env, 32, ClosingOracle(warm_env.unwrapped.protocol, think=False))
    sft_train(model, tokenizer, episodes, SFTConfig(steps=60, batch_size=4, learning_rate=3e-3), TurnEncoder(tokenizer, "chat"))

    questions = load_qa("demo", split="train", limit=8)
    dataset = trl_environment_dataset(make_env, questions)
    captured, loss_gradients = [], []

    class Recording(trl.GRPOTrainer):
        def _generate_and_score_completions(self, inputs):
            output = super()._generate_and_score_completions(inputs)
            # Snapshots: the pooled environments are reset for the next batch.
            envs = [(environment.reward, environment.tool_results) for environment in self.environments]
            captured.append({"rows": list(inputs), "environments": envs,
                             **{key: output[key].clone() for key in ("completion_ids", "completion_mask", "tool_mask")}})
            return output

        def _compute_loss(self, model, inputs):
            # Probe TRL's own loss: the gradient it sends to each completion token's log-probability.
            get_logps = self._get_per_token_logps_and_entropies

            def probed(*args, **kwargs):
                logps, *rest = get_logps(*args, **kwargs)
                logps.register_hook(lambda grad: loss_gradients.append((grad.clone(), inputs["completion_mask"], inputs["tool_mask"])))
                return (logps, *rest)

            self._get_per_token_logps_and_entropies = probed
            try:
                return super()._compute_loss(model, inputs)
            finally:
                del self._get_per_token_logps_and_entropies

    args = trl.GRPOConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=4, max_steps=2, learning_rate=1e-3,
        logging_steps=1, report_to=[], use_cpu=True, max_completion_length=256, save_strategy="no", temperature=0.5,
    )
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    trainer = Recording(model=model, reward_funcs=[environment_reward, shorter_is_better], args=args, train_dataset=dataset,
                        processing_class=tokenizer, environment_factory=trl_environment_factory(make_env))
    trainer.train()

    compared = env_tokens = 0
    for step, logs in zip(captured, [h for h in trainer.state.log_history if "rewards/environment_reward/mean" in h]):
        # The env's reward is what TRL optimised: its logged mean is the mean of our envs' own rewards.
        env_rewards = [reward for reward, _ in step["environments"]]
        assert logs["rewards/environment_reward/mean"] == pytest.approx(sum(env_rewards) / len(env_rewards), abs=1e-6)
        for row in range(step["completion_ids"].shape[0]):
            real = step["completion_mask"][row].bool()
            ids = step["completion_ids"][row][real].tolist()
            tool_mask = step["tool_mask"][row][real].tolist()
            env_tokens += tool_mask.count(0)
            tool_results = step["environments"][row][1]
            masked = [tokenizer.decode(run) for flag, run in mask_runs(ids, tool_mask) if not flag]
            # Everything TRL masked is one of our env's tool results in its template framing, in order
            # (TRL drops a last result that would pass max_completion_length: the env ran one call more).
            assert len(tool_results) - 1 <= len(masked) <= len(tool_results)
            for text, body in zip(masked, tool_results):
                assert f"<tool_response>\n{body}\n</tool_response>" in text
            if ids[-1] != tokenizer.eos_token_id:
                continue  # cut at max_completion_length: TRL's ids end mid-turn
            ours, our_mask = replay_through_our_rollout(tokenizer, step["rows"][row], ids, tool_mask)
            assert ours[: len(ids)] == ids and our_mask[: len(ids)] == tool_mask
            compared += 1
    endings = [tokenizer.decode(step["completion_ids"][r][step["completion_mask"][r].bool()][-3:]) for step in captured for r in range(4)]
    # The policy called the tool, and whole episodes were compared.
    assert env_tokens > 0 and compared > 0, f"{env_tokens} env tokens, {compared} episodes compared; endings {endings}"
    # TRL's loss sends no gradient to the env's tokens, and some to the policy's.
    assert loss_gradients
    for gradient, completion_mask, tool_mask in loss_gradients:
        assert (gradient[(completion_mask * (1 - tool_mask)).bool()] == 0).all() and (gradient[completion_mask == 0] == 0).all()
    assert sum(int((tool_mask == 0).logical_and(completion_mask == 1).sum()) for _, completion_mask, tool_mask in loss_gradients) > 0
    assert any((gradient[(completion_mask * tool_mask).bool()] != 0).any() for gradient, completion_mask, tool_mask in loss_gradients)
    assert any(h.get("grad_norm", 0) > 0 for h in trainer.state.log_history)
    changed = sum(float((before[name] - tensor).abs().sum()) for name, tensor in model.state_dict().items())
    assert changed > 0 and all(torch.isfinite(t).all() for t in model.state_dict().values())

"""Multi-turn rollouts: token-in-token-out, masks, logprobs, and the transcript check,
on both schedules (per-episode async, the default, and the turn-synchronous reference)."""

from __future__ import annotations

from dataclasses import replace

import gymnasium as gym
import pytest
import torch
from agents_helpers import ReplayEngine, oracle_script, tiny_policy

import deepresearch  # noqa: F401
from deepresearch.agents import RolloutConfig, TurnEncoder, collate_episodes, make_engine
from deepresearch.agents.grpo.update import token_logprobs
from deepresearch.agents.rollout.request import RolloutRequest
from deepresearch.agents.rollout.schedules import collect_rollouts

SCHEDULES = pytest.mark.parametrize("schedule", ["async", "sync"])


def run_rollouts(engine, envs, resets, group_ids, config, encoder, schedule):
    return collect_rollouts(RolloutRequest(engine, envs, resets, group_ids, replace(config, schedule=schedule), encoder))


@pytest.fixture(scope="module")
def policy():
    return tiny_policy()


def runs_of(mask: list[int]) -> list[tuple[int, int, int]]:
    """(value, start, end) for each run of equal values."""
    runs, start = [], 0
    for index in range(1, len(mask) + 1):
        if index == len(mask) or mask[index] != mask[start]:
            runs.append((mask[start], start, index))
            start = index
    return runs


@SCHEDULES
def test_sampled_rollouts_mask_exactly_the_sampled_ids_and_keep_engine_logprobs(policy, schedule):
    model, tokenizer, _ = policy
    engine = make_engine("hf", model, tokenizer=tokenizer)
    envs = [gym.make("DeepResearch-Wiki-v0", max_turns=3) for _ in range(4)]
    encoder = TurnEncoder.for_tokenizer(tokenizer, "text")
    config = RolloutConfig(max_new_tokens_per_turn=12, max_response_tokens=400, seed=0)
    resets = [{"seed": i, "options": {"index": i // 2}} for i in range(4)]
    episodes, stats = run_rollouts(engine, envs, resets, [i // 2 for i in range(4)], config, encoder, schedule)
    assert stats.dropped == 0 and len(episodes) == 4
    assert sum(sum(e.loss_mask) for e in episodes) == stats.generated_tokens
    for episode in episodes:
        assert episode.finish_reason in ("terminated", "truncated", "length")
        env_texts = [episode.transcript[s["start"] : s["end"]] for s in episode.segments if s["source"] == "env"]
        env_runs = [tokenizer.decode(episode.response_ids[a:b]) for value, a, b in runs_of(episode.loss_mask) if value == 0]
        # Every tokenised env run is exactly one env observation, in order.
        assert env_runs == env_texts[: len(env_runs)]
        assert all(lp < 0 for lp, m in zip(episode.rollout_logprobs, episode.loss_mask) if m)
        assert all(lp == 0 for lp, m in zip(episode.rollout_logprobs, episode.loss_mask) if not m)

    # The trainer's logprobs of the sampled ids equal the engine's, on exactly the masked positions.
    batch = collate_episodes(episodes, tokenizer.pad_token_id)
    with torch.no_grad():
        recomputed, _ = token_logprobs(model, batch, temperature=1.0)
    mask = batch.loss_mask[:, 1:].bool()
    difference = (recomputed - batch.rollout_logprobs[:, 1:]).abs()[mask]
    assert mask.sum() == stats.generated_tokens and difference.max() < 1e-3


@SCHEDULES
@pytest.mark.parametrize("protocol", ["research", "search_r1", "tool_call"])
def test_replayed_oracle_episodes_score_full_reward_in_token_space(policy, protocol, schedule):
    _, tokenizer, _ = policy
    envs = [gym.make("DeepResearch-Wiki-v0", protocol=protocol, split="test") for _ in range(3)]
    encoder = TurnEncoder.for_tokenizer(tokenizer, "text")
    scripts = [oracle_script(env, index, encoder) for index, env in enumerate(envs)]
    engine = ReplayEngine(tokenizer, scripts)
    episodes, stats = run_rollouts(engine, envs, [{"options": {"index": i}} for i in range(3)], [0, 1, 2], RolloutConfig(max_response_tokens=4000), encoder, schedule)
    assert stats.dropped == 0
    assert [e.reward for e in episodes] == [1.0, 1.0, 1.0]
    assert all(e.finish_reason == "terminated" for e in episodes)
    assert [e.policy_texts for e in episodes] == [turns for _, turns in scripts]
    if schedule == "sync":  # all active episodes generate together: one engine call per turn of the longest episode
        assert engine.calls == max(len(turns) for _, turns in scripts)


@SCHEDULES
def test_chat_mode_renders_tool_turns_through_the_template(policy, schedule):
    _, tokenizer, _ = policy
    env = gym.make("DeepResearch-Wiki-v0", protocol="tool_call")
    encoder = TurnEncoder.for_tokenizer(tokenizer, "chat")
    engine = ReplayEngine(tokenizer, [oracle_script(env, 0, encoder)])
    episodes, stats = run_rollouts(engine, [env], [{"options": {"index": 0}}], [0], RolloutConfig(max_response_tokens=4000), encoder, schedule)
    episode = episodes[0]
    text = tokenizer.decode(episode.input_ids)
    assert text.startswith("<|im_start|>system") and episode.reward == 1.0
    # The tool result is its own turn, and the assistant turn is reopened after it.
    assert "<|im_end|>\n<|im_start|>user\n<tool_response>\n" in text and "</tool_response><|im_end|>\n<|im_start|>assistant\n" in text


@SCHEDULES
def test_a_chat_turn_the_policy_ended_itself_is_not_closed_twice(policy, schedule):
    _, tokenizer, _ = policy
    env = gym.make("DeepResearch-Wiki-v0", protocol="tool_call")
    encoder = TurnEncoder.for_tokenizer(tokenizer, "chat")
    prompt_ids, turns = oracle_script(env, 0, encoder)
    # A chat model often ends its tool-call turn itself with <|im_end|> (sampled, kept).
    engine = ReplayEngine(tokenizer, [(prompt_ids, [turns[0] + "<|im_end|>", *turns[1:]])])
    episodes, stats = run_rollouts(engine, [env], [{"options": {"index": 0}}], [0], RolloutConfig(max_response_tokens=4000), encoder, schedule)
    text = tokenizer.decode(episodes[0].input_ids)
    assert stats.dropped == 0 and episodes[0].reward == 1.0
    assert turns[0] + "<|im_end|>\n<|im_start|>user\n<tool_response>\n" in text and "<|im_end|><|im_end|>" not in text


@SCHEDULES
def test_a_transcript_mismatch_drops_the_sample_instead_of_crashing(policy, schedule):
    _, tokenizer, _ = policy

    class LyingEnv(gym.Wrapper):
        """Reports a transcript in which the policy's text was altered."""

        def step(self, action):
            observation, reward, terminated, truncated, info = self.env.step(action)
            info = dict(info, transcript=info["transcript"].replace("<search>", "<SEARCH>"))
            return observation, reward, terminated, truncated, info

    envs = [LyingEnv(gym.make("DeepResearch-Wiki-v0")), gym.make("DeepResearch-Wiki-v0")]
    encoder = TurnEncoder(tokenizer, "text")
    prompt, info = envs[1].reset(seed=0)
    scripts = [(encoder.encode_prompt(prompt, None), ["<search> a </search>", "<answer> \\boxed{x} </answer>"])]
    episodes, stats = run_rollouts(ReplayEngine(tokenizer, scripts), envs, [{"seed": 0}, {"seed": 0}], [0, 0], RolloutConfig(), encoder, schedule)
    assert stats.dropped == 1 and len(episodes) == 1 and "policy" in stats.drop_reasons[0]


@SCHEDULES
def test_an_engine_context_limit_ends_episodes_as_length_instead_of_raising(policy, schedule):
    _, tokenizer, _ = policy
    env = gym.make("DeepResearch-Wiki-v0", protocol="research")
    encoder = TurnEncoder(tokenizer, "text")
    prompt_ids, turns = oracle_script(env, 0, encoder)
    engine = ReplayEngine(tokenizer, [(prompt_ids, turns)])
    engine.max_model_len = len(prompt_ids) + 40  # room for the first search, not for its results
    episodes, stats = run_rollouts(engine, [env], [{"options": {"index": 0}}], [0], RolloutConfig(), encoder, schedule)
    assert stats.dropped == 0 and episodes[0].finish_reason == "length"
    assert episodes[0].reward == 0.0 and not episodes[0].reward_components["format_ok"]


def test_top_k_reaches_the_engine(policy):
    """``RolloutConfig.top_k`` (missing once, though both engines implement it): top-1 sampling at
    temperature 1 is greedy decoding, and every sampled token has probability 1 under it."""
    model, tokenizer, _ = policy
    engine = make_engine("hf", model, tokenizer=tokenizer)
    encoder = TurnEncoder.for_tokenizer(tokenizer, "text")
    envs = [gym.make("DeepResearch-Wiki-v0", max_turns=2) for _ in range(2)]
    budget = {"max_new_tokens_per_turn": 8, "max_response_tokens": 64, "schedule": "sync"}
    top1, _ = collect_rollouts(RolloutRequest(engine, envs, [{"options": {"index": 0}}] * 2, [0, 0], RolloutConfig(top_k=1, seed=3, **budget), encoder))
    greedy, _ = collect_rollouts(RolloutRequest(engine, envs, [{"options": {"index": 0}}] * 2, [0, 0], RolloutConfig(temperature=0.0, **budget), encoder))
    assert [e.response_ids for e in top1] == [e.response_ids for e in greedy]
    assert all(lp == 0.0 for e in top1 for lp, m in zip(e.rollout_logprobs, e.loss_mask) if m)
    with pytest.raises(ValueError, match="top_k >= 0"):
        RolloutConfig(top_k=-1)


def test_one_place_turns_sampling_knobs_into_an_engine_call():
    from deepresearch.agents.contamination_filter import FilterConfig
    from deepresearch.agents.rollout.engines.base import SamplingConfig, sampling_request

    rollout = RolloutConfig(temperature=0.7, top_p=0.9, top_k=20)
    assert sampling_request(rollout, 16, ("</s>",), 5) == SamplingConfig(16, 0.7, 0.9, 20, ("</s>",), 5)
    assert sampling_request(FilterConfig(temperature=0.5, top_k=3), 8).top_k == 3


def test_the_positional_form_still_runs_and_warns_once(policy, monkeypatch):
    import warnings

    import deepresearch.deprecations as deprecations
    from deepresearch.agents import run_rollouts as run_sync

    model, tokenizer, _ = policy
    engine = make_engine("hf", model, tokenizer=tokenizer)
    env = gym.make("DeepResearch-Wiki-v0", max_turns=1)
    config = RolloutConfig(max_new_tokens_per_turn=4, max_response_tokens=16, temperature=0.0)
    encoder = TurnEncoder.for_tokenizer(tokenizer, "text")
    monkeypatch.setattr(deprecations, "_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = [run_sync(engine, [env], [{"options": {"index": 0}}], [0], config, encoder)[0] for _ in range(2)]
    new = run_sync(RolloutRequest(engine, [env], [{"options": {"index": 0}}], [0], config, encoder))[0]
    assert old[0][0].response_ids == old[1][0].response_ids == new[0].response_ids
    assert [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)] == [
        "run_rollouts(engine, envs, resets, group_ids, config, encoder) is deprecated; use run_rollouts(RolloutRequest(...))"
    ]
    assert caught[0].filename == __file__
    with pytest.raises(ValueError, match="same length"):
        RolloutRequest(engine, [env], [], [0], config, encoder)

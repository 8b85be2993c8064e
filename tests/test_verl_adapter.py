"""verl integration, the verl-free half: the async-server bridge, sampling-parameter dialects and
the output fields. The agent loop itself runs inside verl in tests/in_verl/ (``make test-verl``)."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

import pytest
from agents_helpers import ReplayEngine, oracle_script

from deepresearch.agents import RolloutConfig, TurnEncoder, default_tiny_model, make_engine, run_rollouts
from deepresearch.agents.adapters.verl import (
    AsyncServerEngine,
    PromptTooLongError,
    agent_output_fields,
    dropped_episode,
    question_from_row,
    server_sampling_params,
)
from deepresearch.agents.rollout.engines.base import SamplingConfig
from deepresearch.agents.template_check.checks import mask_runs
from deepresearch.agents.rollout.request import RolloutRequest
from deepresearch.envs import make_wiki_env


@pytest.fixture(scope="module")
def hf_engine():
    return make_engine("hf", default_tiny_model())


@pytest.fixture()
def event_loop_thread():
    """An event loop running in its own thread, as verl's agent-loop worker runs one."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


def token_server(engine):
    """verl's server contract (async; sampling params dict in; ``token_ids``/``log_probs`` out) over our engine."""

    async def agenerate(prompt_ids, params):
        assert params["include_stop_str_in_output"] is True and params["logprobs"] is True
        sampling = SamplingConfig(max_new_tokens=params["max_tokens"], temperature=params["temperature"], stop=tuple(params["stop"]))
        generation = (await asyncio.to_thread(engine.generate, [prompt_ids], sampling))[0]
        return SimpleNamespace(token_ids=generation.token_ids, log_probs=generation.logprobs)

    return agenerate


def test_episodes_through_the_async_server_bridge_equal_direct_ones(hf_engine, event_loop_thread):
    encoder = TurnEncoder(hf_engine.tokenizer, "text")
    config = RolloutConfig(max_new_tokens_per_turn=16, max_response_tokens=80, temperature=0.0)
    resets = [{"options": {"index": i}} for i in range(3)]

    def episodes(engine):
        envs = [make_wiki_env(protocol="research", max_turns=3) for _ in resets]
        return run_rollouts(RolloutRequest(engine, envs, resets, [0, 1, 2], config, encoder))[0]

    direct = episodes(hf_engine)
    bridged = episodes(AsyncServerEngine(hf_engine.tokenizer, token_server(hf_engine), event_loop_thread))
    assert len(direct) == len(bridged) == 3
    for a, b in zip(direct, bridged):
        assert (a.response_ids, a.loss_mask, a.reward, a.turns) == (b.response_ids, b.loss_mask, b.reward, b.turns)
        assert b.rollout_logprobs == pytest.approx(a.rollout_logprobs, abs=1e-5)

    fields = agent_output_fields(bridged[0], prompt_length=len(bridged[0].prompt_ids), response_length=20)
    assert fields["response_mask"] == bridged[0].loss_mask[:20] and len(fields["response_ids"]) == len(fields["response_logprobs"]) <= 20
    assert fields["reward_score"] == bridged[0].reward and fields["num_turns"] == 1 + 2 * bridged[0].turns
    assert 0 in bridged[0].loss_mask  # env text (format feedback to the untrained policy) is masked for verl too


def test_a_rewarded_episode_through_the_bridge_reaches_verl_with_its_reward_and_env_mask(hf_engine, event_loop_thread):
    """The oracle's episode scores 1: ``reward_score`` must carry it (a bridge that lost the
    reward would pass the untrained model's all-zero episodes), and the mask must be 0
    exactly on the env's results."""
    encoder = TurnEncoder(hf_engine.tokenizer, "text")
    env = make_wiki_env(protocol="research", max_turns=3)
    replay = ReplayEngine(hf_engine.tokenizer, [oracle_script(env, 0, encoder)])
    config = RolloutConfig(max_new_tokens_per_turn=64, max_response_tokens=1024, temperature=0.0)
    bridged = AsyncServerEngine(hf_engine.tokenizer, token_server(replay), event_loop_thread)
    (episode,), _ = run_rollouts(bridged, [env], [{"options": {"index": 0}}], [0], config, encoder)
    fields = agent_output_fields(episode, prompt_length=len(episode.prompt_ids), response_length=1024)
    assert episode.reward == 1.0 and fields["reward_score"] == 1.0 and fields["num_turns"] == 1 + 2 * episode.turns
    assert fields["response_mask"] == episode.loss_mask and fields["response_ids"] == episode.response_ids
    env_runs = [hf_engine.tokenizer.decode(ids) for flag, ids in mask_runs(fields["response_ids"], fields["response_mask"]) if flag == 0]
    assert env_runs and all(text.strip().startswith("<result>") and text.strip().endswith("</result>") for text in env_runs)


def test_question_from_a_verl_dataset_row():
    row = {"raw_prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "Who?"}], "reward_model": {"ground_truth": "Ann"}}
    assert question_from_row(row) == {"id": "verl", "question": "Who?", "golden_answers": ["Ann"]}
    row["extra_info"] = {"question": "Where?", "golden_answers": ["Oslo", "Christiania"], "index": 7}
    assert question_from_row(row) == {"id": "7", "question": "Where?", "golden_answers": ["Oslo", "Christiania"]}


def test_a_prompt_longer_than_verls_prompt_length_is_a_clear_error():
    episode = dropped_episode([5] * 30, eos_token_id=2, reason="x")
    assert len(agent_output_fields(episode, prompt_length=30, response_length=8)["prompt_ids"]) == 30
    with pytest.raises(PromptTooLongError, match=r"30 tokens but verl's rollout.prompt_length is 29: raise data.max_prompt_length"):
        agent_output_fields(episode, prompt_length=29, response_length=8)


def test_a_dropped_episode_keeps_the_batch_shape_without_gradient():
    fields = agent_output_fields(dropped_episode([7, 8, 9], eos_token_id=2, reason="decoded response differs"), 16, 8)
    assert (fields["prompt_ids"], fields["response_ids"], fields["response_mask"], fields["reward_score"]) == ([7, 8, 9], [2], [0], 0.0)
    assert fields["extra_fields"]["finish_reason"] == "dropped: decoded response differs"


SAMPLING = SamplingConfig(max_new_tokens=12, temperature=0.7, top_p=0.9, top_k=5, stop=("</search>",), seed=3)


def test_sampling_params_in_sglang_names():
    params = server_sampling_params(SAMPLING, {2, 0}, "sglang")
    assert params == {
        "max_new_tokens": 12, "temperature": 0.7, "top_p": 0.9, "top_k": 5, "logprobs": True, "stop": ["</search>"],
        "stop_token_ids": [0, 2], "no_stop_trim": True, "sampling_seed": 3,
    }  # fmt: skip


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_accepts_the_sampling_params_as_verls_server_passes_them():
    """verl's vLLM server pops ``max_tokens`` and ``logprobs`` (truthy -> 0: the sampled token's
    logprob) and hands the rest to ``vllm.SamplingParams``, which rejects unknown names."""
    vllm = pytest.importorskip("vllm")
    params = server_sampling_params(SAMPLING, {2, 0}, "vllm")
    params.update(repetition_penalty=1.0)  # what verl's worker adds
    max_tokens = params.pop("max_tokens")
    params["logprobs"] = 0 if params.pop("logprobs") else None
    sampling = vllm.SamplingParams(max_tokens=max_tokens, **params)
    assert (sampling.max_tokens, sampling.logprobs, sampling.include_stop_str_in_output, sampling.seed) == (12, 0, True, 3)
    assert (sampling.stop, sampling.stop_token_ids, sampling.top_k) == (["</search>"], [0, 2], 5)

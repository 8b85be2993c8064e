"""verl integration, tested as far as it runs without verl: the async-server bridge and the output fields."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

import pytest

from deepresearch.agents import RolloutConfig, TurnEncoder, default_tiny_model, make_engine, run_rollouts
from deepresearch.agents.adapters.verl import AsyncServerEngine, agent_output_fields, question_from_row
from deepresearch.agents.rollout.engines.base import SamplingConfig
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
        assert params["include_stop_str_in_output"] is True
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
        return run_rollouts(engine, envs, resets, [0, 1, 2], config, encoder)[0]

    direct = episodes(hf_engine)
    bridged = episodes(AsyncServerEngine(hf_engine.tokenizer, token_server(hf_engine), event_loop_thread))
    assert len(direct) == len(bridged) == 3
    for a, b in zip(direct, bridged):
        assert (a.response_ids, a.loss_mask, a.reward, a.turns) == (b.response_ids, b.loss_mask, b.reward, b.turns)
        assert b.rollout_logprobs == pytest.approx(a.rollout_logprobs, abs=1e-5)

    fields = agent_output_fields(bridged[0], response_length=20)
    assert fields["response_mask"] == bridged[0].loss_mask[:20] and len(fields["response_ids"]) == len(fields["response_logprobs"]) <= 20
    assert fields["reward_score"] == bridged[0].reward and fields["num_turns"] == 1 + 2 * bridged[0].turns
    assert 0 in bridged[0].loss_mask  # env text (format feedback to the untrained policy) is masked for verl too


def test_question_from_a_verl_dataset_row():
    row = {"raw_prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "Who?"}], "reward_model": {"ground_truth": "Ann"}}
    assert question_from_row(row) == {"id": "verl", "question": "Who?", "golden_answers": ["Ann"]}
    row["extra_info"] = {"question": "Where?", "golden_answers": ["Oslo", "Christiania"], "index": 7}
    assert question_from_row(row) == {"id": "7", "question": "Where?", "golden_answers": ["Oslo", "Christiania"]}


def test_the_verl_agent_loop_registers_when_verl_imports():
    pytest.importorskip("verl.experimental.agent_loop.agent_loop", reason="verl not importable here (needs ray, hydra, transformers<5.11)")
    from verl.experimental.agent_loop.agent_loop import _agent_loop_registry

    from deepresearch.agents.adapters.verl_agent_loop import DeepResearchAgentLoop

    assert _agent_loop_registry["deepresearch_env"]["_target_"].endswith(DeepResearchAgentLoop.__qualname__)

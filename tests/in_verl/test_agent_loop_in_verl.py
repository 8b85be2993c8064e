"""Our ``DeepResearchAgentLoop`` run by verl 0.9.1's own agent-loop machinery on CPU.

verl's, for real: the hydra trainer config (``ppo_trainer.yaml``), ``RLHFDataset`` and
``collate_fn`` over the parquet our converter writes, ``LLMServerClient`` with its
``GlobalRequestLoadBalancer``, ``AgentLoopManager.create`` and the ``AgentLoopWorker``
Ray actor, which loads examples/verl/agent_loop.yaml, hydra-instantiates our loop per
sample, pads and masks its outputs and builds the ``DataProto``. Stood in for: the
rollout server only (``verl_standin_server.TokenServer``: our transformers engine
behind the vLLM server's ``generate``).

What is checked on verl's output batch: ``response_mask`` is our ``loss_mask`` (the
env's text 0), ``rm_scores`` carries the env's reward (0 for the untrained model, 1 and 0
for a scripted policy's groups: ``ScriptedTokenServer``), prompt and response decode to
exactly what the env wrote, and the logprobs are the model's.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("verl.experimental.agent_loop", reason="verl lives in its own venv: `make verl-env`, then `make test-verl`")

import gymnasium as gym  # noqa: E402
import ray  # noqa: E402
import torch  # noqa: E402
from verl_harness import WORKER_ENV, example_agent_loop, tiny_model_path, write_demo_dataset  # noqa: E402

from deepresearch.agents import RolloutConfig, TurnEncoder, make_engine, run_rollouts  # noqa: E402
from deepresearch.agents.rollout.end_of_turn import end_of_turn_ids  # noqa: E402
from deepresearch.agents.rollout.request import RolloutRequest  # noqa: E402
from deepresearch.agents.template_check.checks import mask_runs  # noqa: E402
from deepresearch.envs import end_episode_early  # noqa: E402

pytestmark = pytest.mark.slow

PROMPT_LENGTH, RESPONSE_LENGTH, TOKENS_PER_TURN, QUESTIONS = 192, 192, 24, 3
ENV_KWARGS = {"protocol": "search_r1", "max_turns": 3, "top_k": 1}  # a search, one document and an answer fit the response


def verl_config(model: str, agent_loop_yaml: Path, prompt_length: int = PROMPT_LENGTH) -> Any:
    import verl
    from hydra import compose, initialize_config_dir

    config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return compose(
            config_name="ppo_trainer",
            overrides=[
                f"actor_rollout_ref.model.path={model}",
                "actor_rollout_ref.rollout.name=vllm",
                f"data.max_prompt_length={prompt_length}",
                f"data.max_response_length={RESPONSE_LENGTH}",
                "actor_rollout_ref.rollout.agent.num_workers=1",
                f"actor_rollout_ref.rollout.agent.agent_loop_config_path={agent_loop_yaml}",
                "trainer.device=cpu",
            ],
        )


def load_batch(config: Any, parquet: Path, tokenizer: Any) -> Any:
    """verl's own dataset and collate function, as its trainer builds a step's batch."""
    from verl.protocol import DataProto
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

    dataset = RLHFDataset(data_files=[str(parquet)], tokenizer=tokenizer, config=config.data)
    return DataProto.from_single_dict(collate_fn([dataset[i] for i in range(len(dataset))]))


@pytest.fixture(scope="module")
def verl_rollout(tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoTokenizer
    from verl.experimental.agent_loop import AgentLoopManager
    from verl.workers.rollout.llm_server import LLMServerClient
    from verl.workers.rollout.router import get_router_handle
    from verl_standin_server import ScriptedTokenServer, TokenServer

    tiny_model = tiny_model_path()
    folder = tmp_path_factory.mktemp("verl")
    agent_loop_yaml = example_agent_loop(folder / "agent_loop.yaml", env_kwargs=ENV_KWARGS, max_new_tokens_per_turn=TOKENS_PER_TURN)
    config = verl_config(tiny_model, agent_loop_yaml)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    ray.init(num_cpus=4, num_gpus=0, include_dashboard=False, object_store_memory=200 << 20, runtime_env={"env_vars": WORKER_ENV})
    try:
        server = ray.remote(TokenServer).remote(tiny_model, PROMPT_LENGTH, RESPONSE_LENGTH)
        client = LLMServerClient(config=config, load_balancer_handle=get_router_handle(servers={"standin:0": server}))
        manager = AgentLoopManager.create(config=config, llm_client=client)
        # The same machinery behind a server that answers as a scripted policy: mixed rewards.
        scripted = ray.remote(ScriptedTokenServer).remote(tiny_model, PROMPT_LENGTH, RESPONSE_LENGTH)
        scripted_client = LLMServerClient(config=config, load_balancer_handle=get_router_handle(servers={"scripted:0": scripted}))
        scripted_manager = AgentLoopManager.create(config=config, llm_client=scripted_client)
        parquet = write_demo_dataset(folder / "demo.parquet", QUESTIONS)
        yield SimpleNamespace(
            model=tiny_model, config=config, client=client, server=server, manager=manager, scripted_manager=scripted_manager,
            tokenizer=tokenizer, parquet=parquet, folder=folder,
        )  # fmt: skip
    finally:
        ray.shutdown()


def samples(output: Any) -> list[dict[str, Any]]:
    """Per sample, the unpadded prompt and response of verl's output batch."""
    batch = output.batch
    prompt_width = batch["prompts"].shape[1]
    rows = []
    for i in range(len(output)):
        attention = batch["attention_mask"][i].bool()
        valid = attention[prompt_width:]
        assert valid.sum() > 0 and bool(valid[: int(valid.sum())].all())  # right-padded response
        rows.append(
            {
                "prompt_ids": batch["prompts"][i][attention[:prompt_width]].tolist(),
                "response_ids": batch["responses"][i][valid].tolist(),
                "response_mask": batch["response_mask"][i][valid].tolist(),
                "logprobs": batch["rollout_log_probs"][i][valid].tolist(),
                "rm_scores": batch["rm_scores"][i].tolist(),
                "extra_info": output.non_tensor_batch["extra_info"][i],
            }
        )
    return rows


def replay_in_the_env(sample: dict[str, Any], tokenizer: Any) -> SimpleNamespace:
    """Step a fresh env with the policy turns decoded from verl's batch (mask 1 runs) and
    check that every mask 0 run is exactly the env's observation; return what the env says."""
    eos = end_of_turn_ids(tokenizer)
    info = sample["extra_info"]
    env = gym.make("DeepResearch-Wiki-v0", **ENV_KWARGS)
    _, step_info = env.reset(options={"id": info["id"], "question": info["question"], "golden_answers": list(info["golden_answers"])})
    messages = step_info["messages"]
    runs = mask_runs(sample["response_ids"], sample["response_mask"])
    reward, done, observation = 0.0, False, ""
    for index, (flag, ids) in enumerate(runs):
        if flag == 0:
            assert tokenizer.decode(ids) == observation, "an env-masked run is not the env's observation"
            continue
        observation, reward, terminated, truncated, step_info = env.step(tokenizer.decode([t for t in ids if t not in eos]))
        done = terminated or truncated
        assert not done or index == len(runs) - 1, "tokens after the episode ended"
    if not done:  # out of response budget: scored as the rollout scores a cut-off episode
        reward, _ = end_episode_early(env)
    env.close()
    prompt_end = step_info["segments"][0]["end"]
    # The observation after the last policy turn is never tokenised (the episode ended there).
    untokenized = observation if runs[-1][0] == 1 else ""
    return SimpleNamespace(reward=reward, messages=messages, untokenized=untokenized, response_text=step_info["transcript"][prompt_end:])


def test_a_greedy_rollout_through_verl_equals_our_engine_token_for_token(verl_rollout):
    batch = load_batch(verl_rollout.config, verl_rollout.parquet, verl_rollout.tokenizer)
    batch.meta_info.update(validate=True, global_steps=0)  # verl's validation sampling: temperature 0
    output = verl_rollout.manager.generate_sequences(batch)
    rows = samples(output)
    assert len(rows) == QUESTIONS

    engine = make_engine("hf", verl_rollout.model)
    encoder = TurnEncoder.for_tokenizer(engine.tokenizer)
    config = RolloutConfig(max_new_tokens_per_turn=TOKENS_PER_TURN, max_response_tokens=RESPONSE_LENGTH, temperature=0.0)
    for row in rows:
        info = row["extra_info"]
        env = gym.make("DeepResearch-Wiki-v0", **ENV_KWARGS)
        reset = {"options": {"id": info["id"], "question": info["question"], "golden_answers": list(info["golden_answers"])}}
        (ours,), _ = run_rollouts(RolloutRequest(engine, [env], [reset], [0], config, encoder))
        assert row["prompt_ids"] == ours.prompt_ids
        assert row["response_ids"] == ours.response_ids
        assert row["response_mask"] == ours.loss_mask
        assert row["logprobs"] == pytest.approx(ours.rollout_logprobs, abs=1e-4)
        assert sum(row["rm_scores"]) == pytest.approx(ours.reward)
        assert 0 in row["response_mask"] and 1 in row["response_mask"]  # env text inside the response, masked
        # Every sample got the YAML's kwargs (verl's @register would have reset them to defaults after the first).
        assert all(len(ids) <= TOKENS_PER_TURN for flag, ids in mask_runs(row["response_ids"], row["response_mask"]) if flag)


@pytest.mark.parametrize("policy", ["sampled", "scripted"])
def test_a_rollout_masks_scores_and_decodes_exactly_what_the_env_wrote(verl_rollout, policy):
    """The tiny model sampling (its rewards are all 0), and a scripted policy whose groups
    score 1 and 0: verl's batch carries exactly the env's reward on each episode."""
    from transformers import AutoModelForCausalLM

    batch = load_batch(verl_rollout.config, verl_rollout.parquet, verl_rollout.tokenizer).repeat(2, interleave=True)
    batch.meta_info.update(validate=False, global_steps=1)  # rollout.temperature 1.0, as in training
    manager = verl_rollout.manager if policy == "sampled" else verl_rollout.scripted_manager
    output = manager.generate_sequences(batch)
    tokenizer = verl_rollout.tokenizer
    model = AutoModelForCausalLM.from_pretrained(verl_rollout.model, dtype=torch.float32).eval()
    rewards = []
    for row in samples(output):
        replay = replay_in_the_env(row, tokenizer)
        rewards.append(replay.reward)
        # The prompt is the env's chat messages through the model's template, untouched.
        assert tokenizer.decode(row["prompt_ids"]) == tokenizer.apply_chat_template(replay.messages, add_generation_prompt=True, tokenize=False)
        # The response decodes to exactly the text the env holds after its prompt.
        text = tokenizer.decode([t for t in row["response_ids"] if t not in end_of_turn_ids(tokenizer)])
        assert text + replay.untokenized == replay.response_text
        # verl puts the reward on the last response token and nowhere else.
        assert row["rm_scores"][len(row["response_ids"]) - 1] == pytest.approx(replay.reward)
        assert sum(abs(r) for r in row["rm_scores"]) == pytest.approx(abs(replay.reward))
        # rollout logprobs: the model's own, temperature 1, on every policy token; 0 on env tokens.
        ids = torch.tensor([row["prompt_ids"] + row["response_ids"]])
        with torch.no_grad():
            logits = model(ids).logits[0, len(row["prompt_ids"]) - 1 : -1].float()
        expected = torch.log_softmax(logits, -1).gather(-1, ids[0, len(row["prompt_ids"]) :, None]).squeeze(-1)
        policy = torch.tensor(row["response_mask"]).bool()
        assert torch.allclose(torch.tensor(row["logprobs"])[policy], expected[policy], atol=1e-4)
        assert not torch.tensor(row["logprobs"])[~policy].any()
    if policy == "scripted":  # per question, one copy searched and answered right, the other answered wrong
        assert sorted(rewards) == [0.0] * QUESTIONS + [1.0] * QUESTIONS


def test_the_server_got_requests_vllm_accepts_with_logprobs_on(verl_rollout):
    requests = ray.get(verl_rollout.server.stats.remote())["requests"]
    _, info = gym.make("DeepResearch-Wiki-v0", **ENV_KWARGS).reset(seed=0)
    assert requests
    for request in requests:
        params = request["sampling_params"]
        assert params["logprobs"] is True and params["include_stop_str_in_output"] is True
        assert params["max_tokens"] <= TOKENS_PER_TURN and params["stop"] == list(info["stop"])


def test_a_prompt_longer_than_verls_prompt_length_is_filtered_or_named(verl_rollout):
    from verl.experimental.agent_loop import AgentLoopManager
    from verl.utils.dataset.rl_dataset import RLHFDataset

    short = verl_config(verl_rollout.model, verl_rollout.folder / "agent_loop.yaml", prompt_length=64)
    # The converter wrote the env's own prompt into the dataset, so verl's length filter drops every row...
    short.data.filter_overlong_prompts = True
    assert len(RLHFDataset(data_files=[str(verl_rollout.parquet)], tokenizer=verl_rollout.tokenizer, config=short.data)) == 0
    # ...and without it (verl's default) the agent loop names the setting instead of verl failing in torch.cat.
    short.data.filter_overlong_prompts = False
    batch = load_batch(short, verl_rollout.parquet, verl_rollout.tokenizer)
    manager = AgentLoopManager.create(config=short, llm_client=verl_rollout.client)
    with pytest.raises(ray.exceptions.RayTaskError, match=r"rollout.prompt_length is 64: raise data.max_prompt_length"):
        manager.generate_sequences(batch)

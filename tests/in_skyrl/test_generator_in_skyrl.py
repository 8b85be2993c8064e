"""Our env through SkyRL 0.3's own generator and training math on CPU, with mixed rewards.

SkyRL's, for real: ``SkyRLGymGenerator.generate`` (the multi-turn agent loop its trainer
calls each step: ``skyrl_gym.make`` of our registered env, ``init``/``step``, its
token-in-token-out bookkeeping, loss masks and per-token rewards) on the input its own
``prepare_generator_input`` builds, ``convert_prompts_responses_to_batch_tensors`` (the
padded training batch), ``compute_advantages_and_returns`` with the GRPO estimator and
``PolicyLossRegistry``'s ``regular`` PPO loss.

Stood in for, because they need a GPU: the inference engine (SkyRL serves vLLM 0.23 CUDA
servers behind ``InferenceEngineInterface``): ``ScriptedInferenceEngine`` answers
``generate`` as the scripted policy of tests/scripted_policy.py with the tiny model's
logprobs; and the FSDP policy worker (``RayPPOTrainer.train`` places Ray actor groups that
join a ``cpu:gloo,cuda:nccl`` process group and run FSDP on CUDA; the ``fsdp`` extra pins
CUDA torch 2.11, vLLM 0.23 and flash-attn): one plain forward/backward of the same model
through SkyRL's loss, and one SGD step. On Python 3.11 SkyRL needs skyrl_py311.py to import.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import skyrl_py311  # noqa: F401 - before any skyrl import: SkyRL's own Python 3.11 import error, worked around

pytest.importorskip("skyrl.train.generators.skyrl_gym_generator", reason="SkyRL lives in its own venv: `make skyrl-env`, then `make test-skyrl`")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scripted_policy import ScriptedSearchPolicy, token_logprobs  # noqa: E402
from skyrl.backends.skyrl_train.inference_servers.base import InferenceEngineInterface  # noqa: E402
from skyrl.backends.skyrl_train.inference_servers.engine_utils import get_sampling_params_for_backend  # noqa: E402
from skyrl.backends.skyrl_train.utils.ppo_utils import PolicyLossRegistry, compute_advantages_and_returns  # noqa: E402
from skyrl.train.config import AlgorithmConfig, GeneratorConfig, SamplingParams, SkyRLGymConfig  # noqa: E402
from skyrl.train.dataset.preprocess import convert_prompts_responses_to_batch_tensors  # noqa: E402
from skyrl.train.generators.skyrl_gym_generator import SkyRLGymGenerator  # noqa: E402
from skyrl.train.generators.utils import prepare_generator_input  # noqa: E402

from deepresearch.agents import default_tiny_model  # noqa: E402
from deepresearch.agents.adapters.skyrl import register_skyrl_env, skyrl_dataset_row  # noqa: E402
from deepresearch.agents.template_check.checks import mask_runs  # noqa: E402
from deepresearch.envs import load_qa  # noqa: E402

ENV_CONFIG = {"env_id": "DeepResearch-Wiki-v0", "env_kwargs": {"protocol": "search_r1", "top_k": 1}}
QUESTIONS, SAMPLES, MAX_TURNS = 2, 4, 3


class ScriptedInferenceEngine(InferenceEngineInterface):
    """SkyRL's inference-engine contract for ``generate``: the scripted policy's turns with the
    model's logprobs (at the request's temperature). The rest of the interface (HTTP
    endpoints, weight sync, sleep) belongs to the vLLM servers this stands in for."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.policy = ScriptedSearchPolicy("search_r1")
        self.served: list[bool] = []  # per turn: is its episode rewarded

    @property
    def model_name(self) -> str:
        return "tiny"

    async def generate(self, input_batch: Any, model: str | None = None) -> Any:
        params = input_batch.get("sampling_params") or {}
        temperature = float(params.get("temperature", 1.0)) or 1.0
        out: dict[str, Any] = {"responses": [], "response_ids": [], "stop_reasons": [], "response_logprobs": []}
        for prompt_ids in input_batch["prompt_token_ids"]:
            text, rewarded = self.policy.next_turn(self.tokenizer.decode(prompt_ids))
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            self.served.append(rewarded)
            out["responses"].append(self.tokenizer.decode(ids, skip_special_tokens=True))
            out["response_ids"].append(ids)
            out["stop_reasons"].append("stop")
            out["response_logprobs"].append(token_logprobs(self.model, list(prompt_ids), ids, temperature))
        if params.get("logprobs") is None:
            out["response_logprobs"] = None
        return {**out, "prompt_logprobs": None, "rollout_expert_indices": None}

    async def finish_session(self, session_id: str) -> None:
        """No session-aware routing behind one stand-in engine."""

    def _not_served(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("the stand-in inference engine serves generate() only")

    get_endpoint_url = chat_completion = render_chat_completion = completion = _not_served
    wake_up = sleep = init_weight_update_communicator = update_named_weights = teardown = _not_served
    reset_prefix_cache = pause_generation = resume_generation = get_world_size = _not_served


def sequence_logprobs(model: Any, sequences: torch.Tensor, attention_mask: torch.Tensor, response_length: int) -> torch.Tensor:
    """Per-token logprobs of the (right-aligned) response part of SkyRL's left-padded batch."""
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=sequences, attention_mask=attention_mask, position_ids=positions).logits.float()
    logprobs = torch.log_softmax(logits[:, -response_length - 1 : -1], -1)
    return logprobs.gather(-1, sequences[:, -response_length:, None]).squeeze(-1)


@pytest.fixture(scope="module")
def generated() -> Any:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = str(default_tiny_model())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    env_class = register_skyrl_env()
    env = gym.make(ENV_CONFIG["env_id"], **ENV_CONFIG["env_kwargs"])
    _, info = env.reset(seed=0)
    rows = [skyrl_dataset_row(env, item) for item in load_qa("demo", split="train", limit=QUESTIONS)]
    # What SkyRL's dataset hands its trainer: the prompt, the env class, every other column as env_extras.
    prompts = [
        {"prompt": row["prompt"], "env_class": row["env_class"], "env_extras": {k: v for k, v in row.items() if k not in ("prompt", "env_class")}, "uid": str(i)}
        for i, row in enumerate(rows)
    ]  # fmt: skip
    sampling = SamplingParams(max_generate_length=48, temperature=1.0, stop=list(info["stop"]), logprobs=1)
    generator_cfg = GeneratorConfig(max_turns=MAX_TURNS, max_input_length=2048, use_conversation_multi_turn=False, sampling_params=sampling, n_samples_per_prompt=SAMPLES)
    gym_cfg = SkyRLGymConfig(max_env_workers=0)
    setattr(gym_cfg, env_class, ENV_CONFIG)  # SkyRL's YAML: environment.skyrl_gym.<env_class>
    engine = ScriptedInferenceEngine(model, tokenizer)
    generator = SkyRLGymGenerator(generator_cfg, gym_cfg, engine, tokenizer)
    generator_input, uids = prepare_generator_input(prompts, SAMPLES, get_sampling_params_for_backend("vllm", sampling), env_class, "train", 1)
    output = asyncio.run(generator.generate(generator_input, disable_tqdm=True))
    return model, tokenizer, rows, output, uids


def test_skyrls_generator_scores_masks_and_tokenises_our_env_exactly(generated):
    model, tokenizer, rows, output, uids = generated
    assert len(output["response_ids"]) == QUESTIONS * SAMPLES and uids == [str(i) for i in range(QUESTIONS) for _ in range(SAMPLES)]
    rewards = [sum(reward) for reward in output["rewards"]]  # SkyRL's per-token rewards: the env's step rewards
    for question in range(QUESTIONS):
        assert sorted(rewards[question * SAMPLES : (question + 1) * SAMPLES]) == [0.0, 0.0, 1.0, 1.0]
    for prompt_ids, response, mask, reward, row in zip(output["prompt_token_ids"], output["response_ids"], output["loss_masks"], rewards, [r for r in rows for _ in range(SAMPLES)]):
        assert prompt_ids == tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True, return_dict=False)
        runs = mask_runs(response, mask)
        env_text = [tokenizer.decode(ids) for flag, ids in runs if flag == 0]
        # The rewarded copies searched: exactly the env's results block is masked; the others wrote one answer.
        if reward == 1.0:
            assert len(env_text) == 1 and env_text[0].startswith("\n\n<information>") and env_text[0].endswith("</information>\n\n")
        else:
            assert env_text == []
        # Against the env itself: replay the policy runs and get the same reward.
        env = gym.make(ENV_CONFIG["env_id"], **ENV_CONFIG["env_kwargs"], max_turns=MAX_TURNS)
        extra = row["extra_info"]
        env.reset(options={"id": extra["id"], "question": extra["question"], "golden_answers": extra["golden_answers"]})
        replayed = None
        for flag, ids in runs:
            if flag == 1:  # SkyRL's appended end-of-sequence id is dropped with the special tokens
                _, replayed, *_ = env.step(tokenizer.decode(ids, skip_special_tokens=True))
        assert replayed == reward


def test_skyrls_grpo_advantages_and_ppo_loss_step_towards_the_rewarded_episodes(generated):
    model, tokenizer, _, output, uids = generated
    sequences, attention, response_mask, rewards, loss_mask, rollout_logprobs, _ = convert_prompts_responses_to_batch_tensors(
        tokenizer, output["prompt_token_ids"], output["response_ids"], output["rewards"], output["loss_masks"], output["rollout_logprobs"]
    )
    algorithm = AlgorithmConfig()
    advantages, _ = compute_advantages_and_returns(
        token_level_rewards=rewards, response_mask=response_mask, index=np.array(uids), adv_estimator="grpo", config=algorithm
    )
    rewarded = rewards.sum(-1) > 0
    assert (advantages[rewarded].sum(-1) > 0).all() and (advantages[~rewarded].sum(-1) < 0).all()

    width = response_mask.shape[1]
    logprobs = sequence_logprobs(model, sequences, attention, width)
    # SkyRL's rollout logprobs are the model's on every trained token (its appended EOS carries a dummy 0).
    trained = loss_mask.bool() & (rollout_logprobs != 0)
    assert torch.allclose(logprobs[trained], rollout_logprobs[trained], atol=1e-4)
    loss, _ = PolicyLossRegistry.get("regular")(logprobs, logprobs.detach(), advantages, algorithm, loss_mask)
    model.zero_grad()
    loss.backward()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter -= 1e-3 * parameter.grad  # one small SGD step (first order: the direction of the gradient)
        after = sequence_logprobs(model, sequences, attention, width)
    change = ((after - logprobs.detach()) * loss_mask).sum(-1)
    assert change[rewarded].mean() > 0 > change[~rewarded].mean(), change

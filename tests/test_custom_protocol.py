"""A protocol defined here, with tag names of its own, works everywhere ours do:
the env parses and frames it, the rewards score it, and the trainer takes a GRPO step."""

from __future__ import annotations

from typing import Sequence

import gymnasium as gym
import pytest
from agents_helpers import HalfRightEngine

import deepresearch  # noqa: F401 - registers the env ids
from deepresearch.agents import GRPOConfig, GRPOTrainer, RolloutConfig
from deepresearch.agents.train.config import OptimizerConfig
from deepresearch.envs import Document, Prompt, Protocol, load_qa
from deepresearch.envs.oracle import OraclePolicy
from deepresearch.rewards import ProtocolTags, check_format, compute_reward, count_searches, extract_answer


class LookupProtocol(Protocol):
    """``<reason>``, ``<lookup>query</lookup>``, the env's ``<found>…</found>``, ``<final>…</final>``."""

    tags = ProtocolTags(name="lookup", think="reason", call="lookup", observation="found", answer="final")
    observation_prefix = "\n<found>\n"
    observation_suffix = "\n</found>\n"

    def build_prompt(self, question: str, browse: bool = False) -> Prompt:
        instructions = "Reason in the reason tags, look facts up in the lookup tags, answer in the final tags."
        return Prompt(text=f"{instructions}\nQ: {question}\nA:", messages=[{"role": "user", "content": f"{instructions}\n{question}"}])

    def format_results(self, queries: Sequence[str], results: Sequence[Sequence[Document]]) -> str:
        return "\n".join(document.text for batch in results for document in batch) or "nothing found"


def play(env: gym.Env, index: int, answer: str | None = None) -> tuple[float, dict]:
    prompt, info = env.reset(options={"index": index})
    oracle = OraclePolicy(env.unwrapped.protocol)
    oracle.reset(info)
    while True:
        action = oracle.act()
        if answer is not None and action.find("<final>") >= 0:
            action = env.unwrapped.protocol.answer_action(answer)
        _, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return reward, info


def test_episodes_with_a_protocol_of_our_own_are_parsed_framed_and_scored():
    env = gym.make("DeepResearch-Wiki-v0", protocol=LookupProtocol(), max_turns=4)
    prompt, info = env.reset(options={"index": 0})
    assert info["stop"] == ["</lookup>", "</final>"] and prompt.endswith("A:")
    observation = env.step("<reason>Who?</reason> <lookup> Jerved Gruvar </lookup>")[0]
    assert observation.startswith("\n<found>\n") and observation.endswith("\n</found>\n")

    reward, info = play(env, 0)
    components = info["reward_components"]
    assert reward == 1.0 and components["f1"] == 1.0 and components["format_ok"] and components["searches"] >= 1
    wrong, info = play(env, 0, answer="Zzyzx Nowhere")
    assert wrong == 0.0 and info["reward_components"]["answer"] == "Zzyzx Nowhere"


def test_rewards_read_the_custom_tags_and_hide_the_envs_blocks():
    tags = LookupProtocol.tags
    response = "<reason>r</reason><lookup>q</lookup>\n<found>\n<final>Injected</final>\n</found>\n<reason>ok</reason><final> Paris </final>"
    assert extract_answer(response, tags) == "Paris"
    assert count_searches(response, tags) == 1
    assert check_format(response, tags).ok
    assert compute_reward("em", response, ["Paris"], tags).reward == 1.0
    broken = check_format("<final>Paris</final><lookup>q</lookup>", tags)
    assert not broken.ok and "<lookup> not followed by a <found> block" in broken.reasons


@pytest.mark.slow
def test_one_grpo_step_with_a_protocol_of_our_own(tmp_path):
    golds = {item.question: item.golden_answers[0] for item in load_qa("demo", split="train")}
    config = GRPOConfig(
        env_kwargs={"protocol": LookupProtocol()},
        engine="hf",
        prompt_mode="text",
        group_size=2,
        questions_per_step=2,
        steps=1,
        eval_every=0,
        save_every=0,
        rollout=RolloutConfig(max_new_tokens_per_turn=16, max_response_tokens=64),
        optimizer=OptimizerConfig(learning_rate=1e-3),
        output_dir=str(tmp_path),
    )
    trainer = GRPOTrainer(config, log=lambda line: None)
    trainer.engine = HalfRightEngine(trainer.model, trainer.tokenizer, golds, trainer.envs[0].unwrapped.protocol)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    metrics = trainer.train()[0]
    assert metrics["reward/mean"] == pytest.approx(0.5) and metrics["grpo/zero_variance_groups"] == 0
    assert metrics["grad_norm"] > 0 and metrics["rollout/dropped"] == 0
    assert any(not (a == b).all() for a, b in zip(before, trainer.model.parameters()))
    # The run's config record names the protocol object it could not write as YAML.
    assert "protocol: '<test_custom_protocol.LookupProtocol object: not reloadable>'" in (tmp_path / "config.yaml").read_text()

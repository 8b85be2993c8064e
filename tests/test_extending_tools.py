"""Worked example: a calculator tool registered here, outside the package, used through ``gym.make``
with the ``tool_call`` protocol: offered in the prompt, parsed, run by name, its output framed as env
text (masked out of the loss), the episode scored, and one real GRPO step trained on it."""

from __future__ import annotations

import ast
import json
import operator

import gymnasium as gym
import pytest
import torch
from agents_helpers import FixedOutputEngine

import deepresearch  # noqa: F401 - registers the env ids
from deepresearch.agents import GRPOConfig, GRPOTrainer, RolloutConfig, TurnEncoder, run_rollouts
from deepresearch.agents.rollout.engines.base import Generation
from deepresearch.agents.rollout.request import RolloutRequest
from deepresearch.agents.train.config import OptimizerConfig
from deepresearch.envs import TOOLS, Tool, register_tool
from deepresearch.rewards import check_format

OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv, ast.USub: operator.neg}


def arithmetic(expression: str) -> float:
    """+ - * / and parentheses over numbers, nothing else (no names, no calls)."""

    def value(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
            return OPERATORS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in OPERATORS:
            return OPERATORS[type(node.op)](value(node.operand))
        raise ValueError(f"not arithmetic: {ast.unparse(node)}")

    return value(ast.parse(expression, mode="eval").body)


class Calculator(Tool):
    name = "calculator"
    description = "Evaluate arithmetic such as (17 + 4) * 3."
    argument = "expression"
    argument_description = "One or more expressions."

    def execute(self, inputs, context):
        return [arithmetic(expression) for expression in inputs]

    def render(self, result, inputs, context):
        return "\n".join(f"{expression} = {value:g}" for expression, value in zip(inputs, result))


@pytest.fixture(scope="module", autouse=True)
def calculator():
    register_tool(Calculator())
    yield
    TOOLS.unregister("calculator")


def call(expression: str) -> str:
    return '<think>Compute it.</think><tool_call>{"name": "calculator", "arguments": {"expression": ["' + expression + '"]}}</tool_call>'


def make_env(**kwargs):
    return gym.make("DeepResearch-Wiki-v0", protocol="tool_call", tools=["search", "calculator"], max_turns=4, **kwargs)


def test_the_calculator_is_offered_run_by_name_framed_as_env_text_and_scored():
    env = make_env()
    prompt, info = env.reset(options={"question": "What is 17 * 23?", "golden_answers": ["391"]})
    assert '"name": "calculator"' in prompt and '"name": "web_search"' in prompt and "web_browse" not in prompt
    observation, reward, terminated, _, info = env.step(call("17 * 23"))
    assert observation == "\n<tool_response>\n17 * 23 = 391\n</tool_response>\n"
    assert info["action"] == {"kind": "calculator", "called": "calculator", "inputs": ["17 * 23"]}
    assert info["new_messages"] == [{"role": "tool", "content": "17 * 23 = 391"}]
    last = info["segments"][-1]
    assert last["source"] == "env" and info["transcript"][last["start"] : last["end"]] == observation
    # A failing call is an observation, not a crash; the episode goes on.
    observation = env.step(call("__import__('os')"))[0]
    assert "The calculator failed: ValueError: not arithmetic" in observation
    _, reward, terminated, _, info = env.step("<think>It said 391.</think><answer> 391 </answer>")
    components = info["reward_components"]
    assert terminated and reward == 1.0 and components["format_ok"] and components["searches"] == 0
    # The rewards read the calculator call from the protocol's tags, as the env does.
    tags = env.unwrapped.protocol.tags
    assert check_format(call("1 + 1") + "\n<tool_response>\n2\n</tool_response>\n<answer>2</answer>", tags).ok


def test_deepresearchers_protocol_offers_it_too_in_its_own_framing():
    env = gym.make("DeepResearch-Wiki-v0", protocol="deepresearcher", tools=["search", "calculator"], max_turns=3)
    prompt, _ = env.reset(options={"question": "What is 2 * 3?", "golden_answers": ["6"]})
    assert '"name": "calculator"' in prompt and '"name": "web_search"' in prompt
    observation = env.step(call("2 * 3"))[0]
    assert observation == "<|im_end|>\n<|im_start|>user\n<tool_response>\n2 * 3 = 6\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    _, reward, terminated, _, info = env.step("<think>It said 6.</think><answer>6</answer>")
    assert terminated and reward == 1.0 and info["reward_components"]["format_ok"]


def test_a_tool_the_protocol_does_not_offer_is_a_format_error():
    env = gym.make("DeepResearch-Wiki-v0", protocol="tool_call", max_turns=2)  # the default tools only
    env.reset(options={"question": "q", "golden_answers": ["a"]})
    _, _, _, _, info = env.step(call("1 + 1"))
    assert info["action"]["kind"] == "invalid" and "unknown tool 'calculator'" in info["action"]["error"]


def test_unknown_tools_and_tag_protocols_fail_at_make():
    with pytest.raises(ValueError, match="unknown tool 'abacus'"):
        gym.make("DeepResearch-Wiki-v0", protocol="tool_call", tools=["search", "abacus"])
    with pytest.raises(ValueError, match="writes its tools as tags"):
        gym.make("DeepResearch-Wiki-v0", protocol="research", tools=["search", "calculator"])


def test_only_named_tool_objects_register():
    class Nameless(Tool):
        def execute(self, inputs, context):
            return ""

    with pytest.raises(ValueError, match="a tool needs a non-empty name"):
        register_tool(Nameless())
    with pytest.raises(TypeError, match="register a Tool instance .* not function"):
        register_tool(lambda inputs, context: "")
    with pytest.raises(ValueError, match="registered under another name"):
        TOOLS.register("abacus", Calculator())


QUESTIONS = [("What is 17 * 23?", "17 * 23", "391"), ("What is 120 / 8?", "120 / 8", "15"), ("What is 9 - 14?", "9 - 14", "-5")]


class CalculatorEngine(FixedOutputEngine):
    """A policy that calls the calculator, then answers: right the first time a question is asked, wrong
    the second (so a group of two has mixed rewards); logprobs from the real model, so the step is real."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer
        self.answers: dict[str, int] = {}

    def generate(self, prompts, sampling):
        outputs = []
        for prompt in prompts:
            text = self.tokenizer.decode(prompt)
            question, expression, gold = next(item for item in QUESTIONS if item[0] in text)
            if "<tool_response>" not in text.rpartition(question)[2]:  # nothing back from the tool yet
                turn = call(expression)
            else:
                asked = self.answers.get(question, 0)
                self.answers[question] = asked + 1
                turn = f"<think>The tool said so.</think><answer> {gold if asked % 2 == 0 else '7'} </answer>"
            ids = self.tokenizer(turn, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logits = self.model(torch.tensor([prompt + ids])).logits[0, len(prompt) - 1 : -1]
            logprobs = torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(ids)[:, None])[:, 0].tolist()
            outputs.append(Generation(token_ids=ids, logprobs=logprobs, text=turn, finish_reason="stop"))
        return outputs


@pytest.mark.slow
def test_one_grpo_step_with_the_calculator(tmp_path):
    dataset = tmp_path / "arithmetic.jsonl"
    dataset.write_text("".join(json.dumps({"id": str(i), "question": q, "golden_answers": [a]}) + "\n" for i, (q, _, a) in enumerate(QUESTIONS)))
    config = GRPOConfig(
        env_kwargs={"protocol": "tool_call", "tools": ["search", "calculator"], "dataset": str(dataset), "max_turns": 3},
        engine="hf",
        prompt_mode="text",
        group_size=2,
        questions_per_step=3,
        steps=1,
        eval_every=0,
        save_every=0,
        rollout=RolloutConfig(max_new_tokens_per_turn=64, max_response_tokens=256),
        optimizer=OptimizerConfig(learning_rate=1e-3),
        output_dir=str(tmp_path / "run"),
    )
    trainer = GRPOTrainer(config, log=lambda line: None)
    trainer.engine = CalculatorEngine(trainer.model, trainer.tokenizer)

    # The calculator's output reaches the token stream as env text: loss mask 0 on every one of its tokens.
    encoder = TurnEncoder.for_tokenizer(trainer.tokenizer, "text")
    episodes, _ = run_rollouts(RolloutRequest(trainer.engine, trainer.envs[:2], [{"options": {"index": 0}}] * 2, [0, 0], config.rollout, encoder))
    for episode in episodes:
        masked = trainer.tokenizer.decode([t for t, m in zip(episode.response_ids, episode.loss_mask) if m == 0])
        trained = trainer.tokenizer.decode([t for t, m in zip(episode.response_ids, episode.loss_mask) if m == 1])
        assert "17 * 23 = 391" in masked and "= 391" not in trained and "calculator" in trained
    assert sorted(e.reward for e in episodes) == [0.0, 1.0]  # deepresearcher_strict: F1 of a well-formed answer

    before = [p.detach().clone() for p in trainer.model.parameters()]
    metrics = trainer.train()[0]
    assert metrics["grpo/zero_variance_groups"] == 0 and metrics["rollout/dropped"] == 0 and metrics["grad_norm"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    assert "tools:\n  - search\n  - calculator" in (tmp_path / "run" / "config.yaml").read_text()

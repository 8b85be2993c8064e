"""verl integration: our envs as a verl *agent loop* (``verl.experimental.agent_loop``, verl 0.9).

verl calls ``await AgentLoop.run(sampling_params, **row)`` once per sample and
generates through ``server_manager.generate(request_id=, prompt_ids=,
sampling_params=)`` (token ids in, ``TokenOutput`` with ids and logprobs out).
Instead of re-implementing a multi-turn loop we put verl's server behind our
``RolloutEngine`` contract (:class:`AsyncServerEngine`) and run our own
``run_rollouts`` for the one episode in a worker thread: the same
token-in-token-out loop, env tokenisation and decode checks as our trainer. The
episode becomes verl's ``AgentLoopOutput`` fields with
``response_mask = loss_mask`` (env tokens 0) and ``reward_score`` = the env's
reward (:func:`agent_output_fields`).

This module never imports verl; the agent-loop class that does lives in
``deepresearch.agents.adapters.verl_agent_loop`` (named in verl's agent-loop YAML). verl
0.9.1 pins ``transformers<5.11`` (this project uses 5.19) and needs ray and
hydra, so that class is untested against verl itself — see docs/adapters.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from deepresearch.agents.rollout.end_of_turn import end_of_turn_ids
from deepresearch.agents.rollout.engines.base import Generation, SamplingConfig
from deepresearch.agents.rollout.runner import Episode

# async (prompt_ids, sampling_params) -> object with ``token_ids`` and ``log_probs`` (verl's TokenOutput)
AsyncGenerate = Callable[[list[int], dict[str, Any]], Awaitable[Any]]


class AsyncServerEngine:
    """Our ``RolloutEngine`` over an async token server (verl's server manager) running on ``loop``.

    ``generate`` is called from a worker thread and blocks on futures scheduled on
    ``loop``, so the event loop that owns the server keeps running meanwhile. The
    server must keep stop strings in the output (vLLM's ``include_stop_str_in_output``).
    """

    def __init__(self, tokenizer: Any, agenerate: AsyncGenerate, loop: asyncio.AbstractEventLoop, max_model_len: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.end_of_turn_ids = end_of_turn_ids(tokenizer)
        self.max_model_len = max_model_len
        self._agenerate = agenerate
        self._loop = loop

    def sampling_params(self, sampling: SamplingConfig) -> dict[str, Any]:
        params: dict[str, Any] = {
            "max_tokens": sampling.max_new_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "logprobs": 0,
            "stop": list(sampling.stop),
            "stop_token_ids": sorted(self.end_of_turn_ids),
            "include_stop_str_in_output": True,
        }
        if sampling.top_k > 0:
            params["top_k"] = sampling.top_k
        if sampling.seed is not None:
            params["seed"] = sampling.seed
        return params

    def generate(self, prompts: list[list[int]], sampling: SamplingConfig) -> list[Generation]:
        params = self.sampling_params(sampling)
        futures = [asyncio.run_coroutine_threadsafe(self._agenerate(list(prompt), dict(params)), self._loop) for prompt in prompts]
        return [self._generation(future.result(), sampling) for future in futures]

    def _generation(self, output: Any, sampling: SamplingConfig) -> Generation:
        ids = list(output.token_ids)
        logprobs = list(output.log_probs) if output.log_probs else [0.0] * len(ids)
        text = self.tokenizer.decode(ids)
        if ids and ids[-1] in self.end_of_turn_ids:
            reason = "eos"
        elif any(text.endswith(stop) for stop in sampling.stop):
            reason = "stop"
        else:
            reason = "length"
        return Generation(token_ids=ids, logprobs=logprobs, text=text, finish_reason=reason)

    def sync_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        """verl syncs its own servers' weights."""

    def sleep(self) -> None:
        """verl manages its servers' memory."""

    def wake(self) -> None:
        """verl manages its servers' memory."""


def agent_output_fields(episode: Episode, response_length: int) -> dict[str, Any]:
    """verl ``AgentLoopOutput`` fields for one episode, cut to verl's ``response_length``."""
    return {
        "prompt_ids": list(episode.prompt_ids),
        "response_ids": episode.response_ids[:response_length],
        "response_mask": episode.loss_mask[:response_length],
        "response_logprobs": episode.rollout_logprobs[:response_length],
        "reward_score": float(episode.reward),
        "num_turns": 1 + 2 * episode.turns,  # user + (assistant, env) per turn, as verl counts chat turns
        "extra_fields": {"reward_components": dict(episode.reward_components), "finish_reason": episode.finish_reason},
    }


def question_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """Reset options from a verl dataset row: ``extra_info.question``/``golden_answers``, else the
    last user message and ``reward_model.ground_truth``."""
    extra = row.get("extra_info") or {}
    question = extra.get("question") or next(m["content"] for m in reversed(list(row["raw_prompt"])) if m["role"] == "user")
    golds = extra.get("golden_answers") or (row.get("reward_model") or {}).get("ground_truth") or []
    golds = [golds] if isinstance(golds, str) else [str(g) for g in golds]
    return {"id": str(extra.get("id", extra.get("index", "verl"))), "question": str(question), "golden_answers": golds}


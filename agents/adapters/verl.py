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
``deepresearch.agents.adapters.verl_agent_loop`` (named in verl's agent-loop YAML) and
is tested inside verl 0.9.1 by ``make test-verl`` (tests/in_verl/).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal

from deepresearch.agents.adapters.rows import reset_options
from deepresearch.agents.rollout.end_of_turn import end_of_turn_ids
from deepresearch.agents.rollout.engines.base import Generation, SamplingConfig
from deepresearch.agents.rollout.runner import Episode

# async (prompt_ids, sampling_params) -> object with ``token_ids`` and ``log_probs`` (verl's TokenOutput)
AsyncGenerate = Callable[[list[int], dict[str, Any]], Awaitable[Any]]

# Whose sampling-parameter names verl's server passes on: vLLM's ``SamplingParams`` or SGLang's.
ServerDialect = Literal["vllm", "sglang"]
SERVER_DIALECTS: tuple[ServerDialect, ...] = ("vllm", "sglang")


def check_server_dialect(name: str) -> ServerDialect:
    """``name`` (a dialect, or verl's ``rollout.name``) checked against the dialects we speak."""
    if name not in SERVER_DIALECTS:
        raise ValueError(
            f"no known sampling-parameter names for verl rollout server {name!r}; "
            f"set server_dialect to one of {SERVER_DIALECTS} in the agent-loop YAML"
        )
    return name  # type: ignore[return-value]


def server_sampling_params(sampling: SamplingConfig, end_of_turn_ids: Iterable[int], dialect: ServerDialect) -> dict[str, Any]:
    """``sampling`` as the dict verl's rollout server turns into its engine's sampling params.

    Both servers pop ``logprobs`` and read it as a flag (verl's vLLM server maps a truthy
    value to ``logprobs=0``, i.e. the sampled token's logprob; a literal ``0`` would turn
    them off) and hand every other key to the engine, which rejects names it does not
    know. The stop string stays in the output: vLLM's ``include_stop_str_in_output``,
    SGLang's ``no_stop_trim``.
    """
    vllm = dialect == "vllm"
    params: dict[str, Any] = {
        "max_tokens" if vllm else "max_new_tokens": sampling.max_new_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "logprobs": True,
        "stop": list(sampling.stop),
        "stop_token_ids": sorted(end_of_turn_ids),
        "include_stop_str_in_output" if vllm else "no_stop_trim": True,
    }
    if sampling.top_k > 0:
        params["top_k"] = sampling.top_k
    if sampling.seed is not None:
        params["seed" if vllm else "sampling_seed"] = sampling.seed
    return params


class AsyncServerEngine:
    """Our ``RolloutEngine`` over an async token server (verl's server manager) running on ``loop``.

    ``generate`` is called from a worker thread and blocks on futures scheduled on
    ``loop``, so the event loop that owns the server keeps running meanwhile.
    """

    def __init__(
        self,
        tokenizer: Any,
        agenerate: AsyncGenerate,
        loop: asyncio.AbstractEventLoop,
        dialect: ServerDialect = "vllm",
        max_model_len: int | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.end_of_turn_ids = end_of_turn_ids(tokenizer)
        self.max_model_len = max_model_len
        self.dialect = check_server_dialect(dialect)
        self._agenerate = agenerate
        self._loop = loop

    def sampling_params(self, sampling: SamplingConfig) -> dict[str, Any]:
        return server_sampling_params(sampling, self.end_of_turn_ids, self.dialect)

    def generate(self, prompts: list[list[int]], sampling: SamplingConfig) -> list[Generation]:
        params = self.sampling_params(sampling)
        futures = [asyncio.run_coroutine_threadsafe(self._agenerate(list(prompt), dict(params)), self._loop) for prompt in prompts]
        return [self._generation(future.result(), sampling) for future in futures]

    def _generation(self, output: Any, sampling: SamplingConfig) -> Generation:
        ids = list(output.token_ids)
        if output.log_probs is None or len(output.log_probs) != len(ids):
            raise RuntimeError("verl's rollout server returned no logprob per sampled token although the request asked for them")
        logprobs = list(output.log_probs)
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


class PromptTooLongError(ValueError):
    """The env's prompt does not fit verl's ``rollout.prompt_length``."""


def agent_output_fields(episode: Episode, prompt_length: int, response_length: int) -> dict[str, Any]:
    """verl ``AgentLoopOutput`` fields for one episode, the response cut to verl's ``response_length``.

    verl left-pads every prompt to ``rollout.prompt_length`` and never cuts one, so a
    longer prompt would fail later in ``torch.cat`` with a size mismatch; cutting it
    here would drop the question. Fail with the setting to change instead.
    """
    if len(episode.prompt_ids) > prompt_length:
        raise PromptTooLongError(
            f"the env's prompt has {len(episode.prompt_ids)} tokens but verl's rollout.prompt_length is {prompt_length}: "
            "raise data.max_prompt_length to cover the env's prompt, or set data.filter_overlong_prompts=True to drop "
            "such rows when the dataset loads (examples/verl/make_dataset.py writes the env's prompt into the dataset)"
        )
    return {
        "prompt_ids": list(episode.prompt_ids),
        "response_ids": episode.response_ids[:response_length],
        "response_mask": episode.loss_mask[:response_length],
        "response_logprobs": episode.rollout_logprobs[:response_length],
        "reward_score": float(episode.reward),
        "num_turns": 1 + 2 * episode.turns,  # user + (assistant, env) per turn, as verl counts chat turns
        "extra_fields": {"reward_components": dict(episode.reward_components), "finish_reason": episode.finish_reason},
    }


def dropped_episode(prompt_ids: list[int], eos_token_id: int, reason: str) -> Episode:
    """Stands in for an episode the rollout's decode check dropped: one end-of-sequence id,
    masked, reward 0. verl's batch keeps its shape (GRPO groups stay whole) and the sample
    contributes no gradient; ``finish_reason`` says why."""
    episode = Episode(group_id=0, prompt_ids=list(prompt_ids), finish_reason=f"dropped: {reason}")
    episode.append([eos_token_id], trainable=False)
    return episode


def question_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """Reset options from a verl dataset row: ``extra_info.question``/``golden_answers``, else the
    last user message and ``reward_model.ground_truth``."""
    return reset_options(row.get("extra_info"), row["raw_prompt"], (row.get("reward_model") or {}).get("ground_truth"), "verl")

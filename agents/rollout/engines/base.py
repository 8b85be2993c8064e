"""The rollout-engine contract shared by the vLLM and transformers engines.

Token ids in, token ids out: the trainer appends exactly the ids the policy
sampled to the transcript (never a decode -> re-encode round trip), so both
engines must agree on three things, fixed here and tested on both:

* **stop**: generation ends right after the token that completes a stop string
  (that token is kept, like vLLM's ``include_stop_str_in_output=True``), or
  after an end-of-turn token (kept; ``end_of_turn_ids``, decided by
  ``rollout.end_of_turn``), or at ``max_new_tokens``. Stop strings are looked
  for in the decoded *generated* text only, with special tokens skipped.
* **logprobs**: one per sampled token, ``log_softmax(logits / temperature)``
  at the sampled id, where ``temperature`` is 1 for greedy decoding. When
  ``top_k``/``top_p`` are active, logits outside the kept set are ``-inf``
  before the softmax, i.e. the logprob of the distribution actually sampled
  from (this is what vLLM's ``processed_logprobs`` returns; with the defaults
  ``top_k=0, top_p=1`` it is the plain temperature-scaled distribution a
  trainer recomputes).
* **text**: ``tokenizer.decode(token_ids)`` with special tokens kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

FinishReason = Literal["stop", "length", "eos"]


@dataclass(frozen=True)
class SamplingConfig:
    """How to sample; ``temperature == 0`` means greedy, ``top_k <= 0`` and ``top_p == 1`` mean off."""

    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if isinstance(self.stop, str):
            raise TypeError("stop must be a tuple of strings, not a single string")
        if any(not s for s in self.stop):
            raise ValueError("stop strings must be non-empty")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


class SamplingKnobs(Protocol):
    """The sampling settings a run configures once (``RolloutConfig``, the contamination filter's ``FilterConfig``)."""

    temperature: float
    top_p: float
    top_k: int


def sampling_request(knobs: SamplingKnobs, max_new_tokens: int, stop: tuple[str, ...] = (), seed: int | None = None) -> SamplingConfig:
    """The one place a run's sampling settings become an engine call's ``SamplingConfig``."""
    return SamplingConfig(
        max_new_tokens=max_new_tokens, temperature=knobs.temperature, top_p=knobs.top_p, top_k=knobs.top_k, stop=stop, seed=seed
    )


@dataclass
class Generation:
    """One completion: the sampled ids exactly as sampled, one logprob per id."""

    token_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: FinishReason


@runtime_checkable
class RolloutEngine(Protocol):
    """What the multi-turn rollout needs from an inference backend.

    ``max_model_len`` is the context the engine can hold (prompt + generation), None
    when it sets no limit of its own; ``end_of_turn_ids`` are the ids it stops on.
    """

    tokenizer: Any
    max_model_len: int | None
    end_of_turn_ids: frozenset[int]

    def generate(self, prompts: list[list[int]], sampling: SamplingConfig) -> list[Generation]:
        """Complete every prompt (token ids) in one batched call, in order."""
        ...

    def sync_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        """Load the trainer's current weights (``model.state_dict().items()`` names)."""
        ...

    def sleep(self) -> None:
        """Free accelerator memory between rollouts where supported; else a no-op."""
        ...

    def wake(self) -> None:
        """Undo ``sleep``; a no-op where sleeping is unsupported."""
        ...


def validate_prompts(prompts: list[list[int]], vocab_size: int) -> None:
    """Reject empty prompts and non-int or out-of-vocabulary ids before they reach a backend."""
    for index, prompt in enumerate(prompts):
        if not prompt:
            raise ValueError(f"prompt {index} is empty")
        bad = [t for t in prompt if not isinstance(t, int) or not 0 <= t < vocab_size]
        if bad:
            raise ValueError(f"prompt {index} has token ids outside [0, {vocab_size}): {bad[:5]}")

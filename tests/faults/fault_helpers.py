"""What the fault-injection tests share: a tiny training run, a policy that searches, engines that fail.

The engines here follow the engine contract over scripted text (no weights to learn), so a
test knows exactly which request fails and what every episode should read. The faults are
injected where they happen in a real run: inside an engine call, a retrieval server process,
a search provider's HTTP server, the trainer's update or checkpoint write.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from agents_helpers import FixedOutputEngine

from deepresearch.agents import GRPOConfig, GRPOTrainer, read_metrics
from deepresearch.agents.rollout.engines.base import Generation, SamplingConfig
from deepresearch.agents.rollout.runner import RolloutConfig
from deepresearch.agents.train.config import OptimizerConfig
from deepresearch.agents.train.health import HealthConfig
from deepresearch.envs import load_qa

# Two questions x two episodes per step on the tiny model and the demo world, search_r1 tags.
TINY_FAULT_RUN: dict[str, Any] = dict(
    engine="hf",
    env_kwargs={"protocol": "search_r1", "max_turns": 3, "top_k": 1},
    group_size=2,
    questions_per_step=2,
    rollout=RolloutConfig(max_new_tokens_per_turn=24, max_response_tokens=192),
    optimizer=OptimizerConfig(learning_rate=1e-3),
    eval_every=0,
    save_every=0,
    episodes_to_log=4,
    report_to=("jsonl",),
    prompt_mode="text",
    health=HealthConfig(max_nonfinite_steps=2, max_failed_rollout_steps=2),
)


def fault_config(
    output_dir: Path, steps: int = 3, schedule: str = "async", deadline_s: float | None = RolloutConfig.generation_deadline_s, **overrides: Any
) -> GRPOConfig:
    """The tiny run for ``steps`` steps, with a rollout ``schedule`` and generation deadline; ``overrides``: any field."""
    settings = {**TINY_FAULT_RUN, **overrides}
    settings["rollout"] = replace(settings["rollout"], schedule=schedule, generation_deadline_s=deadline_s)
    return GRPOConfig(steps=steps, output_dir=str(output_dir), **settings)


def demo_golds() -> dict[str, str]:
    return {item.question: item.golden_answers[0] for item in load_qa("demo", split="train") + load_qa("demo", split="test")}


class SearchThenAnswerEngine(FixedOutputEngine):
    """Searches for the question once, then answers with its gold answer (scripted, no weights)."""

    def __init__(self, tokenizer: Any, protocol: Any) -> None:
        self.tokenizer, self.protocol = tokenizer, protocol
        self.golds = demo_golds()

    def generate(self, prompts: list[list[int]], sampling: SamplingConfig) -> list[Generation]:
        outputs = []
        for prompt in prompts:
            context = self.tokenizer.decode(prompt)
            question = next(q for q in self.golds if q in context)
            search = self.protocol.search_action(question)
            turn = self.protocol.answer_action(self.golds[question]) if search in context else search
            ids = self.tokenizer(turn, add_special_tokens=False)["input_ids"]
            outputs.append(Generation(token_ids=ids, logprobs=[-1.0] * len(ids), text=turn, finish_reason="stop"))
        return outputs


def scripted_engine(trainer: GRPOTrainer) -> SearchThenAnswerEngine:
    return SearchThenAnswerEngine(trainer.tokenizer, trainer.envs[0].unwrapped.protocol)


class FaultyEngine(FixedOutputEngine):
    """An engine whose next ``generate`` call raises or hangs (``fail_next``), or every call (``always``);
    a hung call returns only when the test ends (``release``)."""

    def __init__(self, inner: Any, always: str | None = None) -> None:
        self.inner, self.tokenizer = inner, inner.tokenizer
        self.always = always
        self.pending: str | None = None
        self.release = threading.Event()
        self._lock = threading.Lock()

    def fail_next(self, fault: str) -> None:
        """``"raise"`` or ``"hang"`` on the next call (or request) only."""
        with self._lock:
            self.pending = fault

    def _fault(self) -> str | None:
        with self._lock:
            fault, self.pending = self.always or self.pending, None
            return fault

    def generate(self, prompts: list[list[int]], sampling: SamplingConfig) -> list[Generation]:
        fault = self._fault()
        if fault == "raise":
            raise RuntimeError("injected engine failure")
        if fault == "hang":
            self.release.wait()
            raise RuntimeError("released at the end of the test")
        return self.inner.generate(prompts, sampling)


class FaultyRequestEngine(FaultyEngine):
    """The same faults per request, for an engine that batches requests itself (like vLLM): the
    failing request fails alone (a hang is a future that never resolves)."""

    busy_seconds = 0.0

    def submit(self, prompt: list[int], sampling: SamplingConfig) -> Future[Generation]:
        future: Future[Generation] = Future()
        fault = self._fault()
        if fault == "raise":
            future.set_exception(RuntimeError("injected engine failure"))
        elif fault != "hang":
            future.set_result(self.inner.generate([prompt], sampling)[0])
        return future


def at_steps(actions: dict[int, Callable[[], None]], lines: list[str]) -> Callable[[str], None]:
    """A trainer ``log`` that keeps every line and runs ``actions[s]`` once step ``s`` has been logged
    (between two steps: the on-policy trainer logs in its own thread, with nothing in flight)."""

    def log(line: str) -> None:
        lines.append(line)
        step = line.split(" |", 1)[0]
        if step.startswith("step ") and step[5:].isdigit() and int(step[5:]) in actions:
            actions[int(step[5:])]()

    return log


def run_bounded(trainer: GRPOTrainer, limit_s: float = 600.0) -> list[dict[str, Any]]:
    """``trainer.train()`` in a thread, failing the test if it has not ended after ``limit_s`` (a stall);
    the generous limit is a correctness bound, not a speed one."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["history"] = trainer.train()
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            outcome["error"] = error

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit_s)
    assert not worker.is_alive(), f"the training run stalled (no end after {limit_s:g} s)"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["history"]


def step_records(output_dir: Path) -> dict[int, dict[str, Any]]:
    return {record["step"]: record for record in read_metrics(Path(output_dir) / "metrics.jsonl")}

"""LLM-as-judge: does the prediction mean the same as a gold answer?

ReSearch reports an LLM judge next to EM because EM misses paraphrases
("JFK" vs "John F. Kennedy"). The judge is asked for a JSON verdict
``{"equivalent": true|false}``; a reply that is not one is retried a bounded
number of times and then counted as *unparseable*, never guessed and never
retried forever.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal, Sequence

from deepresearch.agents.eval.chat_client import ChatClient

JUDGE_PROMPT = (
    "You judge question answering. Decide whether the predicted answer means the same thing as "
    "any of the gold answers for the question (same entity, date, number or fact; wording, "
    "aliases and formatting may differ; a vaguer or different answer is not equivalent).\n\n"
    "Question: {question}\nGold answers: {golds}\nPredicted answer: {prediction}\n\n"
    'Reply with JSON only: {{"equivalent": true}} or {{"equivalent": false}}.'
)

JSON_OBJECT = re.compile(r"\{[^{}]*\}")

JudgeStatus = Literal["ok", "unparseable", "error", "no_answer"]


@dataclass(frozen=True)
class Verdict:
    """``equivalent`` is None unless ``status == "ok"`` or the prediction is missing (then False)."""

    equivalent: bool | None
    status: JudgeStatus
    detail: str = ""


def parse_verdict(text: str) -> bool | None:
    """The boolean in the first JSON object with an ``equivalent`` key, or None."""
    for match in JSON_OBJECT.finditer(text):
        try:
            payload = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(payload, dict) and isinstance(payload.get("equivalent"), bool):
            return payload["equivalent"]
    return None


@dataclass
class JudgeConfig:
    # Extra asks after an unparseable reply (endpoint errors are retried by the client itself).
    parse_retries: int = 1
    max_tokens: int = 32


class LLMJudge:
    def __init__(self, client: ChatClient, config: JudgeConfig | None = None) -> None:
        self.client = client
        self.config = config or JudgeConfig()

    def judge(self, question: str, prediction: str | None, golds: Sequence[str]) -> Verdict:
        if not prediction or not prediction.strip():
            return Verdict(False, "no_answer")
        prompt = JUDGE_PROMPT.format(question=question, golds=json.dumps(list(golds), ensure_ascii=False), prediction=prediction)
        reply_text = ""
        for _ in range(1 + max(0, self.config.parse_retries)):
            try:
                reply = self.client.complete([{"role": "user", "content": prompt}], max_tokens=self.config.max_tokens, temperature=0.0)
            except Exception as error:  # noqa: BLE001 - a judge outage marks the item, never ends the run
                return Verdict(None, "error", f"{type(error).__name__}: {error}"[:300])
            reply_text = reply.text
            verdict = parse_verdict(reply_text)
            if verdict is not None:
                return Verdict(verdict, "ok")
        return Verdict(None, "unparseable", reply_text[:300])

"""A scripted oracle policy for the demo world: it searches the supporting facts, then answers.

It reads the question's ``metadata["oracle_queries"]`` and gold answer, so it
always succeeds; it is the reference for end-to-end tests, the demo that runs
before any model is trained, and the source of warm-start (SFT) trajectories.
With ``guess_rate`` it answers that share of questions at once, without
searching, by echoing the entity the question is about (a failure small models
show on their own): a teacher that under-uses search, for showing that RL
learns to search. The echo is copied from the question, so imitating it still
teaches reading names off the context, which the searching episodes need. With
``single_search_rate`` it stops that share of multi-hop questions after the first
search and answers the name that search found (the first hop's object, always
wrong): a teacher that searches once where the question needs a chain, for showing
that RL learns to search again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from deepresearch.envs.protocols import Protocol


@dataclass
class OraclePolicy:
    """Turn ``i < hops`` searches ``oracle_queries[i]``; the next turn answers the first gold answer."""

    protocol: Protocol
    think: bool = True
    # Share of episodes answered at once, without searching, with the question's own subject.
    guess_rate: float = 0.0
    # Share of multi-hop episodes answered after the first search with that hop's object.
    single_search_rate: float = 0.0
    seed: int = 0
    _queries: list[str] = field(default_factory=list)
    _answer: str = ""
    _turn: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name, rate in (("guess_rate", self.guess_rate), ("single_search_rate", self.single_search_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {rate}")
        self._rng = random.Random(self.seed)

    def reset(self, info: dict[str, Any]) -> None:
        """Read the plan from the env's reset ``info`` (its ``metadata`` and ``golden_answers``)."""
        self._queries = list(info.get("metadata", {}).get("oracle_queries", []))
        self._answer = info["golden_answers"][0]
        self._turn = 0
        chain = info.get("metadata", {}).get("chain") or [{}]
        subject = chain[0].get("subject")
        if subject and self.guess_rate and self._rng.random() < self.guess_rate:
            self._queries, self._answer = [], subject
        elif len(chain) > 1 and self.single_search_rate and self._rng.random() < self.single_search_rate:
            self._queries, self._answer = self._queries[:1], chain[0]["object"]

    def act(self) -> str:
        turn = self._turn
        self._turn += 1
        if turn < len(self._queries):
            query = self._queries[turn]
            thought = f"<think> I need to look up {query}. </think>\n" if self.think else ""
            return thought + self.protocol.search_action(query)
        thought = f"<think> The documents say the answer is {self._answer}. </think>\n" if self.think else ""
        return thought + self.protocol.answer_action(self._answer)

"""A scripted policy whose GRPO groups have reward variance, for the tests inside other frameworks.

Served from a stand-in inference server (verl's, SkyRL's), it writes the script's tokens
with the served model's own logprobs for them, so the framework's trainer recomputes the
same values and its update has a direction to check: towards the rewarded turns.
"""

from __future__ import annotations

from typing import Any


class ScriptedSearchPolicy:
    """For each demo training question, the copies of a group alternate in the order their
    first turn arrives: one searches for the question, then answers the gold (the env scores
    it 1 under ``search_r1``), the next answers a wrong name at once (0)."""

    WRONG_ANSWER = "Nowhere At All"

    def __init__(self, protocol: str = "search_r1") -> None:
        from deepresearch.envs import get_protocol, load_qa

        self.protocol = get_protocol(protocol)
        self.golds = {item.question: item.golden_answers[0] for item in load_qa("demo", split="train")}
        self.first_turns: dict[str, int] = {}

    def next_turn(self, context: str) -> tuple[str, bool]:
        """The turn after ``context`` (the prompt and the episode so far) and whether its episode is rewarded."""
        question = next(q for q in self.golds if q in context)
        episode = context[context.rindex(question) + len(question) :]  # the turns so far (the prompt may name the tags)
        if self.protocol.observation_suffix.strip() in episode:  # the searching copy got its results: answer right
            return self.protocol.answer_action(self.golds[question]), True
        arrival = self.first_turns.get(question, 0)
        self.first_turns[question] = arrival + 1
        if arrival % 2 == 0:
            return self.protocol.search_action(question), True
        return self.protocol.answer_action(self.WRONG_ANSWER), False


def token_logprobs(model: Any, prompt_ids: list[int], ids: list[int], temperature: float = 1.0) -> list[float]:
    """``model``'s logprob of each of ``ids`` after ``prompt_ids`` (logits divided by ``temperature``)."""
    import torch

    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids + ids])).logits[0, len(prompt_ids) - 1 : -1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids)[:, None])[:, 0].tolist()

"""Question order for training: a seeded permutation per epoch, resumable exactly.

The state is two integers, so a resumed run draws the same questions in the same
order as a run that was never interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class QuestionSampler:
    num_questions: int
    seed: int = 0
    epoch: int = 0
    position: int = 0

    def __post_init__(self) -> None:
        if self.num_questions < 1:
            raise ValueError("the training set has no questions")

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_questions)

    def take(self, count: int) -> list[int]:
        """The next ``count`` question indices, continuing into the next epoch as needed."""
        taken: list[int] = []
        while len(taken) < count:
            order = self._order(self.epoch)
            chunk = order[self.position : self.position + count - len(taken)]
            taken.extend(int(i) for i in chunk)
            self.position += len(chunk)
            if self.position >= self.num_questions:
                self.epoch, self.position = self.epoch + 1, 0
        return taken

    def state_dict(self) -> dict[str, int]:
        return {"num_questions": self.num_questions, "seed": self.seed, "epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["num_questions"] != self.num_questions or state["seed"] != self.seed:
            raise ValueError("the checkpoint was made with a different dataset or seed; cannot resume its data order")
        self.epoch, self.position = state["epoch"], state["position"]

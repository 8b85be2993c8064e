"""Settings of the CPU demo (``make train``, the learning benchmark), in one place.

Sized for two CPU cores and a ~1.5M-parameter model trained from scratch:

* ``search_r1`` tags, because its answer `` Name `` keeps the space-prefixed tokens
  the name has in the passage, so answering is copying; ReSearch's ``\\boxed{Name}``
  spells it with other tokens, which a model this small does not learn to map.
* one passage per search and at most three turns (1- and 2-hop questions can be
  answered; the oracle succeeds on all of them), so episodes stay short.
* a warm-start teacher that searches too little: on 60% of its trajectories it
  answers at once by echoing the question's subject (always wrong), as small
  models do. The warm-started model, decoding greedily, therefore echoes and
  scores ~0; what GRPO has to discover is that searching pays. (From a teacher
  that always searches, the warm start reaches ~0.27 and 40 GRPO steps here do
  not move it — ``benchmarks/RESULTS.md``.)
* 3000 warm-start steps in ten 300-step learning-rate cycles: a model this small
  copies names from its context only after a long plateau, and restarts get it
  there sooner than one long decay.
"""

from __future__ import annotations

from typing import Any

from deepresearch.agents.rollout.runner import RolloutConfig
from deepresearch.agents.train.config import GRPOConfig, OptimizerConfig
from deepresearch.agents.train.sft import SFTConfig
from deepresearch.agents.train.warm_start import WarmStartConfig

DEMO_ENV_KWARGS: dict[str, Any] = {"protocol": "search_r1", "max_turns": 3, "top_k": 1}
DEMO_SFT = SFTConfig(steps=3000, batch_size=8, learning_rate=3e-3, restart_every=300)
DEMO_WARM_START = WarmStartConfig(trajectories=2000, think=True, guess_rate=0.6, sft=DEMO_SFT)


DEMO_ROLLOUT = RolloutConfig(max_new_tokens_per_turn=32, max_response_tokens=256)
DEMO_OPTIMIZER = OptimizerConfig(learning_rate=3e-4)


def demo_grpo_config(**overrides: Any) -> GRPOConfig:
    """Warm start and GRPO on the demo world; keyword arguments override any ``GRPOConfig`` field."""
    settings: dict[str, Any] = dict(
        env_kwargs=dict(DEMO_ENV_KWARGS),
        warm_start=DEMO_WARM_START,
        group_size=8,
        questions_per_step=16,
        steps=40,
        rollout=DEMO_ROLLOUT,
        optimizer=DEMO_OPTIMIZER,
        eval_questions=100,
        eval_every=10,
        save_every=20,
    )
    settings.update(overrides)
    return GRPOConfig(**settings)

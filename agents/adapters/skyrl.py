"""SkyRL: our envs as ``skyrl_gym`` text envs (``BaseTextEnv``), registered in its registry.

SkyRL's generator builds one env per sample with
``skyrl_gym.make(env_class, env_config=cfg.environment.skyrl_gym.<env_class>, extras=row)``,
calls ``init(prompt)`` for the first messages, then ``step(text)`` with each decoded
policy turn until ``done``. It keeps token-in-token-out itself: sampled ids are
trained (loss mask 1), the ids of every observation message are not (0).

:class:`DeepResearchTextEnv` plays one episode of a Gymnasium env of ours:

* ``env_config``: ``{"env_id": ..., "env_kwargs": {...}}`` (``gym.make`` arguments);
* ``extras`` (the dataset row, see ``skyrl_dataset_row``): ``extra_info.question`` /
  ``golden_answers`` / ``id`` pose the question, else the prompt's last user message
  and ``reward_spec.ground_truth``; ``max_turns`` (SkyRL's ``generator.max_turns``)
  caps the env's turns so the env, not the generator, ends and scores the episode;
* ``init`` returns the env's own chat messages (its prompt, not the row's);
* ``step`` returns the env's text as one observation message, its reward and
  ``done``; it never rewrites the action (``postprocessed_action`` stays None).

Layout: the ``research`` and ``search_r1`` protocols continue the assistant's turn
with their results, which is SkyRL's ``generator.use_conversation_multi_turn=false``
(observations tokenised as plain text, the same ids our trainer appends); the
``tool_call`` protocol answers in tool messages, rendered by the chat template with
``use_conversation_multi_turn=true``. Set ``generator.sampling_params.stop`` to the
protocol's stop strings (``gym.make(...).reset()[1]["stop"]``) and keep them in the
output (vLLM's ``include_stop_str_in_output``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from skyrl_gym.envs import register
from skyrl_gym.envs.base_text_env import BaseTextEnv, BaseTextEnvStepOutput, ConversationType
from skyrl_gym.envs.registration import registry

import deepresearch  # noqa: F401 - registers the env ids
from deepresearch.agents.adapters.rows import reset_options

DEFAULT_ENV_CLASS = "deepresearch"


class DeepResearchTextEnv(BaseTextEnv):
    """One episode of ``env_config["env_id"]`` per SkyRL sample."""

    def __init__(self, env_config: dict[str, Any] | None = None, extras: dict[str, Any] | None = None) -> None:
        super().__init__()
        env_config = dict(env_config or {})
        self.extras = dict(extras or {})
        env_kwargs = dict(env_config.get("env_kwargs") or {})
        if "max_turns" in self.extras:
            env_kwargs["max_turns"] = int(self.extras["max_turns"])
        self.env = gym.make(env_config.get("env_id", "DeepResearch-Wiki-v0"), **env_kwargs)
        if "max_turns" in env_kwargs:  # SkyRL's metadata; the env itself ends the episode
            self.max_turns = int(env_kwargs["max_turns"])
        self.continues_assistant_turn = True
        self.reward_components: dict[str, Any] = {}

    def init(self, prompt: ConversationType) -> tuple[ConversationType, dict[str, Any]]:
        ground_truth = (self.extras.get("reward_spec") or {}).get("ground_truth")
        _, info = self.env.reset(options=reset_options(self.extras.get("extra_info"), prompt, ground_truth, "skyrl"))
        self.continues_assistant_turn = info.get("observation_role", "assistant") == "assistant"
        return list(info["messages"]), {"stop": list(info.get("stop", ()))}

    def step(self, action: str) -> BaseTextEnvStepOutput:
        self.turns += 1
        observation, reward, terminated, truncated, info = self.env.step(action)
        done = bool(terminated or truncated)
        if done:
            observations: ConversationType = []  # the episode is over: nothing more to tokenise
            self.reward_components = dict(info.get("reward_components") or {})
        elif self.continues_assistant_turn:
            observations = [{"role": "user", "content": observation}]  # SkyRL tokenises the content as is
        else:
            observations = list(info["new_messages"])
        return BaseTextEnvStepOutput(
            observations=observations,
            reward=float(reward),
            done=done,
            metadata={"action": info.get("action"), "reward_components": self.reward_components},
            postprocessed_action=None,
        )

    def get_metrics(self) -> dict[str, Any]:
        """The episode's reward components (SkyRL averages the numeric ones over episodes)."""
        return dict(self.reward_components)

    def close(self) -> None:
        self.env.close()


def register_skyrl_env(env_class: str = DEFAULT_ENV_CLASS) -> str:
    """Register :class:`DeepResearchTextEnv` in SkyRL-gym's registry as ``env_class`` (once per process)."""
    entry_point = f"{__name__}:{DeepResearchTextEnv.__name__}"
    known = registry.get(env_class)
    if known is None:
        register(id=env_class, entry_point=entry_point)
    elif known.entry_point != entry_point:
        raise ValueError(f"SkyRL-gym env {env_class!r} is already registered to {known.entry_point!r}")
    return env_class


def skyrl_dataset_row(env: Any, item: Any, env_class: str = DEFAULT_ENV_CLASS, data_source: str = "deepresearch") -> dict[str, Any]:
    """One SkyRL dataset row for QA ``item`` (``id``/``question``/``golden_answers``): the env's
    own prompt as ``prompt``, ``env_class``, and the question in ``extra_info``."""
    _, info = env.reset(options={"id": item.id, "question": item.question, "golden_answers": list(item.golden_answers)})
    return {
        "data_source": data_source,
        "prompt": list(info["messages"]),
        "env_class": env_class,
        "reward_spec": {"method": "rule", "ground_truth": list(item.golden_answers)},
        "extra_info": {"id": item.id, "question": item.question, "golden_answers": list(item.golden_answers)},
    }

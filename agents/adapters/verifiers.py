"""verifiers (0.4, the ``verifiers.v1`` API prime-rl trains on): our envs as a taskset and env.

verifiers 0.4 runs an *agent* (a harness such as ``null``, a plain chat loop, over an
OpenAI-compatible model) through an ``Env`` whose ``run(task, agents)`` plays the
rest of the episode. Ours plays the user: the env's own prompt is the task's prompt,
each reply of the model is one env step, and the env's text goes back as the next
user turn, until the env ends the episode; its reward is recorded on the trace as
``env_reward`` (weight 1) with the reward components in ``trace.info``.

* :class:`DeepResearchTaskset` loads QA items (``qa``: a file, folder or ``demo``) as
  tasks carrying the env id and kwargs; :class:`DeepResearchEnv` runs them.
* verifiers finds a taskset by id, an importable top-level module that exports both
  classes in ``__all__`` (``vf-eval <id>``); ids with dots are not resolved, so a
  two-line module re-exporting them is the plug (see docs/adapters.md).

Over chat the env's text is a user message, not the continuation of the model's own
turn it is in our trainer (``research``/``search_r1``); prime-rl trains on the chat
layout verifiers records, with the env's messages masked.
"""

from __future__ import annotations

import asyncio
from typing import Any

import gymnasium as gym
import verifiers.v1 as vf

import deepresearch  # noqa: F401 - registers the env ids
from deepresearch.envs import end_episode_early, load_qa


class DeepResearchTaskData(vf.TaskData):
    """One question, and the env that poses it."""

    question: str
    golden_answers: list[str]
    env_id: str
    env_kwargs: dict[str, Any]


class DeepResearchTask(vf.Task[DeepResearchTaskData]):
    """Scored by the env (``DeepResearchEnv.run`` records ``env_reward``), not by task hooks."""


class DeepResearchTasksetConfig(vf.TasksetConfig):
    qa: str = "demo"
    split: str = "train"
    limit: int | None = None
    env_id: str = "DeepResearch-Wiki-v0"
    env_kwargs: dict[str, Any] = {"protocol": "search_r1", "max_turns": 4}


def chat_prompt(messages: list[dict[str, str]]) -> tuple[str | None, list[Any]]:
    """The env's chat messages as verifiers' (system prompt, prompt messages)."""
    system = [m["content"] for m in messages if m["role"] == "system"]
    others = [m for m in messages if m["role"] != "system"]
    if len(system) > 1 or any(m["role"] != "user" for m in others):
        raise ValueError(f"expected an optional system message and user messages, got roles {[m['role'] for m in messages]}")
    return (system[0] if system else None), [vf.UserMessage(content=m["content"]) for m in others]


class DeepResearchTaskset(vf.Taskset[DeepResearchTask, DeepResearchTasksetConfig]):
    def load(self) -> list[DeepResearchTask]:
        config = self.config
        env = gym.make(config.env_id, **config.env_kwargs)
        tasks = []
        for index, item in enumerate(load_qa(config.qa, split=config.split, limit=config.limit)):
            _, info = env.reset(options={"id": item.id, "question": item.question, "golden_answers": list(item.golden_answers)})
            system_prompt, prompt = chat_prompt(info["messages"])
            data = DeepResearchTaskData(
                idx=index, id=item.id, prompt=prompt, system_prompt=system_prompt, question=item.question,
                golden_answers=list(item.golden_answers), env_id=config.env_id, env_kwargs=dict(config.env_kwargs),
            )  # fmt: skip
            tasks.append(DeepResearchTask(data, config.task))
        env.close()
        return tasks


class DeepResearchEnvConfig(vf.EnvConfig):
    agent: vf.AgentConfig = vf.AgentConfig()


class DeepResearchEnv(vf.Env[DeepResearchEnvConfig]):
    """The env plays the user: each model reply is one step, the env's text the next user turn."""

    async def run(self, task: DeepResearchTask, agents: Any) -> None:
        data = task.data
        env = await asyncio.to_thread(gym.make, data.env_id, **data.env_kwargs)  # may load an index: off the event loop
        options = {"id": data.id, "question": data.question, "golden_answers": list(data.golden_answers)}
        await asyncio.to_thread(env.reset, options=options)
        reward, components, finished = 0.0, {}, False
        try:
            async with agents.agent.interaction(task) as interaction:
                segment = await interaction.turn()  # the prompted task: the model speaks first
                while not segment.terminated:
                    observation, reward, terminated, truncated, info = await asyncio.to_thread(env.step, segment.last_reply)
                    if terminated or truncated:
                        components, finished = dict(info.get("reward_components") or {}), True
                        break
                    segment = await interaction.turn(observation)
                if not finished:  # the agent's own limits ended it: scored as a cut-off episode
                    reward, components = await asyncio.to_thread(end_episode_early, env)
                interaction.trace.record_reward("env_reward", float(reward), 1.0)
                interaction.trace.info["reward_components"] = components
        finally:
            env.close()


__all__ = ["DeepResearchEnv", "DeepResearchTaskset"]

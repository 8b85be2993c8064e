"""The verl agent loop ``deepresearch_env``: one env episode per verl sample (imports verl).

Name it in verl's agent-loop YAML (see examples/verl/agent_loop.yaml); the entry's
other keys are the constructor's keyword arguments (verl instantiates it with hydra)::

    - name: deepresearch_env
      _target_: deepresearch.agents.adapters.verl_agent_loop.DeepResearchAgentLoop
      env_id: DeepResearch-Wiki-v0
      env_kwargs: {protocol: search_r1, corpus: /data/wiki18_index, max_turns: 4}
      max_new_tokens_per_turn: 256

The class is deliberately *not* decorated with verl's ``@register``: verl's worker
loads the YAML entries into its registry and imports this module on the first
sample, and the decorator would then replace the YAML entry with a bare
``{"_target_": ...}``, so every later sample would get the constructor defaults.

The work is done by verl-free code in ``deepresearch.agents.adapters.verl``; this
class only wires it to verl. ``make test-verl`` runs it inside verl 0.9.1.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import gymnasium as gym
from omegaconf import OmegaConf
from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopMetrics, AgentLoopOutput

import deepresearch  # noqa: F401 - registers the env ids
from deepresearch.agents.adapters.verl import (
    AsyncServerEngine,
    agent_output_fields,
    check_server_dialect,
    dropped_episode,
    question_from_row,
)
from deepresearch.agents.rollout.request import RolloutRequest
from deepresearch.agents.rollout.runner import RolloutConfig, run_rollouts
from deepresearch.agents.rollout.turns import TurnEncoder


class DeepResearchAgentLoop(AgentLoopBase):
    """``server_dialect``: ``auto`` takes verl's ``rollout.name`` (``vllm`` or ``sglang``);
    name one of those for a rollout server registered under another name."""

    def __init__(
        self,
        *args: Any,
        env_id: str = "DeepResearch-Wiki-v0",
        env_kwargs: Any = None,
        max_new_tokens_per_turn: int = 256,
        prompt_mode: str = "auto",
        server_dialect: str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.env_id = env_id
        self.env_kwargs = OmegaConf.to_container(env_kwargs) if OmegaConf.is_config(env_kwargs) else dict(env_kwargs or {})
        self.max_new_tokens_per_turn = int(max_new_tokens_per_turn)
        self.prompt_mode = prompt_mode
        self.server_dialect = check_server_dialect(self.rollout_config.name if server_dialect == "auto" else server_dialect)

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        # Off the event loop: the first make in a process loads the env's index (cached per process after).
        env = await asyncio.to_thread(gym.make, self.env_id, **self.env_kwargs)

        async def agenerate(prompt_ids: list[int], params: dict[str, Any]) -> Any:
            request = {**sampling_params, **params}
            return await self.server_manager.generate(request_id=uuid.uuid4().hex, prompt_ids=prompt_ids, sampling_params=request)

        response_length = int(self.rollout_config.response_length)
        config = RolloutConfig(
            max_new_tokens_per_turn=min(self.max_new_tokens_per_turn, response_length),  # a turn fits the episode's budget
            max_response_tokens=response_length,
            temperature=float(sampling_params.get("temperature", 1.0)),
            top_p=float(sampling_params.get("top_p", 1.0)),
        )
        engine = AsyncServerEngine(self.tokenizer, agenerate, asyncio.get_running_loop(), self.server_dialect)
        encoder = TurnEncoder.for_tokenizer(self.tokenizer, self.prompt_mode)
        reset = {"options": question_from_row(kwargs)}
        try:
            episodes, stats = await asyncio.to_thread(run_rollouts, RolloutRequest(engine, [env], [reset], [0], config, encoder))
            if episodes:
                episode = episodes[0]
            else:
                prompt, info = env.reset(**reset)
                episode = dropped_episode(encoder.encode_prompt(prompt, info.get("messages")), self.tokenizer.eos_token_id, stats.drop_reasons[0])
        finally:
            env.close()
        fields = agent_output_fields(episode, int(self.rollout_config.prompt_length), response_length)
        return AgentLoopOutput(**fields, metrics=AgentLoopMetrics())

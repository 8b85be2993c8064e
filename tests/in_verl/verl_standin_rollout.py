"""verl's trainer with the stand-in rollout server: ``actor_rollout_ref.rollout.name=hf_standin``.

Loaded into every verl process with ``VERL_USE_EXTERNAL_MODULES=verl_standin_rollout``
(it also loads the CPU platform). It registers, through verl's own registries:

* ``RolloutReplicaRegistry["hf_standin"]``: a replica whose ``launch_servers`` starts one
  ``TokenServer`` Ray actor (verl_standin_server.py; ``ScriptedTokenServer`` with
  ``VERL_STANDIN_POLICY=scripted``); verl's ``LLMServerManager`` puts it
  behind its load balancer exactly as it does a vLLM replica.
* ``_ROLLOUT_REGISTRY[("hf_standin", "async")]``: the in-worker rollout the FSDP actor
  worker builds; ``update_weights`` hands the actor's parameters, by name, to the
  server (verl's ``naive`` weight sync, before every rollout).
"""

from __future__ import annotations

import os
from typing import Any

import ray
import verl_cpu_platform  # noqa: F401 - registers the cpu platform in this process
from verl.workers.rollout import base as rollout_base
from verl.workers.rollout.replica import RolloutReplica, RolloutReplicaRegistry

NAME = "hf_standin"
# "scripted": the server answers as verl_standin_server.ScriptedTokenServer (mixed rewards per group).
POLICY_VARIABLE = "VERL_STANDIN_POLICY"


def server_actor_name(replica_rank: int) -> str:
    return f"{NAME}_server_{replica_rank}"


class StandinReplica(RolloutReplica):
    async def launch_servers(self) -> None:
        from verl_standin_server import ScriptedTokenServer, TokenServer

        name = server_actor_name(self.replica_rank)
        server_class = ScriptedTokenServer if os.environ.get(POLICY_VARIABLE) == "scripted" else TokenServer
        server = (
            ray.remote(server_class)
            .options(name=name, num_cpus=0, max_concurrency=self.max_concurrency)
            .remote(self.model_config.path, self.config.prompt_length, self.config.response_length)
        )
        self.servers = [server]
        self._server_handle = server
        self._server_address = f"{name}:0"

    def rollout_worker_use_gpu(self) -> bool:
        return False

    async def wake_up(self) -> None:
        """The stand-in keeps its weights in memory."""

    async def sleep(self) -> None:
        """The stand-in keeps its weights in memory."""


class StandinServerAdapter(rollout_base.BaseRollout):
    """The trainer-side end of the weight sync: the actor's parameters go to the server by name."""

    def __init__(self, config: Any, model_config: Any, device_mesh: Any, replica_rank: int = -1) -> None:
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", "0"))
        self.replica_rank = rank if replica_rank == -1 else replica_rank
        self.is_leader = rank == 0

    async def resume(self, tags: list[str]) -> None:
        """Nothing was released."""

    async def release(self) -> None:
        """The stand-in keeps its weights in memory."""

    async def update_weights(self, weights: Any, wire_format: str = "named_tensors", global_steps: int | None = None, **kwargs: Any) -> None:
        if wire_format != "named_tensors":
            raise NotImplementedError(f"the stand-in server takes full named tensors, not {wire_format!r}")
        named = {name: tensor.detach().to("cpu").clone() for name, tensor in weights}
        if self.is_leader:
            await ray.get_actor(server_actor_name(self.replica_rank)).load_weights.remote(named, global_steps)


RolloutReplicaRegistry.register(NAME, lambda: StandinReplica)
rollout_base._ROLLOUT_REGISTRY[(NAME, "async")] = f"{__name__}.StandinServerAdapter"

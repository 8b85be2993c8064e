"""One real episode per protocol, played by the oracle through our own rollout.

The conformance checks need an episode whose token ids were assembled exactly as a
training rollout assembles them (prompt through the template, policy ids as sampled,
env text tokenised by ``TurnEncoder``, ``loss_mask`` from ``run_rollouts``) and the
same episode as chat messages, which a trainer that re-renders would feed the
template. ``ScriptedEngine`` "samples" the oracle's turns in their canonical
tokenisation, so the ids are the ones a model writing that text would most likely
produce; where the env answers in a new chat turn, each turn also ends with the
template's end-of-turn id, as a chat model closes its own tool-call turn (the rollout
must then not close it twice). The env is the real demo-world env with BM25.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deepresearch.agents.eval.text_policies import extend_messages
from deepresearch.agents.rollout.end_of_turn import end_of_turn_ids
from deepresearch.agents.rollout.engines.base import Generation, SamplingConfig
from deepresearch.agents.rollout.episode import Episode
from deepresearch.agents.rollout.runner import RolloutConfig, run_rollouts
from deepresearch.agents.rollout.turns import TurnEncoder

# Two hops: two env observations between three policy turns, so prefixes are checked twice.
HOPS = 2


class EpisodeDropped(RuntimeError):
    """Our rollout rejected the episode (its decode check): the tokenizer cannot carry it exactly."""


class ScriptedEngine:
    """A ``RolloutEngine`` that emits given turns, one per call, as the tokenizer encodes them."""

    max_model_len: int | None = None

    def __init__(self, tokenizer: Any, turns: list[str], turn_end: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.end_of_turn_ids = end_of_turn_ids(tokenizer)
        self._turns = list(turns)
        self._turn_end = turn_end

    def generate(self, prompts: list[list[int]], sampling: SamplingConfig) -> list[Generation]:
        if len(prompts) != 1 or not self._turns:
            raise RuntimeError("the scripted engine plays one episode with one scripted turn per call")
        text = self._turns.pop(0)
        ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        if self._turn_end is not None:
            ids.append(self._turn_end)
        return [Generation(token_ids=ids, logprobs=[0.0] * len(ids), text=self.tokenizer.decode(ids), finish_reason="stop")]

    def sync_weights(self, named_tensors: Any) -> None:
        """Nothing to sync: the turns are fixed."""

    def sleep(self) -> None:
        """No accelerator memory to free."""

    def wake(self) -> None:
        """No accelerator memory to restore."""


@dataclass
class ScriptedEpisode:
    """The same episode twice: as our rollout tokenised it, and as chat messages."""

    protocol: str
    episode: Episode
    # Chat messages before each policy turn (the prompt first), and after the last one.
    conversations: list[list[dict[str, Any]]]
    observations: list[str]
    observation_messages: list[list[dict[str, Any]]]

    @property
    def final_conversation(self) -> list[dict[str, Any]]:
        return self.conversations[-1]


def multi_hop_index(env: Any) -> int:
    """The first demo question with ``HOPS`` hops (two observations to check)."""
    for index, item in enumerate(env.unwrapped.questions):
        if item.metadata.get("hops") == HOPS:
            return index
    raise ValueError(f"the env has no {HOPS}-hop question")


def play_scripted_episode(protocol: str, encoder: TurnEncoder) -> ScriptedEpisode:
    """Run the oracle's episode through ``run_rollouts`` and replay it once more as messages."""
    import gymnasium as gym

    import deepresearch  # noqa: F401 - registers the env ids
    from deepresearch.envs.oracle import OraclePolicy

    make = lambda: gym.make("DeepResearch-Wiki-v0", protocol=protocol, max_turns=HOPS + 1)  # noqa: E731
    env, replay = make(), make()
    reset = {"options": {"index": multi_hop_index(env)}}
    _, info = replay.reset(**reset)
    oracle = OraclePolicy(replay.unwrapped.protocol)
    oracle.reset(info)
    turns = [oracle.act() for _ in range(HOPS + 1)]

    opens_turns = encoder.mode == "chat" and replay.unwrapped.protocol.observation_role != "assistant"
    engine = ScriptedEngine(encoder.tokenizer, turns, encoder.turn_end_id() if opens_turns else None)
    config = RolloutConfig(max_new_tokens_per_turn=4096, max_response_tokens=16384, temperature=0.0, schedule="sync")
    episodes, stats = run_rollouts(engine, [env], [reset], [0], config, encoder)
    if not episodes:
        raise EpisodeDropped(f"the rollout dropped the episode: {'; '.join(stats.drop_reasons)}")

    messages = [dict(message) for message in info["messages"]]
    conversations, observations, observation_messages = [list(messages)], [], []
    for turn in turns:
        observation, _, _, _, step_info = replay.step(turn)
        new_messages = step_info.get("new_messages") or []
        extend_messages(messages, turn, observation, new_messages)
        conversations.append([dict(message) for message in messages])
        observations.append(observation)
        observation_messages.append(new_messages)
    env.close()
    replay.close()
    return ScriptedEpisode(protocol, episodes[0], conversations, observations[:-1], observation_messages[:-1])

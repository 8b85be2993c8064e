"""Text-level policies (no token ids): a chat endpoint, or recorded transcripts replayed.

The runner keeps the conversation in both forms the env offers: the base-model
transcript and chat messages. An observation whose protocol continues the
assistant's turn (ReSearch, Search-R1) is appended to the open assistant message;
one that opens a new turn (tool calling) arrives as ``info["new_messages"]``.
A policy returns the next turn's text, or None when it has nothing more to say
(a replay that ran out of turns); the episode is then ended and scored as it stands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from deepresearch.agents.eval.chat_client import ChatClient
from deepresearch.envs import end_episode_early


@dataclass
class TurnState:
    """What a policy sees before its turn."""

    question_id: str
    question: str
    turn: int  # 0-based index of the turn about to be written
    transcript: str
    messages: list[dict[str, Any]]
    stop: tuple[str, ...]

    @property
    def continues_assistant(self) -> bool:
        """True when the last message is an open assistant turn the policy must continue."""
        return bool(self.messages) and self.messages[-1]["role"] == "assistant"


class TextPolicy(Protocol):
    def act(self, state: TurnState) -> str | None:
        """The next policy turn, or None to stop."""
        ...


@dataclass
class TextEpisode:
    """One finished text-level episode (the fields the evaluation records)."""

    question_id: str
    question: str
    golden_answers: list[str]
    reward: float = 0.0
    reward_components: dict[str, Any] = field(default_factory=dict)
    turns: int = 0
    finish_reason: str = ""
    transcript: str = ""
    segments: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def run_text_episode(env: Any, policy: TextPolicy, reset_kwargs: dict[str, Any]) -> TextEpisode:
    """Play one episode of ``env`` with ``policy``; a policy failure ends the episode scored as it stands."""
    _, info = env.reset(**reset_kwargs)
    episode = TextEpisode(str(info.get("question_id", "")), str(info.get("question", "")), list(info.get("golden_answers", [])))
    messages = [dict(message) for message in info.get("messages", [])]
    stop = tuple(info.get("stop", ()))
    episode.transcript, episode.segments = info.get("transcript", ""), info.get("segments", [])
    while True:
        state = TurnState(episode.question_id, episode.question, episode.turns, episode.transcript, messages, stop)
        try:
            action = policy.act(state)
        except Exception as error:  # noqa: BLE001 - recorded on the item, never kills the evaluation
            episode.error = f"{type(error).__name__}: {error}"
            action = None
        if action is None:
            episode.finish_reason = "error" if episode.error else "policy_stopped"
            episode.reward, episode.reward_components = end_episode_early(env)
            return episode
        observation, reward, terminated, truncated, info = env.step(action)
        episode.turns += 1
        episode.transcript, episode.segments = info.get("transcript", ""), info.get("segments", [])
        extend_messages(messages, action, observation, info.get("new_messages") or [])
        if terminated or truncated:
            episode.reward = float(reward)
            episode.reward_components = dict(info.get("reward_components", {}))
            episode.finish_reason = "terminated" if terminated else "truncated"
            return episode


def extend_messages(messages: list[dict[str, Any]], action: str, observation: str, new_messages: list[dict[str, Any]]) -> None:
    """Add one env step to a chat conversation: a tool turn after the assistant's, or the
    observation appended to the open assistant message (protocols that continue the turn)."""
    if new_messages:
        messages.append({"role": "assistant", "content": action})
        messages.extend(dict(message) for message in new_messages)
    elif messages and messages[-1]["role"] == "assistant":
        messages[-1] = {**messages[-1], "content": messages[-1]["content"] + action + observation}
    else:
        messages.append({"role": "assistant", "content": action + observation})


class ReplayPolicy:
    """Recorded responses replayed turn by turn: the policy turns ``protocol.split_response`` finds."""

    def __init__(self, responses: dict[str, str], protocol: Any) -> None:
        self._turns = {key: [text for source, text in protocol.split_response(response) if source == "policy"] for key, response in responses.items()}

    def act(self, state: TurnState) -> str | None:
        if state.question_id not in self._turns:
            raise KeyError(f"no recorded response for question id {state.question_id!r}")
        turns = self._turns[state.question_id]
        return turns[state.turn] if state.turn < len(turns) else None


@dataclass
class ChatPolicyConfig:
    max_tokens: int = 512
    temperature: float = 0.0
    # vLLM's request extensions: continue an open assistant message and keep the stop string in the
    # text. Turn off for servers that reject unknown fields; the closing tag is then restored from the
    # reply's ``stop_reason`` or from the tag the turn left open.
    vllm_extensions: bool = True


class ChatPolicy:
    """An OpenAI-compatible chat endpoint as a policy, stopping at the protocol's stop strings."""

    def __init__(self, client: ChatClient, config: ChatPolicyConfig | None = None) -> None:
        self.client = client
        self.config = config or ChatPolicyConfig()

    def act(self, state: TurnState) -> str | None:
        params: dict[str, Any] = {"max_tokens": self.config.max_tokens, "temperature": self.config.temperature}
        if state.stop:
            params["stop"] = list(state.stop)
        if self.config.vllm_extensions:
            params["include_stop_str_in_output"] = True
            params["skip_special_tokens"] = False
            if state.continues_assistant:
                params.update(continue_final_message=True, add_generation_prompt=False)
        reply = self.client.complete(state.messages, **params)
        text = reply.text
        if reply.finish_reason == "stop":
            text = restore_stop_string(text, state.stop, reply.stop_reason)
        return text


def restore_stop_string(text: str, stop: Sequence[str], stop_reason: str | None) -> str:
    """Put back the stop string a server cut off, so the env sees a closed action tag.

    OpenAI-style servers drop the matched stop string. If the server names it, append it;
    otherwise append the closing tag whose opening tag the turn left unclosed.
    """
    if any(text.endswith(s) for s in stop):
        return text
    if stop_reason in stop:
        return text + stop_reason
    for closing in stop:
        opening = closing.replace("</", "<", 1)
        if closing.startswith("</") and text.rfind(opening) > text.rfind(closing):
            return text + closing
    return text

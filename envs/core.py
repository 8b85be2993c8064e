"""``SearchEnv``: a Gymnasium text env where the action is the model's turn and the
observation is the text the env appends.

One episode = one question. ``reset`` returns the rendered prompt; each ``step``
takes one policy turn (text up to a stop string), acts on it (search, browse,
answer, or a format error) and returns exactly the text appended to the
transcript. ``info`` carries the transcript, the spans saying who wrote every
character (so any trainer can mask env text out of the loss), the parsed action,
``tool_error`` when the backend raised (the model reads the failure; a trainer
should not score the episode) and, at the end, the reward components.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import FunctionType
from typing import Any, Literal, Sequence

import gymnasium as gym

from deepresearch.envs.datasets import QAItem
from deepresearch.envs.deadline import DEFAULT_DEADLINE_S, Deadline, DeadlineExceeded
from deepresearch.envs.protocols import Action, Protocol, get_protocol
from deepresearch.envs.protocols.base import ANSWER, INVALID, invalid, truncate
from deepresearch.envs.spaces import UnicodeText
from deepresearch.envs.tools import TOOLS, ToolBackend, ToolContext, ToolUnavailable
from deepresearch.envs.transcript import Transcript
from deepresearch.rewards import EpisodeContext, RewardFn, RewardResult, get_reward_fn

OBSERVATION_MAX_CHARS = 10_000_000


@dataclass
class EnvConfig:
    """Episode rules shared by the Wiki and Web envs."""

    # A protocol name (``research``, ``search_r1``, ``deepresearcher``, ``tool_call``) or a ``Protocol`` instance of your own.
    protocol: str | Protocol = "research"
    # Registered tool names a tool-calling protocol offers (``register_tool``); None: the protocol's own.
    tools: tuple[str, ...] | None = None
    # A registered reward name (``deepresearch.rewards.REWARD_PRESETS``, ``register_reward``), a reward
    # callable ``fn(response, golden_answers, tags, *, episode=None) -> RewardResult``; None = the protocol's default.
    reward: str | RewardFn | None = None
    top_k: int = 3
    # Policy turns per episode; the episode is truncated after this many without an answer.
    max_turns: int = 4
    max_observation_chars: int = 6_000
    max_action_chars: int = 16_000
    max_queries_per_call: int = 4
    # Each step's tool call is handed a deadline this many seconds after the step began.
    tool_deadline_s: float = DEFAULT_DEADLINE_S
    # "feedback": tell the model what was wrong and continue; "terminate": end the episode.
    on_format_error: Literal["feedback", "terminate"] = "feedback"

    def __post_init__(self) -> None:
        if self.top_k < 1 or self.max_turns < 1 or self.max_queries_per_call < 1:
            raise ValueError("top_k, max_turns and max_queries_per_call must be >= 1")
        if self.on_format_error not in ("feedback", "terminate"):
            raise ValueError(f"on_format_error must be 'feedback' or 'terminate', not {self.on_format_error!r}")
        if not self.tool_deadline_s > 0:
            raise ValueError(f"tool_deadline_s must be > 0, got {self.tool_deadline_s}")
        if isinstance(self.tools, str):
            raise ValueError(f"tools must be a list of registered tool names, not the string {self.tools!r}")
        if self.tools is not None:
            self.tools = tuple(self.tools)
        self.make_protocol()  # an unknown protocol or tool fails here, before any index is loaded

    def make_protocol(self) -> Protocol:
        protocol = get_protocol(self.protocol)
        return protocol if self.tools is None else protocol.with_tools(self.tools)


def encodable(text: str) -> str:
    """``text`` with anything UTF-8 cannot encode (lone surrogates) replaced by ``?``."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def _reward_label(reward: str | RewardFn) -> str:
    """How an error names a reward: a registered name, a function's name, or a reward object's class."""
    if isinstance(reward, str):
        return repr(reward)
    return reward.__qualname__ if isinstance(reward, FunctionType) else type(reward).__qualname__


def checked_reward_fn(reward: str | RewardFn | None, protocol: Protocol) -> RewardFn:
    """The reward fn, tried once on an empty response so that one that refuses the protocol
    (``search_r1_format`` with tool calls) or breaks the contract fails at ``gym.make``, not when
    the first episode of a training run ends."""
    reward = reward or protocol.default_reward
    reward_fn = get_reward_fn(reward)
    label = _reward_label(reward)
    try:
        result = reward_fn("", [""], protocol.tags, episode=EpisodeContext(prompt="", env_spans=(), finished=True))
    except ValueError as error:
        raise ValueError(f"reward preset {label} does not fit protocol {protocol.name!r}: {error}") from None
    except Exception as error:  # noqa: BLE001 - a user's function: say which one broke, and how
        raise ValueError(f"reward {label} failed on an empty response: {type(error).__name__}: {error}") from error
    if not isinstance(result, RewardResult):
        raise TypeError(f"reward {label} must return a RewardResult, not {type(result).__name__}")
    return reward_fn


class SearchEnv(gym.Env[str, str]):
    # A text env renders on demand; render_fps only tells Gymnasium tools a pace to replay at.
    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        backend: ToolBackend,
        questions: Sequence[QAItem],
        config: EnvConfig | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.config = config or EnvConfig()
        self.protocol = self.config.make_protocol()
        self.backend = backend
        self.questions = list(questions)
        self.reward_fn = checked_reward_fn(self.config.reward, self.protocol)
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', not {render_mode!r}")
        self.render_mode = render_mode
        self.observation_space = UnicodeText(OBSERVATION_MAX_CHARS)
        self.action_space = UnicodeText(self.config.max_action_chars)
        self._item: QAItem | None = None
        self._transcript: Transcript | None = None
        self._done = True
        self._turns = self._searches = self._format_errors = 0
        self._last_query: str | None = None
        self._tool_error: str | None = None

    # ----------------------------------------------------------------- reset
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        self._item = self._choose_item(options or {})
        prompt = self.protocol.build_prompt(self._item.question, browse=self.backend.supports_browse)
        self._transcript = Transcript(prompt.text)
        self._done = False
        self._turns = self._searches = self._format_errors = 0
        self._last_query = None
        self.backend.reset()  # e.g. the web backend forgets which URLs searches returned
        info = self._info()
        info["messages"] = [dict(message) for message in prompt.messages]
        info["stop"] = list(self.protocol.stop)
        info["observation_role"] = self.protocol.observation_role
        info["metadata"] = dict(self._item.metadata)
        return prompt.text, info

    def _choose_item(self, options: dict[str, Any]) -> QAItem:
        if "question" in options:
            answers = options.get("golden_answers", ())
            answers = (answers,) if isinstance(answers, str) else tuple(answers)
            return QAItem(
                id=str(options.get("id", "custom")),
                question=str(options["question"]),
                golden_answers=answers,
                metadata=dict(options.get("metadata", {})),
            )
        if not self.questions:
            raise ValueError("this env has no questions: pass a dataset or options={'question': ...}")
        if "index" in options:
            return self.questions[int(options["index"]) % len(self.questions)]
        return self.questions[int(self.np_random.integers(len(self.questions)))]

    # ------------------------------------------------------------------ step
    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._transcript is None or self._done:
            raise RuntimeError("call reset() before step(), and again after an episode ends")
        text = action if isinstance(action, str) else ""
        self._transcript.append(text, "policy")
        self._turns += 1
        parsed = self._parse(action)

        observation, messages, terminated = "", [], False
        self._tool_error = None
        if parsed.kind == ANSWER:
            terminated = True
        elif parsed.kind == INVALID:
            self._format_errors += 1
            if self.config.on_format_error == "terminate":
                terminated = True
            else:
                observation = self.protocol.wrap_error(parsed.error or "invalid action")
                messages = self.protocol.observation_messages(parsed.error or "invalid action")
        else:
            body = self._run_tool(parsed)
            observation = self.protocol.wrap_observation(body)
            messages = self.protocol.observation_messages(body)

        truncated = not terminated and self._turns >= self.config.max_turns
        # Env text may echo the action (a query, a URL) and pages may carry lone surrogates:
        # what the env writes is always encodable, or ``obs.encode()`` and the tokenizer raise.
        observation = encodable(observation)
        messages = [{**m, "content": encodable(m["content"])} if isinstance(m.get("content"), str) else m for m in messages]
        self._transcript.append(observation, "env")
        info = self._info()
        info["action"] = parsed.to_info()
        info["new_messages"] = messages
        if self._tool_error is not None:
            info["tool_error"] = self._tool_error
        reward = 0.0
        if terminated or truncated:
            self._done = True
            result = self._score(finished=terminated)
            reward = result.reward
            info["reward_components"] = self._components(result)
        return observation, reward, terminated, truncated, info

    def _parse(self, action: Any) -> Action:
        if not isinstance(action, str):
            return invalid(f"the action must be text, got {type(action).__name__}")
        if len(action) > self.config.max_action_chars:
            return invalid(f"the turn is too long ({len(action)} characters; the limit is {self.config.max_action_chars})")
        if not action.strip():
            return invalid("the turn is empty")
        try:
            parsed = self.protocol.parse(action)
        except Exception as error:  # a custom protocol's bug must not kill a training run
            return invalid(f"could not parse the turn ({type(error).__name__})")
        if parsed.is_tool_call and (parsed.kind not in TOOLS or not parsed.inputs):
            return invalid(f"there is no tool {parsed.kind!r}" if parsed.kind not in TOOLS else f"the {parsed.kind} call has no inputs")
        return parsed

    def _run_tool(self, action: Action) -> str:
        """Run the registered tool the action names; any failure becomes text the model reads."""
        tool = TOOLS[action.kind]
        inputs = action.inputs[: self.config.max_queries_per_call]
        if tool.counts_as_search:
            self._searches += len(inputs)
        context = ToolContext(
            backend=self.backend,
            protocol=self.protocol,
            question=self._item.question if self._item else "",
            top_k=self.config.top_k,
            last_query=self._last_query,
            deadline=Deadline(self.config.tool_deadline_s),
        )
        if tool.counts_as_search:
            self._last_query = inputs[-1]
        try:
            body = tool.render(tool.execute(inputs, context), inputs, context)
        except ToolUnavailable as error:
            body = str(error)
        except DeadlineExceeded:
            # Shown to the model, and reported in ``info["tool_error"]``: a trainer drops such an
            # episode (the backend was down or stuck, not the policy wrong) instead of scoring it.
            body = f"The {action.called or tool.name} call timed out ({context.deadline.describe()})."
            self._tool_error = body
        except Exception as error:  # noqa: BLE001 - a tool's failure is an observation, not the end of a training run
            body = f"The {action.called or tool.name} failed: {type(error).__name__}: {error}"
            self._tool_error = body
        return truncate(body, self.config.max_observation_chars)

    # --------------------------------------------------------------- scoring
    def end_episode(self) -> tuple[float, dict[str, Any]]:
        """End the episode now and score what was written (a trainer's token budget ran out)."""
        if self._transcript is None or self._done:
            raise RuntimeError("no episode is running")
        self._done = True
        result = self._score(finished=False)
        return result.reward, self._components(result)

    def _score(self, finished: bool) -> RewardResult:
        """Score from what the env knows: its prompt, the spans it wrote, and whether the
        policy's own turn ended the episode (``finished``) or a budget cut it short."""
        assert self._transcript is not None and self._item is not None
        offset = self._transcript.prompt_length
        text = self._transcript.text
        env_spans = tuple(
            (segment["start"] - offset, segment["end"] - offset) for segment in self._transcript.segments() if segment["source"] == "env"
        )
        episode = EpisodeContext(prompt=text[:offset], env_spans=env_spans, finished=finished)
        return self.reward_fn(text[offset:], list(self._item.golden_answers), self.protocol.tags, episode=episode)

    def _components(self, result: RewardResult) -> dict[str, Any]:
        components = dict(result.components)
        components.update(turns=self._turns, searches=self._searches, format_errors=self._format_errors)
        return components

    def _info(self) -> dict[str, Any]:
        assert self._transcript is not None and self._item is not None
        return {
            "transcript": self._transcript.text,
            "segments": self._transcript.segments(),
            "question": self._item.question,
            "golden_answers": list(self._item.golden_answers),
            "question_id": self._item.id,
            "turn": self._turns,
        }

    def close(self) -> None:
        self.backend.close()
        super().close()

    # ---------------------------------------------------------------- render
    def render(self) -> str | None:
        """``ansi``: the transcript with env-written text dimmed (it is masked in training)."""
        if self.render_mode != "ansi" or self._transcript is None:
            return None
        text = self._transcript.text
        out = []
        for segment in self._transcript.segments():
            piece = text[segment["start"] : segment["end"]]
            out.append(f"\x1b[2m{piece}\x1b[0m" if segment["source"] == "env" else piece)
        return "".join(out)

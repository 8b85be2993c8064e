"""TRL's native environment mode: ``GRPOTrainer(environment_factory=...)`` over our envs (TRL >= 1.16).

In this mode TRL owns the whole rollout: it renders the prompt with the chat template
and the tools' JSON schemas, generates, parses the model's tool calls with the
template's response parser, calls the environment's public methods as tools, appends
their results as ``tool`` messages and masks those tokens out of its loss
(``tool_mask``). An environment is an object with ``reset(**row)`` and one public
method per tool; every other public method would become a tool too, so the class
below exposes exactly ``reset`` and the protocol's tools (built per protocol from its
``ProtocolTags``), nothing else.

Each tool call is one step of our env with the protocol's canonical text for that call
(``Protocol.tool_action``); the tool's result is the env's tool-turn content, so what
TRL masks is exactly what our env wrote. TRL ends a rollout when the model replies
without a tool call; :func:`environment_reward` (pass it in ``reward_funcs``) steps
the env with that final reply and returns the env's own reward, so TRL optimises the
env's score. The env therefore sees each call's arguments, not the words around it
(the format rules read the canonical calls, the final reply and the env's text).

Only tool-calling protocols fit (``tool_call``, ``deepresearcher``): ``research`` and
``search_r1`` put the search inside the model's own turn, which TRL's tool loop cannot
express; use ``TRLRolloutAdapter`` (``rollout_func``) for them.

    make_env = lambda: gym.make("DeepResearch-Wiki-v0", protocol="tool_call")
    factory = trl_environment_factory(make_env)
    trainer = GRPOTrainer(model, reward_funcs=environment_reward, train_dataset=trl_environment_dataset(make_env, items),
                          environment_factory=factory, args=GRPOConfig(...), processing_class=tokenizer)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from deepresearch.envs import QAItem, end_episode_early
from deepresearch.rewards import ProtocolTags, ToolSpec

# Dataset columns ``reset`` reads (TRL passes every column of the row).
ROW_OPTIONS = ("id", "question", "golden_answers")


class TRLToolEnvironment:
    """One of our envs as a TRL environment; subclasses add the protocol's tools as methods."""

    def __init__(self, env: Any) -> None:
        self._env = env
        self._protocol = env.unwrapped.protocol
        self._done = True
        self._reward = 0.0
        self._tool_results: list[str] = []

    @property
    def reward(self) -> float:
        """The episode's reward once it has ended (0.0 before)."""
        return self._reward

    @property
    def tool_results(self) -> list[str]:
        """What each tool call of this episode returned, in order (properties are not tools to TRL)."""
        return list(self._tool_results)

    def reset(self, **row: Any) -> str:
        """Start the row's question; returns the env's user message, which TRL appends to the prompt's."""
        options = {key: row[key] for key in ROW_OPTIONS if key in row}
        _, info = self._env.reset(options=options)
        self._done, self._reward, self._tool_results = False, 0.0, []
        return str(info["messages"][-1]["content"])

    def _call(self, tool: ToolSpec, inputs: Any) -> str:
        if self._done:
            return "The episode is over (its turn limit is reached): write your final answer."
        values = [inputs] if isinstance(inputs, str) else [str(value) for value in inputs or []]
        _, reward, terminated, truncated, info = self._env.step(self._protocol.tool_action(tool.name, values))
        self._record_end(reward, terminated or truncated)
        # The tool turn's content (TRL frames it with the chat template, as our chat rollouts do).
        body = "".join(str(message["content"]) for message in info["new_messages"])
        self._tool_results.append(body)
        return body

    def _finish(self, final_text: str | None) -> float:
        """Step the env with the model's final reply (unless a turn limit already ended it); its reward.

        ``None``: TRL stopped on a tool call (its iteration cap, or a tool result it dropped because
        it would pass ``max_completion_length``): the episode is scored as it stands."""
        if not self._done and final_text is not None:
            _, reward, terminated, truncated, _ = self._env.step(final_text)
            self._record_end(reward, terminated or truncated)
        if not self._done:  # no answer and turns remain: score the episode as it stands
            self._reward, _ = end_episode_early(self._env)
            self._done = True
        return self._reward

    def _record_end(self, reward: float, ended: bool) -> None:
        if ended:
            self._done, self._reward = True, float(reward)


def tool_method(tool: ToolSpec) -> Callable[..., str]:
    """A method TRL can show as a tool: its name, one ``list[str]`` argument and a Google-style docstring
    (TRL reads the JSON schema from the signature, the type hints and the docstring)."""

    def method(self: TRLToolEnvironment, **arguments: Any) -> str:
        return self._call(tool, arguments.get(tool.argument))

    method.__name__ = method.__qualname__ = tool.name
    method.__doc__ = f"{tool.description}\n\nArgs:\n    {tool.argument}: {tool.argument_description}\n\nReturns:\n    The results as the environment shows them."
    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
                  inspect.Parameter(tool.argument, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=list[str])]
    method.__signature__ = inspect.Signature(parameters, return_annotation=str)  # type: ignore[attr-defined]
    method.__annotations__ = {tool.argument: list[str], "return": str}
    return method


def tool_environment_class(tags: ProtocolTags, browse: bool) -> type[TRLToolEnvironment]:
    """The environment class for a tool-calling protocol: one method per tool (browsing tools only when
    the env can browse)."""
    if not tags.uses_tools:
        raise ValueError(
            f"protocol {tags.name!r} searches inside the model's own turn, which TRL's tool loop cannot express; "
            "use TRLRolloutAdapter (rollout_func) for it, or a tool-calling protocol (tool_call, deepresearcher)"
        )
    methods = {tool.name: tool_method(tool) for tool in tags.tools if browse or not tool.takes_urls}
    return type(f"DeepResearch{tags.name.title().replace('_', '')}Environment", (TRLToolEnvironment,), methods)


def trl_environment_factory(make_env: Callable[[], Any]) -> Callable[[], TRLToolEnvironment]:
    """``environment_factory`` for ``trl.GRPOTrainer``: each call wraps a fresh env from ``make_env``."""
    probe = make_env()
    core = probe.unwrapped
    environment_class = tool_environment_class(core.protocol.tags, core.backend.supports_browse)
    probe.close()

    def factory() -> TRLToolEnvironment:
        return environment_class(make_env())

    return factory


def trl_environment_dataset(make_env: Callable[[], Any], questions: Sequence[QAItem]) -> Any:
    """A ``datasets.Dataset`` for environment mode: the env's own prompt messages, whose last (user)
    message ``reset`` fills with the question, and the columns ``reset`` reads."""
    from datasets import Dataset

    probe = make_env()
    core = probe.unwrapped
    rows: dict[str, list[Any]] = {"prompt": [], "id": [], "question": [], "golden_answers": []}
    for item in questions:
        messages = [dict(message) for message in core.protocol.build_prompt(item.question, browse=core.backend.supports_browse).messages]
        messages[-1]["content"] = ""
        rows["prompt"].append(messages)
        rows["id"].append(item.id)
        rows["question"].append(item.question)
        rows["golden_answers"].append(list(item.golden_answers))
    probe.close()
    return Dataset.from_dict(rows)


def final_reply(messages: Sequence[dict[str, Any]]) -> str | None:
    """The model's last reply as text (TRL's parser splits ``<think>`` into ``reasoning_content``);
    None when the rollout ended on a tool call rather than a reply."""
    last = messages[-1] if messages else {}
    if last.get("role") != "assistant" or last.get("tool_calls"):
        return None
    reasoning = last.get("reasoning_content")
    content = str(last.get("content") or "")
    return f"<think>{reasoning}</think>\n{content}" if reasoning else content


def environment_reward(completions: Sequence[Any], environments: Sequence[TRLToolEnvironment] | None = None, **_: Any) -> list[float]:
    """TRL reward function: each rollout's env scores the model's final reply; returns the env's rewards."""
    if environments is None:
        raise ValueError("environment_reward needs TRL's environments: pass environment_factory=trl_environment_factory(...)")
    return [environment._finish(final_reply(completion)) for completion, environment in zip(completions, environments)]

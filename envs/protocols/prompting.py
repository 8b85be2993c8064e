"""Prompts supplied by the user: the original wording of a paper whose prompt we do not ship.

A ``PromptTemplate`` is a user message with ``{question}`` where the question goes and,
optionally, a system message. Protocols that take a ``prompt_template`` (``search_r1``,
``deepresearcher``) use it instead of our wording, so a released checkpoint can be
evaluated on the exact prompt it was trained with. ``docs/protocols.md`` says where each
original keeps its prompt.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from deepresearch.envs.protocols.base import Prompt

PLACEHOLDER = "{question}"


@dataclass(frozen=True)
class PromptTemplate:
    """``user`` holds ``{question}``; ``system`` is an optional system message.

    Chat form: ``[system?, user]`` messages. Base-model form (the env's reset
    observation): the user message, after the system message and a blank line when
    there is one. Only ``{question}`` is filled in (literally: other braces, such as
    ``\\boxed{}`` or JSON, are left alone); fill anything else (a date) in yourself.
    """

    user: str
    system: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.user, str) or PLACEHOLDER not in self.user:
            raise ValueError(f"a prompt template's user message must contain {PLACEHOLDER}, got {self.user!r:.80}")

    @classmethod
    def coerce(cls, template: PromptTemplate | str | os.PathLike[str]) -> PromptTemplate:
        """A template as given: a ``PromptTemplate``, the user message's text, or a file holding it."""
        if isinstance(template, PromptTemplate):
            return template
        if isinstance(template, os.PathLike):
            return cls(Path(template).read_text(encoding="utf-8"))
        if isinstance(template, str):
            return cls(template)
        raise TypeError(f"prompt_template must be a PromptTemplate, a string or a path, not {type(template).__name__}")

    def render(self, question: str) -> Prompt:
        user = self.user.replace(PLACEHOLDER, question)
        if self.system is None:
            return Prompt(text=user, messages=[{"role": "user", "content": user}])
        messages = [{"role": "system", "content": self.system}, {"role": "user", "content": user}]
        return Prompt(text=f"{self.system}\n\n{user}", messages=messages)


def optional_template(template: PromptTemplate | str | os.PathLike[str] | None) -> PromptTemplate | None:
    """A protocol's ``prompt_template`` argument: None keeps our wording."""
    return None if template is None else PromptTemplate.coerce(template)

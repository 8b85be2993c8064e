"""Search-R1: ``<search>``, ``<information>`` and ``<answer>`` tags, EM reward.

Observations follow Search-R1's rendering byte for byte
(``\n\n<information>Doc 1(Title: "T") text\nDoc 2(...) …</information>\n\n``),
so transcripts produced here look exactly like the ones its checkpoints were
trained and evaluated on. The prompt is our wording by default; pass
``prompt_template=`` (Search-R1 keeps its own in ``make_prefix`` of
``scripts/data_process/nq_search.py``) to use the original text. Where we differ:
the retry message after a turn without an action names the tags without writing a
tag pair (Search-R1's writes ``<answer> and </answer>``, which its own EM reward then
reads as the answer "and"), observations are cut in characters (``max_observation_chars``)
rather than at 500 tokens, and a turn may also end at ``</browse>`` on the web.
"""

from __future__ import annotations

import os
from typing import Sequence

from deepresearch.envs.documents import Document
from deepresearch.envs.protocols.base import Prompt, Protocol
from deepresearch.envs.protocols.prompting import PromptTemplate, optional_template
from deepresearch.rewards import ProtocolTags

TAGS = ProtocolTags(name="search_r1", think="think", call="search", observation="information", answer="answer", browse="browse")

INSTRUCTIONS = (
    "Answer the given question. Always reason inside <think> and </think> first, and again "
    "each time you receive new information. If you are missing some knowledge, call the "
    "search engine with <search> query </search>; its top results come back between "
    "<information> and </information>. You may search as many times as you want. When no "
    "more knowledge is needed, give the answer directly inside <answer> and </answer>, "
    "without explanation, for example <answer> Beijing </answer>."
)

BROWSE_INSTRUCTIONS = (
    " To read a page from the results, put its URL between <browse> and </browse>; the relevant "
    "passages come back between <information> and </information>."
)

# Written outside any observation block, so it names the tags without writing a tag pair:
# a literal "<answer> and </answer>" here would be read as the policy's answer.
RETRY_MESSAGE = (
    "\nMy previous action is invalid. To search, I must put the query inside the search tags. "
    "To give the final answer, I must put it inside the answer tags. Let me try again.\n"
)


def render_document(index: int, document: Document) -> str:
    """Search-R1's passage line: the raw first line of ``contents`` (quotes kept) is the title."""
    title, _, text = document.contents.partition("\n")
    return f"Doc {index}(Title: {title}) {text}"


class SearchR1Protocol(Protocol):
    tags = TAGS
    default_reward = "search_r1"
    observation_prefix = "\n\n<information>"
    observation_suffix = "</information>\n\n"

    def __init__(self, prompt_template: PromptTemplate | str | os.PathLike[str] | None = None) -> None:
        self.prompt_template = optional_template(prompt_template)

    def build_prompt(self, question: str, browse: bool = False) -> Prompt:
        """Search-R1's data scripts strip the question and end it with ``?``; a template is used as given."""
        question = question.strip()
        if not question.endswith("?"):
            question += "?"
        if self.prompt_template is not None:
            return self.prompt_template.render(question)
        instructions = INSTRUCTIONS + (BROWSE_INSTRUCTIONS if browse else "")
        user = f"{instructions} Question: {question}\n"
        return Prompt(text=user, messages=[{"role": "user", "content": user}])

    def format_results(self, queries: Sequence[str], results: Sequence[Sequence[Document]]) -> str:
        """Search-R1's result text: one ``Doc i(Title: ...) text`` line per document, stripped."""
        documents = [document for batch in results for document in batch]
        return "\n".join(render_document(i, d) for i, d in enumerate(documents, start=1)).strip()

    def wrap_error(self, message: str) -> str:
        return RETRY_MESSAGE

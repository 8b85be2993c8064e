"""ReSearch (arXiv 2503.19470): search inside the reasoning chain.

The model reasons in ``<think>``, asks ``<search>query</search>``, reads the env's
``<result>…</result>`` and ends with ``<answer>… \\boxed{X} …</answer>``.
"""

from __future__ import annotations

from typing import Sequence

from deepresearch.envs.documents import Document
from deepresearch.envs.protocols.base import Prompt, Protocol
from deepresearch.rewards import ProtocolTags

TAGS = ProtocolTags(
    name="research", think="think", call="search", observation="result", answer="answer", boxed_answer=True, browse="browse"
)

INSTRUCTIONS = (
    "Answer the question by reasoning step by step, using a Wikipedia search tool whenever "
    "you need a fact. Put your reasoning inside <think> </think>. To search, write a query "
    "inside <search> </search>; the results will then appear inside <result> </result>. You "
    "may search as often as you need. When you are sure, give the final answer inside "
    "<answer> </answer>, with the short answer itself in \\boxed{}, for example "
    "<answer> The capital is \\boxed{Paris} </answer>."
)


BROWSE_INSTRUCTIONS = (
    " To read a page from the results, write its URL inside <browse> </browse>; the relevant "
    "passages appear inside <result> </result>."
)


class ResearchProtocol(Protocol):
    tags = TAGS
    default_reward = "research"
    observation_prefix = "\n<result>\n"
    observation_suffix = "\n</result>\n"

    def build_prompt(self, question: str, browse: bool = False) -> Prompt:
        instructions = INSTRUCTIONS + (BROWSE_INSTRUCTIONS if browse else "")
        text = (
            "A conversation between a User and an Assistant who answers with the help of a "
            f"search tool. {instructions}\nUser: {question}\nAssistant:"
        )
        messages = [
            {"role": "system", "content": instructions},
            {"role": "user", "content": question},
        ]
        return Prompt(text=text, messages=messages)

    def format_results(self, queries: Sequence[str], results: Sequence[Sequence[Document]]) -> str:
        documents = [document for batch in results for document in batch]
        if not documents:
            return "No results found."
        return "\n\n".join(document.contents for document in documents)

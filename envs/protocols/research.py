"""ReSearch (arXiv 2503.19470): search inside the reasoning chain, as the paper's code runs it.

The model reasons in ``<think>``, asks ``<search>query</search>``, reads the env's
``<result>`` block and ends with ``<answer>… \\boxed{X} …</answer>``. The prompts are
ReSearch's, character for character (base template and instruct system prompt of
Agent-RL/ReSearch @3b2fd14), and so is the result framing (`` <result>\\n`` + the
documents' contents joined by blank lines + ``\\n</result>``). Where we differ: a turn
also ends at ``</answer>`` (ReSearch lets the model write on to its EOS), an invalid
turn gets feedback in a result block instead of ending the episode, ``max_turns``
applies, and the web env adds one sentence offering ``<browse>``. The default reward is
ReSearch's own (``research``); ``research_strict`` is ours.
"""

from __future__ import annotations

from typing import Sequence

from deepresearch.envs.documents import Document
from deepresearch.envs.protocols.base import Prompt, Protocol
from deepresearch.rewards import ProtocolTags

TAGS = ProtocolTags(
    name="research", think="think", call="search", observation="result", answer="answer", boxed_answer=True, browse="browse"
)

# The base-model prompt; ``{prompt}`` is the question.
BASE_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. During thinking, the assistant can invoke the wikipedia "
    "search tool to search for fact information about specific topics if needed. The reasoning "
    "process and answer are enclosed within <think> </think> and <answer> </answer> tags "
    "respectively, and the search query and result are enclosed within <search> </search> and "
    "<result> </result> tags respectively. For example, <think> This is the reasoning process. "
    "</think> <search> search query here </search> <result> search result here </result> <think> "
    "This is the reasoning process. </think> <answer> The final answer is \\[ \\boxed{answer here} "
    "\\] </answer>. In the last part of the answer, the final exact answer is enclosed within "
    "\\boxed{} with latex format. User: {prompt}. Assistant:"
)

# The instruct models' system message; the user message is the question.
SYSTEM_PROMPT = (
    "You are a helpful assistant that can solve the given question step by step with the help of "
    "the wikipedia search tool. Given a question, you need to first think about the reasoning "
    "process in the mind and then provide the answer. During thinking, you can invoke the "
    "wikipedia search tool to search for fact information about specific topics if needed. The "
    "reasoning process and answer are enclosed within <think> </think> and <answer> </answer> "
    "tags respectively, and the search query and result are enclosed within <search> </search> "
    "and <result> </result> tags respectively. For example, <think> This is the reasoning "
    "process. </think> <search> search query here </search> <result> search result here "
    "</result> <think> This is the reasoning process. </think> <answer> The final answer is \\[ "
    "\\boxed{answer here} \\] </answer>. In the last part of the answer, the final exact answer is "
    "enclosed within \\boxed{} with latex format."
)

BROWSE_INSTRUCTIONS = (
    " To read a page from the results, write its URL inside <browse> </browse>; the relevant "
    "passages appear inside <result> </result>."
)


class ResearchProtocol(Protocol):
    tags = TAGS
    default_reward = "research"
    observation_prefix = " <result>\n"
    observation_suffix = "\n</result>"

    def build_prompt(self, question: str, browse: bool = False) -> Prompt:
        extra = BROWSE_INSTRUCTIONS if browse else ""
        template = BASE_TEMPLATE.replace(" User: {prompt}", extra + " User: {prompt}")
        messages = [{"role": "system", "content": SYSTEM_PROMPT + extra}, {"role": "user", "content": question}]
        return Prompt(text=template.replace("{prompt}", question), messages=messages)

    def format_results(self, queries: Sequence[str], results: Sequence[Sequence[Document]]) -> str:
        """ReSearch's result text: every document's ``contents`` followed by a blank line, stripped."""
        return "".join(document.contents + "\n\n" for batch in results for document in batch).strip()

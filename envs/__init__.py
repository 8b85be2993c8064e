"""Gymnasium text environments for search-augmented reasoning.

    import gymnasium as gym
    import deepresearch  # registers the env ids

    env = gym.make("DeepResearch-Wiki-v0", protocol="research")
    prompt, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step("<search> Velmora Quistad </search>")
    # obs is exactly the text the env appended; info["segments"] says who wrote what.

Heavy libraries (torch, sentence-transformers, FAISS, requests) are imported only
by the code paths that need them.
"""

from deepresearch.envs.core import EnvConfig, SearchEnv
from deepresearch.envs.datasets import QAItem, load_qa
from deepresearch.envs.documents import Document, read_corpus
from deepresearch.envs.protocols import PROTOCOLS, Action, DeepResearcherProtocol, Prompt, PromptTemplate, Protocol, get_protocol
from deepresearch.envs.question_env import QuestionEnv, as_question_env, end_episode_early, question_count, question_reset
from deepresearch.envs.retrieval import (
    BM25Config,
    BM25Retriever,
    DenseConfig,
    DenseRetriever,
    IndexDirError,
    NullRetriever,
    Retriever,
    load_retriever,
)
from deepresearch.envs.threaded_stepper import ThreadedEnvStepper
from deepresearch.envs.tools import (
    TOOLS,
    PageResult,
    RetrieverBackend,
    Tool,
    ToolBackend,
    ToolContext,
    ToolUnavailable,
    get_tool,
    register_tool,
)
from deepresearch.envs.wiki import make_wiki_env

__all__ = [
    "Action",
    "BM25Config",
    "BM25Retriever",
    "DenseConfig",
    "DenseRetriever",
    "DeepResearcherProtocol",
    "Document",
    "EnvConfig",
    "IndexDirError",
    "NullRetriever",
    "PROTOCOLS",
    "PageResult",
    "Prompt",
    "PromptTemplate",
    "Protocol",
    "QAItem",
    "QuestionEnv",
    "Retriever",
    "RetrieverBackend",
    "SearchEnv",
    "TOOLS",
    "ThreadedEnvStepper",
    "Tool",
    "ToolBackend",
    "ToolContext",
    "ToolUnavailable",
    "as_question_env",
    "end_episode_early",
    "get_protocol",
    "get_tool",
    "load_qa",
    "load_retriever",
    "make_wiki_env",
    "question_count",
    "question_reset",
    "read_corpus",
    "register_tool",
]

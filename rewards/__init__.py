"""Answer metrics, answer extraction, format checks and reward presets (pure Python).

    from deepresearch.envs import get_protocol
    from deepresearch.rewards import compute_reward, extract_answer, f1_score

    tags = get_protocol("search_r1").tags               # the protocol's vocabulary
    response = "<think>Capital of France.</think>\\n<answer>Paris</answer>"
    extract_answer(response, tags)                      # 'Paris'
    f1_score("the Paris", ["Paris", "Paris, France"])   # 1.0
    compute_reward("search_r1", response, ["Paris"], tags).reward  # 1.0

``response`` is always the text after the prompt (policy turns plus the env's
observation blocks), never the prompt itself; what else is known (the prompt, the
spans the env wrote, whether the policy finished) comes as ``episode=EpisodeContext(...)``.
Presets named after a paper (``research``, ``search_r1``, ``search_r1_format``,
``deepresearcher``) give that paper's reward on every input (``rewards.replicas``);
``*_strict`` are our own rules; ``register_reward(name, fn)`` adds yours. Every rule reads the tag names from the
``ProtocolTags`` it is given, so a protocol of your own is scored like ours.
This package imports nothing heavy and nothing else of ours.
"""

from deepresearch.rewards.extraction import count_searches, extract_answer, extract_boxed
from deepresearch.rewards.format_checks import FormatCheck, check_format, check_search_r1_structure
from deepresearch.rewards.metrics import exact_match, f1_score, normalize_answer, substring_match
from deepresearch.rewards.presets import REWARD_PRESETS, StrictSearchR1FormatReward, compute_reward, get_reward_fn, register_reward
from deepresearch.rewards.replicas import DeepResearcherReward, ResearchReward, SearchR1FormatReward, SearchR1Reward
from deepresearch.rewards.scoring import EpisodeContext, RewardFn, RewardResult, ScoringContext
from deepresearch.rewards.tags import ProtocolTags, ToolSpec, parse_tool_call
from deepresearch.rewards.terms import WeightedReward

__all__ = [
    "REWARD_PRESETS",
    "DeepResearcherReward",
    "EpisodeContext",
    "FormatCheck",
    "ProtocolTags",
    "RewardFn",
    "ResearchReward",
    "RewardResult",
    "ScoringContext",
    "SearchR1FormatReward",
    "SearchR1Reward",
    "StrictSearchR1FormatReward",
    "ToolSpec",
    "WeightedReward",
    "check_format",
    "check_search_r1_structure",
    "compute_reward",
    "count_searches",
    "exact_match",
    "extract_answer",
    "extract_boxed",
    "f1_score",
    "get_reward_fn",
    "normalize_answer",
    "parse_tool_call",
    "register_reward",
    "substring_match",
]

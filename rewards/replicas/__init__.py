"""The papers' reward rules, re-implemented to give the original's value on every input.

Each replica's docstring states the input that reproduces the original (what the
original decoded, and how ``episode`` supplies the rest) and where it is ill-defined.
``docs/protocols.md`` lists the rules side by side with our ``*_strict`` variants.
"""

from deepresearch.rewards.replicas.deepresearcher import DeepResearcherReward
from deepresearch.rewards.replicas.research import ResearchReward
from deepresearch.rewards.replicas.search_r1 import SearchR1FormatReward, SearchR1Reward

__all__ = ["DeepResearcherReward", "ResearchReward", "SearchR1FormatReward", "SearchR1Reward"]

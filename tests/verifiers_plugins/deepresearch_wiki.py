"""The verifiers taskset id ``deepresearch-wiki``: ``vf-eval`` imports a top-level module by id
and takes the Taskset and Env it exports (docs/adapters.md shows the same two lines)."""

from deepresearch.agents.adapters.verifiers import DeepResearchEnv, DeepResearchTaskset

__all__ = ["DeepResearchEnv", "DeepResearchTaskset"]

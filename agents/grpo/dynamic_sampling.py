"""DAPO's dynamic sampling (arXiv 2503.14476, §3.2): keep only groups that carry a learning signal.

A group whose episodes all got the same reward has advantage 0 everywhere: it adds
tokens to the loss's normaliser and nothing to its gradient. Dynamic sampling drops
such groups and samples new questions in their place, up to a limit of extra rounds
(the trainer's ``dynamic_sampling_rounds``); what is still uninformative after the
last round is dropped too, so a step may train on fewer groups than it asked for.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from deepresearch.agents.rollout.episode import Episode


def uninformative_groups(episodes: Sequence[Episode]) -> set[Hashable]:
    """Group ids whose episodes all have the same reward (a group of one included)."""
    rewards: dict[Hashable, set[float]] = {}
    for episode in episodes:
        rewards.setdefault(episode.group_id, set()).add(episode.reward)
    return {group for group, values in rewards.items() if len(values) == 1}


def informative(episodes: Sequence[Episode]) -> list[Episode]:
    """The episodes of groups with different rewards, in order."""
    flat = uninformative_groups(episodes)
    return [e for e in episodes if e.group_id not in flat]

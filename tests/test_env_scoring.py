"""An env episode's reward is the preset applied to its own transcript, for every protocol and preset.

The env scores from what it knows (its prompt, the spans it wrote, whether the policy's own
turn ended the episode); rebuilding that from ``info["transcript"]`` and ``info["segments"]``
must give the same value, so a trainer that re-scores a recorded transcript agrees with the env.
"""

from __future__ import annotations

import pytest

from deepresearch.envs import PROTOCOLS, make_wiki_env
from deepresearch.envs.oracle import OraclePolicy
from deepresearch.rewards import REWARD_PRESETS, EpisodeContext, compute_reward


def fitting_presets(protocol_name: str) -> list[str]:
    tags = PROTOCOLS[protocol_name].tags
    fitting = []
    for preset, reward_fn in REWARD_PRESETS.items():
        try:
            reward_fn("", [""], tags)
        except ValueError:
            continue
        fitting.append(preset)
    return fitting


CASES = [(protocol, preset) for protocol in sorted(PROTOCOLS) for preset in fitting_presets(protocol)]


def rescore(preset: str, info: dict, tags, finished: bool):
    transcript, segments = info["transcript"], info["segments"]
    offset = segments[0]["end"] if segments[0]["source"] == "prompt" else 0
    spans = tuple((s["start"] - offset, s["end"] - offset) for s in segments if s["source"] == "env")
    episode = EpisodeContext(prompt=transcript[:offset], env_spans=spans, finished=finished)
    return compute_reward(preset, transcript[offset:], info["golden_answers"], tags, episode=episode)


def episodes(env):
    """Policies that end every way an episode can: answered, wrong, truncated, cut short, terminated."""
    oracle = OraclePolicy(env.protocol)
    think = "<think> hmm </think>\n"
    yield "oracle", lambda turn: oracle.act(), oracle
    yield "wrong", lambda turn: think + (env.protocol.search_action("Tarsenby") if turn == 0 else env.protocol.answer_action("Nowhere")), None
    yield "malformed", lambda turn: ["<search> unclosed", "prose", "<answer> open"][turn % 3], None
    yield "searching forever", lambda turn: think + env.protocol.search_action(f"query {turn}"), None


@pytest.mark.parametrize(("protocol", "preset"), CASES)
def test_the_env_reward_is_the_preset_on_its_transcript(protocol: str, preset: str) -> None:
    env = make_wiki_env(protocol=protocol, reward=preset, split="test", max_turns=3)
    tags = env.protocol.tags
    checked = 0
    for index in range(3):
        for name, policy, oracle in episodes(env):
            _, info = env.reset(options={"index": index})
            if oracle is not None:
                oracle.reset(info)
            for turn in range(env.config.max_turns):
                _, reward, terminated, truncated, info = env.step(policy(turn))
                if terminated or truncated:
                    break
            again = rescore(preset, info, tags, finished=terminated)
            assert reward == again.reward, (name, info["transcript"])
            assert info["reward_components"]["answer"] == again.components["answer"]
            checked += 1
        # a trainer's budget ends the episode mid-way: scored as cut short
        _, info = env.reset(options={"index": index})
        _, _, _, _, info = env.step("<think> x </think>\n" + env.protocol.search_action("Tarsenby"))
        reward, components = env.end_episode()
        assert reward == rescore(preset, info, tags, finished=False).reward
    assert checked == 12


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_terminating_on_a_format_error_counts_as_finished(protocol: str) -> None:
    env = make_wiki_env(protocol=protocol, on_format_error="terminate")
    _, info = env.reset(options={"index": 0})
    _, reward, terminated, _, info = env.step("<think> no action </think>")
    assert terminated and reward == rescore(env.protocol.default_reward, info, env.protocol.tags, finished=True).reward


def test_research_finished_episodes_end_with_the_eos_and_cut_ones_do_not() -> None:
    """ReSearch pays nothing for a response cut by length: the env's truncation is that cut."""
    env = make_wiki_env(protocol="research", split="test", max_turns=6)
    oracle = OraclePolicy(env.protocol)
    _, info = env.reset(options={"index": 0})
    oracle.reset(info)
    while True:
        _, reward, terminated, truncated, info = env.step(oracle.act())
        if terminated or truncated:
            break
    assert terminated and reward == 1.0
    assert rescore("research", info, env.protocol.tags, finished=False).reward == 0.0

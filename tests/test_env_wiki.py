"""The Wiki env end to end: Gymnasium's checker, determinism, masking spans, robustness, rewards."""

from __future__ import annotations

import json
import random
import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import deepresearch
from deepresearch.envs import BM25Retriever, load_qa, make_wiki_env
from deepresearch.envs.oracle import OraclePolicy
from deepresearch.envs.protocols import PROTOCOLS
from deepresearch.rewards import extract_answer


def run_episode(env, policy_turns, **reset_kwargs):
    """Step scripted turns until the episode ends; returns the last step's outputs."""
    observation, info = env.reset(**reset_kwargs)
    for turn in policy_turns:
        observation, reward, terminated, truncated, info = env.step(turn)
        if terminated or truncated:
            return reward, terminated, truncated, info
    raise AssertionError("episode did not end")


def assert_segments_cover(info, turns_and_observations=None):
    transcript, segments = info["transcript"], info["segments"]
    assert segments[0]["start"] == 0 and segments[0]["source"] == "prompt"
    assert segments[-1]["end"] == len(transcript)
    for left, right in zip(segments, segments[1:]):
        assert left["end"] == right["start"]
    assert all(s["end"] > s["start"] and s["source"] in ("prompt", "policy", "env") for s in segments)


def test_import_registers_env_ids_and_gym_register_envs_works():
    gym.register_envs(deepresearch)
    assert "DeepResearch-Wiki-v0" in gym.registry and "DeepResearch-Web-v0" in gym.registry
    assert gym.registry["DeepResearch-Web-v0"].nondeterministic


def test_default_env_runs_on_the_demo_world():
    env = gym.make("DeepResearch-Wiki-v0")
    prompt, info = env.reset(seed=0)
    assert info["question"] in prompt and prompt == info["transcript"]
    assert info["stop"] == list(env.unwrapped.protocol.stop)
    assert [m["role"] for m in info["messages"]] == ["system", "user"]


@pytest.fixture(scope="module")
def wiki_sample_env_factory(shared_data):
    """A Wiki env over 600 real wiki-18 passages and real Bamboogle/NQ questions."""
    lines = (shared_data / "wiki18_sample" / "passages.jsonl").read_text(encoding="utf-8").splitlines()[:600]
    from deepresearch.envs.documents import Document

    retriever = BM25Retriever.from_documents([Document.from_record(json.loads(line)) for line in lines])
    questions = load_qa(shared_data / "qa" / "bamboogle.jsonl", limit=20)

    def factory(**kwargs):
        return make_wiki_env(retriever=retriever, dataset=questions, **kwargs)

    return factory


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_check_env_passes_without_warnings_on_real_wikipedia_text(wiki_sample_env_factory, protocol):
    gym.register(id="WikiSampleCheck-v0", entry_point=lambda **kw: wiki_sample_env_factory(**kw), kwargs={"protocol": protocol})
    try:
        env = gym.make("WikiSampleCheck-v0").unwrapped
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check_env(env)
        # And real non-ASCII passages are inside the observation space.
        observation, _, _, _, _ = env.step(env.protocol.search_action("Estádio do Maracanã Brazil"))
        assert env.observation_space.contains(observation) and observation
    finally:
        del gym.registry["WikiSampleCheck-v0"]


def test_seeded_reset_is_deterministic_and_seeds_differ():
    env = make_wiki_env()
    first = [env.reset(seed=seed)[1]["question_id"] for seed in range(20)]
    again = [env.reset(seed=seed)[1]["question_id"] for seed in range(20)]
    assert first == again and len(set(first)) > 10
    env.reset(seed=3)
    a = env.step(env.protocol.search_action("city"))
    env.reset(seed=3)
    b = env.step(env.protocol.search_action("city"))
    assert a[0] == b[0] and a[4]["segments"] == b[4]["segments"]


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_scripted_oracle_gets_full_reward_on_demo_test_questions(protocol):
    env = make_wiki_env(protocol=protocol, split="test", max_turns=4)
    oracle = OraclePolicy(env.protocol)
    rewards = []
    for index in range(40):
        _, info = env.reset(options={"index": index})
        oracle.reset(info)
        while True:
            observation, reward, terminated, truncated, info = env.step(oracle.act())
            assert_segments_cover(info)
            if terminated or truncated:
                break
        assert terminated and info["reward_components"]["format_ok"], info["reward_components"]
        rewards.append(reward)
    assert rewards == [1.0] * len(rewards)


def test_a_guessing_oracle_echoes_the_question_subject_on_its_share_of_questions():
    env = make_wiki_env(protocol="search_r1", max_turns=4)
    oracle = OraclePolicy(env.protocol, think=False, guess_rate=0.6, seed=1)
    direct, rewards = 0, []
    for index in range(200):
        _, info = env.reset(options={"index": index})
        oracle.reset(info)
        action = oracle.act()
        if action.startswith("<answer>"):
            direct += 1
            subject = info["metadata"]["chain"][0]["subject"]
            assert extract_answer(action, env.unwrapped.protocol.tags) == subject and subject in info["question"]
            rewards.append(env.step(action)[1])
    assert 0.5 < direct / 200 < 0.7 and set(rewards) == {0.0}  # the echo is never the answer
    with pytest.raises(ValueError, match="guess_rate"):
        OraclePolicy(env.protocol, guess_rate=1.5)


def test_a_single_search_oracle_stops_multi_hop_questions_after_one_search_with_the_first_hops_object():
    env = make_wiki_env(protocol="search_r1", max_turns=4)
    oracle = OraclePolicy(env.protocol, single_search_rate=0.7, seed=2)
    multi_hop, stopped, full_chain_rewards = 0, 0, []
    for index in range(300):
        _, info = env.reset(options={"index": index})
        oracle.reset(info)
        chain = info["metadata"]["chain"]
        searches, reward = 0, 0.0
        while True:
            action = oracle.act()
            searches += "<search>" in action
            _, reward, terminated, truncated, step_info = env.step(action)
            if terminated or truncated:
                break
        assert step_info["reward_components"]["format_ok"]  # <think> first, as search_r1's rule wants
        if len(chain) == 1:
            assert searches == 1 and reward == 1.0
            continue
        multi_hop += 1
        if searches == 1:
            stopped += 1
            assert extract_answer(action, env.unwrapped.protocol.tags) == chain[0]["object"] and reward == 0.0
        else:
            full_chain_rewards.append(reward)
    assert 0.6 < stopped / multi_hop < 0.8 and set(full_chain_rewards) == {1.0}
    with pytest.raises(ValueError, match="single_search_rate"):
        OraclePolicy(env.protocol, single_search_rate=-0.1)


@pytest.mark.parametrize(
    "protocol,preset,wrong_value,malformed_value",
    [
        ("research", "research", 0.1, 0.0),
        ("research", "research_strict", 0.1, 0.0),
        ("search_r1", "search_r1", 0.0, 0.0),
        ("search_r1", "search_r1_strict", 0.0, 0.0),
        ("deepresearcher", "deepresearcher", 0.0, -1.0),
        ("tool_call", "deepresearcher_strict", 0.0, -1.0),
    ],
)
def test_wrong_and_malformed_policies_get_the_presets_value(protocol, preset, wrong_value, malformed_value):
    env = make_wiki_env(protocol=protocol, reward=preset, max_turns=3)
    think = "<think> let me see </think>\n"
    wrong = [think + env.protocol.search_action("anything"), think + env.protocol.answer_action("Zzyzx Nowhere")]
    reward, terminated, _, info = run_episode(env, wrong, seed=0)
    assert terminated and reward == wrong_value and info["reward_components"]["format_ok"]
    # Malformed: never a well-formed action, so the episode is truncated without an answer.
    malformed = ["<search> unclosed", "just prose", "<answer> unclosed"]
    reward, terminated, truncated, info = run_episode(env, malformed, seed=0)
    assert truncated and reward == malformed_value and not info["reward_components"]["format_ok"]
    assert info["reward_components"]["format_errors"] == 3


@pytest.mark.parametrize("protocol", ["tool_call"])
def test_a_preset_that_does_not_fit_the_protocol_fails_at_make_not_at_episode_end(protocol, tmp_path):
    misfit = f"reward preset 'search_r1_format' does not fit protocol '{protocol}'"
    with pytest.raises(ValueError, match=misfit):
        gym.make("DeepResearch-Wiki-v0", protocol=protocol, reward="search_r1_format")
    with pytest.raises(ValueError, match=misfit):  # said before any index is loaded
        gym.make("DeepResearch-Wiki-v0", corpus=tmp_path / "missing.jsonl", protocol=protocol, reward="search_r1_format")
    with pytest.raises(ValueError, match="unknown reward preset 'nope'"):
        gym.make("DeepResearch-Wiki-v0", protocol=protocol, reward="nope")
    env = gym.make("DeepResearch-Wiki-v0", protocol="search_r1", reward="search_r1_format", max_turns=1)
    reward, terminated, _, info = run_episode(env, [env.unwrapped.protocol.answer_action("Zzyzx Nowhere")], seed=0)
    # An answer with no search breaks Search-R1's structure: a wrong answer gets final_format_score.
    assert terminated and reward == 0.1 and info["reward_components"]["structure_ok"] is False


def test_research_pays_for_reasoning_in_think_and_ours_also_for_nothing_after_the_answer():
    env = make_wiki_env(protocol="research")
    _, info = env.reset(seed=0)
    gold = info["golden_answers"][0]
    think = "<think> I know this. </think> "
    for preset, turn, expected in [
        ("research", env.protocol.answer_action(gold), 0.0),  # ReSearch: no <think> pair, format error
        ("research", think + env.protocol.answer_action(gold) + " trailing words", 1.0),  # text after </answer> is fine
        ("research_strict", think + env.protocol.answer_action(gold) + " trailing words", 0.0),
    ]:
        env = make_wiki_env(protocol="research", reward=preset)
        reward, terminated, _, info = run_episode(env, [turn], seed=0)
        assert terminated and reward == expected, (preset, turn, info["reward_components"])


def test_max_turns_truncates_and_scores():
    env = make_wiki_env(max_turns=2)
    env.reset(seed=1)
    assert env.step(env.protocol.search_action("a"))[3] is False
    observation, reward, terminated, truncated, info = env.step(env.protocol.search_action("b"))
    assert truncated and not terminated and "reward_components" in info
    with pytest.raises(RuntimeError, match="reset"):
        env.step("more")


def test_terminate_on_format_error_ends_the_episode():
    env = make_wiki_env(on_format_error="terminate")
    env.reset(seed=0)
    observation, reward, terminated, truncated, info = env.step("no tags at all")
    assert terminated and observation == "" and info["action"]["kind"] == "invalid"
    assert info["reward_components"]["format_errors"] == 1


def test_options_question_and_transcript_matches_actions_and_observations():
    env = make_wiki_env()
    prompt, info = env.reset(options={"question": "Who is Velmora?", "golden_answers": "Nobody"})
    assert info["golden_answers"] == ["Nobody"] and "Who is Velmora?" in prompt
    pieces = [prompt]
    for turn in ["<search> Velmora </search>", "garbage", env.protocol.answer_action("Nobody")]:
        observation, reward, terminated, truncated, info = env.step(turn)
        pieces += [turn, observation]
        by_source = {s["source"] for s in info["segments"]}
        assert by_source <= {"prompt", "policy", "env"}
    assert info["transcript"] == "".join(pieces)
    policy_text = "".join(info["transcript"][s["start"] : s["end"]] for s in info["segments"] if s["source"] == "policy")
    assert policy_text == "<search> Velmora </search>garbage" + env.protocol.answer_action("Nobody")
    # Right answer, but no reasoning in <think>: ReSearch's format check fails, reward 0.
    components = info["reward_components"]
    assert not components["format_ok"] and components["format_reasons"] == ["no <think>"] and reward == 0.0


def test_render_ansi_dims_env_text():
    env = make_wiki_env(render_mode="ansi")
    env.reset(seed=0)
    env.step("<search> city </search>")
    assert "\x1b[2m <result>\n" in env.render()


ADVERSARIAL = [
    "",
    " ",
    "<search>",
    "</search>",
    "<search></search>",
    "<answer></answer>",
    "<answer>\\boxed{</answer>",
    "<search><search>x</search></search>",
    "<answer><search>x</search></answer>",
    "<tool_call>" + "{" * 5000 + "</tool_call>",
    '<tool_call>{"name": "web_browse", "arguments": {"url": ["http://169.254.169.254/"]}}</tool_call>',
    '<tool_call>{"name": "web_search", "arguments": {"query": ["' + "x" * 9000 + '"]}}</tool_call>',
    "<search>" + "ü€\u200b\ud800" * 100 + "</search>",
    "\x00\x01<search>\x00</search>",
    "<search> " + " ".join(["q"] * 3000) + " </search>",
    "x" * 100_000,
    "<result>fake</result><information>fake</information>",
    None,
    b"<search>bytes</search>",
    12345,
    ["<search>", "list"],
]


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_ten_thousand_random_and_adversarial_actions_never_raise(protocol):
    env = make_wiki_env(protocol=protocol, max_turns=6)
    env.action_space.seed(0)
    rng = random.Random(0)
    steps, done = 0, True
    while steps < 10_000 // len(PROTOCOLS) + 1:
        if done:
            env.reset(seed=steps)
        roll = rng.random()
        if roll < 0.4:
            action = env.action_space.sample()
        elif roll < 0.8:
            action = rng.choice(ADVERSARIAL)
        else:
            action = env.protocol.search_action(env.action_space.sample()[:40])
        observation, reward, terminated, truncated, info = env.step(action)
        assert isinstance(observation, str) and isinstance(reward, float)
        if rng.random() < 0.05 or terminated or truncated:
            assert_segments_cover(info)
        done = terminated or truncated
        steps += 1


def test_a_saved_index_directory_works_as_the_corpus(tmp_path):
    from deepresearch.data import demo_corpus_path

    BM25Retriever.from_jsonl(demo_corpus_path()).save(tmp_path / "index")
    env = make_wiki_env(corpus=tmp_path / "index", dataset="demo", split="test")
    _, info = env.reset(options={"index": 0})
    query = info["metadata"]["oracle_queries"][0]
    observation, *_ = env.step(env.protocol.search_action(query))
    top = env.unwrapped.backend.retriever.search([query], 1)[0][0]
    assert top.id == info["metadata"]["support_ids"][0] and top.contents in observation


@pytest.mark.parametrize("preset", ["search_r1", "search_r1_strict"])
def test_search_r1_retry_feedback_is_never_read_as_an_answer(preset):
    """Search-R1's own retry text writes an answer tag pair ("and"); ours names the tags only, so
    Search-R1's rule falls back to the prompt's example answer, and ours finds none."""
    env = make_wiki_env(protocol="search_r1", reward=preset, max_turns=2)
    env.reset(seed=0)
    observation, *_ = env.step("no tags")
    _, reward, _, truncated, info = env.step("still no tags")
    components = info["reward_components"]
    assert "answer" in observation and truncated and components["answer"] is None
    assert components.get("paper_answer", "Beijing") == "Beijing"

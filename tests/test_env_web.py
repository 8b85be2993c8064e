"""DeepResearch-Web-v0 end to end against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest
from web_servers import ProviderBehaviour, serve_provider, serve_site_and_hostile_routes

import deepresearch  # noqa: F401
from deepresearch.envs.web import FetchConfig, RetryPolicy, make_web_backend

KEY = "serper-key-for-env-tests"
PAGES = ["/wiki/Marie_Curie", "/wiki/Mariana_Trench"]
QUESTION = {"question": "In which city was Marie Curie born?", "golden_answers": ["Warsaw"]}


site = pytest.fixture(serve_site_and_hostile_routes, scope="module", name="site")


@pytest.fixture
def provider(site):
    yield from serve_provider("serper", ProviderBehaviour(KEY, urls=[site.url + p for p in PAGES]))


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("SERPER_API_KEY", KEY)


def web_settings(provider, tmp_path, **overrides) -> dict:
    settings = dict(
        provider="serper",
        provider_base_url=provider.url,
        cache_path=str(tmp_path / "web.sqlite"),
        allowlist=("127.0.0.1",),
        fetch=FetchConfig(connect_timeout_s=1.0, read_timeout_s=1.0),
        browse_deadline_s=2.0,
        retry=RetryPolicy(max_attempts=1),
    )
    return {**settings, **overrides}


def make_env(provider, tmp_path, **kwargs):
    return gym.make("DeepResearch-Web-v0", **web_settings(provider, tmp_path, max_turns=5, **kwargs))


def search_call(query):
    return '<tool_call>{"name": "web_search", "arguments": {"query": ["%s"]}}</tool_call>' % query


def browse_call(url):
    return '<tool_call>{"name": "web_browse", "arguments": {"url": ["%s"]}}</tool_call>' % url


def test_without_a_provider_the_error_says_what_to_configure(monkeypatch):
    monkeypatch.delenv("DEEPRESEARCH_SEARCH_PROVIDER", raising=False)
    with pytest.raises(ValueError, match="provider"):
        gym.make("DeepResearch-Web-v0")


def test_tool_call_episode_searches_browses_and_answers(provider, site, tmp_path):
    env = make_env(provider, tmp_path)
    prompt, info = env.reset(options=QUESTION)
    assert "web_browse" in prompt and info["observation_role"] == "tool"
    observation, *_ , info = env.step(search_call("Marie Curie birthplace"))
    assert site.url + "/wiki/Marie_Curie" in observation and info["new_messages"][0]["role"] == "tool"
    observation, *_ = env.step(browse_call(site.url + "/wiki/Marie_Curie"))
    assert "Warsaw" in observation and "window.analytics" not in observation
    observation, *_ = env.step(browse_call(site.url + "/slow/drip"))
    assert "Could not read" in observation
    observation, reward, terminated, truncated, info = env.step("<answer>Warsaw</answer>")
    assert terminated and reward == 1.0
    assert info["reward_components"]["searches"] == 1 and info["reward_components"]["format_ok"]
    assert KEY not in info["transcript"]


@pytest.mark.parametrize("protocol,tag", [("research", "result"), ("search_r1", "information")])
def test_tag_protocols_search_and_browse_on_the_web(provider, site, tmp_path, protocol, tag):
    env = make_env(provider, tmp_path, protocol=protocol)
    prompt, _ = env.reset(options=QUESTION)
    assert "<browse>" in prompt
    observation, *_ = env.step("<think> Where was she born? </think> <search> Marie Curie </search>")
    assert f"<{tag}>" in observation and "Marie Curie" in observation
    observation, *_ = env.step(f"<think> Read her page. </think> <browse> {site.url}/wiki/Marie_Curie </browse>")
    assert "Warsaw" in observation
    final = "<answer> \\boxed{Warsaw} </answer>" if protocol == "research" else "<answer> Warsaw </answer>"
    _, reward, terminated, _, info = env.step("<think> Warsaw. </think> " + final)
    assert terminated and reward == 1.0
    # ReSearch's format check ignores <browse>; to Search-R1's state machine it is text outside a block.
    assert info["reward_components"]["format_ok"] == (protocol == "research")


def test_model_chosen_private_urls_are_refused_by_default(provider, tmp_path):
    env = make_env(provider, tmp_path, allowlist=())
    env.reset(options=QUESTION)
    url = provider.url + "/search"
    observation, *_ = env.step(browse_call(url))
    assert f"Could not read {url}: refused: it points to a private or reserved address" in observation
    assert provider.requests == []  # refused before any connection


@pytest.mark.parametrize("protocol", ["tool_call", "research", "search_r1"])
def test_a_search_outage_is_an_observation_not_no_results(provider, tmp_path, protocol):
    env = make_env(provider, tmp_path, protocol=protocol)
    env.reset(options=QUESTION)
    provider.behaviour.fail_status = 503
    search = search_call("Marie Curie") if protocol == "tool_call" else "<search> Marie Curie </search>"
    observation, reward, terminated, truncated, info = env.step(search)
    assert "search failed: serper answered HTTP 503" in observation and "No results found" not in observation
    assert not terminated and KEY not in info["transcript"]
    provider.behaviour.heal()
    observation, *_ = env.step(search)  # the outage was not cached
    assert "search failed" not in observation and "Marie Curie - result 0" in observation


def test_browsing_only_urls_seen_in_this_episodes_searches(provider, site, tmp_path):
    env = make_env(provider, tmp_path, browse_only_seen_urls=True)
    env.reset(options=QUESTION)
    unseen, *_ = env.step(browse_call(site.url + "/wiki/Marie_Curie"))
    assert "Could not read" in unseen
    env.step(search_call("Marie Curie"))
    seen, *_ = env.step(browse_call(site.url + "/wiki/Marie_Curie"))
    assert "Warsaw" in seen
    env.reset(options=QUESTION)  # a new episode forgets what earlier searches returned
    again, *_ = env.step(browse_call(site.url + "/wiki/Marie_Curie"))
    assert "Could not read" in again


def test_envs_sharing_a_backend_keep_their_own_seen_urls(provider, site, tmp_path):
    shared = make_web_backend(**web_settings(provider, tmp_path, browse_only_seen_urls=True))
    first, second = (gym.make("DeepResearch-Web-v0", backend=shared, max_turns=5) for _ in range(2))
    url = site.url + "/wiki/Marie_Curie"
    first.reset(options=QUESTION)
    first.step(search_call("Marie Curie"))
    second.reset(options=QUESTION)  # must not clear the first env's list
    assert "Warsaw" in first.step(browse_call(url))[0]
    assert "only URLs from earlier search results" in second.step(browse_call(url))[0]  # nor share it
    second.close()  # closing one env leaves the shared backend working for the other
    assert "Marie Curie radium - result 0" in first.step(search_call("Marie Curie radium"))[0]
    shared.close()


def test_web_env_is_registered_nondeterministic_and_runs_questions_from_a_dataset(provider, tmp_path):
    dataset = tmp_path / "qa.jsonl"
    dataset.write_text(json.dumps({"id": "q1", **QUESTION}) + "\n")
    env = make_env(provider, tmp_path, dataset=str(dataset))
    _, info = env.reset(seed=0)
    assert info["question_id"] == "q1" and env.spec.nondeterministic


def test_one_long_bad_url_does_not_push_the_other_pages_out_of_the_observation(provider, site, tmp_path):
    env = make_env(provider, tmp_path)
    env.reset(options=QUESTION)
    long_refused = "http://10.0.0.1/" + "a" * 1900  # refused by the policy, 1,916 characters
    too_long = site.url + "/wiki/Marie_Curie?" + "b" * 3000
    urls = [long_refused, too_long, site.url + "/wiki/Marie_Curie", site.url + "/tides.txt"]
    call = '<tool_call>{"name": "web_browse", "arguments": {"url": %s}}</tool_call>' % json.dumps(urls)
    observation, *_ = env.step(call)
    assert len(observation) <= 6_000 + 100 and "truncated" not in observation
    assert "Warsaw" in observation and "06:42" in observation  # both good pages made it in
    assert "refused: it points to a private or reserved address" in observation
    assert f"the URL is too long ({len(too_long)} characters; the limit is 2048)" in observation
    assert observation.count("a" * 100) <= 2 and "b" * 300 not in observation  # each long URL shown shortened


def test_a_corrupt_cache_file_does_not_stop_gym_make(provider, tmp_path, caplog):
    cache = tmp_path / "web.sqlite"
    cache.write_bytes(b"not a database at all" * 500)
    with caplog.at_level("WARNING"):
        env = make_env(provider, tmp_path)  # the same cache path
    env.reset(options=QUESTION)
    observation, *_ = env.step(search_call("Marie Curie"))
    assert "Marie Curie - result 0" in observation
    assert f"web store {cache} could not be read" in caplog.text and "moved it aside to" in caplog.text


@pytest.fixture
def many_results():
    """A Serper server answering as many hits as asked for (``num``)."""
    yield from serve_provider("serper", ProviderBehaviour(KEY))


def result_count(env) -> int:
    env.reset(options=QUESTION)
    return env.step(search_call("marie curie"))[0].count("Snippet ")


def test_top_k_is_the_envs_and_is_never_cut_short_silently(many_results, tmp_path):
    """``top_k=20`` used to reach EnvConfig while WebConfig.top_k (default 10) capped it: 10 results, silently."""
    assert result_count(make_env(many_results, tmp_path, top_k=20, max_observation_chars=50_000)) == 20
    assert result_count(make_env(many_results, tmp_path, top_k=4, max_results=8)) == 4
    with pytest.raises(ValueError, match=r"top_k=20 asks for more results per query than this web backend returns \(max_results=10\)"):
        make_env(many_results, tmp_path, top_k=20, max_results=10)
    with pytest.raises(ValueError, match=r"top_k=21 asks for more results .* \(the serper provider returns at most 20\)"):
        make_env(many_results, tmp_path, top_k=21)


def test_the_old_web_top_k_is_max_results_and_warns_once(many_results, tmp_path, monkeypatch):
    import warnings

    import deepresearch.deprecations as deprecations
    from deepresearch.envs.web import WebConfig

    monkeypatch.setattr(deprecations, "_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        configs = [WebConfig(provider="serper", top_k=5) for _ in range(2)]
    assert [c.max_results for c in configs] == [5, 5]
    assert [str(w.message) for w in caught] == [
        "WebConfig(top_k=...) is deprecated; use WebConfig(max_results=...) (the env's own top_k sets how many results it shows)"
    ]
    assert caught[0].filename == __file__
    backend = make_web_backend(**web_settings(many_results, tmp_path), top_k=3)
    assert len(backend.search(["marie curie"], 10)[0]) == 3  # a backend used directly still caps at its max_results
    backend.close()


def test_no_setting_name_belongs_to_both_configs():
    from dataclasses import fields

    from deepresearch.envs.core import EnvConfig
    from deepresearch.envs.web import WebConfig
    from deepresearch.envs.web_env import split_kwargs

    assert {f.name for f in fields(EnvConfig)} & {f.name for f in fields(WebConfig)} == set()
    with pytest.raises(TypeError, match=r"\['top_k'\]: a setting of both EnvConfig and WebConfig"):
        split_kwargs({"top_k": 20, "provider": "serper"}, {"top_k", "max_turns"}, {"top_k", "provider"})
    assert split_kwargs({"top_k": 2, "provider": "serper"}, {"top_k"}, {"provider"}) == ({"top_k": 2}, {"provider": "serper"})

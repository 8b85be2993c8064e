"""Budgets and cost accounting: caps per run and per env, prices, free cache hits, and the metrics envs report."""

from __future__ import annotations

import gymnasium as gym
import pytest
from web_servers import LoopbackServer, ProviderBehaviour, serve_provider, site_routes

import deepresearch  # noqa: F401 - registers the env ids
from deepresearch.agents.eval.harness import markdown_table, summarize
from deepresearch.envs.web import BudgetLimits, Ledger, RetryPolicy, make_web_backend

KEY = "serper-budget-key-0c4d"


@pytest.fixture(scope="module")
def site():
    with LoopbackServer(site_routes()) as running:
        yield running


@pytest.fixture
def provider(site):
    yield from serve_provider("serper", ProviderBehaviour(KEY, urls=[site.url + "/wiki/Marie_Curie", site.url + "/tides.txt"]))


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("SERPER_API_KEY", KEY)


def backend_for(provider, tmp_path, **overrides):
    settings = dict(provider="serper", provider_base_url=provider.url, cache_path=str(tmp_path / "c.sqlite"),
                    allowlist=("127.0.0.1",), retry=RetryPolicy(max_attempts=1), rate_per_s=None)
    return make_web_backend(**{**settings, **overrides})


def contents(results) -> list[str]:
    return [docs[0].contents if docs else "" for docs in results]


def test_the_run_cap_on_search_calls_is_shared_by_every_env_and_cache_hits_stay_free(provider, tmp_path):
    backend = backend_for(provider, tmp_path, max_search_calls=3)
    first, second = backend.episode(), backend.episode()
    first.search(["q1", "q2"], 3)
    second.search(["q3"], 3)
    (refused,) = contents(second.search(["q4"], 3))
    assert refused == ("search not run: this run's limit of 3 search calls is used up. "
                       "Answer with what you have found so far.")
    assert len(provider.requests) == 3
    assert first.search(["Q1"], 3)[0][0].title == "q1 - result 0"  # a cache hit is free, budget or not
    run = backend.stats.as_dict()
    assert (run["provider_calls"], run["budget_refusals"], run["search_cache_hits"], run["searches"]) == (3, 1, 1, 5)
    assert second.env_stats.as_dict()["provider_calls"] == 1 and second.env_stats.as_dict()["budget_refusals"] == 1


def test_env_caps_in_money_with_an_overridden_price(provider, tmp_path):
    backend = backend_for(provider, tmp_path, env_max_cost_usd=0.05, prices_usd={"serper": 0.02})
    thrifty, other = backend.episode(), backend.episode()
    outcomes = contents(thrifty.search(["a", "b", "c"], 3))
    assert sum(text.startswith("search not run: this env's budget of $0.05 is spent") for text in outcomes) == 1
    assert thrifty.env_stats.as_dict()["cost_usd"] == pytest.approx(0.04)
    assert "search not run" not in contents(other.search(["d"], 3))[0]  # its own budget
    assert backend.stats.as_dict()["cost_usd"] == pytest.approx(0.06)


def test_failed_calls_are_counted_but_cost_nothing(provider, tmp_path):
    backend = backend_for(provider, tmp_path, max_cost_usd=2.0, prices_usd={"serper": 0.5})  # 3 fit in flight
    provider.behaviour.fail_status = 500
    assert contents(backend.search(["x", "y", "z"], 3)) == ["search failed: serper answered HTTP 500"] * 3
    stats = backend.stats.as_dict()
    assert (stats["provider_calls"], stats["provider_failures"], stats["cost_usd"]) == (3, 3, 0.0)
    provider.behaviour.heal()
    assert "result 0" in contents(backend.search(["x"], 3))[0] and backend.budget.cost_usd == pytest.approx(0.5)


def test_ledger_reserves_all_or_nothing():
    run, env = Ledger(BudgetLimits(max_search_calls=10), "this run"), Ledger(BudgetLimits(max_search_calls=0), "this env")
    from deepresearch.envs.web.accounting.budget import reserve_all

    assert reserve_all([run, env], 0.01, search=True) == "this env's limit of 0 search calls is used up"
    assert (run.calls, run.cost_usd) == (0, 0.0)  # the run's reservation was undone
    with pytest.raises(ValueError, match="max_cost_usd"):
        BudgetLimits(max_cost_usd=-1)
    with pytest.raises(ValueError, match=r"prices_usd\['serper'\]"):
        make_web_backend(provider="serper", prices_usd={"serper": "free"})


def test_the_env_reports_calls_hit_rate_and_cost_in_info_and_reward_components(provider, site, tmp_path):
    env = gym.make("DeepResearch-Web-v0", max_turns=5, **{
        "provider": "serper", "provider_base_url": provider.url, "cache_path": str(tmp_path / "c.sqlite"),
        "allowlist": ("127.0.0.1",), "rate_per_s": None, "prices_usd": {"serper": 0.01}})
    env.reset(options={"question": "Where was Marie Curie born?", "golden_answers": ["Warsaw"]})
    search = '<tool_call>{"name": "web_search", "arguments": {"query": ["Marie Curie"]}}</tool_call>'
    _, _, _, _, info = env.step(search)
    assert info["web"]["provider_calls"] == 1 and info["web"]["cost_usd"] == pytest.approx(0.01)
    _, _, _, _, info = env.step(search)
    assert info["web"]["search_cache_hits"] == 1 and info["web"]["cache_hit_rate"] == 0.5
    assert info["web"]["cost_per_step"] == pytest.approx(0.005)
    *_, info = env.step("<answer>Warsaw</answer>")
    components = info["reward_components"]
    assert components["web_cost_usd"] == pytest.approx(0.01) and components["web_search_calls"] == 1
    env.reset(options={"question": "again", "golden_answers": ["x"]})
    *_, info = env.step(search)
    assert info["web"]["cost_usd"] == 0.0 and info["web"]["search_cache_hits"] == 1  # a new episode's counters


def test_the_evaluation_table_adds_a_cost_column_when_records_carry_web_cost():
    def record(dataset, cost):
        components = {} if cost is None else {"web_cost_usd": cost}
        return {"dataset": dataset, "metrics": {"em": 1.0, "f1": 1.0, "acc": 1.0}, "searches": 1, "turns": 2,
                "reward_components": components}

    summary = summarize([record("web", 0.01), record("web", 0.02), record("wiki", None)])
    assert summary["web"]["cost_usd"] == pytest.approx(0.03) and "cost_usd" not in summary["wiki"]
    table = markdown_table(summary).splitlines()
    assert "web cost $" in table[0] and "| 0.0300 |" in table[2] and "| - |" in table[3]
    assert "cost" not in markdown_table(summarize([record("wiki", None)]))

"""The search provider fails a whole step batch: HTTP 5xx on every request, or no answer in time.

What a user sees: that step's episodes read the failure (``search failed: serper answered
HTTP 503`` or ``search failed: serper timed out (...)``) as their search result, as a model
meets outages on the live web; they are trained on (it is the web as it was, not a broken
setup), the failed calls cost nothing and do not count against the call caps, and the next
step searches normally. The provider is a local server speaking Serper's JSON on 127.0.0.1.
"""

from __future__ import annotations

import json

import pytest
from fault_helpers import TINY_FAULT_RUN, at_steps, fault_config, run_bounded, scripted_engine, step_records
from web_servers import LoopbackServer, ProviderBehaviour, provider_routes

from deepresearch.agents import GRPOTrainer
from deepresearch.envs.web import RetryPolicy

KEY = "serper-fault-key-51c0"
# Leaves the healthy steps' loopback searches ample time on a loaded machine; the outage
# (a provider that answers 3 s too late) is the only thing that meets it.
DEADLINE_S = 10.0


def web_episodes(output_dir, step: int) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "episodes" / f"step_{step:07d}.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("outage", ["http_503", "timeout"])
def test_a_provider_outage_for_a_whole_step_is_read_not_charged_and_the_run_goes_on(tmp_path, monkeypatch, outage):
    monkeypatch.setenv("SERPER_API_KEY", KEY)
    behaviour = ProviderBehaviour(KEY)

    def fail() -> None:
        if outage == "http_503":
            behaviour.fail_status = 503
        else:
            behaviour.delay_s = DEADLINE_S + 3.0

    lines: list[str] = []
    with LoopbackServer(provider_routes("serper", behaviour)) as provider:
        env_kwargs = {
            **TINY_FAULT_RUN["env_kwargs"], "dataset": "demo", "provider": "serper", "provider_base_url": provider.url,
            "use_cache": False, "rate_per_s": None, "search_deadline_s": DEADLINE_S,
            "retry": RetryPolicy(max_attempts=2, base_delay_s=0.05),
            # Each env's backend may make two searches: step 1's and step 3's, if step 2's failures are not charged.
            "max_search_calls": 2, "prices_usd": {"serper": 0.5},
        }
        config = fault_config(tmp_path, env_id="DeepResearch-Web-v0", env_kwargs=env_kwargs)
        trainer = GRPOTrainer(config, log=at_steps({1: fail, 2: behaviour.heal}, lines), progress=False)
        trainer.engine = scripted_engine(trainer)
        run_bounded(trainer)
    records = step_records(tmp_path)
    assert [records[s]["rollout/dropped"] for s in (1, 2, 3)] == [0, 0, 0]  # failures are observations, not drops
    assert [records[s]["episodes"] for s in (1, 2, 3)] == [4, 4, 4]
    failure = "search failed: serper answered HTTP 503" if outage == "http_503" else "search failed: serper timed out"
    assert all(failure in episode["transcript"] for episode in web_episodes(tmp_path, 2))
    for step in (1, 3):
        assert all("result 0" in e["transcript"] and "search not run" not in e["transcript"] for e in web_episodes(tmp_path, step))
    for env in trainer.envs:
        backend = env.unwrapped.backend.backend
        assert backend.budget.calls == 2 and backend.budget.cost_usd == pytest.approx(1.0)  # steps 1 and 3 only

"""The rollout engine fails mid-generation: one request, one call, or the whole engine; raising or hanging.

What a user sees: the episodes the failed request or call carried are dropped and counted
(``rollout/dropped``, with a warning line naming the reason), a hang costs at most
``rollout.generation_deadline_s``, and an engine that fails every step stops the run with
``TrainingHalted`` after ``health.max_failed_rollout_steps`` steps, never a silent stall.
The fault is injected in step 2 of 3 (the next call after step 1 was logged).
"""

from __future__ import annotations

import pytest
from fault_helpers import FaultyEngine, FaultyRequestEngine, at_steps, fault_config, run_bounded, scripted_engine, step_records

from deepresearch.agents import GRPOTrainer, TrainingHalted

EPISODES_PER_STEP = 4  # 2 questions x 2 episodes; each episode searches once, then answers
# Far above what a scripted call takes even on a starved shared machine, so only the injected
# hang (which never ends by itself) can reach it: the outcome does not depend on load.
HANG_DEADLINE_S = 10.0


def faulty_trainer(tmp_path, engine_class, schedule, fault_in_step_2=None, always=None, **config):
    lines: list[str] = []
    holder: dict = {}
    log = at_steps({1: lambda: fault_in_step_2 and holder["engine"].fail_next(fault_in_step_2)}, lines)
    trainer = GRPOTrainer(fault_config(tmp_path, schedule=schedule, **config), log=log, progress=False)
    trainer.engine = holder["engine"] = engine_class(scripted_engine(trainer), always=always)
    return trainer, lines


@pytest.mark.slow
def test_one_request_that_raises_drops_only_its_episode(tmp_path):
    trainer, lines = faulty_trainer(tmp_path, FaultyRequestEngine, "async", fault_in_step_2="raise")
    run_bounded(trainer)
    records = step_records(tmp_path)
    assert [records[s]["rollout/dropped"] for s in (1, 2, 3)] == [0, 1, 0]
    assert [records[s]["episodes"] for s in (1, 2, 3)] == [4, 3, 4]
    assert "warning: step 2: 1 episode(s) dropped (1x engine request failed (RuntimeError: injected engine failure))" in lines


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["sync", "async"])
def test_a_failed_engine_call_drops_its_episodes_and_the_run_goes_on(tmp_path, schedule):
    # sync: the call is step 2's first turn, all four episodes; async: a batch of the step's
    # first requests (how many the batcher gathered into it depends on their timing).
    trainer, lines = faulty_trainer(tmp_path, FaultyEngine, schedule, fault_in_step_2="raise")
    run_bounded(trainer)
    records = step_records(tmp_path)
    assert records[1]["rollout/dropped"] == 0 and records[3]["rollout/dropped"] == 0
    assert records[1]["episodes"] == records[3]["episodes"] == EPISODES_PER_STEP
    dropped = records[2]["rollout/dropped"]
    assert 1 <= dropped <= EPISODES_PER_STEP and records[2].get("episodes", 0) + dropped == EPISODES_PER_STEP
    if schedule == "sync":
        assert dropped == EPISODES_PER_STEP
    assert any(line.startswith("warning: step 2:") and "failed (RuntimeError: injected engine failure)" in line for line in lines)


@pytest.mark.slow
@pytest.mark.parametrize(("schedule", "engine_class"), [("sync", FaultyEngine), ("async", FaultyEngine), ("async", FaultyRequestEngine)])
def test_a_hung_engine_call_is_given_up_at_the_deadline(tmp_path, schedule, engine_class):
    trainer, lines = faulty_trainer(tmp_path, engine_class, schedule, fault_in_step_2="hang", deadline_s=HANG_DEADLINE_S)
    try:
        run_bounded(trainer)
    finally:
        trainer.engine.release.set()
    records = step_records(tmp_path)
    assert [records[s]["rollout/dropped"] > 0 for s in (1, 2, 3)] == [False, True, False]
    assert records[3]["episodes"] == EPISODES_PER_STEP  # the engine is used again the next step
    assert any(line.startswith("warning: step 2:") and f"(no answer after {HANG_DEADLINE_S:g} s)" in line for line in lines)


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["raise", "hang"])
@pytest.mark.parametrize("schedule", ["sync", "async"])
def test_an_engine_that_fails_every_step_stops_the_run_with_a_clear_error(tmp_path, schedule, fault):
    trainer, _ = faulty_trainer(tmp_path, FaultyEngine, schedule, always=fault, deadline_s=1.0)
    try:
        with pytest.raises(TrainingHalted, match=r"every episode was dropped on 2 steps in a row \(up to step 2\): 4x engine"):
            run_bounded(trainer)
    finally:
        trainer.engine.release.set()
    assert sorted(step_records(tmp_path)) == [1, 2]  # both failed steps logged, no third one run

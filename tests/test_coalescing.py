"""Concurrent searches merged into batches, and many envs stepped at once: a thread
helper sharing one coalesced index, and Gymnasium's AsyncVectorEnv (one process each)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import gymnasium as gym
import pytest
from gymnasium.vector import AsyncVectorEnv, AutoresetMode
from test_retrieval_cases import assert_same_results, nq_questions, wiki_subset

from deepresearch.data import demo_corpus_path
from deepresearch.envs import load_qa, make_wiki_env
from deepresearch.envs.oracle import OraclePolicy
from deepresearch.envs.retrieval import (
    BM25Retriever,
    CoalescingConfig,
    CoalescingRetriever,
    RemoteConfig,
    RemoteRetriever,
    RemoteRetrieverError,
)
from deepresearch.envs.threaded_stepper import ThreadedEnvStepper


@pytest.fixture(scope="module")
def wiki_bm25(shared_data: Path) -> BM25Retriever:
    return BM25Retriever.from_documents(wiki_subset(shared_data), show_progress=False)


@pytest.fixture(scope="module")
def demo_bm25() -> BM25Retriever:
    return BM25Retriever.from_jsonl(demo_corpus_path(), show_progress=False)


def search_all_at_once(retriever: CoalescingRetriever, queries: list[str], ks: list[int]) -> list[list]:
    """Every query from its own thread, released together by a barrier."""
    barrier = threading.Barrier(len(queries))

    def one(position: int) -> list:
        barrier.wait()
        return retriever.search([queries[position]], ks[position])[0]

    with ThreadPoolExecutor(max_workers=len(queries)) as pool:
        return list(pool.map(one, range(len(queries))))


def test_concurrent_callers_get_their_own_answers_from_fewer_searches(wiki_bm25: BM25Retriever, shared_data: Path) -> None:
    queries = nq_questions(shared_data, 32)
    ks = [1 + position % 7 for position in range(len(queries))]
    with CoalescingRetriever(wiki_bm25, CoalescingConfig(max_wait_s=0.05, max_batch=64)) as coalesced:
        answers = search_all_at_once(coalesced, queries, ks)
        assert coalesced.batches_run < len(queries)
    for query, k, answer in zip(queries, ks, answers):
        assert_same_results([answer], wiki_bm25.search([query], k))


class ManualClock:
    """Time that passes only when the test says so: the worker's wait for company ends when a
    request arrives or the test moves time past the bound, never by the machine's speed."""

    def __init__(self) -> None:
        self.time = 0.0
        self.waits = 0  # times the worker waited for company
        self.waiting = False
        self._condition: threading.Condition | None = None

    def now(self) -> float:
        return self.time

    def wait(self, condition: threading.Condition, timeout: float) -> None:
        self._condition = condition
        self.waits += 1
        self.waiting = True
        try:
            condition.wait()  # until a request arrives or the test advances the time
        finally:
            self.waiting = False

    def worker_waits_or(self, answer: Future) -> bool:
        """Block until the worker waits for company (True) or ``answer`` is set (False)."""
        for _ in range(60_000):  # a minute at most, reached only by a broken retriever
            if self.waiting:
                return True
            if answer.done():
                return False
            time.sleep(0.001)
        raise AssertionError("the worker neither waited for company nor answered")

    def advance(self, seconds: float) -> None:
        """Move time on (the worker is waiting: it released the lock this takes) and wake it."""
        assert self._condition is not None
        with self._condition:
            self.time += seconds
            self._condition.notify_all()


def test_callers_that_come_back_together_meet_in_one_batch_and_a_lone_caller_never_waits(demo_bm25: BM25Retriever) -> None:
    """Eight queued callers teach the retriever to expect eight; eight more trickling in one by
    one, the worker waiting between each, still make one batch. Then a lone caller: each wait
    ends at the bound and halves the expectation (8 -> 4 -> 2 -> 1), after which a lone
    caller is answered without waiting. Every wait ends by an event, so load cannot change it."""
    first, *queries = [item.question for item in load_qa("demo", split="test", limit=9)]
    bound_s = 2.0
    clock = ManualClock()
    gated = GatedRetriever(demo_bm25)
    with CoalescingRetriever(gated, CoalescingConfig(max_wait_s=bound_s, max_batch=64), clock) as coalesced:
        priming = coalesced.submit([first], 3)
        assert gated.entered.wait(timeout=60)  # the worker is busy: the next eight queue up
        queued = [coalesced.submit([query], 3) for query in queries]
        gated.opened.set()
        assert [len(future.result(timeout=60)[0]) for future in [priming, *queued]] == [3] * 9
        assert coalesced.batches_run == 2 and clock.waits == 0  # the eight were one batch

        before = coalesced.batches_run
        trickled = []
        for position, query in enumerate(queries):
            trickled.append(coalesced.submit([query], 3))
            if position < len(queries) - 1:
                assert clock.worker_waits_or(trickled[0]), f"answered after {position + 1} of 8 callers"
        for query, future in zip(queries, trickled):
            assert_same_results(future.result(timeout=60), demo_bm25.search([query], 3))
        assert coalesced.batches_run - before == 1

        for expected_company in (8, 4, 2):
            lone = coalesced.submit(queries[:1], 3)
            assert clock.worker_waits_or(lone), f"a lone caller was not held for {expected_company} expected callers"
            clock.advance(bound_s)
            lone.result(timeout=60)
        waits = clock.waits
        for query in queries:  # the expectation decayed to one: nobody waits for company
            alone = coalesced.submit([query], 3)
            assert not clock.worker_waits_or(alone), "a lone caller waited for company"
            assert_same_results(alone.result(timeout=60), demo_bm25.search([query], 3))
        assert clock.waits == waits


class GatedRetriever:
    """Blocks inside ``search`` until opened, so a test can hold the coalescing worker."""

    def __init__(self, inner: BM25Retriever) -> None:
        self.inner = inner
        self.entered, self.opened = threading.Event(), threading.Event()

    def search(self, queries: list[str], k: int) -> list[list]:
        self.entered.set()
        self.opened.wait(timeout=60)
        return self.inner.search(queries, k)


def test_a_cancelled_request_is_dropped_not_answered(wiki_bm25: BM25Retriever) -> None:
    gated = GatedRetriever(wiki_bm25)
    with CoalescingRetriever(gated, CoalescingConfig(max_wait_s=0.0)) as coalesced:
        first = coalesced.submit(["uranus"], 1)
        assert gated.entered.wait(timeout=60)  # the worker is busy with the first request
        cancelled = coalesced.submit(["neptune"], 1)
        assert cancelled.cancel()  # e.g. an HTTP client that went away
        gated.opened.set()
        assert first.result(timeout=60)[0] and cancelled.cancelled()
        assert coalesced.search(["uranus"], 1)[0]  # the worker survived the cancelled request


def test_batches_respect_the_size_bound(wiki_bm25: BM25Retriever, shared_data: Path) -> None:
    queries = nq_questions(shared_data, 24)
    with CoalescingRetriever(wiki_bm25, CoalescingConfig(max_wait_s=0.05, max_batch=4)) as coalesced:
        search_all_at_once(coalesced, queries, [3] * len(queries))
        assert coalesced.batches_run >= len(queries) // 4
        # A single call larger than the bound still runs, alone.
        assert len(coalesced.search(queries, 2)) == len(queries)


def test_bad_arguments_fail_only_their_caller(wiki_bm25: BM25Retriever) -> None:
    with CoalescingRetriever(wiki_bm25) as coalesced:
        with pytest.raises(ValueError, match="k must be"):
            coalesced.search(["uranus"], 0)
        with pytest.raises(TypeError, match="query 1 is a int"):
            coalesced.search(["uranus", 3], 2)  # type: ignore[list-item]
        assert coalesced.search([], 3) == [] and coalesced.search(["", "uranus"], 2)[0] == []
    with pytest.raises(RuntimeError, match="closed"):
        coalesced.search(["uranus"], 1)


def test_a_failing_backend_fails_every_caller_of_the_batch_and_recovers_nothing_silently() -> None:
    unreachable = RemoteRetriever("http://127.0.0.1:9", RemoteConfig(connect_timeout_s=0.5, retries=0))
    with CoalescingRetriever(unreachable, CoalescingConfig(max_wait_s=0.05)) as coalesced:
        barrier = threading.Barrier(4)

        def one(query: str) -> str:
            barrier.wait()
            try:
                coalesced.search([query], 2)
            except RemoteRetrieverError as error:
                return str(error)
            return "no error"

        with ThreadPoolExecutor(max_workers=4) as pool:
            errors = list(pool.map(one, ["a", "b", "c", "d"]))
    assert all("failed after 1 attempts" in error for error in errors)


def run_oracle_episodes(envs: list, stepper: ThreadedEnvStepper | None) -> list[tuple[float, str]]:
    """Oracle episodes on demo test questions 0..n-1: all envs at once, or one by one."""
    oracles = [OraclePolicy(env.protocol) for env in envs]
    options = [{"index": index} for index in range(len(envs))]
    if stepper is None:
        resets = [env.reset(options=option) for env, option in zip(envs, options)]
    else:
        resets = stepper.reset(options=options)
    for oracle, (_, info) in zip(oracles, resets):
        oracle.reset(info)
    finished: list[tuple[float, str] | None] = [None] * len(envs)
    while any(result is None for result in finished):
        actions = [oracle.act() if finished[i] is None else None for i, oracle in enumerate(oracles)]
        if stepper is None:
            results = [None if action is None else env.step(action) for env, action in zip(envs, actions)]
        else:
            results = [None if step is None else (step.observation, step.reward, step.terminated, step.truncated, step.info) for step in stepper.step(actions)]
        for index, result in enumerate(results):
            if result is None:
                continue
            if result[2] or result[3]:
                finished[index] = (result[1], result[4]["transcript"])
    return finished  # type: ignore[return-value]


def test_threaded_stepper_with_a_shared_coalesced_index_matches_one_by_one(demo_bm25: BM25Retriever) -> None:
    count = 12
    sequential = run_oracle_episodes([make_wiki_env(retriever=demo_bm25, split="test", max_turns=4) for _ in range(count)], None)
    with CoalescingRetriever(demo_bm25, CoalescingConfig(max_wait_s=0.02)) as shared:
        envs = [make_wiki_env(retriever=shared, split="test", max_turns=4) for _ in range(count)]
        with ThreadedEnvStepper(envs) as stepper:
            concurrent = run_oracle_episodes(envs, stepper)
            searches = sum(env.unwrapped._searches for env in envs)
            assert shared.batches_run < searches  # searches met in batches
            # No autoreset: a finished env stays finished until it is reset.
            with pytest.raises(RuntimeError, match="reset"):
                stepper.step(["<answer>x</answer>"] * count)
    assert concurrent == sequential
    assert [reward for reward, _ in concurrent] == [1.0] * count


def test_stepper_checks_its_arguments(demo_bm25: BM25Retriever) -> None:
    with ThreadedEnvStepper([make_wiki_env(retriever=demo_bm25)]) as stepper:
        with pytest.raises(ValueError, match="2 actions for 1 envs"):
            stepper.step(["a", "b"])
        with pytest.raises(ValueError, match="2 seeds for 1 envs"):
            stepper.reset(seeds=[1, 2])
    with pytest.raises(ValueError, match="at least one env"):
        ThreadedEnvStepper([])


def test_gymnasium_async_vector_env_runs_the_wiki_env() -> None:
    """One process per env, no shared memory (text spaces), autoreset off."""
    vector = AsyncVectorEnv(
        [lambda: gym.make("DeepResearch-Wiki-v0", split="test", max_turns=3) for _ in range(2)],
        shared_memory=False,
        autoreset_mode=AutoresetMode.DISABLED,
    )
    try:
        observations, infos = vector.reset(seed=[3, 4], options={"index": 0})
        assert len(observations) == 2 and all(isinstance(text, str) and text for text in observations)
        reference = make_wiki_env(split="test", max_turns=3)
        expected_prompt, _ = reference.reset(seed=3, options={"index": 0})
        assert observations[0] == expected_prompt
        action = reference.protocol.search_action(infos["question"][0])
        observations, rewards, terminated, truncated, infos = vector.step((action, action))
        assert all("<result>" in text for text in observations) and list(terminated) == [False, False]
        assert observations[0] == reference.step(action)[0]
    finally:
        vector.close()

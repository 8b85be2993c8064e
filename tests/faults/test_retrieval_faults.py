"""The retrieval server dies mid-run and comes back; one of two replicas dies.

What a user sees: with one server, each search of a step while it is down waits at most
the client's bounded retries (4 attempts, 0.2 + 0.4 + 0.8 s of backoff), then the episode
is dropped and counted (``rollout/dropped``, reason ``env tool failed: The search failed:
RemoteRetrieverError: ... failed after 4 attempts``) instead of being scored on an
observation it never got; once the server is back, the next step trains as before. With
two replicas the searches fail over and no episode is lost. Servers are real
``deepresearch serve-retriever`` processes on 127.0.0.1 over a BM25 index of the demo corpus.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from fault_helpers import TINY_FAULT_RUN, at_steps, fault_config, run_bounded, scripted_engine, step_records
from test_retrieval_server import _free_port, start_serving

from deepresearch.agents import GRPOTrainer
from deepresearch.data import demo_corpus_path
from deepresearch.envs.retrieval import BM25Retriever


@pytest.fixture(scope="module")
def demo_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return BM25Retriever.from_jsonl(demo_corpus_path(), show_progress=False).save(tmp_path_factory.mktemp("demo-index") / "bm25")


class Servers:
    """``deepresearch serve-retriever`` processes on fixed loopback ports, killed and restarted by the test."""

    def __init__(self, index: Path, count: int) -> None:
        self.index = index
        self.ports = [_free_port() for _ in range(count)]
        self.processes = [start_serving(index, port) for port in self.ports]

    @property
    def url(self) -> str:
        return ",".join(f"http://127.0.0.1:{port}" for port in self.ports)

    def kill(self, which: int) -> None:
        self.processes[which].send_signal(signal.SIGKILL)
        self.processes[which].wait(timeout=30)

    def restart(self, which: int) -> None:
        self.processes[which] = start_serving(self.index, self.ports[which])  # same address, once healthy

    def close(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait(timeout=30)


def searching_trainer(tmp_path: Path, servers: Servers, schedule: str, actions: dict) -> tuple[GRPOTrainer, list[str]]:
    lines: list[str] = []
    env_kwargs = {**TINY_FAULT_RUN["env_kwargs"], "corpus": servers.url, "dataset": "demo"}
    trainer = GRPOTrainer(fault_config(tmp_path, schedule=schedule, env_kwargs=env_kwargs), log=at_steps(actions, lines), progress=False)
    trainer.engine = scripted_engine(trainer)
    return trainer, lines


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["sync", "async"])
def test_a_server_down_for_a_step_drops_that_steps_episodes_and_training_goes_on(tmp_path, demo_index, schedule):
    servers = Servers(demo_index, 1)
    try:
        trainer, lines = searching_trainer(tmp_path, servers, schedule, {1: lambda: servers.kill(0), 2: lambda: servers.restart(0)})
        run_bounded(trainer)
    finally:
        servers.close()
    records = step_records(tmp_path)
    assert [records[s]["rollout/dropped"] for s in (1, 2, 3)] == [0, 4, 0]
    assert records[1]["reward/mean"] == records[3]["reward/mean"] == 1.0  # searched, read, answered right
    assert records[1]["episode/searches"] == records[3]["episode/searches"] == 1.0
    assert "reward/mean" not in records[2]  # nothing scored on the missing observations
    assert not (tmp_path / "episodes" / "step_0000002.jsonl").exists()
    warning = next(line for line in lines if line.startswith("warning: step 2:"))
    assert "4x env tool failed: The search failed: RemoteRetrieverError" in warning and "failed after 4 attempts" in warning


@pytest.mark.slow
def test_one_of_two_replicas_dying_loses_no_episode(tmp_path, demo_index):
    servers = Servers(demo_index, 2)
    try:
        trainer, lines = searching_trainer(tmp_path, servers, "async", {1: lambda: servers.kill(0)})
        run_bounded(trainer)
    finally:
        servers.close()
    records = step_records(tmp_path)
    assert [records[s]["rollout/dropped"] for s in (1, 2, 3)] == [0, 0, 0]
    assert [records[s]["reward/mean"] for s in (1, 2, 3)] == [1.0, 1.0, 1.0]
    assert not any(line.startswith("warning:") for line in lines)

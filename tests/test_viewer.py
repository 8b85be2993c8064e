"""The trajectory viewer: escaping, masking marks, filters, and a real render in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from agents_helpers import ReplayEngine, oracle_script

from deepresearch.agents import RolloutConfig, TurnEncoder, run_rollouts
from deepresearch.agents.rollout.request import RolloutRequest
from deepresearch.agents.trajectories import episode_record, read_trajectories
from deepresearch.agents.viewer.page import render_html, write_viewer
from deepresearch.cli import main as cli_main
from deepresearch.envs import make_wiki_env

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
HOSTILE = '<script>document.title="pwned"</script><img src=x onerror="document.title=\'pwned\'">'


def env_record(env, index: int, turns: list[str], dataset: str) -> dict:
    """A results-style record from a real demo-world episode played with ``turns``."""
    _, info = env.reset(options={"index": index})
    for turn in turns:
        _, reward, terminated, truncated, info = env.step(turn)
        if terminated or truncated:
            break
    return {
        "dataset": dataset, "id": info["question_id"], "question": info["question"], "golden_answers": info["golden_answers"],
        "prediction": info["reward_components"].get("answer"), "reward": reward, "reward_components": info["reward_components"],
        "transcript": info["transcript"], "segments": info["segments"],
    }


@pytest.fixture(scope="module")
def results_file(tmp_path_factory) -> Path:
    env = make_wiki_env(protocol="research", max_turns=3)
    protocol = env.protocol
    good = env_record(env, 0, ["<think>Look it up.</think>" + protocol.search_action("Velmora Quistad"), protocol.answer_action(env.questions[0].golden_answers[0])], "demo")
    hostile = env_record(env, 1, [f"<think>{HOSTILE}</think>" + protocol.search_action("</div><b>x"), protocol.answer_action(HOSTILE)], "other")
    path = tmp_path_factory.mktemp("eval") / "results.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(hostile) + "\n" + '{"step": 3, "loss": 0.1}\n', encoding="utf-8")
    return path


def test_reads_trajectory_lines_and_skips_metric_lines(results_file):
    records = read_trajectories(results_file)
    assert records[0]["reward"] > 0.5 and records[1]["reward"] < 0.5  # the filter test below relies on this
    assert [r["dataset"] for r in records] == ["demo", "other"]
    assert read_trajectories(results_file.parent) == records  # a run folder works the same


def test_all_model_text_is_escaped(results_file):
    page = render_html(read_trajectories(results_file))
    assert HOSTILE not in page and "<img" not in page
    assert page.count("<script>") == 1  # only the viewer's own filter script
    assert "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;" in page
    assert "http://" not in page and "https://" not in page  # nothing loads from the network


def test_env_text_is_marked_masked_and_policy_tags_are_distinct(results_file):
    page = render_html(read_trajectories(results_file))
    record = read_trajectories(results_file)[0]
    env_spans = [s for s in record["segments"] if s["source"] == "env"]
    assert page.count('class="masked-label"') == sum(1 for r in read_trajectories(results_file) for s in r["segments"] if s["source"] == "env")
    assert env_spans and '<span class="search">' in page and '<span class="answer">' in page and '<span class="think">' in page


def test_cli_view_writes_one_file(results_file, tmp_path, capsys):
    out = tmp_path / "page.html"
    assert cli_main(["view", str(results_file), "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_text(encoding="utf-8") == render_html(read_trajectories(results_file), title="results.jsonl — 2 trajectories")


def test_a_training_run_folder_of_episode_dumps(tmp_path):
    from transformers import AutoTokenizer

    from deepresearch.agents import default_tiny_model

    tokenizer = AutoTokenizer.from_pretrained(default_tiny_model())
    encoder = TurnEncoder(tokenizer, "text")
    envs = [make_wiki_env(protocol="research", max_turns=4) for _ in range(2)]
    engine = ReplayEngine(tokenizer, [oracle_script(envs[i], i, encoder) for i in range(2)])
    episodes, _ = run_rollouts(RolloutRequest(engine, envs, [{"options": {"index": i}} for i in range(2)], [0, 1], RolloutConfig(), encoder))
    (tmp_path / "episodes").mkdir()
    for step, episode in enumerate(episodes, start=1):
        line = json.dumps(episode_record(episode, step=step, dataset="demo"))
        (tmp_path / "episodes" / f"step_{step:06d}.jsonl").write_text(line + "\n", encoding="utf-8")
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "reward": 1.0}\n', encoding="utf-8")
    records = read_trajectories(tmp_path)
    assert [r["step"] for r in records] == [1, 2] and all(r["reward"] > 0.5 for r in records)
    page = write_viewer(tmp_path).read_text(encoding="utf-8")
    assert page.count('class="masked-label"') == sum(s["source"] == "env" for e in episodes for s in e.segments) > 0
    assert "step: 2" in page


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("headless Chromium not installed (Debian: apt-get install -y chromium); CI must install it")


def run_chromium(html_path: Path, tmp_path: Path, *extra: str, url_suffix: str = "") -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    command = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, html_path.as_uri() + url_suffix]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_renders_in_headless_chromium_without_running_model_text(results_file, tmp_path):
    page = write_viewer(results_file, tmp_path / "viewer.html")
    dom = run_chromium(page, tmp_path, "--dump-dom").stdout
    assert "pwned" not in dom.split("</title>")[0]  # the hostile script never ran
    assert dom.count('class="traj') == 2 and 'id="shown">2<' in dom  # the filter script ran and counted
    assert "ENV · masked" in dom
    by_reward = run_chromium(page, tmp_path, "--dump-dom", url_suffix="#rmin=0.5").stdout
    assert re.findall(r'class="(traj[^"]*)" data-reward="[^"]*" data-dataset="(\w+)"', by_reward) == [("traj", "demo"), ("traj hidden", "other")]
    by_dataset = run_chromium(page, tmp_path, "--dump-dom", url_suffix="#dataset=other").stdout
    assert re.findall(r'class="(traj[^"]*)" data-reward="[^"]*" data-dataset="(\w+)"', by_dataset) == [("traj hidden", "demo"), ("traj", "other")]
    shot = tmp_path / "shot.png"
    run_chromium(page, tmp_path, f"--screenshot={shot}", "--window-size=1280,900")
    assert shot.is_file() and shot.stat().st_size > 20_000

"""verl 0.9.1's own trainer takes a GRPO step on CPU with our agent loop as its rollout, and learns.

``python -m verl.trainer.main_ppo`` (``trainer.use_v1=false``: the v1 trainer needs the
TransferQueue package) runs for real: its Ray task runner, the FSDP2 actor/ref engine
worker, the agent-loop manager and worker running ``DeepResearchAgentLoop`` on the
parquet our converter writes, GRPO advantages, the actor update and the weight sync
to the rollout server before each rollout. Stood in for: the rollout server
(verl_standin_server.py, registered as ``rollout.name=hf_standin`` by
verl_standin_rollout.py) and the accelerator (verl_cpu_platform.py: a ``cpu`` platform
through verl's plugin registry, Ray started with one fake GPU). The server answers as a
scripted policy (``ScriptedTokenServer``): in each group of four, two copies search and
answer right (reward 1 from our env) and two answer wrong (0), with the model's own
logprobs, so GRPO's advantages are not zero and the step must move the weights towards the
rewarded turns. A reward of ours that stopped reaching verl (``reward_score`` 0) leaves
every advantage 0 and the weights where they were: this test fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("verl.experimental.agent_loop", reason="verl lives in its own venv: `make verl-env`, then `make test-verl`")

from verl_harness import WORKER_ENV, example_agent_loop, tiny_model_path, write_demo_dataset  # noqa: E402

pytestmark = pytest.mark.slow

TRAINER_TIMEOUT_S = 900
RESPONSE_LENGTH = 192  # a search, one document (top_k 1) and an answer fit


def metrics_of_step(output: str, step: int) -> dict[str, float]:
    """verl's console logger line ``step:N - key:value - ...`` as numbers."""
    line = next(line for line in output.splitlines() if f"step:{step} - " in line)
    metrics = {}
    for key, value in re.findall(r"([\w/@.-]+):(?:np\.\w+\()?(-?[\d.e+-]+|nan)\)?", line[line.index(f"step:{step} - ") :]):
        metrics[key] = float(value)
    return metrics


def test_verl_trains_a_grpo_step_on_cpu_towards_our_envs_rewarded_episodes(tmp_path):
    dataset = write_demo_dataset(tmp_path / "train.parquet", limit=2)
    agent_loop = example_agent_loop(
        tmp_path / "agent_loop.yaml", env_kwargs={"protocol": "search_r1", "max_turns": 3, "top_k": 1}, max_new_tokens_per_turn=24, server_dialect="vllm"
    )
    overrides = [
        "algorithm.adv_estimator=grpo", "algorithm.use_kl_in_reward=False", "trainer.use_v1=false",
        f"data.train_files={dataset}", f"data.val_files={dataset}", "data.train_batch_size=2",
        "data.max_prompt_length=192", f"data.max_response_length={RESPONSE_LENGTH}", "data.dataloader_num_workers=0",
        f"actor_rollout_ref.model.path={tiny_model_path()}", "actor_rollout_ref.model.use_remove_padding=false",
        "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",  # no FlashAttention on CPU
        "actor_rollout_ref.actor.strategy=fsdp2", "actor_rollout_ref.ref.strategy=fsdp2",  # FSDP1 needs an accelerator
        "actor_rollout_ref.actor.use_kl_loss=False", "actor_rollout_ref.actor.ppo_mini_batch_size=2",
        "actor_rollout_ref.actor.optim.lr=1e-4",  # verl's 1e-6 moves a logprob by less than float noise in one step
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2", "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.rollout.name=hf_standin", "actor_rollout_ref.rollout.n=4",
        "actor_rollout_ref.rollout.tensor_model_parallel_size=1", "actor_rollout_ref.rollout.agent.num_workers=1",
        f"actor_rollout_ref.rollout.agent.agent_loop_config_path={agent_loop}", "reward.num_workers=1",
        "trainer.n_gpus_per_node=1", "trainer.nnodes=1", "trainer.device=cpu", "trainer.logger=[console]",
        "trainer.total_training_steps=1", "trainer.val_before_train=False", "trainer.test_freq=-1", "trainer.save_freq=-1",
        f"trainer.default_local_dir={tmp_path / 'checkpoints'}",
        "+ray_kwargs.ray_init.num_cpus=8", "+ray_kwargs.ray_init.num_gpus=1", "+ray_kwargs.ray_init.include_dashboard=False",
    ]  # fmt: skip
    env = {
        **os.environ, **WORKER_ENV,
        "VERL_USE_EXTERNAL_MODULES": "verl_standin_rollout", "VERL_PLATFORM": "cpu",
        "VERL_ENGINE_DEVICE": "cuda", "VERL_ENGINE_VENDOR": "nvidia",  # verl registers its FSDP engine for cuda/npu only
        "VERL_STANDIN_POLICY": "scripted",
    }  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "verl.trainer.main_ppo", *overrides],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=TRAINER_TIMEOUT_S,
    )  # fmt: skip
    output = run.stdout + run.stderr
    (Path(tmp_path) / "trainer.log").write_text(output)
    assert run.returncode == 0, output[-4000:]
    metrics = metrics_of_step(output, 1)

    # The rollout's logprobs (through our agent loop and verl's server call) are the ones verl's
    # FSDP actor recomputes for the same tokens: what PPO's importance ratio needs.
    assert metrics["training/rollout_probs_diff_max"] < 0.01 and metrics["training/rollout_actor_probs_pearson_corr"] > 0.99
    # Our env's episodes: its prompt; a search, the env's results and a right answer, or a wrong answer at once.
    assert metrics["prompt_length/min"] > 100 and metrics["num_turns/max"] == 5 and metrics["num_turns/min"] == 3
    assert metrics["response_length/max"] < RESPONSE_LENGTH  # no episode was cut off
    # Our env's rewards reached verl: half of each group scored 1, half 0, so GRPO's advantages are not 0.
    assert (metrics["critic/score/max"], metrics["critic/score/min"], metrics["critic/score/mean"]) == (1.0, 0.0, 0.5)
    assert metrics["critic/advantages/max"] > 0.5 and metrics["critic/advantages/min"] < -0.5
    assert metrics["actor/grad_norm"] > 0 and "timing_s/update_actor" in metrics and "timing_s/update_weights" in metrics
    # verl synced the actor's weights into the rollout server before the rollout and after the update...
    synced = re.findall(r"stand-in server: loaded (\d+) tensors from the trainer \(global step (\d+)\)", output)
    assert [step for _, step in synced] == ["0", "1"] and all(int(n) > 0 for n, _ in synced)
    # ...and the updated weights give the rewarded turns more probability, the others less.
    moved = dict(
        (kind, (float(before), float(after)))
        for kind, before, after in re.findall(r"stand-in server: (\w+) turns: \d+, mean logprob (\S+) -> (\S+) \(global step 1\)", output)
    )
    assert moved["rewarded"][1] > moved["rewarded"][0], moved
    assert moved["unrewarded"][1] < moved["unrewarded"][0], moved

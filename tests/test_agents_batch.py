"""Episodes -> tensors, question order, and atomic checkpoints."""

from __future__ import annotations

import torch

from deepresearch.agents.rollout.batch import collate_episodes
from deepresearch.agents.rollout.runner import Episode
from deepresearch.agents.train.checkpoint import complete_checkpoints, latest_checkpoint, save_checkpoint
from deepresearch.agents.train.sampler import QuestionSampler


def episode(prompt, response, mask, reward, group):
    item = Episode(group_id=group, prompt_ids=prompt)
    item.append(response, True)
    item.loss_mask = mask
    item.rollout_logprobs = [-0.5 if m else 0.0 for m in mask]
    item.reward = reward
    return item


def test_collate_masks_exactly_the_sampled_ids_and_pads_right():
    batch = collate_episodes(
        [episode([5, 6], [7, 8, 9], [1, 0, 1], 1.0, "a"), episode([5], [0, 3], [1, 1], 0.0, "a")], pad_token_id=0
    )
    assert batch.input_ids.tolist() == [[5, 6, 7, 8, 9], [5, 0, 3, 0, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    # The second row's sampled id 0 equals the pad id: the mask still marks it, padding stays 0.
    assert batch.loss_mask.tolist() == [[0, 0, 1, 0, 1], [0, 1, 1, 0, 0]]
    assert batch.rollout_logprobs[0].tolist() == [0, 0, -0.5, 0, -0.5]
    assert batch.rewards.tolist() == [1.0, 0.0] and batch.lengths.tolist() == [5, 3]
    unmasked = collate_episodes([episode([5, 6], [7, 8, 9], [1, 0, 1], 1.0, "a")], 0, mask_env_tokens=False)
    assert unmasked.loss_mask.tolist() == [[0, 0, 1, 1, 1]]
    short = batch.select([1])
    assert short.input_ids.tolist() == [[5, 0, 3]] and short.group_ids == ["a"]


def test_sampler_is_seeded_spans_epochs_and_resumes_exactly():
    sampler = QuestionSampler(5, seed=3)
    first = sampler.take(3) + sampler.take(3) + sampler.take(4)
    assert sorted(first[:5]) == list(range(5)) and sorted(first[5:]) == list(range(5))
    again = QuestionSampler(5, seed=3)
    again.take(4)
    state = again.state_dict()
    resumed = QuestionSampler(5, seed=3)
    resumed.load_state_dict(state)
    assert first[4:] == resumed.take(6)
    assert QuestionSampler(5, seed=4).take(5) != first[:5]


def test_checkpoints_are_atomic_pruned_and_restore_the_weights(tmp_path):
    from deepresearch.agents.train.checkpoint import load_checkpoint
    from deepresearch.agents.train.distributed import Parallel

    single = Parallel()
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    for step in (1, 2, 3):
        model(torch.ones(1, 3)).sum().backward()
        optimizer.step()
        save_checkpoint(tmp_path, step, model, optimizer, {"step": step}, single, keep=2)
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["checkpoint-0000002", "checkpoint-0000003"]
    # A write killed midway leaves a staging dir or an unmarked dir: both are ignored.
    (tmp_path / ".checkpoint-0000004.tmp").mkdir()
    (tmp_path / "checkpoint-0000005").mkdir()
    assert latest_checkpoint(tmp_path).name == "checkpoint-0000003"
    fresh = torch.nn.Linear(3, 2)
    fresh_optimizer = torch.optim.AdamW(fresh.parameters(), lr=0.1)
    assert load_checkpoint(latest_checkpoint(tmp_path), fresh, fresh_optimizer, single)["step"] == 3
    assert torch.equal(fresh.weight, model.weight) and torch.equal(fresh.bias, model.bias)
    assert fresh_optimizer.state_dict()["state"][0]["step"] == 3


def test_metrics_log_starts_fresh_or_resumes_without_stale_or_torn_lines(tmp_path):
    from deepresearch.agents.train.metrics_log import MetricsLogger, read_metrics

    logger = MetricsLogger(tmp_path, report_to=("jsonl",))
    for step in (0, 1, 2, 3):
        logger.log(step, {"reward/mean": step / 10})
    logger.close()
    with (tmp_path / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 4, "rew')  # killed mid-write
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [0, 1, 2, 3]
    resumed = MetricsLogger(tmp_path, resumed_at=2, report_to=("jsonl",))  # last checkpoint: step 2
    resumed.log(3, {"reward/mean": 0.9})
    resumed.close()
    assert [(r["step"], r["reward/mean"]) for r in read_metrics(tmp_path / "metrics.jsonl")] == [(0, 0.0), (1, 0.1), (2, 0.2), (3, 0.9)]
    MetricsLogger(tmp_path, report_to=("jsonl",)).close()  # a fresh run
    assert read_metrics(tmp_path / "metrics.jsonl") == []

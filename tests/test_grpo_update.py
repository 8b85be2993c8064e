"""One GRPO update moves probability towards rewarded completions and away from the others."""

from __future__ import annotations

import torch
from agents_helpers import tiny_policy

from deepresearch.agents import collate_episodes, group_advantages
from deepresearch.agents.grpo.update import UpdateConfig, grpo_update, token_logprobs
from deepresearch.agents.rollout.runner import Episode


def test_update_raises_the_rewarded_completion_and_lowers_the_other():
    model, tokenizer, _ = tiny_policy()
    prompt = tokenizer("Where was Jerved Gruvar born?", add_special_tokens=False)["input_ids"]
    episodes = []
    for text, reward in (("<answer> \\boxed{Phokaelmath} </answer>", 1.0), ("<answer> \\boxed{Tarsenby} </answer>", 0.0)):
        episode = Episode(group_id="q", prompt_ids=list(prompt))
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        episode.append(ids, True, [0.0] * len(ids))
        episode.reward = reward
        episodes.append(episode)
    batch = collate_episodes(episodes, tokenizer.pad_token_id)
    mask = batch.loss_mask[:, 1:].bool()

    def sequence_logprobs():
        with torch.no_grad():
            return (token_logprobs(model, batch, 1.0)[0] * mask).sum(dim=1)

    before = sequence_logprobs()
    advantages = group_advantages(batch.rewards, batch.group_ids).advantages
    assert advantages.tolist() == [1.0, -1.0] or torch.allclose(advantages, torch.tensor([1.0, -1.0]), atol=1e-4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(3):
        grpo_update(model, optimizer, batch, advantages, UpdateConfig(micro_batch_size=1))
    after = sequence_logprobs()
    assert after[0] > before[0] and after[1] < before[1]

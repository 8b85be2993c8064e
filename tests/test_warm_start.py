"""Warm start as part of a run: SFT micro-batches, reuse of a finished warm start, top-layer training."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from agents_helpers import tiny_policy
from conftest import REPO_ROOT

from deepresearch.agents import SFTConfig, TurnEncoder, default_tiny_model, load_policy, sft_train
from deepresearch.agents.train.sft import encode_trajectory, masked_nll_sum
from deepresearch.agents.train.config_file import load_run_file, with_overrides
from deepresearch.agents.train.demo import DEMO_ENV_KWARGS, demo_grpo_config
from deepresearch.agents.train.warm_start import WARM_START_INFO_FILE, WarmStartConfig, warm_started_model
from deepresearch.agents.trajectories import Trajectory, Turn

TRAJECTORIES = [
    Trajectory("Q: where?", [], [Turn("policy", "<search> Jerved Gruvar born </search>"), Turn("env", "\n<result>\nx\n</result>\n"), Turn("policy", "<answer> Phokaelmath </answer>")]),
    Trajectory("Q: who?", [], [Turn("policy", "<answer> Kothi </answer>")]),
    Trajectory("Q: which region is it in?", [], [Turn("policy", "<search> Dilmol region </search>"), Turn("env", "\n<result>\ny z\n</result>\n"), Turn("policy", "<answer> Thetamei </answer>")]),
]


def test_sft_micro_batches_accumulate_the_whole_batch_gradient():
    # Adam's first step is ~lr * sign(gradient), which flips for near-zero gradients summed in
    # another order, so the gradients are compared, not the weights after a step.
    model, tokenizer, _ = tiny_policy()
    encoder = TurnEncoder(tokenizer, "text")
    rows = [encode_trajectory(t, encoder, encoder.turn_end_id()) for t in TRAJECTORIES]
    total = sum(sum(mask[1:]) for _, mask in rows)
    gradients = []
    for size in (3, 1, 2):
        model.zero_grad(set_to_none=True)
        for start in range(0, len(rows), size):
            (masked_nll_sum(model, rows[start : start + size], tokenizer.pad_token_id, torch.device("cpu")) / total).backward()
        gradients.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert gradients[0].abs().sum() > 0
    for other in gradients[1:]:
        assert torch.allclose(other, gradients[0], atol=2e-6, rtol=1e-4), float((other - gradients[0]).abs().max())
    losses = sft_train(model, tokenizer, TRAJECTORIES, SFTConfig(steps=3, batch_size=3, learning_rate=1e-3, micro_batch_size=1), encoder)
    assert len(losses) == 3 and all(loss > 0 for loss in losses)
    with pytest.raises(ValueError, match="micro_batch_size"):
        SFTConfig(micro_batch_size=0)


def test_a_finished_warm_start_is_reused_and_changed_settings_rebuild_it(tmp_path):
    settings = WarmStartConfig(trajectories=8, sft=SFTConfig(steps=2, batch_size=2, learning_rate=1e-3))
    model = str(default_tiny_model())
    arguments = (tmp_path / "warm_start", "DeepResearch-Wiki-v0", dict(DEMO_ENV_KWARGS))
    path, built = warm_started_model(model, *arguments, settings, prompt_mode="text")
    assert built and (path / "config.json").is_file() and (path / WARM_START_INFO_FILE).is_file()
    weights = (path / "model.safetensors").read_bytes()
    assert warm_started_model(model, *arguments, settings, prompt_mode="text") == (path, False)
    assert (path / "model.safetensors").read_bytes() == weights
    _, rebuilt = warm_started_model(model, *arguments, replace(settings, single_search_rate=0.5), prompt_mode="text")
    assert rebuilt


def test_trainable_layers_leave_every_other_weight_frozen():
    model, _ = load_policy(str(default_tiny_model()), torch.device("cpu"), trainable_layers=1)
    layers = model.get_decoder().layers
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    last = f"layers.{len(layers) - 1}."
    assert trained and all(last in name or name.endswith("norm.weight") and "layers." not in name for name in trained)
    assert {name for name, _ in layers[-1].named_parameters()} == {n.split(last, 1)[1] for n in trained if last in n}
    with pytest.raises(ValueError, match="trainable_layers must be in 1..4"):
        load_policy(str(default_tiny_model()), torch.device("cpu"), trainable_layers=99)


def test_trainable_layers_with_lora_puts_adapters_on_those_layers_only():
    model, _ = load_policy(str(default_tiny_model()), torch.device("cpu"), lora_rank=2, trainable_layers=1)
    last = len(model.get_base_model().get_decoder().layers) - 1
    adapted = {name.split("layers.")[1].split(".")[0] for name, p in model.named_parameters() if "lora_" in name}
    assert adapted == {str(last)}


def test_config_overrides_reach_nested_warm_start_settings():
    config = with_overrides(demo_grpo_config(), {"warm_start.sft.steps": 7, "env_kwargs.top_k": 2, "steps": 3})
    assert (config.warm_start.sft.steps, config.env_kwargs["top_k"], config.steps) == (7, 2, 3)
    assert config.warm_start.guess_rate == demo_grpo_config().warm_start.guess_rate


def test_the_smollm2_recipe_loads_with_a_warm_start_and_the_packaged_model():
    run = load_run_file(REPO_ROOT / "recipes" / "smollm2-135m_demo.cpu.yaml")
    assert run.config.model == "smollm2" and run.config.warm_start.enabled
    assert run.config.warm_start.think  # the search_r1 format rule wants <think> first
    assert run.recipe.expected_wall_time

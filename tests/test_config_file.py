"""``deepresearch train --config FILE key=value ...``: the whole GRPOConfig from YAML, checked key by key."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO_ROOT

from deepresearch.agents import GRPOConfig
from deepresearch.agents.train.config_file import ConfigError, config_to_yaml, load_config, load_run_file
from deepresearch.cli import main

RECIPES = REPO_ROOT / "recipes"
PAPER_RECIPES = sorted(p for p in RECIPES.glob("*.yaml") if not p.name.endswith((".cpu.yaml", ".gpu.yaml")))


def write(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_nested_sections_overrides_and_yaml_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, "model: some/model\nupdate:\n  loss: {kl_coef: 1e-3, loss_agg: seq-mean-token-mean}\noptimizer: {learning_rate: 1e-6}\n")
    config = load_config(path, ["env_kwargs.top_k=5", "rollout.temperature=0.7", "report_to=[jsonl, wandb]", "steps=7"])
    assert config.model == "some/model" and config.steps == 7
    # YAML 1.1 reads 1e-6 (no dot) as a string; float fields take it as the number it spells.
    assert config.optimizer.learning_rate == 1e-6 and config.update.loss.kl_coef == 1e-3
    assert config.update.loss.loss_agg == "seq-mean-token-mean" and config.rollout.temperature == 0.7
    assert config.env_kwargs == {"top_k": 5} and config.report_to == ("jsonl", "wandb")
    # Untouched knobs keep their defaults, derived values are derived as in code.
    assert config.update.micro_batch_size == GRPOConfig().update.micro_batch_size
    assert config.update.loss.max_response_length == config.rollout.max_response_tokens


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["update.loss.kl_coeff=0.1"], "unknown config key 'update.loss.kl_coeff' (did you mean 'update.loss.kl_coef'?)"),
        (["stepz=3"], "unknown config key 'stepz' (did you mean 'steps'?)"),
        (["steps=many"], "steps: expected int, got 'many'"),
        (["rollout.top_p=true"], "rollout.top_p: expected float, got True"),
        (["engine=tpu"], "unknown engine 'tpu'; registered: hf, vllm"),
        (["update.micro_batch_size=0"], "invalid update: need micro_batch_size >= 1"),
        (["report_to=[jsonl, mlflow]"], "report_to: unknown tracker(s) ['mlflow']"),
        (["distributed.param_dtype=fp8"], "distributed.param_dtype: must be one of"),
        (["update=3"], "update: expected a mapping of UpdateConfig fields, got 3"),
        (["steps"], "override 'steps' is not key=value"),
        (["recipe.gpus=8"], "unknown config key 'recipe.gpus'"),
    ],
)
def test_bad_keys_and_values_are_errors_that_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(None, overrides)
    assert message in str(error.value)


def test_extends_merges_mappings_and_refuses_cycles(tmp_path: Path) -> None:
    write(tmp_path, "steps: 9\nenv_kwargs: {protocol: search_r1, top_k: 3, corpus: big.jsonl}\nupdate: {micro_batch_size: 2}\n", "base.yaml")
    child = write(tmp_path, "extends: base.yaml\nenv_kwargs: {top_k: 1, corpus: null}\n", "child.yaml")
    config = load_config(child)
    assert config.steps == 9 and config.update.micro_batch_size == 2
    assert config.env_kwargs == {"protocol": "search_r1", "top_k": 1, "corpus": None}
    write(tmp_path, "extends: b.yaml\n", "a.yaml")
    write(tmp_path, "extends: a.yaml\n", "b.yaml")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n", "list.yaml"))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_recipe_loads_states_its_hardware_and_round_trips(path: Path, tmp_path: Path) -> None:
    run = load_run_file(path)
    assert run.recipe.name == path.name.removesuffix(".yaml")
    assert run.recipe.hardware and run.recipe.expected_wall_time and run.recipe.paper
    again = load_run_file(write(tmp_path, config_to_yaml(run.config, run.recipe)))
    assert again.config == run.config and again.recipe == run.recipe


@pytest.mark.parametrize("path", PAPER_RECIPES, ids=lambda p: p.name)
def test_each_paper_recipe_has_a_cpu_variant_of_the_same_method(path: Path) -> None:
    paper = load_config(path)
    cpu = load_config(path.with_name(path.name.replace(".yaml", ".cpu.yaml")))
    assert paper.model and cpu.model is None and cpu.engine == "hf" and cpu.steps <= 3
    assert cpu.env_kwargs["protocol"] == paper.env_kwargs["protocol"] and cpu.env_kwargs["reward"] == paper.env_kwargs["reward"]
    assert cpu.update.loss.kl_coef == paper.update.loss.kl_coef and cpu.update.loss.loss_agg == paper.update.loss.loss_agg


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.gpu.yaml")), ids=lambda p: p.name)
def test_the_gpu_recipes_load_name_a_hub_model_and_state_their_wall_time(path: Path) -> None:
    run = load_run_file(path)
    assert run.config.model and run.config.model.startswith("Qwen/") and run.config.engine == "vllm"
    assert run.recipe.expected_wall_time and run.config.eval_questions >= 300


def test_the_paper_recipes_carry_the_papers_settings() -> None:
    research = load_config(RECIPES / "research_qwen2.5-7b-instruct.yaml")
    assert (research.model, research.group_size, research.questions_per_step) == ("Qwen/Qwen2.5-7B-Instruct", 5, 256)
    assert research.env_kwargs["top_k"] == 5 and research.rollout.max_response_tokens == 8192
    search_r1 = load_config(RECIPES / "search_r1_qwen2.5-3b.yaml")
    assert (search_r1.model, search_r1.group_size, search_r1.questions_per_step, search_r1.steps) == ("Qwen/Qwen2.5-3B", 5, 512, 1005)
    assert search_r1.warmup_steps == 286 and search_r1.env_kwargs["top_k"] == 3 and search_r1.prompt_mode == "text"
    web = load_config(RECIPES / "deepresearcher_qwen2.5-7b.yaml")
    assert web.env_id == "DeepResearch-Web-v0" and web.group_size == 16 and web.env_kwargs["max_turns"] == 10
    for config in (research, search_r1, web):
        assert config.optimizer.learning_rate == 1e-6 and config.update.loss.kl_coef == 0.001 and config.update.loss.kl_estimator == "k3"


def test_cli_prints_the_resolved_config_and_rejects_bad_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--config", str(RECIPES / "search_r1_qwen2.5-3b.cpu.yaml"), "--print-config", "steps=5"]) == 0
    printed = capsys.readouterr().out
    assert "steps: 5" in printed and "protocol: search_r1" in printed and "name: search_r1_qwen2.5-3b.cpu" in printed
    assert main(["train", "--config", str(RECIPES / "search_r1_qwen2.5-3b.cpu.yaml"), "update.lr=1"]) == 2
    assert "unknown config key 'update.lr'" in capsys.readouterr().err

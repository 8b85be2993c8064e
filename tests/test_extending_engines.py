"""Worked example: a rollout engine registered by a user's module, named in a YAML run file
(``imports:`` + ``engine:``), built by the trainer through the engine factory, trained with."""

from __future__ import annotations

import textwrap

import pytest

from deepresearch.agents import GRPOTrainer
from deepresearch.agents.rollout.engines import ENGINES, EngineRequest, build_training_engine, register_engine
from deepresearch.agents.train.config_file import ConfigError, load_config

USER_MODULE = '''
"""A user's engine: transformers on the trainer's live model, counting what it generates."""

from deepresearch.agents.rollout.engines import TrainingEngine, make_engine, register_engine


class CountingEngine:
    def __init__(self, inner):
        self.inner, self.prompts = inner, 0
        self.tokenizer, self.max_model_len, self.end_of_turn_ids = inner.tokenizer, inner.max_model_len, inner.end_of_turn_ids

    def generate(self, prompts, sampling):
        self.prompts += len(prompts)
        return self.inner.generate(prompts, sampling)

    def sync_weights(self, named_tensors):
        self.inner.sync_weights(named_tensors)

    def sleep(self):
        pass

    def wake(self):
        pass


@register_engine("counting")
def counting_engine(request):
    return TrainingEngine(CountingEngine(make_engine("hf", request.model, tokenizer=request.tokenizer)), shares_model=True)
'''

RUN_FILE = """
imports: [user_engines]
engine: counting
env_kwargs: {protocol: search_r1, max_turns: 2}
prompt_mode: text
group_size: 2
questions_per_step: 2
steps: 1
eval_every: 0
save_every: 0
report_to: [jsonl]
rollout: {max_new_tokens_per_turn: 8, max_response_tokens: 32}
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "user_engines.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    ENGINES.unregister("counting")


def test_an_unimported_engine_name_is_a_config_error_naming_the_registered_ones(tmp_path):
    run = tmp_path / "run.yaml"
    run.write_text("engine: counting\n")
    with pytest.raises(ConfigError, match="unknown engine 'counting'; registered: hf, vllm"):
        load_config(run)


def test_a_factory_must_return_a_training_engine():
    register_engine("broken", lambda request: object())
    try:
        with pytest.raises(TypeError, match="must return a TrainingEngine holding a RolloutEngine"):
            build_training_engine("broken", EngineRequest(model_path="", model=None, tokenizer=None, device=None))
    finally:
        ENGINES.unregister("broken")
    with pytest.raises(ValueError, match="not a registrable name"):
        register_engine("auto", lambda request: None)


@pytest.mark.slow
def test_the_trainer_builds_and_trains_with_an_engine_named_in_yaml(user_module, tmp_path):
    run = tmp_path / "run.yaml"
    run.write_text(RUN_FILE + f"output_dir: {tmp_path / 'out'}\n")
    config = load_config(run)
    assert (config.engine, config.imports) == ("counting", ("user_engines",))
    trainer = GRPOTrainer(config, log=lambda line: None, progress=False)
    assert type(trainer.engine).__name__ == "CountingEngine" and trainer.engine_shares_model
    metrics = trainer.train()[0]
    assert trainer.engine.prompts >= 4 and metrics["episodes"] == 4  # 2 questions x 2 samples, at least one turn each
    assert "engine: counting" in (tmp_path / "out" / "config.yaml").read_text()

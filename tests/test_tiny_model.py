"""The locally built tiny model: cached, deterministic, atomic, and loadable by transformers."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from deepresearch.agents.models import tiny as tiny_model
from deepresearch.agents.models.build_cache import recorded_key
from deepresearch.agents.models.demo_model import protocol_tag_tokens
from deepresearch.agents.models.tiny import SPECIAL_TOKENS, TinyModelConfig, build_tiny_model
from deepresearch.envs import PROTOCOLS

# The demo model's added tokens: every built-in protocol's tags, each one token.
TAGGED = TinyModelConfig(added_tokens=protocol_tag_tokens())


@pytest.fixture(scope="module")
def corpus(shared_data: Path) -> list[Path]:
    return [shared_data / "qa" / "nq.jsonl"]


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory, corpus: list[Path]) -> Path:
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEEPRESEARCH_CACHE", str(root))
        build_tiny_model(corpus, config=TAGGED)
    return root


@pytest.fixture(scope="module")
def model_dir(cache_root: Path, corpus: list[Path]) -> Path:
    return cache_root / "tiny-models" / tiny_model.build_key(corpus, TAGGED)


def weights_digest(directory: Path) -> str:
    model = AutoModelForCausalLM.from_pretrained(directory)
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def test_second_call_reuses_the_cached_build(monkeypatch, cache_root, corpus, model_dir):
    monkeypatch.setenv("DEEPRESEARCH_CACHE", str(cache_root))

    def no_rebuild(*args, **kwargs):
        raise AssertionError("a cached model was rebuilt")

    monkeypatch.setattr(tiny_model, "_build_into", no_rebuild)
    assert build_tiny_model(corpus, config=TAGGED) == model_dir
    assert not [p for p in model_dir.parent.iterdir() if p.name.startswith(".")], "staging dir left behind"


def test_same_seed_gives_same_weights_and_other_seed_differs(tmp_path, corpus, model_dir):
    again = build_tiny_model(corpus, out_dir=tmp_path / "again", config=TAGGED)
    other = build_tiny_model(corpus, out_dir=tmp_path / "other", config=replace(TAGGED, seed=1))
    assert weights_digest(again) == weights_digest(model_dir)
    assert (again / "tokenizer.json").read_bytes() == (model_dir / "tokenizer.json").read_bytes()
    assert weights_digest(other) != weights_digest(model_dir)


def test_failed_build_leaves_nothing_that_could_load(monkeypatch, tmp_path, corpus):
    def crash(config, tokenizer):
        raise RuntimeError("killed mid-build")

    monkeypatch.setattr(tiny_model, "init_model", crash)
    with pytest.raises(RuntimeError, match="killed mid-build"):
        build_tiny_model(corpus, out_dir=tmp_path / "model")
    assert list(tmp_path.iterdir()) == []


def test_stale_out_dir_is_rebuilt(tmp_path, corpus):
    target = tmp_path / "model"
    build_tiny_model(corpus, out_dir=target, config=TinyModelConfig(seed=3))
    build_tiny_model(corpus, out_dir=target)
    assert recorded_key(target, tiny_model.BUILD_INFO_FILE) == tiny_model.build_key(corpus, TinyModelConfig())


def test_missing_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        build_tiny_model([tmp_path / "nope.jsonl"], out_dir=tmp_path / "model")


def test_protocol_tag_tokens_come_from_the_protocols_own_tags():
    tokens = protocol_tag_tokens()
    for cls in PROTOCOLS.values():
        assert {f"<{tag}>" for tag in cls.tags.names} | {f"</{tag}>" for tag in cls.tags.names} <= set(tokens)
    assert "<browse>" in tokens and "\\boxed{" in tokens and len(tokens) == len(set(tokens))


def test_tags_and_specials_are_single_tokens_that_round_trip(model_dir):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    for tag in TAGGED.added_tokens + SPECIAL_TOKENS:
        ids = tokenizer.encode(tag, add_special_tokens=False)
        assert len(ids) == 1, (tag, ids)
    text = "<think>plan</think>\n<search>capital of France</search>\n<answer>\\boxed{Paris}</answer><|im_end|>"
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids, skip_special_tokens=False) == text
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    # Tags are normal tokens: skipping specials drops only the ChatML markers.
    assert tokenizer.decode(ids, skip_special_tokens=True) == text.removesuffix("<|im_end|>")


def test_chat_template_renders_chatml_with_qwen_style_tool_turns(model_dir):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Who wrote Hamlet?"},
        {"role": "assistant", "content": '<tool_call>{"name": "web_search"}</tool_call>'},
        {"role": "tool", "content": "result one"},
        {"role": "tool", "content": "result two"},
    ]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nWho wrote Hamlet?<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>{"name": "web_search"}</tool_call><|im_end|>\n'
        "<|im_start|>user\n<tool_response>\nresult one\n</tool_response>"
        "\n<tool_response>\nresult two\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    without_prompt = tokenizer.apply_chat_template(messages[:2], tokenize=False)
    assert without_prompt.endswith("Who wrote Hamlet?<|im_end|>\n")


def test_model_forward_and_config(model_dir):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    config = model.config
    assert config.hidden_size // config.num_attention_heads == 64
    assert config.vocab_size == len(tokenizer)
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    ids = torch.tensor([tokenizer.encode("The Eiffel Tower is in <search>")])
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], len(tokenizer))
    assert torch.isfinite(logits).all()

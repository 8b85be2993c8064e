"""A tiny causal LM built locally in seconds, for tests and offline demos.

No model can be downloaded on the machines this project is developed and tested
on, yet the trainer, both rollout engines and vLLM itself need a real model
directory. ``build_tiny_model`` trains a byte-level BPE tokenizer on local text,
adds the chat markup and any tokens the config asks for, and saves a randomly initialised Qwen2 model
that ``transformers`` and ``vllm.LLM`` both load. Builds are cached by a hash of
the config and the corpus contents, and published atomically.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from deepresearch.agents.models.build_cache import build_once, default_cache_root, file_sha256

# Bump when the build recipe changes so stale caches are not reused.
BUILD_FORMAT = 2
BUILD_INFO_FILE = "tiny_model_build.json"

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

# ChatML; consecutive `tool` messages share one user turn, as in Qwen2.5's template.
CHAT_TEMPLATE = r"""
{%- for message in messages -%}
{%- if message['role'] == 'tool' -%}
{%- if loop.first or messages[loop.index0 - 1]['role'] != 'tool' -%}{{ '<|im_start|>user' }}{%- endif -%}
{{ '\n<tool_response>\n' + message['content'] + '\n</tool_response>' }}
{%- if loop.last or messages[loop.index0 + 1]['role'] != 'tool' -%}{{ '<|im_end|>\n' }}{%- endif -%}
{%- else -%}
{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}
""".strip()

# Text fields read from JSON-lines corpora and QA files.
_JSONL_TEXT_FIELDS = ("contents", "text", "title", "question")


@dataclass(frozen=True)
class TinyModelConfig:
    """Shape of the tiny Qwen2 model; head_dim 64 because vLLM's CPU attention needs it."""

    vocab_size: int = 4096
    hidden_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 768
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = True
    # 0.02 (the usual) makes a tied-embedding random model repeat its input token
    # forever; 0.1 gives varied greedy text, so stop-string and sync tests mean something.
    initializer_range: float = 0.1
    seed: int = 0
    # Normal (not special) tokens added whole, e.g. a protocol's tags: kept by decode and
    # emitted by a tiny model in one step.
    added_tokens: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be divisible by num_attention_heads")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be divisible by num_key_value_heads")


def build_tiny_model(
    corpus_paths: list[Path],
    out_dir: Path | None = None,
    config: TinyModelConfig = TinyModelConfig(),
) -> Path:
    """Return a directory holding tokenizer + model, building it only when absent.

    ``out_dir`` defaults to ``<cache>/tiny-models/<key>``, where the key hashes the
    config and the sha256 of every corpus file, so different inputs never share a
    directory. An existing directory is reused only when its recorded key matches.
    """
    corpus_paths = [Path(p) for p in corpus_paths]
    if not corpus_paths:
        raise ValueError("build_tiny_model needs at least one corpus file")
    for path in corpus_paths:
        if not path.is_file():
            raise FileNotFoundError(f"corpus file not found: {path}")
    key = build_key(corpus_paths, config)
    target = Path(out_dir) if out_dir else default_cache_root() / "tiny-models" / key

    def build(staging: Path) -> dict[str, Any]:
        _build_into(staging, corpus_paths, config)
        return {"config": asdict(config)}

    return build_once(target, key, BUILD_INFO_FILE, build)


def build_key(corpus_paths: list[Path], config: TinyModelConfig) -> str:
    """Hash of build format, config and corpus contents (not paths), in order."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"format": BUILD_FORMAT, "config": asdict(config)}, sort_keys=True).encode())
    for path in corpus_paths:
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()[:20]


def iter_corpus_texts(paths: list[Path]) -> Iterator[str]:
    """Texts to train the tokenizer on, each also as one word per line.

    Byte-level BPE learns a word mid-sentence as " Word" and line-initially as "Word";
    the second copy gives the bare forms merges too, so a name a protocol puts right
    after a tag or inside ``\\boxed{}`` is still a few whole tokens, not a byte string.
    """
    for text in _raw_corpus_texts(paths):
        yield text
        yield text.replace(" ", "\n")


def _raw_corpus_texts(paths: list[Path]) -> Iterator[str]:
    for path in paths:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                line = line.strip()
                if not line:
                    continue
                if path.suffix == ".jsonl":
                    yield from _record_texts(line)
                else:
                    yield line


def _record_texts(line: str) -> Iterator[str]:
    try:
        record = json.loads(line)
    except ValueError:
        yield line
        return
    if not isinstance(record, dict):
        return
    for field in _JSONL_TEXT_FIELDS:
        value = record.get(field)
        if isinstance(value, str) and value:
            yield value


def _build_into(directory: Path, corpus_paths: list[Path], config: TinyModelConfig) -> None:
    tokenizer = train_tokenizer(corpus_paths, config.vocab_size, config.added_tokens)
    tokenizer.save_pretrained(directory)
    model = init_model(config, tokenizer)
    model.save_pretrained(directory)


def train_tokenizer(corpus_paths: list[Path], vocab_size: int, added_tokens: tuple[str, ...] = ()):
    """Byte-level BPE with ChatML specials and ``added_tokens`` as single tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(added_tokens),
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(iter_corpus_texts(corpus_paths), trainer=trainer)
    backend.add_tokens([AddedToken(token, special=False, normalized=False) for token in added_tokens])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        model_max_length=2048,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def init_model(config: TinyModelConfig, tokenizer):
    """A seeded, randomly initialised float32 Qwen2 sized to the tokenizer's vocabulary."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    eos_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    model_config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=config.tie_word_embeddings,
        initializer_range=config.initializer_range,
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        dtype="float32",
    )
    torch.manual_seed(config.seed)
    model = Qwen2ForCausalLM(model_config)
    model.generation_config = GenerationConfig(eos_token_id=eos_id, pad_token_id=pad_id)
    return model

"""The demo's tiny model: a tokenizer that knows the demo world and our protocols' text.

~1.5M parameters (head_dim 64 for vLLM's CPU attention): small enough that warm start
and GRPO fit in minutes on two CPU cores. A vocabulary of up to 8192 (BPE runs out of
merges at ~5.6k on the demo world) makes most names one or two tokens, which a model
this small copies far more easily than byte pieces.

The protocols' tags stay ordinary BPE text here. Making them single added tokens
(``protocol_tag_tokens``, an option of ``TinyModelConfig``) was measured to stop the
demo from learning: ``make train`` went from held-out 0.01 -> 0.02 with them to
0.02 -> 0.32 without (40 steps each, same seeds; ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

from pathlib import Path

from deepresearch.agents.models.build_cache import default_cache_root
from deepresearch.agents.models.tiny import TinyModelConfig, build_tiny_model
from deepresearch.data import demo_corpus_path, demo_questions_path
from deepresearch.envs import PROTOCOLS
from deepresearch.envs.documents import Document


def protocol_tag_tokens() -> tuple[str, ...]:
    """``<tag>`` and ``</tag>`` for every tag of the built-in protocols, and ``\\boxed{``."""
    tokens: dict[str, None] = {}
    for protocol in PROTOCOLS.values():
        for tag in protocol.tags.names:
            tokens.update({f"<{tag}>": None, f"</{tag}>": None})
        if protocol.tags.boxed_answer:
            tokens["\\boxed{"] = None
    return tuple(tokens)


DEMO_MODEL = TinyModelConfig(
    vocab_size=8192,
    hidden_size=128,
    num_hidden_layers=4,
    num_attention_heads=2,
    num_key_value_heads=1,
    intermediate_size=384,
)


def default_tiny_model(config: TinyModelConfig = DEMO_MODEL) -> Path:
    """The tiny model trained on the demo world, each protocol's prompt and result layout."""
    document = Document("0", "Velmora Quistad", "Velmora Quistad was born in Tarsenby.", '"Velmora Quistad"\nVelmora Quistad was born in Tarsenby.')
    samples = [(cls().build_prompt("Where was Velmora Quistad born?").text, cls().format_results(["Velmora Quistad born"], [[document]])) for cls in PROTOCOLS.values()]
    prompts = default_cache_root() / "tiny-model-prompts.txt"
    text = "\n".join(piece for sample in samples for piece in sample)
    if not prompts.is_file() or prompts.read_text(encoding="utf-8") != text:
        prompts.parent.mkdir(parents=True, exist_ok=True)
        prompts.write_text(text, encoding="utf-8")
    return build_tiny_model([demo_corpus_path(), demo_questions_path("train"), prompts], config=config)

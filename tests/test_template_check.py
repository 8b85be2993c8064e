"""``deepresearch check-template``: the four conformance checks pass where rollouts are exact and
fail, naming the first differing token or character, where they are not."""

from __future__ import annotations

from dataclasses import replace

import pytest
from transformers import AutoTokenizer

from deepresearch.agents import default_tiny_model
from deepresearch.agents.models.tiny import CHAT_TEMPLATE
from deepresearch.agents.rollout.turns import TurnEncoder
from deepresearch.agents.template_check.checks import CHECKS, check_spans_match_mask, check_template
from deepresearch.agents.template_check.cli import format_reports
from deepresearch.agents.template_check.scripted_episode import play_scripted_episode
from deepresearch.cli import main
from deepresearch.envs import PROTOCOLS

pytestmark = pytest.mark.slow

# Like many reasoning templates: an assistant message loses its <think> block once a later
# assistant message exists, so the text before turn 3 rewrites what was rendered before turn 2.
DROPS_EARLIER_THINKING = r"""
{%- set ns = namespace(last=-1) -%}
{%- for message in messages -%}{%- if message['role'] == 'assistant' -%}{%- set ns.last = loop.index0 -%}{%- endif -%}{%- endfor -%}
{%- for message in messages -%}
{%- set content = message['content'] -%}
{%- if message['role'] == 'assistant' and loop.index0 < ns.last and '</think>' in content -%}
{%- set content = content.split('</think>')[-1] | trim -%}
{%- endif -%}
{{ '<|im_start|>' + message['role'] + '\n' + content + '<|im_end|>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}
""".strip()


def tiny_tokenizer():
    return AutoTokenizer.from_pretrained(default_tiny_model())


def results_by_protocol(reports):
    return {report.protocol: {result.check: result for result in report.results} for report in reports}


@pytest.mark.parametrize("mode", ["chat", "text"])
def test_the_tiny_model_passes_every_check_for_every_protocol(mode):
    tokenizer = tiny_tokenizer()
    assert tokenizer.chat_template == CHAT_TEMPLATE
    reports = check_template(tokenizer, sorted(PROTOCOLS), mode)
    assert [report.protocol for report in reports] == sorted(PROTOCOLS)
    failures = [(r.protocol, result.check, result.detail) for r in reports for result in r.results if not result.passed]
    assert not failures
    assert all(report.mode == mode for report in reports)


def test_a_template_that_rewrites_earlier_turns_fails_append_only_at_the_first_changed_character():
    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = DROPS_EARLIER_THINKING
    results = results_by_protocol(check_template(tokenizer, sorted(PROTOCOLS), "chat"))
    for protocol in ("tool_call", "deepresearcher"):  # one assistant message per turn: earlier ones get rewritten
        append_only = results[protocol]["append-only"]
        assert not append_only.passed
        assert "before turn 2 is not a prefix" in append_only.detail and "<think>" in append_only.detail
        # The rollout sampled the thinking the final rendering dropped: a re-rendering trainer sees other ids.
        assert not results[protocol]["TITO = render"].passed
        assert "first difference at token" in results[protocol]["TITO = render"].detail
        assert results[protocol]["env spans = mask"].passed  # our own masking is still exact
    for protocol in ("research", "search_r1"):  # one growing assistant message: nothing earlier to rewrite
        assert results[protocol]["append-only"].passed and results[protocol]["TITO = render"].passed


def test_the_span_check_fails_when_one_env_token_is_marked_trainable():
    encoder = TurnEncoder(tiny_tokenizer(), "chat")
    scripted = play_scripted_episode("tool_call", encoder)
    assert check_spans_match_mask(encoder, scripted).passed
    mask = list(scripted.episode.loss_mask)
    first_env = mask.index(0)
    mask[first_env + 3] = 1
    broken = replace(scripted, episode=replace(scripted.episode, loss_mask=mask))
    result = check_spans_match_mask(encoder, broken)
    assert not result.passed and "alternating" in result.detail


def test_the_command_prints_the_table_and_exits_1_on_a_failure(tmp_path, capsys):
    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = DROPS_EARLIER_THINKING
    tokenizer.save_pretrained(tmp_path)
    assert main(["check-template", str(tmp_path), "--protocol", "tool_call"]) == 1
    out = capsys.readouterr().out
    assert "| tool_call | FAIL | FAIL | pass | pass |" in out and "some checks FAIL" in out
    assert main(["check-template", str(default_tiny_model()), "--protocol", "research"]) == 0
    assert "| research | pass | pass | pass | pass |" in capsys.readouterr().out


@pytest.mark.real_model
def test_smollm2_text_is_append_only_but_bpe_merges_across_turns_in_the_tag_protocols(smollm2):
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    reports = check_template(tokenizer, sorted(PROTOCOLS))
    results = results_by_protocol(reports)
    for protocol in PROTOCOLS:
        assert results[protocol]["append-only"].passed
        assert results[protocol]["turn end"].passed and "'<|im_end|>'" in results[protocol]["turn end"].detail
        assert results[protocol]["env spans = mask"].passed
    for protocol in ("tool_call", "deepresearcher"):  # the env's text starts a new turn: no merge across it
        assert results[protocol]["TITO = render"].passed
    # Retokenising "</result><think>" gives "><", which our rollout never sampled.
    research = results["research"]["TITO = render"]
    assert not research.passed and "ours 46 '>', template 21198 '><'" in research.detail
    assert not results["search_r1"]["TITO = render"].passed
    table = format_reports("SmolLM2", reports)
    assert "| research | pass | FAIL | pass | pass |" in table and CHECKS[1] in table

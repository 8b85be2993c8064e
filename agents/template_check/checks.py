"""Does a tokenizer's chat template let a multi-turn RL rollout stay exact?

Four checks per protocol, on one real episode (``scripted_episode``):

* **append-only**: the template's text for the conversation before each policy turn is a
  prefix of its text before the next one (a template that rewrites earlier turns, e.g.
  drops the reasoning of past assistant messages, breaks every incremental rollout);
* **TITO = render**: the ids our rollout assembled (prompt, sampled ids, env ids) equal
  the tokenised rendering of the whole conversation, closing turn-end included — what a
  trainer that re-renders the conversation would train on instead. Text can be
  append-only while the ids are not: BPE merges across a turn boundary (``>`` + ``<``
  into ``><``) that token-in-token-out never sees;
* **turn end**: the id the template writes after an assistant message is one the
  engines stop on (else a chat model never ends its turn in our rollouts);
* **env spans = mask**: every loss-mask-0 run after the prompt holds exactly the env's
  text and every mask-1 run exactly a policy turn.

Base models (no chat template, or ``mode="text"``) are checked on the plain transcript:
its retokenisation must equal the assembled ids.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

from deepresearch.agents.rollout.end_of_turn import chat_turn_end_id, end_of_turn_ids
from deepresearch.agents.rollout.turns import TurnEncoder
from deepresearch.agents.template_check.scripted_episode import EpisodeDropped, ScriptedEpisode, play_scripted_episode

CHECKS = ("append-only", "TITO = render", "turn end", "env spans = mask")


@dataclass(frozen=True)
class CheckResult:
    check: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class ProtocolReport:
    protocol: str
    mode: str
    results: tuple[CheckResult, ...]

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)


def check_template(tokenizer: Any, protocols: Sequence[str], mode: str = "auto") -> list[ProtocolReport]:
    """One report per protocol; ``mode`` as ``TurnEncoder.for_tokenizer`` takes it."""
    encoder = TurnEncoder.for_tokenizer(tokenizer, mode)
    reports = []
    for protocol in protocols:
        try:
            scripted = play_scripted_episode(protocol, encoder)
        except EpisodeDropped as dropped:
            failed = CheckResult("", False, str(dropped))
            results = (replace(failed, check=CHECKS[0]), replace(failed, check=CHECKS[1]), check_turn_end(encoder), replace(failed, check=CHECKS[3]))
        else:
            results = (
                check_append_only(encoder, scripted),
                check_tito_equals_render(encoder, scripted),
                check_turn_end(encoder),
                check_spans_match_mask(encoder, scripted),
            )
        reports.append(ProtocolReport(protocol, encoder.mode, results))
    return reports


# ---------------------------------------------------------------- rendering
def render(tokenizer: Any, conversation: list[dict[str, Any]], final: bool = False, tokenize: bool = True) -> Any:
    """The template's ids (or text) for ``conversation``: closed when ``final``; else ready for the
    next policy turn (an open assistant message is continued, any other gets the generation prompt)."""
    open_assistant = not final and conversation[-1]["role"] == "assistant"
    rendered = tokenizer.apply_chat_template(
        conversation,
        tokenize=tokenize,
        return_dict=False,
        add_generation_prompt=not final and not open_assistant,
        continue_final_message=open_assistant,
    )
    return list(rendered) if tokenize else rendered


def first_text_difference(earlier: str, later: str) -> str:
    """Where a text stops being a prefix of a later one, with a little of both sides."""
    index = next((i for i, (a, b) in enumerate(zip(earlier, later)) if a != b), min(len(earlier), len(later)))
    return f"first difference at character {index}: {earlier[max(0, index - 30) : index + 30]!r} became {later[max(0, index - 30) : index + 30]!r}"


def first_difference(tokenizer: Any, ours: Sequence[int], theirs: Sequence[int]) -> str:
    """Where two id lists part: the index and both tokens, with the text just before."""
    index = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
    before = tokenizer.decode(list(ours[max(0, index - 8) : index]))

    def token(ids: Sequence[int]) -> str:
        return f"{ids[index]} {tokenizer.decode([ids[index]])!r}" if index < len(ids) else "end"

    return f"first difference at token {index} after {before!r}: ours {token(ours)}, template {token(theirs)}"


# ------------------------------------------------------------------ checks
def check_append_only(encoder: TurnEncoder, scripted: ScriptedEpisode) -> CheckResult:
    tokenizer = encoder.tokenizer
    if encoder.mode == "text":
        texts = transcript_prefixes(scripted)
        broken = next((k for k in range(len(texts) - 1) if not texts[k + 1].startswith(texts[k])), None)
        if broken is None:
            return CheckResult(CHECKS[0], True, "plain text: the transcript only grows")
        return CheckResult(CHECKS[0], False, f"the transcript before turn {broken + 1} is not a prefix of the next")
    conversations = scripted.conversations
    renders = [render(tokenizer, conversation, tokenize=False) for conversation in conversations[:-1]]
    renders.append(render(tokenizer, conversations[-1], final=True, tokenize=False))
    for turn in range(len(renders) - 1):
        earlier, later = renders[turn], renders[turn + 1]
        if not later.startswith(earlier):
            where = "the final conversation" if turn + 1 == len(renders) - 1 else f"the conversation before turn {turn + 2}"
            detail = f"the text before turn {turn + 1} is not a prefix of {where}; {first_text_difference(earlier, later)}"
            return CheckResult(CHECKS[0], False, detail)
    return CheckResult(CHECKS[0], True, f"{len(renders)} renderings, each a prefix of the next")


def check_tito_equals_render(encoder: TurnEncoder, scripted: ScriptedEpisode) -> CheckResult:
    tokenizer, episode = encoder.tokenizer, scripted.episode
    ours = episode.prompt_ids + episode.response_ids
    if encoder.mode == "text":
        theirs = list(tokenizer(episode.transcript, add_special_tokens=False)["input_ids"])
        reference = "the retokenised transcript"
    else:
        turn_end = encoder.turn_end_id()
        if turn_end is not None and ours[-1] != turn_end:
            ours = ours + [turn_end]  # the final turn stopped at its stop string; the template closes it
        theirs = render(tokenizer, scripted.final_conversation, final=True)
        reference = "the rendered conversation"
    tail = tokenizer.decode(theirs[len(ours) :])
    if theirs[: len(ours)] == ours and not tail.strip():
        return CheckResult(CHECKS[1], True, f"{len(ours)} ids equal {reference}")
    return CheckResult(CHECKS[1], False, first_difference(tokenizer, ours, theirs))


def check_turn_end(encoder: TurnEncoder) -> CheckResult:
    tokenizer = encoder.tokenizer
    stops = sorted(end_of_turn_ids(tokenizer))
    named = ", ".join(f"{token} {tokenizer.decode([token])!r}" for token in stops)
    if encoder.mode == "text":
        return CheckResult(CHECKS[2], bool(stops), f"text mode ends at EOS; engines stop on {named}")
    template_end = chat_turn_end_id(tokenizer)
    if template_end is None:
        return CheckResult(CHECKS[2], False, f"the template writes no special token after an assistant message; engines stop on {named}")
    ok = template_end in stops
    verdict = "one of" if ok else "NOT one of"
    return CheckResult(CHECKS[2], ok, f"template ends a turn with {template_end} {tokenizer.decode([template_end])!r}, {verdict} the stop ids {named}")


def check_spans_match_mask(encoder: TurnEncoder, scripted: ScriptedEpisode) -> CheckResult:
    tokenizer, episode = encoder.tokenizer, scripted.episode
    runs = mask_runs(episode.response_ids, episode.loss_mask)
    expected = 2 * len(scripted.observations) + 1  # policy, env, policy, ..., policy
    if len(runs) != expected or [flag for flag, _ in runs] != [1, 0] * len(scripted.observations) + [1]:
        return CheckResult(CHECKS[3], False, f"expected {expected} alternating policy/env runs, got masks {[flag for flag, _ in runs]}")
    eos = encoder.turn_end_id()
    for index, (flag, ids) in enumerate(runs):
        text = tokenizer.decode([t for t in ids if t != eos] if flag else ids)
        turn = index // 2
        if flag and text != episode.policy_texts[turn]:
            return CheckResult(CHECKS[3], False, f"policy run {turn} decodes to {text[:60]!r}, not the policy's turn")
        if not flag and not env_text_matches(text, scripted.observations[turn], scripted.observation_messages[turn]):
            return CheckResult(CHECKS[3], False, f"env run {turn} decodes to {text[:80]!r}, not the env's observation")
    return CheckResult(CHECKS[3], True, f"{len(scripted.observations)} env runs and {len(scripted.observations) + 1} policy runs match")


def env_text_matches(decoded: str, observation: str, new_messages: list[dict[str, Any]]) -> bool:
    """A mask-0 run holds the env's text: the observation itself, or (a new chat turn) the
    template's framing around exactly the new messages' contents."""
    if not new_messages:
        return decoded == observation
    return all(str(message["content"]) in decoded for message in new_messages)


def mask_runs(ids: Sequence[int], mask: Sequence[int]) -> list[tuple[int, list[int]]]:
    """Maximal runs of equal mask value, ``[(mask, ids), ...]``."""
    runs: list[tuple[int, list[int]]] = []
    for token, flag in zip(ids, mask):
        if runs and runs[-1][0] == flag:
            runs[-1][1].append(token)
        else:
            runs.append((flag, [token]))
    return runs


def transcript_prefixes(scripted: ScriptedEpisode) -> list[str]:
    """The transcript before each policy turn and at the end (from the env's segments)."""
    episode = scripted.episode
    ends = [segment["end"] for segment in episode.segments if segment["source"] in ("prompt", "env")]
    return [episode.transcript[:end] for end in ends] + [episode.transcript]

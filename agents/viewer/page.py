"""One static, self-contained HTML page of trajectory records, turn by turn.

Input: an evaluation ``results.jsonl``, or a run folder holding trajectory JSONL
files (see ``deepresearch.agents.trajectories``); optional fields shown:
``dataset, id, question, golden_answers, prediction, reward, reward_components,
step, finish_reason``.

Policy text is split into think / search / answer blocks; env text (retrieved
documents) is boxed and labelled *masked*, because it never enters the loss.
Every piece of text is HTML-escaped (transcripts hold arbitrary model output);
the page loads nothing from the network, and its script only reads numbers and
dataset names from attributes to filter by reward range and dataset (also
settable in the link: ``viewer.html#rmin=0.5&dataset=nq``).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deepresearch.agents.trajectories import read_trajectories
from deepresearch.envs import PROTOCOLS

# Policy tags of every built-in protocol, each rendered in its own class.
POLICY_TAGS = tuple(dict.fromkeys(tag for cls in PROTOCOLS.values() for tag in (cls.tags.think, *cls.tags.action_tags)))
TAGGED = re.compile(r"<(" + "|".join(map(re.escape, POLICY_TAGS)) + r")>.*?</\1>", re.DOTALL)

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;background:#f6f6f4;color:#222}
header{position:sticky;top:0;background:#fff;border-bottom:1px solid #ccc;padding:8px 16px;z-index:1}
main{padding:12px 16px}
section.traj{background:#fff;border:1px solid #ddd;border-radius:6px;margin:0 0 14px;padding:10px 14px}
.meta{color:#555;font-size:12px}.q{font-weight:600;margin:4px 0}
table.rc{border-collapse:collapse;font-size:12px;margin:6px 0}table.rc td{border:1px solid #ddd;padding:1px 6px}
.turns{white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:12.5px}
.turn{margin:4px 0;padding:4px 6px;border-left:4px solid #bbb}
.turn.policy{border-color:#3465a4}.turn.prompt{border-color:#999;color:#666}
.think{color:#5c3566;font-style:italic}.search{background:#fff3c4;font-weight:600}
.browse{background:#fde2c4;font-weight:600}.answer{background:#c9f2c7;font-weight:700}.tool_call{background:#fff3c4}
.env{border-color:#c4a000;background:#eee;color:#555}
.masked-label{display:inline-block;font:700 10px sans-serif;color:#fff;background:#8f5902;border-radius:3px;padding:0 4px;margin-right:6px}
.reward{font-weight:700}.hidden{display:none}header input{width:5em}
"""

SCRIPT = """
function applyFilters(){
  var lo=parseFloat(document.getElementById('rmin').value), hi=parseFloat(document.getElementById('rmax').value);
  var ds=document.getElementById('dataset').value, shown=0;
  document.querySelectorAll('section.traj').forEach(function(s){
    var r=parseFloat(s.getAttribute('data-reward'));
    var ok=(isNaN(lo)||r>=lo)&&(isNaN(hi)||r<=hi)&&(ds===''||s.getAttribute('data-dataset')===ds);
    s.classList.toggle('hidden',!ok); if(ok){shown++;}
  });
  document.getElementById('shown').textContent=String(shown);
}
document.addEventListener('DOMContentLoaded',function(){
  // A link can carry filters: viewer.html#rmin=0.5&dataset=nq
  new URLSearchParams(location.hash.slice(1)).forEach(function(v,k){var e=document.getElementById(k); if(e){e.value=v;}});
  ['rmin','rmax','dataset'].forEach(function(id){document.getElementById(id).addEventListener('input',applyFilters);});
  applyFilters();
});
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


# ------------------------------------------------------------------ rendering
def render_policy_text(text: str) -> str:
    """Escaped policy text with each ``<tag>…</tag>`` block wrapped in a span of that class."""
    out, position = [], 0
    for match in TAGGED.finditer(text):
        out.append(esc(text[position : match.start()]))
        out.append(f'<span class="{match.group(1)}">{esc(match.group(0))}</span>')
        position = match.end()
    out.append(esc(text[position:]))
    return "".join(out)


def render_turns(transcript: str, segments: Sequence[dict[str, Any]]) -> str:
    parts = []
    for segment in segments:
        source = segment.get("source")
        text = transcript[int(segment["start"]) : int(segment["end"])]
        if source == "policy":
            parts.append(f'<div class="turn policy">{render_policy_text(text)}</div>')
        elif source == "env":
            parts.append(f'<div class="turn env" title="written by the env: masked from the loss"><span class="masked-label">ENV · masked</span>{esc(text)}</div>')
        else:
            parts.append(f'<details class="turn prompt"><summary>prompt</summary>{esc(text)}</details>')
    return "".join(parts)


def _reward(record: dict[str, Any]) -> float:
    try:
        return float(record.get("reward", 0.0))
    except (TypeError, ValueError):
        return 0.0


def render_components(components: dict[str, Any]) -> str:
    cells = "".join(f"<td>{esc(key)}: {esc(json.dumps(value, ensure_ascii=False))}</td>" for key, value in components.items())
    return f'<table class="rc"><tr>{cells}</tr></table>' if cells else ""


def render_record(record: dict[str, Any]) -> str:
    reward = _reward(record)
    dataset = str(record.get("dataset", ""))
    meta = " · ".join(
        f"{name}: {esc(record[name])}" for name in ("dataset", "id", "step", "finish_reason", "turns", "searches") if record.get(name) not in (None, "")
    )
    golds = record.get("golden_answers")
    lines = [
        f'<section class="traj" data-reward="{reward!r}" data-dataset="{esc(dataset)}">',
        f'<div class="meta">{meta}</div>',
        f'<div class="q">{esc(record.get("question", ""))}</div>',
        f'<div>reward <span class="reward">{reward:.3f}</span>'
        + (f" · prediction: <b>{esc(record.get('prediction'))}</b>" if "prediction" in record else "")
        + (f" · gold: {esc(', '.join(map(str, golds)))}" if golds else "")
        + "</div>",
        render_components(record.get("reward_components") or {}),
        f'<div class="turns">{render_turns(record["transcript"], record["segments"])}</div>',
        "</section>",
    ]
    return "\n".join(lines)


def render_html(records: Sequence[dict[str, Any]], title: str = "deepresearch trajectories") -> str:
    datasets = sorted({str(r.get("dataset", "")) for r in records})
    options = '<option value="">all datasets</option>' + "".join(f'<option value="{esc(d)}">{esc(d)}</option>' for d in datasets)
    body = "\n".join(render_record(record) for record in records)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<title>{esc(title)}</title><style>{STYLE}</style><script>{SCRIPT}</script></head><body>"
        f"<header><b>{esc(title)}</b> · showing <span id=\"shown\">{len(records)}</span> of {len(records)} · "
        'reward from <input id="rmin" type="number" step="0.1" size="5"> to <input id="rmax" type="number" step="0.1" size="5"> · '
        f'<select id="dataset">{options}</select></header><main>{body}</main></body></html>\n'
    )


def write_viewer(source: str | Path, output: str | Path | None = None) -> Path:
    """Render ``source`` (JSONL or run folder) to one HTML file, written atomically; returns its path."""
    source = Path(source)
    records = read_trajectories(source)
    if output is None:
        output = source / "viewer.html" if source.is_dir() else source.with_suffix(".html")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(output.suffix + ".tmp")
    tmp.write_text(render_html(records, title=f"{source.name} — {len(records)} trajectories"), encoding="utf-8")
    tmp.replace(output)
    return output

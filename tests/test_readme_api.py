"""The README's public API still works as written: its env-API and extending snippets run unchanged.

The web snippet needs a provider key and is left out. The extending snippet leaves
``eval_arithmetic`` to the reader ("yours"); the run defines one before it.
"""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO_ROOT

README = REPO_ROOT / "README.md"

USERS_OWN = '''
def eval_arithmetic(expression):
    left, _, right = expression.partition("*")
    return int(left) * int(right)
'''

AFTERWARDS = '''
env.reset(options={"question": "What is 6 * 7?", "golden_answers": ["42"]})
call = '<tool_call>{"name": "calculator", "arguments": {"expression": ["6 * 7"]}}</tool_call>'
assert env.step(call)[0] == "\\n<tool_response>\\n42\\n</tool_response>\\n"

from deepresearch.envs import get_protocol
from deepresearch.rewards import compute_reward
assert compute_reward("f1", "<answer> Paris </answer>", ["Paris"], get_protocol("search_r1").tags).reward == 1.0
'''


def section_snippet(heading: str) -> str:
    """The first Python block under the README's ``## heading``."""
    section = README.read_text(encoding="utf-8").split(f"\n## {heading}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)[0]


def test_the_env_api_and_extending_snippets_run_as_written() -> None:
    script = "\n".join([section_snippet("The env API"), USERS_OWN, section_snippet("Extending it"), AFTERWARDS])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "<result>" in done.stdout and "'searches': 1" in done.stdout

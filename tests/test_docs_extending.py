"""``docs/extending.md`` stays true: every Python snippet in it runs, and each is at most 20 lines of
user code (blank lines, imports and the asserts that show the outcome not counted)."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO_ROOT

DOC = REPO_ROOT / "docs" / "extending.md"


def snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def user_lines(snippet: str) -> list[str]:
    return [line for line in snippet.splitlines() if line.strip() and not re.match(r"\s*(import |from \S+ import |assert )", line)]


def test_each_extension_point_takes_at_most_20_lines() -> None:
    found = snippets()
    assert len(found) == 4  # tool, reward, policy loss + aggregation, engine
    assert [len(user_lines(snippet)) <= 20 for snippet in found] == [True] * len(found), [len(user_lines(s)) for s in found]


def test_every_snippet_runs() -> None:
    """All of them in one fresh interpreter, in order (as a reader would paste them)."""
    done = subprocess.run([sys.executable, "-c", "\n".join(snippets())], capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr[-3000:]

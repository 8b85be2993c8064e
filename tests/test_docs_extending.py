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


def test_the_yaml_recipe_names_all_four_once_their_module_is_imported(tmp_path, monkeypatch) -> None:
    """The page's YAML, with its snippets saved as ``my_project/extensions.py``, reads back as a run config."""
    from deepresearch.agents.grpo.aggregation import LOSS_AGGREGATIONS
    from deepresearch.agents.grpo.policy_losses import POLICY_LOSSES
    from deepresearch.agents.rollout.engines import ENGINES
    from deepresearch.agents.train.config_file import load_config
    from deepresearch.envs import TOOLS
    from deepresearch.rewards import REWARD_PRESETS

    (tmp_path / "my_project").mkdir()
    (tmp_path / "my_project" / "__init__.py").write_text("")
    (tmp_path / "my_project" / "extensions.py").write_text("\n".join(snippets()))
    recipe = tmp_path / "my_run.yaml"
    recipe.write_text(re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)[0])
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        config = load_config(recipe)
        assert (config.imports, config.engine, config.update.loss.policy_loss) == (("my_project.extensions",), "hf_copy", "ppo_positive_only")
        assert config.env_kwargs == {"protocol": "tool_call", "tools": ["search", "word_count"], "reward": "f1_or_penalty"}
    finally:
        sys.modules.pop("my_project.extensions", None)
        sys.modules.pop("my_project", None)
        for registry, name in [(TOOLS, "word_count"), (REWARD_PRESETS, "f1_or_penalty"), (POLICY_LOSSES, "ppo_positive_only"),
                               (LOSS_AGGREGATIONS, "seq-sum"), (ENGINES, "hf_copy")]:
            if name in registry:
                registry.unregister(name)

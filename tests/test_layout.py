"""The architecture holds: import-linter's contracts pass on the tree and fail when a rule is broken, and the
README's layout section names every package and module a newcomer will meet."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=120, check=False
    )


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    shutil.copy(REPO / "pyproject.toml", root)
    for package in ("bot", "webhooks", "workflows"):
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("workflows/states.py", "import bot.runtime", "webhooks above bot above workflows"),
        ("bot/jobs/queue.py", "import bot.tickets.store", "inside bot, each part uses only those below it"),
        ("bot/tickets/store.py", "import bot.tickets.alerts", "no import cycles inside bot"),
    ],
)
def test_the_layer_contracts_catch_a_broken_rule(tmp_path: Path, module: str, line: str, broken: str) -> None:
    root = _copy(tmp_path)
    target = root / module
    source = target.read_text()
    # After the module's docstring and `from __future__`, where an import would really go.
    anchor = "from __future__ import annotations\n"
    target.write_text(source.replace(anchor, anchor + line + "  # noqa\n", 1))
    result = _lint_imports(root)
    assert result.returncode == 1, result.stdout
    assert f"{broken} BROKEN" in result.stdout, result.stdout


def test_the_tree_keeps_its_layer_contracts(tmp_path: Path) -> None:
    result = _lint_imports(_copy(tmp_path))
    assert result.returncode == 0, result.stdout
    assert "3 kept, 0 broken" in result.stdout


def _layout_section() -> str:
    readme = (REPO / "README.md").read_text()
    match = re.search(r"### Layout\n\n```\n(.*?)```", readme, re.S)
    assert match, "the README has a Layout section with the tree"
    return match.group(1)


def test_the_readme_layout_names_every_package_and_module() -> None:
    layout = _layout_section()
    for package in sorted(p.parent for p in (REPO / "bot").glob("*/__init__.py")):
        assert f"{package.name}/" in layout, f"bot/{package.name}/ is missing from the README's layout"
    for module in sorted((REPO / "bot").glob("*.py")):
        if module.stem != "__init__":
            assert module.name in layout, f"bot/{module.name} is missing from the README's layout"
    named = set(re.findall(r"[a-z_]+", layout))
    for folder in ("bot/tickets", "bot/jobs", "bot/clients", "workflows", "webhooks", "webhooks/slack"):
        for module in sorted((REPO / folder).glob("*.py")):
            if module.stem not in ("__init__",):
                assert module.stem in named, f"{folder}/{module.name} is not named in the README's layout"

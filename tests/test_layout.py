"""The package's shape: stages in folders, no import cycle, modules of one job, old import paths kept.

These read the source (ast), so they hold for every module whether or not a test imports it.
"""

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import anonlab
from anonlab._aliases import MOVED

PKG = Path(anonlab.__file__).resolve().parent
ROOT = PKG.parent
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _top_level_imports(name: str, path: Path) -> set[str]:
    """anonlab modules that ``name`` imports while it is being imported (not inside functions, not for typing)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(stmts):
        for node in stmts:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for h in getattr(node, "handlers", []):
                    visit(h.body)
                continue
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)

    visit(tree.body)
    return {m for m in found if m in MODULES and m != name}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (c := dfs(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := dfs(n)):
            return c
    return None


def test_no_import_cycle_between_modules():
    graph = {name: _top_level_imports(name, path) for name, path in MODULES.items()}
    assert _cycle(graph) is None


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_are_short_or_say_why(name):
    path = MODULES[name]
    lines = len(path.read_text().splitlines())
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert lines <= MAX_LINES or "long because" in doc, f"{name}: {lines} lines and no reason in its docstring"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.count(".") >= 1))
def test_every_module_opens_with_a_docstring(name):
    assert ast.get_docstring(ast.parse(MODULES[name].read_text()))


def test_the_stages_are_folders():
    for stage in ("media", "detect", "track", "render", "case", "review", "report", "evaluation", "batch", "widgets"):
        assert (PKG / stage / "__init__.py").is_file(), stage
    top = {p.name for p in PKG.glob("*.py")}
    assert top <= {"__init__.py", "__main__.py", "_aliases.py", "cli.py", "errors.py", "models.py", "pipeline.py",
                   "privacy.py", "progress.py", "regions.py", "settings.py"}


def test_the_architecture_page_names_every_module():
    page = (ROOT / "docs" / "architecture.md").read_text()
    missing = [str(p.relative_to(ROOT)) for n, p in MODULES.items()
               if p.name not in ("__init__.py", "__main__.py") and str(p.relative_to(ROOT)) not in page]
    assert missing == []


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_import_paths_give_the_moved_module(old):
    assert importlib.import_module(old) is importlib.import_module(MOVED[old])


def test_old_names_import_from_old_paths():
    from anonlab.evaluate import read_image
    from anonlab.mask import mask_frame

    from anonlab.evaluation.images import read_image as new_read_image
    from anonlab.render.mask import mask_frame as new_mask_frame

    assert read_image is new_read_image
    assert mask_frame is new_mask_frame


def test_python_m_old_verify_path_still_runs():
    out = subprocess.run([sys.executable, "-m", "anonlab.verify"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert re.search(r"usage: anonlab verify INPUT OUTPUT", out.stderr)


def test_the_source_names_no_issue_and_no_path_outside_the_repository():
    # History belongs in commit messages and docs/, data outside the repository in benchmarks: a reader of the
    # package finds the reasons, not references they cannot follow.
    found = [f"{p.relative_to(ROOT)}:{i}" for p in sorted(PKG.rglob("*")) if p.suffix in (".py", ".j2")
             for i, line in enumerate(p.read_text().splitlines(), 1)
             if re.search(r"\b[Ii]ssues? \d+|\.\./shared", line)]
    assert found == []


def test_the_readme_says_what_each_label_finds_and_costs():
    """``--what`` points to the README's label table: a row per label, so that none is lost in a merge."""
    from anonlab.regions import LABELS

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("**What it masks**", 1)[1].split("\n\n", 2)[1]
    named = set(re.findall(r"^\| `(\w+)`(?:, `(\w+)`)?", table, re.M))
    words = {w for pair in named for w in pair if w}
    plural = {"face": "faces", "plate": "plates", "head": "heads", "person": "persons", "text": "text"}
    assert {plural[label] for label in LABELS} <= words, table

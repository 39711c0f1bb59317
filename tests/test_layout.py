"""The shape of the code: short functions, one-way dependencies, a clean linter, no path hacks."""
import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "tinycdaae"
MAX_FUNCTION_LINES = 60
# What the data pipeline must never load: the network, the objective, training.
NETWORK_SIDE = {"tinycdaae.model", "tinycdaae.objective", "tinycdaae.training", "tinycdaae.layers",
                "tinycdaae.checkpoint"}


def modules():
    """{dotted name: path} of every module in the package."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def package_imports(name, path):
    """The package modules `name` imports (top level or inside functions), as dotted names."""
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("tinycdaae")}
        elif isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if target.startswith("tinycdaae"):
                out.add(target)
                out |= {f"{target}.{a.name}" for a in node.names}   # `from . import grids`
    return out


def import_graph():
    mods = modules()
    return {name: {m for m in package_imports(name, path) if m in mods} for name, path in mods.items()}


def test_every_function_is_at_most_60_lines():
    long = []
    for path in [*PACKAGE.rglob("*.py"), REPO / "run.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "split these into named steps:\n" + "\n".join(long)


def test_the_data_pipeline_never_imports_the_network_objective_or_training():
    graph = import_graph()
    for start in [m for m in graph if m.startswith("tinycdaae.data")]:
        seen, todo = set(), [start]
        while todo:                                   # everything `start` loads, transitively
            for m in graph[todo.pop()] - seen:
                seen.add(m)
                todo.append(m)
        assert not seen & NETWORK_SIDE, f"{start} loads {sorted(seen & NETWORK_SIDE)}"


def test_the_learning_core_never_imports_the_data_pipeline_or_the_evaluation():
    """The top-level modules (but the command line, which joins everything) stand on their own."""
    graph = import_graph()
    core = [m for m in graph if m.count(".") == 1 and m not in ("tinycdaae.cli", "tinycdaae.__main__",
                                                               "tinycdaae.data", "tinycdaae.evaluation")]
    assert "tinycdaae.training" in core and "tinycdaae.model" in core
    for name in core:
        sides = {m for m in graph[name] if m.startswith(("tinycdaae.data", "tinycdaae.evaluation"))}
        assert not sides, f"{name} imports {sorted(sides)}"


def test_the_package_and_the_command_line_do_not_touch_sys_path():
    for path in [*PACKAGE.rglob("*.py"), REPO / "run.py"]:
        assert "sys.path.insert" not in path.read_text(), path


def test_every_markdown_file_named_is_in_the_repository():
    """The package, the README, docs/ and the notebooks name only .md files the repository holds
    (a path from the root or from the naming file's folder, or a file name found in the tree), and
    every path climbing out of its folder (../name) lands on something inside the repository."""
    tracked = {p.name for p in REPO.rglob("*.md") if ".git" not in p.parts}
    sources = [*PACKAGE.rglob("*.py"), *REPO.glob("*.md"), *(REPO / "docs").glob("*.md"),
               *(REPO / "walkthrough").glob("*.ipynb"), *(REPO / "walkthrough").glob("*.md")]
    for path in sources:
        text = path.read_text(encoding="utf-8")
        for relative in re.findall(r"(?:\.\./)+\w[\w.-]*", text):    # a path climbing out of its folder
            target = (path.parent / relative).resolve()
            assert REPO.resolve() in target.parents and target.exists(), \
                f"{path} names {relative}, which is not in the repository"
        for name in re.findall(r"[\w./-]*\.md\b", text):
            found = (REPO / name).exists() or (path.parent / name).exists() or Path(name).name in tracked
            assert found, f"{path} names {name}, which the repository does not hold"


@pytest.mark.skipif(os.environ.get("TINYCDAAE_TEST_DEVICE", "cpu") != "cpu",
                    reason="the linter reads source, not arrays: it runs once, on the cpu pass")
def test_ruff_is_clean():
    ruff = shutil.which("ruff")
    command = [ruff] if ruff else [sys.executable, "-m", "ruff"]
    result = subprocess.run([*command, "check", str(REPO)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr

"""The walkthrough's exercises (issue 17): every exercise's checker says "not solved yet" to the
stub exactly as it stands in its notebook, and "solved" to the solution in walkthrough/solutions/.

The stub is taken from the notebook itself (the code cell starting with `# EXERCISE name`), so a
stub edited in the notebook is what is tested, not a copy of it."""
import glob
import importlib
import json
import os
import re
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WALKTHROUGH = os.path.join(ROOT, "walkthrough")
sys.path.insert(0, WALKTHROUGH)
exercises = importlib.import_module("exercises")

MARK = re.compile(r"^# EXERCISE (\w+)\s*$", re.M)


def stub_cells():
    """name -> (notebook file name, the stub cell's source)."""
    found = {}
    for path in sorted(glob.glob(os.path.join(WALKTHROUGH, "*.ipynb"))):
        with open(path, encoding="utf-8") as f:
            nb = json.load(f)
        for cell in nb["cells"]:
            text = "".join(cell["source"])
            m = MARK.match(text)
            if cell["cell_type"] == "code" and m:
                assert m.group(1) not in found, f"exercise {m.group(1)} appears twice"
                found[m.group(1)] = (os.path.basename(path), text)
    return found


@pytest.fixture(autouse=True)
def numpy_backend(device):
    """The exercises are NumPy code written in a notebook kernel, where the library runs on NumPy;
    the checkers compare the learner's host arrays with the library's on the same backend. Under
    --device strict or gpu they still check on NumPy (after conftest's `device` switched away)."""
    from tinycdaae import backend
    backend.use("cpu")
    yield


STUBS = stub_cells()
NAMES = sorted(exercises.CHECKS)


def test_every_exercise_has_a_stub_a_checker_and_a_solution():
    assert sorted(STUBS) == NAMES
    for name in NAMES:
        notebook = STUBS[name][0]
        assert notebook.startswith(f"{exercises.CHAPTER[name]:02d}_"), (name, notebook)
        assert os.path.isfile(os.path.join(WALKTHROUGH, "solutions", f"ch{exercises.CHAPTER[name]:02d}.py"))


def test_chapters_one_to_seven_each_have_an_exercise():
    assert {exercises.CHAPTER[n] for n in NAMES} >= set(range(1, 8))


def stub_function(name):
    """Define the notebook's stub without running its check call."""
    source = STUBS[name][1]
    definition = source.split("\nexercises.check(")[0]
    assert f'exercises.check("{name}", {name})' in source, "the stub cell must end with its check"
    namespace = {"np": np}
    exec(compile(definition, f"<{name} stub>", "exec"), namespace)
    return namespace[name]


@pytest.mark.parametrize("name", NAMES)
def test_the_checker_fails_on_the_unsolved_stub(name, capsys):
    assert exercises.check(name, stub_function(name)) is False
    assert "not solved yet" in capsys.readouterr().out


@pytest.mark.parametrize("name", NAMES)
def test_the_checker_passes_the_solution(name, capsys):
    solution = importlib.import_module(f"solutions.ch{exercises.CHAPTER[name]:02d}")
    assert exercises.check(name, getattr(solution, name)) is True
    assert "[solved]" in capsys.readouterr().out


@pytest.mark.parametrize("name", NAMES)
def test_the_checker_fails_on_a_wrong_answer(name):
    """A plausible mistake (every output scaled by 1.5) is not accepted either."""
    solution = getattr(importlib.import_module(f"solutions.ch{exercises.CHAPTER[name]:02d}"), name)

    def wrong(*args):
        out = solution(*args)
        return tuple(1.5 * np.asarray(o) for o in out) if isinstance(out, tuple) else 1.5 * np.asarray(out)
    assert exercises.check(name, wrong, quiet=True) is False


def test_the_stub_cells_run_in_the_notebook_without_raising(capsys):
    """The cell as the notebook runs it (definition and check) prints and does not raise."""
    for name in NAMES:
        exec(compile(STUBS[name][1], f"<{name} cell>", "exec"), {"np": np, "exercises": exercises})
    assert capsys.readouterr().out.count("not solved yet") == len(NAMES)

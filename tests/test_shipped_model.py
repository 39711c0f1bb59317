"""The ready model that ships with the package (tinycdaae/assets/london_n2.npz): it loads, it is
small, `generate` uses it without --checkpoint, and it does its job on real photographs: every
neutral photo of the six test people becomes one an expression reader calls happy, every smiling
one becomes one it calls neutral. The reader is the evaluation's expression reader trained on all
156 built-in London photos: on unseen people it reads only 80-85% of real photos right (some
smiles are subtle at 32×32, see docs/stability.md), so the six are among the people it learnt,
and it reads their 12 real photos right. Copying the input fails the same check."""
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from tinycdaae import backend, checkpoint
from tinycdaae.evaluation import ClassifierConfig, ExpressionReader

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LONDON = os.path.join(REPO, "tests", "data", "london")
PEOPLE = ("001", "004", "005", "006", "025", "042")          # the six test people
pytestmark = pytest.mark.skipif(importlib.util.find_spec("dlib") is None,
                                reason="aligning photos needs dlib: pip install -e .[data]")


def test_the_model_file_is_small_and_describes_itself():
    size = os.path.getsize(checkpoint.BUILT_IN_MODEL)
    assert size < 20e6                                                    # under 20 MB
    model, extra = checkpoint.load_model(checkpoint.BUILT_IN_MODEL)
    assert extra["label_names"] == ["neutral", "happy"] and extra["label_kind"] == "emotion"
    assert model.config.skip == "n2" and model.config.label_dim == 2
    assert all(np.isfinite(p.data).all() for block in checkpoint.GENERATOR_BLOCKS
               for p in model.blocks[block].params())


@pytest.fixture(scope="module")
def photos_and_reader(tmp_path_factory, request):
    """The six people's aligned photos and a reader trained on the 156 London photos. Module-scoped
    fixtures are made before the per-test `device` fixture switches the backend, so the reader is
    built on the chosen device here (its weights must live where the tests' arrays will)."""
    import conftest

    from tinycdaae.data.align import align_file
    from tinycdaae.data.datasets import load_dataset
    london = load_dataset("london", cache_dir=str(tmp_path_factory.mktemp("cache")), progress=False)
    conftest._select(request.config.getoption("--device"))
    try:
        reader = ExpressionReader("emotion", 2, ClassifierConfig(seed=0)).fit(london.images, london.labels)
    finally:
        backend.use("cpu")
    faces = {(person, label): align_file(os.path.join(LONDON, f"{person}_{label}.jpg")).image
             for person in PEOPLE for label in ("neutral", "happy")}
    return faces, reader


def test_the_reader_reads_the_real_photos(photos_and_reader):
    faces, reader = photos_and_reader
    neutral = np.stack([faces[p, "neutral"] for p in PEOPLE])
    happy = np.stack([faces[p, "happy"] for p in PEOPLE])
    # the check below means something only if the reader reads these real faces right (0 neutral, 1 happy)
    assert (reader.predict(neutral) == 0).all() and (reader.predict(happy) == 1).all()


def test_it_makes_neutral_faces_smile_and_smiling_faces_neutral(photos_and_reader):
    faces, reader = photos_and_reader
    model, _ = checkpoint.load_model(checkpoint.BUILT_IN_MODEL)
    neutral = np.stack([faces[p, "neutral"] for p in PEOPLE])           # (6, 3, 32, 32)
    happy = np.stack([faces[p, "happy"] for p in PEOPLE])
    to_happy = model.generate(neutral, np.tile([[0, 1]], (6, 1)).astype(np.float32))["x_hat"]
    to_neutral = model.generate(happy, np.tile([[1, 0]], (6, 1)).astype(np.float32))["x_hat"]
    assert (reader.predict(to_happy) == 1).all(), reader.predict(to_happy)
    assert (reader.predict(to_neutral) == 0).all(), reader.predict(to_neutral)
    # teeth: copying the input (a model that ignores the label) fails this check
    assert (reader.predict(neutral) == 0).all() and (reader.predict(happy) == 1).all()


@pytest.mark.other_process
def test_generate_without_a_checkpoint_uses_the_built_in_model(tmp_path):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "TINYCDAAE_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, os.path.join(REPO, "run.py"), "generate", "--image",
                           os.path.join(LONDON, "004_neutral.jpg"), "--emotion", "happy",
                           "--interpolate", "neutral", "happy", "--out", str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "using the built-in model" in done.stdout
    assert {"aligned.png", "result.png", "interpolation.png"} <= set(os.listdir(tmp_path / "out"))
    refused = subprocess.run([sys.executable, os.path.join(REPO, "run.py"), "generate", "--image",
                              os.path.join(LONDON, "004_neutral.jpg"), "--emotion", "sad"],
                             env=env, capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert refused.returncode == 2 and "valid names are: neutral, happy" in refused.stderr
    assert "Traceback" not in refused.stderr

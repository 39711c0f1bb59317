"""--size 64 (issue 18): the size threads from the command line through the data, the network,
the sample grids, the checkpoint, generate and evaluate; a run keeps its size on resume; the
renderer and the aligner draw the same face at 64 as at 32; the whole network's gradients check
at 64x64."""
import json

import numpy as np
import pytest
from test_cli import PHOTO, REPO, env, needs_dlib, png_shape  # noqa: F401  (env: a fixture)
from test_cli import cli as run_cli

from tinycdaae import checkpoint, grids
from tinycdaae.data import synthetic

TINY = ["--subjects", "4", "--folds", "2", "--width", "0.0625", "--batch-size", "128", "--epochs", "1",
        "--device", "cpu"]


def cli(env, *args, timeout=300):
    """run.py in a subprocess, with the longer time limit 64x64 runs may need on a busy machine."""
    return run_cli(env, *args, timeout=timeout)


@pytest.fixture(scope="module")
def runs(env, tmp_path_factory):
    """A tiny synthetic run at 64x64 and one at 32x32 (the default)."""
    base = tmp_path_factory.mktemp("size")
    out = {"64": base / "run64", "32": base / "run32"}
    results = {"64": cli(env, *TINY, "--size", 64, "--out", out["64"]),
               "32": cli(env, *TINY, "--out", out["32"])}
    return out, results


def test_a_64x64_run_writes_64x64_grids_and_a_checkpoint_that_says_64(runs):
    out, results = runs
    assert results["64"].returncode == 0, results["64"].stderr[-2000:]
    meta = checkpoint.read(out["64"] / "checkpoint.npz", arrays=False)[0]
    assert meta["model_config"]["image_size"] == 64
    model = checkpoint.load(out["64"] / "checkpoint.npz")[0].model
    x_hat = model.generate(np.zeros((2, 3, 64, 64), np.float32), np.eye(8, dtype=np.float32)[:2])["x_hat"]
    assert model.config.image_size == 64 and x_hat.shape == (2, 3, 64, 64)
    # 2 held-out people, each with a row of real targets; input + 8 emotions; x3, 64 px faces
    cell = 64 * 3 + grids.GAP
    assert png_shape(out["64"] / "samples" / "epoch_001.png") == (4 * cell + grids.GAP, 9 * cell + grids.GAP, 3)
    assert checkpoint.read(out["32"] / "checkpoint.npz", arrays=False)[0]["model_config"]["image_size"] == 32


@pytest.mark.parametrize("size, other", [("64", 32), ("32", 64)])
def test_a_run_refuses_a_resume_at_another_size(runs, env, size, other):
    out, results = runs
    assert results[size].returncode == 0, results[size].stderr[-2000:]
    refused = cli(env, "--resume", "--out", out[size], "--epochs", 2, "--size", other)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    message = refused.stderr.strip().splitlines()
    assert len(message) == 1 and f"is a {size}x{size} run, but you gave --size {other}" in message[0]
    same = cli(env, "--resume", "--out", out[size], "--epochs", 2, "--size", size)   # its own size: fine
    assert same.returncode == 0, same.stderr[-2000:]


def test_evaluate_follows_the_checkpoints_size_and_refuses_a_mix(runs, env, tmp_path):
    out, results = runs
    assert results["64"].returncode == 0
    ev = cli(env, "evaluate", "--checkpoint", out["64"], "--out", tmp_path / "ev", "--max-pairs", 40,
             "--reader-epochs", 1, "--device", "cpu")
    assert ev.returncode == 0, ev.stderr[-2000:]
    with open(tmp_path / "ev" / "results.json") as f:
        results_json = json.load(f)
    assert "64x64" in results_json["title"] and "dense 8192-64" in results_json["reader"]["architecture"]
    mixed = cli(env, "evaluate", "--checkpoint", out["64"], out["32"], "--out", tmp_path / "mixed")
    assert mixed.returncode == 2 and "different sizes (32x32, 64x64)" in mixed.stderr


@needs_dlib
def test_generate_aligns_the_photo_at_the_checkpoints_size(runs, env, tmp_path):
    out, _ = runs
    result = cli(env, "generate", "--checkpoint", out["64"], "--image", PHOTO, "--emotion", "happy",
                 "--grid", "all", "--interpolate", "neutral", "happy", "--steps", 3, "--scale", 1,
                 "--out", tmp_path / "gen")
    assert result.returncode == 0, result.stderr[-2000:]
    cell = 64 + grids.GAP
    assert png_shape(tmp_path / "gen" / "aligned.png") == (cell + grids.GAP, cell + grids.GAP, 3)
    assert png_shape(tmp_path / "gen" / "grid.png") == (cell + grids.GAP, 9 * cell + grids.GAP, 3)
    assert png_shape(tmp_path / "gen" / "interpolation.png") == (cell + grids.GAP, 4 * cell + grids.GAP, 3)
    # a 64x64 picture is taken as already aligned by a 64x64 checkpoint
    face = np.random.default_rng(0).uniform(0, 255, (64, 64, 3)).astype(np.uint8)
    grids.save_png(tmp_path / "face.png", face)
    aligned = cli(env, "generate", "--checkpoint", out["64"], "--image", tmp_path / "face.png",
                  "--emotion", "happy", "--scale", 1, "--out", tmp_path / "gen3")
    assert aligned.returncode == 0 and "64x64 image: taken as already aligned" in aligned.stdout


def test_whole_network_gradients_check_at_64x64():
    from tinycdaae import gradcheck
    for _, _, thunk in gradcheck.network_checks(skips=("n2",), image_size=64):
        errors = thunk()
        assert max(errors.values()) < gradcheck.NETWORK_TOLERANCE, errors


def test_the_renderer_draws_the_same_faces_at_64():
    """At 64x64 with 2x supersampling the canvas is the 32x32 one with 4x: the 64x64 face,
    averaged over 2x2 blocks, is the 32x32 face (up to the order of the float sums)."""
    people = synthetic.take(synthetic.sample_identities(3, seed=5), np.arange(3))
    aus, smirk = synthetic.expression_from_label(np.eye(8, dtype=np.float32)[[0, 1, 3]])
    small = synthetic.render_faces(people, aus, smirk=smirk, supersample=4)
    large = synthetic.render_faces(people, aus, smirk=smirk, supersample=2, size=64)
    assert small.shape == (3, 3, 32, 32) and large.shape == (3, 3, 64, 64)
    assert np.abs(large.reshape(3, 3, 32, 2, 32, 2).mean(axis=(3, 5)) - small).max() < 1e-5
    default = synthetic.render_faces(people, aus, smirk=smirk, size=64)          # 4x supersampled
    assert np.abs(default - large).mean() < 0.01                                 # only finer anti-aliasing
    faces = synthetic.emotion_faceset(n_subjects=2, size=64, gazes=(0,))
    assert faces.images.shape == (16, 3, 64, 64)
    targets = synthetic.render_targets(faces.subjects[:4], faces.labels[:4], faces.meta["gaze"][:4], size=64)
    assert np.array_equal(targets, faces.images[:4])


def test_each_size_has_its_own_cache_and_32_keeps_its_key():
    from tinycdaae.data.prepare import cache_key
    items = [(PHOTO, None)]
    assert cache_key("x", items) == cache_key("x", items, 32) != cache_key("x", items, 64)


@needs_dlib
def test_the_aligner_crops_the_same_face_at_64_from_the_scaled_template():
    from tinycdaae.data.align import align_file
    a32, a64 = align_file(PHOTO), align_file(PHOTO, 64)
    assert a32.image.shape == (3, 32, 32) and a64.image.shape == (3, 64, 64)
    assert np.allclose(a64.transform, 2 * a32.transform)                 # the template scaled by 2
    down = a64.crop.astype(np.float64).reshape(32, 2, 32, 2, 3).mean(axis=(1, 3))
    assert np.abs(down - a32.crop).mean() < 2.0                          # same pixels, in 0..255

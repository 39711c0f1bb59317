"""run.py, run for real in subprocesses on tiny settings (issue: train, generate and explore from
the command line): train -> checkpoint -> resume -> generate from a real photo -> grids; every
bad input gives its message and a non-zero exit; Ctrl-C saves; a NaN stops and keeps the last
good checkpoint. Plus the trainer's monitors and the grid tiling, in-process."""
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tinycdaae import checkpoint, grids
from tinycdaae.data.labels import AUS, EMOTIONS
from tinycdaae.training import DivergenceMonitor, LatentCollapseMonitor, truncate_log

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LONDON = os.path.join(REPO, "tests", "data", "london")
PHOTO = os.path.join(LONDON, "001_neutral.jpg")
# Four synthetic people, 2 folds: 2 to train on (x 3 gazes x 64 pairs = 384 pairs, 3 steps of 128),
# 2 held out. The tiniest network: every part of a real run happens, each step takes milliseconds.
TINY = ["--subjects", "4", "--folds", "2", "--width", "0.0625", "--batch-size", "128", "--device", "cpu"]
# Aligning a real photo needs dlib (the [data] extras); without it those tests are skipped.
needs_dlib = pytest.mark.skipif(importlib.util.find_spec("dlib") is None,
                                reason="aligning a photo needs dlib: pip install -e .[data]")
SCALE = 4
CELL = 32 * SCALE + grids.GAP           # one enlarged face plus its gap


def grid_size(rows, cols):
    """(height, width) of a PNG grid of rows x cols faces: gaps between and around the cells."""
    return rows * CELL + grids.GAP, cols * CELL + grids.GAP


@pytest.fixture(scope="session")
def env(tmp_path_factory):
    """The subprocesses' environment: the aligned photos are cached once per test session."""
    # One BLAS thread: the tiny matrices here gain nothing from threads, and on a busy machine
    # OpenBLAS's spinning threads made these steps 10-100x slower (measured on the CI box).
    threads = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    return {**os.environ, **threads, "TINYCDAAE_CACHE": str(tmp_path_factory.mktemp("cache")),
            "PYTHONDONTWRITEBYTECODE": "1"}


def cli(env, *args, timeout=120):
    """Run `python run.py ARGS` in a subprocess; returns the CompletedProcess (text output)."""
    return subprocess.run([sys.executable, os.path.join(REPO, "run.py"), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def png_shape(path):
    import imageio.v3 as iio
    return iio.imread(path).shape


def weights(path):
    """Every array in a checkpoint (weights and Adam moments) and its step count."""
    meta, arrays = checkpoint.read(path)
    return arrays, meta["step"]


def log_steps(run_dir):
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        return [json.loads(line) for line in f if '"event"' not in line]


# ------------------------------------------------------------------------- train and resume
@pytest.fixture(scope="module")
def runs(env, tmp_path_factory):
    """Three runs: 2 epochs straight; 1 epoch then --resume to 2; and the outputs of each. A warm-up
    of 4 steps (of 6) runs across the resume (the resumed run keeps it: it is a stored option)."""
    base = tmp_path_factory.mktemp("runs")
    straight, resumed = base / "straight", base / "resumed"
    results = {"straight": cli(env, *TINY, "--epochs", 2, "--warmup-steps", 4, "--out", straight),
               "first": cli(env, *TINY, "--epochs", 1, "--warmup-steps", 4, "--out", resumed)}
    results["first_weights"] = weights(resumed / "checkpoint.npz")
    results["resume"] = cli(env, "--resume", "--out", resumed, "--epochs", 2)
    return straight, resumed, results


def test_train_writes_log_checkpoint_and_sample_grids(runs):
    straight, _, results = runs
    assert results["straight"].returncode == 0, results["straight"].stderr
    steps = log_steps(straight)
    _, step = weights(straight / "checkpoint.npz")
    assert [s["step"] for s in steps] == list(range(1, step + 1)) and step == 2 * 3   # 384 pairs / 128 per batch
    for term in ("loss_R", "loss_total"):
        assert all(np.isfinite(s[term]) for s in steps), term
    assert not any("loss_D_E" in s for s in steps[:4])                      # the warm-up: no D terms
    for term in ("loss_E", "loss_G", "loss_D_E", "loss_D_G", "acc_D_E", "acc_D_G"):
        assert all(np.isfinite(s[term]) for s in steps[4:]), term
    for epoch in (1, 2):   # 2 held-out people, each with a row of real targets; input + 8 emotions; x3
        assert png_shape(straight / "samples" / f"epoch_{epoch:03d}.png") == (4 * (96 + 2) + 2, 9 * (96 + 2) + 2, 3)
    extra = checkpoint.read(straight / "checkpoint.npz")[0]["extra"]
    assert extra["label_names"] == list(EMOTIONS) and extra["label_kind"] == "emotion"
    assert "epoch 2/2" in results["straight"].stdout


def test_resume_continues_from_the_saved_step_bit_exactly(runs):
    straight, resumed, results = runs
    assert results["first"].returncode == 0 and results["resume"].returncode == 0, results["resume"].stderr
    assert results["first_weights"][1] == 3
    assert "resuming" in results["resume"].stdout and "at step 3" in results["resume"].stdout
    a, step_a = weights(straight / "checkpoint.npz")
    b, step_b = weights(resumed / "checkpoint.npz")
    assert step_a == step_b == 6 and a.keys() == b.keys()
    for name in a:
        if name != "meta_json":
            assert np.array_equal(a[name], b[name]), name
    # and training really moved the weights in the resumed epoch
    first = results["first_weights"][0]
    assert any(not np.array_equal(first[k], b[k]) for k in first if k.startswith("param/"))
    assert [s["step"] for s in log_steps(resumed)] == list(range(1, 7))   # one line per step, no gaps
    # the default recipe recolours the synthetic pairs (drawn from (seed, step)): it ran across the resume
    assert checkpoint.read(resumed / "checkpoint.npz")[0]["extra"]["options"]["colour_jitter"] == 0.3


def test_resume_rejects_other_settings_and_other_architecture(runs, env):
    _, resumed, _ = runs
    other = cli(env, "--resume", "--out", resumed, "--epochs", 3, "--batch-size", 8)
    assert other.returncode == 2 and "--batch-size 8 (the run has 128)" in other.stderr
    arch = cli(env, "--resume", "--out", resumed, "--epochs", 3, "--width", 0.125)
    assert arch.returncode == 2 and "made for another network" in arch.stderr and "width" in arch.stderr
    assert "Traceback" not in other.stderr + arch.stderr
    fresh = cli(env, *TINY, "--out", resumed)             # without --resume: never overwrite a run
    assert fresh.returncode == 2 and "already holds a run" in fresh.stderr and "--resume" in fresh.stderr


@pytest.mark.parametrize("option, flag, old_value, other", [
    ("adam_beta2", "--adam-beta2", 0.999, ["--adam-beta2", "0.99"]),
    ("full_batches", "--full-batches", False, ["--full-batches"]),
    ("latent_weight", "--latent-weight", 0.01, ["--latent-weight", "0.03"]),
    ("face_only_targets", "--face-only-targets", False, ["--face-only-targets"]),
    ("lr_decay_epochs", "--lr-decay-epochs", 0, ["--lr-decay-epochs", "2"]),
])
def test_a_run_saved_before_an_option_existed_resumes_with_the_value_it_trained_with(
        runs, env, tmp_path, option, flag, old_value, other):
    """A checkpoint whose options (and objective config) lack a later recipe option resumes with
    the value it trained with (Adam's 0.999; short last batches; the paper's β1; the real
    targets; constant learning rates); asking for another is refused."""
    _, resumed, _ = runs
    old = tmp_path / "old"
    shutil.copytree(resumed, old)
    meta, arrays = checkpoint.read(str(old / "checkpoint.npz"))
    del meta["extra"]["options"][option]
    meta["objective_config"].pop(option, None)
    np.savez(old / "checkpoint.npz", meta_json=np.array(json.dumps(meta)), **arrays)
    refused = cli(env, "--resume", "--out", old, "--epochs", 3, *other)
    assert refused.returncode == 2 and f"{flag} " in refused.stderr
    assert f"(the run has {old_value!r})" in refused.stderr and "Traceback" not in refused.stderr
    result = cli(env, "--resume", "--out", old, "--epochs", 3)
    assert result.returncode == 0, result.stderr
    meta = checkpoint.read(str(old / "checkpoint.npz"), arrays=False)[0]
    assert meta["step"] == 9 and meta["extra"]["options"][option] == old_value
    if option == "adam_beta2":
        assert meta["objective_config"]["adam_beta2"] == 0.999


def test_default_dataset_is_the_synthetic_faces_with_real_targets_in_the_grid(env, tmp_path):
    out = tmp_path / "synthetic"
    result = cli(env, "--subjects", 8, "--width", 0.0625, "--epochs", 1, "--batch-size", 64, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "data: synthetic (emotion" in result.stdout and "6 training people, 1152 pairs" in result.stdout
    # 2 held-out people, each row followed by their real images with the 8 labels; x3
    assert png_shape(out / "samples" / "epoch_001.png") == (4 * (96 + 2) + 2, 9 * (96 + 2) + 2, 3)


@needs_dlib
def test_train_on_your_own_labelled_photos(env, tmp_path):
    """--dataset folder: the London photos and their labels.csv (6 people, neutral and happy)."""
    out = tmp_path / "folder"
    result = cli(env, "--dataset", "folder", "--data-dir", LONDON, "--folds", 2, "--width", 0.0625,
                 "--batch-size", 4, "--epochs", 1, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "data: folder (emotion: neutral, happy)" in result.stdout and "3 training people, 12 pairs" in result.stdout
    assert weights(out / "checkpoint.npz")[1] == 3
    # 3 held-out people, each followed by their real neutral and happy images; input + 2 labels
    assert png_shape(out / "samples" / "epoch_001.png") == (6 * (96 + 2) + 2, 3 * (96 + 2) + 2, 3)


# ------------------------------------------------------------------------ built-in London photos
@pytest.fixture(scope="module")
def london_run(env, tmp_path_factory):
    """A tiny run on --dataset london: 78 people, 2 folds, neutral and happy (aligned once per session)."""
    out = tmp_path_factory.mktemp("london") / "run"
    result = cli(env, "--dataset", "london", "--folds", 2, "--width", 0.0625, "--batch-size", 64,
                 "--epochs", 1, "--device", "cpu", "--out", out, timeout=300)
    return out, result


@needs_dlib
def test_train_on_the_built_in_london_photos(london_run):
    out, result = london_run
    assert result.returncode == 0, result.stderr
    assert "data: london (emotion: neutral, happy); 39 training people, 156 pairs" in result.stdout
    assert ("recipe: stable, epochs 1; unlike the paper's: --lr-d-e 0.002, --warmup-steps 40, --ema-decay 0.99, "
            "--face-only-targets, --lr-decay-epochs 20") in result.stdout     # the London settings, said
    extra = checkpoint.read(out / "checkpoint.npz")[0]["extra"]
    assert extra["label_names"] == ["neutral", "happy"] and extra["options"]["data_dir"] is None
    # 6 held-out people, each followed by their real images; input + neutral + happy
    assert png_shape(out / "samples" / "epoch_001.png") == (12 * (96 + 2) + 2, 3 * (96 + 2) + 2, 3)


@needs_dlib
def test_generate_accepts_exactly_the_checkpoints_labels(london_run, env, tmp_path):
    out, _ = london_run
    result = cli(env, "generate", "--checkpoint", out, "--image", PHOTO, "--emotion", "happy", "--grid", "all",
                 "--out", tmp_path / "gen")
    assert result.returncode == 0, result.stderr
    assert png_shape(tmp_path / "gen" / "grid.png") == (*grid_size(1, 1 + 2), 3)   # input, neutral, happy
    assert "grid.png columns: input, neutral, happy" in result.stdout
    sad = cli(env, "generate", "--checkpoint", out, "--image", PHOTO, "--emotion", "sad", "--out", tmp_path / "gen")
    assert sad.returncode == 2 and "unknown label name 'sad'; valid names are: neutral, happy" in sad.stderr
    assert "Traceback" not in sad.stderr


@pytest.mark.parametrize("command", [[], ["compare", "--variants", "n2"]], ids=["train", "compare"])
def test_london_refuses_a_data_dir(env, tmp_path, command):
    result = cli(env, *command, "--dataset", "london", "--data-dir", LONDON, "--out", tmp_path / "run")
    assert result.returncode == 2 and "--dataset london is built in and needs none" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


@needs_dlib
def test_evaluate_refuses_a_data_dir_for_london(london_run, env, tmp_path):
    out, _ = london_run
    result = cli(env, "evaluate", "--checkpoint", out, "--data-dir", LONDON, "--out", tmp_path / "ev")
    assert result.returncode == 2 and "london is built in" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def au_run(env, tmp_path_factory):
    """A tiny run on the synthetic AU faces (DISFA-like: 12 intensities)."""
    out = tmp_path_factory.mktemp("au") / "run"
    result = cli(env, "--labels", "au", "--subjects", 4, "--folds", 2, "--width", 0.0625, "--epochs", 1,
                 "--batch-size", 64, "--out", out)
    assert result.returncode == 0, result.stderr
    return out


@needs_dlib
def test_au_run_and_its_grids(au_run, env, tmp_path):
    # sample grid: 2 held-out people x [input + 12 AUs at intensity 1]; no exact targets for AU frames
    assert png_shape(au_run / "samples" / "epoch_001.png") == (2 * (96 + 2) + 2, 13 * (96 + 2) + 2, 3)
    out = tmp_path / "gen"
    result = cli(env, "generate", "--checkpoint", au_run, "--image", PHOTO, "--au", "AU12=0.8,AU6=0.5",
                 "--grid", "AU4,AU12", "--steps", 3, "--out", out)
    assert result.returncode == 0, result.stderr
    assert png_shape(out / "result.png") == (*grid_size(1, 1), 3)
    assert png_shape(out / "manifold.png") == (*grid_size(3, 3), 3)          # Fig. 3: AU4 x AU12
    assert "AU4 0 -> 1 down the rows, AU12 0 -> 1 across the columns" in result.stdout
    unknown = cli(env, "generate", "--checkpoint", au_run, "--image", PHOTO, "--au", "AU13=1")
    assert unknown.returncode == 2 and "unknown label name 'AU13'; valid names are: " + ", ".join(AUS) in unknown.stderr
    emotion = cli(env, "generate", "--checkpoint", au_run, "--image", PHOTO, "--emotion", "happy")
    assert emotion.returncode == 2 and "trained on action units" in emotion.stderr and "--au" in emotion.stderr


# ------------------------------------------------------------------------------------ generate
@needs_dlib
def test_generate_from_a_real_photo_writes_every_picture(runs, env, tmp_path):
    straight, _, _ = runs
    out = tmp_path / "gen"
    result = cli(env, "generate", "--checkpoint", straight / "checkpoint.npz", "--image", PHOTO,
                 "--emotion", "happy=0.5,surprised=0.5", "--grid", "all", "--interpolate", "neutral", "happy",
                 "--steps", 4, "--out", out)
    assert result.returncode == 0, result.stderr
    assert png_shape(out / "aligned.png") == (*grid_size(1, 1), 3)
    assert png_shape(out / "result.png") == (*grid_size(1, 1), 3)
    assert png_shape(out / "grid.png") == (*grid_size(1, 1 + 8), 3)            # input + 8 emotions
    assert png_shape(out / "interpolation.png") == (*grid_size(1, 1 + 4), 3)   # input + 4 steps
    manifold = cli(env, "generate", "--checkpoint", straight, "--image", PHOTO, "--grid", "happy,sad",
                   "--steps", 3, "--out", out)
    assert manifold.returncode == 0, manifold.stderr
    assert png_shape(out / "manifold.png") == (*grid_size(3, 3), 3)


@needs_dlib
def test_generate_writes_next_to_the_checkpoint_by_default(runs, env):
    straight, _, _ = runs
    result = cli(env, "generate", "--checkpoint", straight / "checkpoint.npz", "--image", PHOTO)
    assert result.returncode == 0, result.stderr
    out = straight / "generated" / "001_neutral"
    assert (out / "aligned.png").exists() and (out / "grid.png").exists()   # nothing asked: --grid all
    assert not (out / "result.png").exists()


def test_generate_takes_a_32x32_image_as_already_aligned(runs, env, tmp_path):
    straight, _, _ = runs
    face = (np.random.default_rng(0).uniform(0, 255, (32, 32, 3))).astype(np.uint8)
    grids.save_png(tmp_path / "face.png", face)
    result = cli(env, "generate", "--checkpoint", straight, "--image", tmp_path / "face.png",
                 "--emotion", "happy", "--scale", 1, "--out", tmp_path / "gen")
    assert result.returncode == 0 and "already aligned" in result.stdout, result.stderr
    import imageio.v3 as iio
    aligned = iio.imread(tmp_path / "gen" / "aligned.png")                # the input, untouched
    assert np.array_equal(aligned[grids.GAP:-grids.GAP, grids.GAP:-grids.GAP], face)


# ---------------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def grey_photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("photos") / "grey.png"
    grids.save_png(path, np.full((120, 100, 3), 128, np.uint8))
    return path


BAD_TRAIN = [
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["--skip", "n4"], "invalid choice: 'n4'"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--width", "0"], "--width must be positive"),
    (["--fold", "2"], "--fold must be in 0..1 for --folds 2"),
    (["--label-smoothing", "0.7"], "--label-smoothing must be in [0, 0.5)"),
    (["--ema-decay", "1"], "--ema-decay must be in [0, 1)"),
    (["--colour-jitter", "1"], "--colour-jitter must be in [0, 1)"),
    (["--shift", "-1"], "--shift must be 0 or more"),
    (["--dataset", "rafd"], "needs --data-dir"),
    (["--resume"], "has no checkpoint.npz, so there is nothing to resume"),
]


@pytest.mark.parametrize("args,message", BAD_TRAIN, ids=[a[0] for a, _ in BAD_TRAIN])
def test_bad_training_options_say_what_is_wrong(env, tmp_path, args, message):
    base = [] if args[0] in ("--dataset",) else TINY
    result = cli(env, *base, *args, "--out", tmp_path / "run")
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_gpu_without_cupy_says_what_to_install(env, tmp_path):
    import importlib.util
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed here: --device gpu may well work")
    result = cli(env, *TINY[:-2], "--device", "gpu", "--out", tmp_path / "run")
    assert result.returncode == 2 and "needs CuPy" in result.stderr and "Traceback" not in result.stderr


@needs_dlib
def test_bad_generate_inputs_say_what_is_wrong(runs, env, tmp_path, grey_photo):
    straight, _, _ = runs
    ckpt = str(straight / "checkpoint.npz")
    cases = [
        (["--checkpoint", tmp_path / "missing.npz", "--image", PHOTO, "--emotion", "happy"], "does not exist"),
        (["--checkpoint", ckpt, "--image", grey_photo, "--emotion", "happy"], "no face found in"),
        (["--checkpoint", ckpt, "--image", tmp_path / "nope.jpg", "--emotion", "happy"], "does not exist"),
        (["--checkpoint", ckpt, "--image", PHOTO, "--emotion", "joyful"],
         "unknown label name 'joyful'; valid names are: " + ", ".join(EMOTIONS)),
        (["--checkpoint", ckpt, "--image", PHOTO, "--au", "AU12=1"], "trained on emotions"),
        (["--checkpoint", ckpt, "--image", PHOTO, "--grid", "happy"], "--grid takes 'all' or two label names"),
        (["--checkpoint", ckpt, "--image", PHOTO, "--emotion", "happy=2"], "must be in [0, 1]"),
    ]
    for args, message in cases:
        result = cli(env, "generate", *args, "--out", tmp_path / "gen")
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    bad = cli(env, "generate", "--checkpoint", ckpt, "--image", PHOTO, "--emotion", "happy", "--au", "AU1")
    assert bad.returncode == 2 and "not allowed with argument" in bad.stderr


def test_help_explains_every_option(env):
    top = cli(env, "--help")
    assert top.returncode == 0
    for option in ("train", "generate", "gradcheck", "--dataset", "--data-dir", "--labels", "--skip", "--fold",
                   "--folds", "--epochs", "--batch-size", "--width", "--seed", "--device", "--out", "--resume",
                   "--warmup-epochs", "--label-smoothing", "--lr-d-e", "--ema-decay", "--colour-jitter", "--shift"):
        assert option in top.stdout, option
    gen = cli(env, "generate", "--help")
    for option in ("--checkpoint", "--image", "--emotion", "--au", "--grid", "--interpolate", "--steps", "--scale"):
        assert option in gen.stdout, option
    grad = cli(env, "gradcheck", "--help")                   # handed to tinycdaae.gradcheck.main
    assert grad.returncode == 0 and "--layers-only" in grad.stdout


# ----------------------------------------------------------------------------- NaN and Ctrl-C
def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(env, tmp_path):
    """An image discriminator with an absurd learning rate (1e9) turns the losses into NaN at the
    first adversarial step; the warm-up epoch before it has no D update and ends in a checkpoint."""
    out = tmp_path / "nan"
    result = cli(env, *TINY, "--epochs", 3, "--warmup-epochs", 1, "--warmup-steps", 0, "--lr-d-g", 1e9,
                 "--out", out)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "became nan at step 4" in result.stdout and "last good checkpoint" in result.stdout
    arrays, step = weights(out / "checkpoint.npz")
    assert step == 3                                                        # the end of epoch 1
    assert all(np.isfinite(a).all() for k, a in arrays.items() if k != "meta_json")
    assert not (out / "samples" / "epoch_002.png").exists()


def test_ctrl_c_saves_the_last_step_and_resumes_exactly(env, tmp_path):
    out, straight = tmp_path / "interrupted", tmp_path / "straight"
    small_batches = [*TINY[:-4], "--batch-size", 32, "--device", "cpu"]   # 12 steps per epoch
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, "run.py"), *map(str, small_batches),
                             "--epochs", "1000", "--out", str(out)], env=env, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    log = out / "log.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 15):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    assert "interrupted: saved step" in stdout and f"python run.py --resume --out {out}" in stdout
    assert "Traceback" not in stderr
    _, step = weights(out / "checkpoint.npz")
    assert [s["step"] for s in log_steps(out)] == list(range(1, step + 1))  # the checkpoint is the last step
    # finish the interrupted epoch (usually cut mid-way) and compare with a straight run
    epochs = step // 12 + 1
    assert cli(env, "--resume", "--out", out, "--epochs", epochs).returncode == 0
    assert cli(env, *small_batches, "--epochs", epochs, "--out", straight).returncode == 0
    a, step_a = weights(out / "checkpoint.npz")
    b, step_b = weights(straight / "checkpoint.npz")
    assert step_a == step_b == 12 * epochs
    assert all(np.array_equal(a[k], b[k]) for k in a if k != "meta_json")


# ------------------------------------------------------------------------- in-process pieces
def healthy(step_rng):
    return {"loss_D_E": 1.38 + 0.05 * step_rng.standard_normal(), "loss_E": 0.69, "acc_D_E": 0.55, "loss_R": 0.05}


def test_collapse_monitor_warns_once_after_patience_and_not_on_healthy_runs():
    rng = np.random.default_rng(0)
    monitor = LatentCollapseMonitor(window=10, patience=30)
    assert all(monitor.update(healthy(rng)) is None for _ in range(200))
    collapsed = {"loss_D_E": 9.0, "loss_E": 0.001, "acc_D_E": 0.5, "loss_R": 0.05}
    warnings = [monitor.update(collapsed) for _ in range(200)]
    fired = [i for i, w in enumerate(warnings) if w]
    assert len(fired) == 1 and 30 <= fired[0] < 30 + 10               # after the window fills + patience
    assert "collapse" in warnings[fired[0]] and "--lr-d-e 2e-3" in warnings[fired[0]]
    overpowering = {"loss_D_E": 0.01, "loss_E": 6.0, "acc_D_E": 1.0, "loss_R": 0.05}
    monitor = LatentCollapseMonitor(window=10, patience=30)
    messages = [m for m in (monitor.update(overpowering) for _ in range(100)) if m]
    assert len(messages) == 1 and "overpowering" in messages[0]
    # warm-up steps carry no D_E loss and are ignored
    assert LatentCollapseMonitor(window=1, patience=1).update({"loss_R": 0.1}) is None


def test_trainer_reports_a_collapse_in_the_log_and_keeps_training(tmp_path, capsys):
    """The wiring: a real tiny objective whose reported D_E numbers look collapsed."""
    from tinycdaae.data.datasets import load_dataset, split_for_training
    from tinycdaae.model import CDAAE, ModelConfig
    from tinycdaae.objective import Objective
    from tinycdaae.training import TrainConfig, Trainer

    class LooksCollapsed(Objective):
        def step(self, *args, **kwargs):
            metrics = super().step(*args, **kwargs)
            return {**metrics, "loss_D_E": 9.0, "loss_E": 0.001}

    train, _ = split_for_training(load_dataset("synthetic", kind="emotion", n_subjects=4), 0, 2)
    objective = LooksCollapsed(CDAAE(ModelConfig(width=0.0625)))
    config = TrainConfig(epochs=1, batch_size=16, monitor_window=5, collapse_patience=10)
    assert Trainer(objective, train, config, str(tmp_path)).run() == "finished"       # not stopped
    events = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()
              if '"event": "collapse_warning"' in line]
    assert len(events) == 1 and events[0]["step"] == 5 + 10 - 1                   # window, then patience
    assert "latent discriminator collapse" in events[0]["message"] and "--lr-d-e" in events[0]["message"]
    printed = capsys.readouterr()
    assert "warning (step 14): latent discriminator collapse" in printed.out + printed.err


def test_collapse_monitor_state_round_trips():
    a, b = LatentCollapseMonitor(window=5, patience=8), LatentCollapseMonitor(window=5, patience=8)
    collapsed = {"loss_D_E": 9.0, "loss_E": 0.001, "acc_D_E": 0.5}
    for _ in range(6):
        a.update(collapsed)
    b.load_state(json.loads(json.dumps(a.state())))                   # as stored in a checkpoint
    assert [bool(a.update(collapsed)) for _ in range(5)] == [bool(b.update(collapsed)) for _ in range(5)]


def test_divergence_monitor():
    monitor = DivergenceMonitor(window=5, factor=10.0)
    assert all(monitor.update({"loss_R": v}) is None for v in np.linspace(0.3, 0.02, 50))
    assert all(monitor.update({"loss_R": 0.05}) is None for _ in range(20))   # noise, not divergence
    messages = [monitor.update({"loss_R": 1.5}) for _ in range(5)]
    assert messages[-1] and "diverged" in messages[-1]


def test_truncate_log_keeps_steps_up_to_the_checkpoint(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps({"step": s}) + "\n" for s in range(1, 8)))
    truncate_log(path, 4)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2, 3, 4]


def test_tile_enlarges_by_nearest_neighbour_with_gaps():
    cells = np.zeros((2, 3, 3, 32, 32), np.float32)
    cells[1, 2, 0, 0, 0] = 1.0                           # one red pixel in the last cell
    sheet = grids.tile(cells, scale=2, gap=1)
    assert sheet.shape == (2 * 65 + 1, 3 * 65 + 1, 3)
    top, left = 1 + 65, 1 + 2 * 65
    assert (sheet[top:top + 2, left:left + 2, 0] == 255).all()          # a 2x2 block
    assert sheet[top + 2, left, 0] == 128 and sheet[0, 0, 0] == 255    # mid grey; white gap


def two_label_faceset(missing=()):
    """4 people x (neutral, happy), like a folder with an emotion column using two emotions; the
    (person, label) pairs in `missing` have no image. Each image is flat at a value of its own."""
    from tinycdaae.data.pairs import FaceSet, pairs_within_groups
    rows = [(p, k) for p in range(4) for k in range(2) if (p, k) not in missing]
    subjects = np.array([p for p, _ in rows])
    images = np.stack([np.full((3, 32, 32), (i + 1) / 10, np.float32) for i in range(len(rows))])
    labels = np.eye(2, dtype=np.float32)[[k for _, k in rows]]
    return FaceSet(images, subjects, labels, ("neutral", "happy"), "emotion",
                   pairs_within_groups(subjects, np.zeros(len(rows), np.int64)))


class CopyModel:
    def generate(self, images, labels):
        return {"x_hat": np.asarray(images, np.float32)}


def test_sample_grid_of_a_two_label_set_has_two_columns_and_real_rows():
    fs = two_label_faceset()
    rows = grids.sample_faces(fs, 3)
    assert fs.labels[rows].argmax(axis=1).tolist() == [0, 0, 0] and fs.subjects[rows].tolist() == [0, 1, 2]
    columns = grids.each_label(2)
    targets = grids.real_targets(fs, rows, columns)
    assert targets.shape == (3, 2, 3, 32, 32)
    np.testing.assert_array_equal(targets[1, 1], fs.images[3])         # person 1's happy image
    sheet = grids.with_real_rows(grids.expression_grid(CopyModel(), fs.images[rows], columns), targets)
    assert sheet.shape == (6, 3, 3, 32, 32)                             # input + 2 labels; real rows between
    assert (sheet[1, 0] == 1).all() and np.array_equal(sheet[1, 1:], targets[0])


def test_people_with_every_label_come_first_and_a_missing_one_is_a_grey_cell():
    fs = two_label_faceset(missing={(0, 1), (2, 0)})        # person 0 never smiles, person 2 never neutral
    rows = grids.sample_faces(fs, 3)
    assert fs.subjects[rows].tolist() == [1, 3, 0]          # complete people first, then in subject order
    targets = grids.real_targets(fs, rows, grids.each_label(2))
    assert targets is not None and (targets[2, 1] == grids.MISSING).all()      # person 0's happy: grey
    np.testing.assert_array_equal(targets[2, 0], fs.images[fs.subjects == 0][0])
    assert grids.real_targets(fs, np.flatnonzero(fs.subjects == 2)[:1], grids.each_label(2)) is not None
    au = two_label_faceset()
    au.kind = "au"
    assert grids.real_targets(au, [0, 2], grids.each_label(2)) is None        # AU frames: no exact targets


def test_manifold_and_interpolation_labels():
    labels = grids.manifold_labels(12, 2, 6, steps=3)
    assert labels.shape == (3, 3, 12)
    assert labels[2, 0, 2] == 1 and labels[2, 0, 6] == 0 and labels[1, 2, 6] == 1 and labels[1, 2, 2] == 0.5
    assert labels[:, :, [0, 1, 3, 4, 5, 7, 8, 9, 10, 11]].sum() == 0
    strip = grids.interpolation_labels(np.eye(8)[1], np.eye(8)[7], steps=5)
    assert np.allclose(strip[:, 1], [1, 0.75, 0.5, 0.25, 0]) and np.allclose(strip.sum(1), 1)


def test_flip_mirrors_and_resumes_bit_exactly(env, tmp_path):
    """--flip changes what is learnt (mirrored pairs), and a resumed --flip run mirrors the same
    pairs as an uninterrupted one: the coins come from (seed, step), not from unsaved state."""
    plain, straight, resumed = tmp_path / "plain", tmp_path / "straight", tmp_path / "resumed"
    for result in (cli(env, *TINY, "--epochs", 2, "--out", plain),
                   cli(env, *TINY, "--epochs", 2, "--flip", "--out", straight),
                   cli(env, *TINY, "--epochs", 1, "--flip", "--out", resumed),
                   cli(env, "--resume", "--out", resumed, "--epochs", 2)):
        assert result.returncode == 0, result.stderr
    a, b, c = (weights(run / "checkpoint.npz")[0] for run in (straight, resumed, plain))
    params = [k for k in a if k.startswith("param/")]
    assert all(np.array_equal(a[k], b[k]) for k in params)
    assert any(not np.array_equal(a[k], c[k]) for k in params)
    assert checkpoint.read(resumed / "checkpoint.npz")[0]["extra"]["options"]["flip"] is True


def test_help_piped_into_a_reader_that_stops_early_ends_without_a_traceback(env):
    """`run.py --help | head -0`: the reader has hung up before the help is written (the pipe is
    closed at once; the interpreter takes far longer to start than that)."""
    process = subprocess.Popen([sys.executable, os.path.join(REPO, "run.py"), "--help"], env=env, cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.wait(timeout=60)
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr

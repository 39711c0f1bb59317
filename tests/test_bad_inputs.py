"""Hardening (issue: every bad input a clear refusal, run folders that cannot be corrupted, photos
read right). A table of bad inputs walks through the real command line, each row with the exit
code and a fragment of the message it must give, and never a traceback. Then the run folder's
lock, a log left without a checkpoint, a torn log line, NaN data, checkpoint permissions, and
photos in every colour mode (CMYK, EXIF-rotated, palette, 16-bit...)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
from test_cli import PHOTO, REPO, TINY, cli, env, needs_dlib  # noqa: F401  (env: a fixture)

from tinycdaae import checkpoint, grids
from tinycdaae.data import align


@pytest.fixture(scope="module")
def trained(env, tmp_path_factory):
    """One tiny finished run (1 epoch, 3 steps): the source of every damaged checkpoint."""
    out = tmp_path_factory.mktemp("trained") / "run"
    result = cli(env, *TINY, "--epochs", 1, "--out", out)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def face32(tmp_path_factory):
    """A 32x32 PNG: taken as already aligned, so generate needs no dlib."""
    path = tmp_path_factory.mktemp("face") / "face.png"
    grids.save_png(path, np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    return path


# --------------------------------------------------------------------------- damaged files
def rewrite(src, dst, edit_meta=None, drop=()):
    """Copy checkpoint src to dst as an .npz, editing its metadata and dropping entries."""
    with np.load(src, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files if k not in drop}
    if edit_meta and "meta_json" in arrays:
        meta = json.loads(str(arrays["meta_json"]))
        edit_meta(meta)
        arrays["meta_json"] = np.array(json.dumps(meta))
    with open(dst, "wb") as f:
        np.savez(f, **arrays)


def flip_byte(path, where):
    data = bytearray(path.read_bytes())
    data[where] ^= 0xFF
    path.write_bytes(bytes(data))


def set_config(**fields):
    return lambda meta: meta["model_config"].update(fields)


def damage(kind, src, dst):
    """Write a damaged copy of checkpoint `src` at `dst`."""
    if kind == "truncated":
        dst.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    elif kind == "zero_bytes":
        dst.write_bytes(b"")
    elif kind == "flipped_byte":      # inside the weights: the zip's CRC-32 no longer matches
        shutil.copy(src, dst)
        flip_byte(dst, dst.stat().st_size // 2)
    elif kind == "no_meta":
        rewrite(src, dst, drop=("meta_json",))
    elif kind == "missing_weights":
        with np.load(src) as data:
            first = next(k for k in data.files if k.startswith("param/"))
        rewrite(src, dst, drop=(first,))
    elif kind == "width_text":
        rewrite(src, dst, set_config(width="big"))
    elif kind == "huge_width":
        rewrite(src, dst, set_config(width=1000.0))
    elif kind == "label_dim_float":
        rewrite(src, dst, set_config(label_dim=8.5))
    elif kind == "meta_not_table":
        rewrite(src, dst, lambda meta: meta.__setitem__("model_config", [1, 2]))
    elif kind == "options_wrong_type":
        rewrite(src, dst, lambda meta: meta["extra"]["options"].update(batch_size="many"))
    elif kind == "label_names_wrong":
        rewrite(src, dst, lambda meta: meta["extra"].update(label_names="happy"))
    elif kind == "nan_weights":
        with np.load(src) as data:
            arrays = {k: data[k] for k in data.files}
        for key in ("param/E.conv1.w", "average/E.conv1.w"):        # a generator weight, and its average
            if key in arrays:                                       # (the one faces are drawn with)
                arrays[key] = np.full_like(arrays[key], np.nan)
        with open(dst, "wb") as f:
            np.savez(f, **arrays)
    else:
        raise ValueError(kind)


DAMAGE = {   # kind -> fragment of the message (for generate, evaluate and --resume alike)
    "truncated": "damaged",
    "zero_bytes": "is empty (0 bytes)",
    "flipped_byte": "damaged",
    "no_meta": "damaged",
    "missing_weights": "has no array",
    "width_text": "model_config.width is 'big', not a number",
    "huge_width": "model_config.width is 1000.0, outside",
    "label_dim_float": "model_config.label_dim is 8.5, not a whole number",
    "meta_not_table": "no model_config table",
}


def copy_run(trained, tmp_path, kind):
    """A copy of the trained run folder whose checkpoint is damaged (for --resume)."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    damage(kind, trained / "checkpoint.npz", run / "checkpoint.npz")
    return run


# ----------------------------------------------------------------------------- the table
def make_folder(tmp_path, csv_bytes, extra=None):
    data = tmp_path / "data"
    data.mkdir()
    if csv_bytes is not None:
        (data / "labels.csv").write_bytes(csv_bytes)
    if extra:
        extra(data)
    return ["--dataset", "folder", "--data-dir", data, "--folds", "2", "--width", "0.0625", "--device", "cpu"]


def fifo(data):
    os.mkfifo(data / "pipe.jpg")


def big_png(path, width, height):
    """A valid 8-bit grey PNG of width x height, constant, written row by row through zlib so
    that neither the pixels nor the file (~100 KB) need memory."""
    def chunk(kind, body):
        return (len(body).to_bytes(4, "big") + kind + body
                + zlib.crc32(kind + body).to_bytes(4, "big"))
    squeeze, row, parts = zlib.compressobj(9), b"\x00" * (width + 1), []   # filter byte 0 + pixels
    for _ in range(height):
        parts.append(squeeze.compress(row))
    parts.append(squeeze.flush())
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts))
                     + chunk(b"IEND", b""))
    return path


BIG = (8000, 7000)   # 56 megapixels, above align.MAX_PIXELS (50)
CSV_HEAD = b"path,subject,emotion\n"

# Each row: id, a function (tmp_path, trained run, 32x32 face) -> argv, the exit code, a
# fragment of stderr. Every row also asserts that stderr holds no traceback.
ROWS = [
    # --- train: values argparse cannot judge
    ("seed_negative", lambda t, r, f: [*TINY, "--seed", "-1", "--out", t / "o"], 2, "--seed must be 0 or more"),
    ("width_inf", lambda t, r, f: [*TINY, "--width", "inf", "--out", t / "o"], 2, "--width must be at most 4"),
    ("width_1000", lambda t, r, f: [*TINY, "--width", "1000", "--out", t / "o"], 2, "--width must be at most 4"),
    ("width_nan", lambda t, r, f: [*TINY, "--width", "nan", "--out", t / "o"], 2, "--width must be positive"),
    ("lr_inf", lambda t, r, f: [*TINY, "--lr", "inf", "--out", t / "o"], 2, "--lr must be a positive number"),
    ("beta1_above_1", lambda t, r, f: [*TINY, "--adam-beta1", "1.5", "--out", t / "o"], 2,
     "--adam-beta1 must be in [0, 1)"),
    ("beta2_at_1", lambda t, r, f: [*TINY, "--adam-beta2", "1", "--out", t / "o"], 2,
     "--adam-beta2 must be in (0, 1)"),
    ("latent_weight_negative", lambda t, r, f: [*TINY, "--latent-weight", "-1", "--out", t / "o"], 2,
     "--latent-weight must be a number, 0 or more (the paper's is 0.01)"),
    ("latent_weight_nan", lambda t, r, f: [*TINY, "--latent-weight", "nan", "--out", t / "o"], 2,
     "--latent-weight must be a number, 0 or more"),
    ("lr_decay_negative", lambda t, r, f: [*TINY, "--lr-decay-epochs", "-1", "--out", t / "o"], 2,
     "--lr-decay-epochs must be 0 or more, got -1"),
    ("train_out_is_a_file", lambda t, r, f: [*TINY, "--out", r / "log.jsonl"], 2, "is an existing file, not a folder"),
    # --- train: labels.csv
    ("csv_not_utf8", lambda t, r, f: make_folder(t, CSV_HEAD + "é.jpg,anna,happy\n".encode("latin-1")), 2,
     "is not UTF-8 text"),
    ("csv_is_a_folder", lambda t, r, f: make_folder(t, None, lambda d: (d / "labels.csv").mkdir()), 2,
     "labels.csv is not a regular file"),
    ("csv_paths_outside", lambda t, r, f: make_folder(
        t, CSV_HEAD + b"../../etc/passwd,anna,happy\n/etc/hostname,bob,neutral\nok.jpg,carl,happy\n"), 2,
     "2 path(s) lead outside the data folder"),
    ("csv_names_a_fifo", lambda t, r, f: make_folder(t, CSV_HEAD + b"pipe.jpg,anna,happy\n", fifo), 2,
     "1 path(s) are not regular files"),
    # --- --resume from damaged checkpoints
    *[(f"resume_{kind}", lambda t, r, f, kind=kind: ["--resume", "--out", copy_run(r, t, kind), "--epochs", "2"],
       2, fragment) for kind, fragment in DAMAGE.items()],
    ("resume_options_wrong_type", lambda t, r, f: ["--resume", "--out", copy_run(r, t, "options_wrong_type"),
                                                   "--epochs", "2"], 2, "batch_size='many'"),
    # --- generate from damaged checkpoints
    *[(f"generate_{kind}", lambda t, r, f, kind=kind: (
        damage(kind, r / "checkpoint.npz", t / "c.npz"),
        ["generate", "--checkpoint", t / "c.npz", "--image", f, "--out", t / "g"])[1], 2, fragment)
      for kind, fragment in DAMAGE.items()],
    ("generate_nan_weights", lambda t, r, f: (
        damage("nan_weights", r / "checkpoint.npz", t / "c.npz"),
        ["generate", "--checkpoint", t / "c.npz", "--image", f, "--out", t / "g"])[1], 2, "hold NaN or infinite"),
    ("generate_label_names_wrong", lambda t, r, f: (
        damage("label_names_wrong", r / "checkpoint.npz", t / "c.npz"),
        ["generate", "--checkpoint", t / "c.npz", "--image", f, "--out", t / "g"])[1], 2,
     "stored label names ('happy', kind 'emotion') are damaged"),
    ("evaluate_options_wrong_type", lambda t, r, f: (
        damage("options_wrong_type", r / "checkpoint.npz", t / "c.npz"),
        ["evaluate", "--checkpoint", t / "c.npz", "--out", t / "ev"])[1], 2, "batch_size='many'"),
    # --- generate: options
    ("steps_above_64", lambda t, r, f: ["generate", "--checkpoint", r, "--image", f, "--grid", "happy,sad",
                                        "--steps", "100"], 2, "--steps must be in 2..64"),
    ("steps_alone", lambda t, r, f: ["generate", "--checkpoint", r, "--image", f, "--steps", "5"], 2,
     "--steps sets the steps of --grid A,B or --interpolate"),
    ("grid_same_label_twice", lambda t, r, f: ["generate", "--checkpoint", r, "--image", f, "--grid", "happy,happy"],
     2, "--grid needs two different labels"),
    ("grid_with_a_weight", lambda t, r, f: ["generate", "--checkpoint", r, "--image", f, "--grid", "happy=0.5,sad"],
     2, "two bare label names"),
    ("grid_empty", lambda t, r, f: ["generate", "--checkpoint", r, "--image", f, "--grid", ""], 2, "--grid is empty"),
    ("mix_repeats_a_label", lambda t, r, f: ["generate", "--checkpoint", r, "--image", f,
                                             "--emotion", "happy=0.5,happy=0.5"], 2, "'happy' is given twice"),
    ("scale_1000", lambda t, r, f: ["generate", "--checkpoint", r, "--image", f, "--scale", "1000"], 2,
     "--scale must be in 1..32"),
    ("generate_out_is_a_file", lambda t, r, f: ["generate", "--checkpoint", r, "--image", f, "--out", f], 2,
     "is an existing file, not a folder"),
    ("image_above_50_megapixels", lambda t, r, f: ["generate", "--checkpoint", r, "--out", t / "g", "--image",
                                                   big_png(t / "big.png", *BIG)], 2,
     "8000x7000 pixels (56 megapixels), above the limit of 50 megapixels"),
    ("image_is_a_fifo", lambda t, r, f: (os.mkfifo(t / "pipe.png"), ["generate", "--checkpoint", r, "--image",
                                                                    t / "pipe.png", "--out", t / "g"])[1], 2,
     "not a regular file"),
    # --- evaluate
    ("evaluate_flipped_byte", lambda t, r, f: (
        damage("flipped_byte", r / "checkpoint.npz", t / "c.npz"),
        ["evaluate", "--checkpoint", t / "c.npz", "--out", t / "ev"])[1], 2, "damaged"),
    ("evaluate_huge_width", lambda t, r, f: (
        damage("huge_width", r / "checkpoint.npz", t / "c.npz"),
        ["evaluate", "--checkpoint", t / "c.npz", "--out", t / "ev"])[1], 2, "outside"),
]


@pytest.mark.parametrize("make_args,code,fragment", [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_bad_input_is_refused_with_a_clear_message(env, tmp_path, trained, face32, make_args, code, fragment):
    before = (trained / "checkpoint.npz").read_bytes()
    result = cli(env, *make_args(tmp_path, trained, face32))
    assert result.returncode == code, result.stdout + result.stderr
    assert fragment in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) <= 6, result.stderr     # a message, not a dump
    assert (trained / "checkpoint.npz").read_bytes() == before              # nothing lost


# ------------------------------------------------------------------------ the run folder
def steps_in_log(run):
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [r["step"] for r in lines if "event" not in r]


def start(env, *args):
    return subprocess.Popen([sys.executable, os.path.join(REPO, "run.py"), *map(str, args)], env=env,
                            cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_a_second_run_into_a_busy_folder_is_refused_naming_the_holder(env, tmp_path):
    out = tmp_path / "run"
    first = start(env, *TINY, "--epochs", 3, "--out", out)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "log.jsonl").exists():
        time.sleep(0.02)
    os.kill(first.pid, signal.SIGSTOP)           # paused mid-run, lock held: the overlap is certain
    try:
        second = cli(env, *TINY, "--epochs", 1, "--out", out)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    stdout, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stdout + stderr
    assert second.returncode == 2 and "Traceback" not in second.stderr, second.stderr
    assert f"{out} is in use by another training run (process id {first.pid})" in second.stderr
    assert steps_in_log(out) == list(range(1, 10))                 # the first run's log: one line per step
    assert checkpoint.read(out / "checkpoint.npz")[0]["step"] == 9


def test_two_runs_started_together_never_both_succeed(env, tmp_path):
    out = tmp_path / "run"
    runs = [start(env, *TINY, "--epochs", 3, "--out", out) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in runs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refusal = next(err for code, err in results if code == 2)
    # usually "in use by another training run"; if the first finished before the second looked,
    # "already holds a run": either way one run's files, intact
    assert "in use by another training run" in refusal or "already holds a run" in refusal, refusal
    assert steps_in_log(out) == list(range(1, 10))
    assert checkpoint.read(out / "checkpoint.npz")[0]["step"] == 9


def test_a_lock_left_by_a_dead_process_is_taken_over(env, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text("999999999\n")                     # a pid no process has; no flock held
    result = cli(env, *TINY, "--epochs", 1, "--out", out)
    assert result.returncode == 0, result.stderr
    assert (out / ".lock").read_text().strip() != "999999999"     # the new holder's pid


def test_a_log_without_a_checkpoint_is_moved_aside_not_mixed(env, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    old = "".join(json.dumps({"step": s, "loss_R": 9.0}) + "\n" for s in range(1, 6))
    old += json.dumps({"event": "diverged", "step": 5}) + "\n"
    (out / "log.jsonl").write_text(old)                             # e.g. a first epoch that diverged
    result = cli(env, *TINY, "--epochs", 1, "--out", out)
    assert result.returncode == 0, result.stderr
    aside = list(out.glob("log.previous-*.jsonl"))
    assert len(aside) == 1 and aside[0].read_text() == old
    assert f"moved it to {aside[0]}" in result.stdout
    assert steps_in_log(out) == [1, 2, 3]


def test_a_torn_last_log_line_does_not_block_resume(env, trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    with open(run / "log.jsonl", "a") as f:
        f.write('{"step": 4, "epoch": 2, "loss_R": 0.1')              # killed in the middle of a write
    result = cli(env, "--resume", "--out", run, "--epochs", 2)
    assert result.returncode == 0, result.stderr
    assert steps_in_log(run) == [1, 2, 3, 4, 5, 6]
    # a damaged line in the middle is refused, not silently dropped
    lines = (run / "log.jsonl").read_text().splitlines()
    lines[1] = "garbage"
    (run / "log.jsonl").write_text("\n".join(lines) + "\n")
    broken = cli(env, "--resume", "--out", run, "--epochs", 3)
    assert broken.returncode == 2 and "line 2 is not a log record" in broken.stderr
    assert "Traceback" not in broken.stderr


# ---------------------------------------------------------------------------- in-process
def test_nan_data_stops_training_saying_it_is_the_data(tmp_path, capsys):
    from tinycdaae.data.datasets import load_dataset, split_for_training
    from tinycdaae.model import CDAAE, ModelConfig
    from tinycdaae.objective import Objective
    from tinycdaae.training import TrainConfig, Trainer

    train, _ = split_for_training(load_dataset("synthetic", kind="emotion", n_subjects=4), 0, 2)
    train.images[5, 0, 3, 3] = np.nan
    objective = Objective(CDAAE(ModelConfig(width=0.0625)))
    status = Trainer(objective, train, TrainConfig(epochs=1, batch_size=16), str(tmp_path)).run()
    said = capsys.readouterr().out
    assert status == "bad_data" and "the training data holds NaN or infinite values" in said
    assert "rows [5]" in said and "Lower the learning rates" not in said
    assert not (tmp_path / "checkpoint.npz").exists()


def test_checkpoints_get_the_users_umask_not_0600(tmp_path):
    previous = os.umask(0o027)
    try:
        checkpoint.atomic_write(str(tmp_path / "f.npz"), lambda f: f.write(b"x"))
    finally:
        os.umask(previous)
    assert (tmp_path / "f.npz").stat().st_mode & 0o777 == 0o640


# --------------------------------------------------------------------------------- photos
def photo_pixels():
    from PIL import Image
    with Image.open(PHOTO) as image:
        return image.convert("RGB")


def test_every_colour_mode_reads_as_the_same_rgb(tmp_path):
    """Lossless copies (PNG) in each mode give back the RGB pixels the mode can hold."""
    from PIL import Image
    rgb = photo_pixels().resize((90, 90))
    expected = np.asarray(rgb)
    gray = np.asarray(rgb.convert("L"))
    cases = {
        "rgba.png": (rgb.convert("RGBA"), expected),
        "la.png": (rgb.convert("LA"), np.repeat(gray[:, :, None], 3, 2)),
        "l.png": (rgb.convert("L"), np.repeat(gray[:, :, None], 3, 2)),
        "p.png": (rgb.convert("P"), np.asarray(rgb.convert("P").convert("RGB"))),
        "i16.png": (Image.fromarray(gray.astype(np.uint16) * 257), np.repeat(gray[:, :, None], 3, 2)),
        "cmyk.tif": (rgb.convert("CMYK"), np.asarray(rgb.convert("CMYK").convert("RGB"))),
    }
    for name, (image, want) in cases.items():
        image.save(tmp_path / name)
        got = align.read_image(tmp_path / name)
        assert got.dtype == np.uint8 and got.shape == (90, 90, 3) and got.flags.c_contiguous, name
        np.testing.assert_array_equal(got, want, err_msg=name)
    # CMYK is not a negative: Pillow's CMYK -> RGB of an RGB -> CMYK copy is the image itself
    np.testing.assert_array_equal(align.read_image(tmp_path / "cmyk.tif"), expected)


def test_exif_orientation_is_applied(tmp_path):
    """A phone stores a portrait photo sideways with EXIF Orientation 6 ("rotate 90° clockwise to
    view"): the pixels must come back upright."""
    from PIL import Image
    rgb = photo_pixels().resize((80, 60))
    sideways = rgb.transpose(Image.Transpose.ROTATE_90)              # stored turned 90° left
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways.save(tmp_path / "tagged.png", exif=exif)
    np.testing.assert_array_equal(align.read_image(tmp_path / "tagged.png"), np.asarray(rgb))


def test_a_huge_image_is_refused_from_its_header(tmp_path):
    path = big_png(tmp_path / "big.png", *BIG)
    assert path.stat().st_size < 1_000_000
    with pytest.raises(align.UnreadableImageError, match="above the limit of 50 megapixels"):
        align.read_image(path)


@needs_dlib
def test_cmyk_and_exif_rotated_jpegs_align_to_the_same_crop():
    """The same photo saved as a CMYK JPEG, and as a JPEG stored sideways with an EXIF tag, must
    read as the original's pixels and align to its crop, up to JPEG re-encoding. Measured here
    (quality 95, 001_neutral.jpg): pixels read, mean |difference| 0.22 grey levels (CMYK) and 0.67
    (EXIF-rotated) out of 255; aligned 32x32 crops 2.12 (CMYK) and 1.42 (rotated), where a plain
    RGB re-save at the same quality gives 1.31 (dlib's landmarks move a little with any
    re-encoding). The old reader took CMYK's four channels as RGB + alpha: a colour negative,
    144 grey levels off (and dlib still found a "face" in it, so nothing complained)."""
    import tempfile

    from PIL import Image
    original = align.align_file(PHOTO).crop.astype(np.float64)
    rgb = photo_pixels()
    with tempfile.TemporaryDirectory() as folder:
        cmyk, rotated = os.path.join(folder, "cmyk.jpg"), os.path.join(folder, "rotated.jpg")
        rgb.convert("CMYK").save(cmyk, quality=95)
        exif = Image.Exif()
        exif[0x0112] = 8                                            # "rotate 90° counter-clockwise to view"
        rgb.transpose(Image.Transpose.ROTATE_270).save(rotated, quality=95, exif=exif)
        for path in (cmyk, rotated):
            pixels = align.read_image(path).astype(np.float64)
            assert np.abs(pixels - np.asarray(rgb, np.float64)).mean() < 1.5, path
            crop = align.align_file(path).crop.astype(np.float64)
            assert np.abs(crop - original).mean() < 4.0, (path, np.abs(crop - original).mean())


@needs_dlib
def test_a_big_photo_is_searched_on_a_shrunk_copy_and_aligns_like_the_original():
    """Above align.DETECT_MAX_SIDE the face is searched on a shrunk copy, the landmarks placed on
    the full photo. 001_neutral.jpg (450 px) enlarged to 2400 px aligns to within 4 grey levels of
    the original's crop (measured: 1.34; searching the full 2400 px photo instead gave 2.02: the
    enlargement itself moves dlib's landmarks a little)."""
    from PIL import Image
    rgb = photo_pixels()
    original = align.align_file(PHOTO).crop.astype(np.float64)
    big = np.asarray(rgb.resize((2400, 2400), Image.Resampling.BICUBIC))
    assert max(big.shape) > align.DETECT_MAX_SIDE
    crop = align.align_face(big).crop.astype(np.float64)
    assert np.abs(crop - original).mean() < 4.0, np.abs(crop - original).mean()

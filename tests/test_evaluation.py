"""The evaluation (issue 7): every metric on cases with known answers, the expression reader on
separable data, aggregation, and `run.py compare` / `run.py evaluate` end to end in subprocesses."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tinycdaae import evaluation as ev
from tinycdaae.data.synthetic import emotion_faceset, render_targets

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def textured(n=2, seed=0):
    """Smooth random images in [-1, 1] (sums of a few sinusoids): structure for SSIM to see."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32] / 32.0
    out = np.zeros((n, 3, 32, 32))
    for _ in range(4):
        fy, fx, phase = rng.uniform(0.5, 3, (n, 3, 1, 1)), rng.uniform(0.5, 3, (n, 3, 1, 1)), rng.uniform(0, 6, (n, 3, 1, 1))
        out += np.sin(2 * np.pi * (fy * yy + fx * xx) + phase) / 4
    return out


# ------------------------------------------------------------------------------ target fidelity
def test_identical_images_give_zero_mse_infinite_psnr_and_ssim_one():
    x = textured(3)
    assert ev.mse(x, x).tolist() == [0, 0, 0]
    assert np.isinf(ev.psnr(x, x)).all() and (ev.psnr(x, x) > 0).all()
    assert np.allclose(ev.ssim(x, x), 1.0, atol=1e-12)


def test_constant_offset_of_a_flat_image_has_known_mse_psnr_and_ssim():
    # a flat image μ and a flat image μ + c: MSE = c²; PSNR = 10 log10(2² / c²); no variance, so
    # SSIM's contrast-structure term is C2 / C2 = 1 and SSIM = (2μ(μ+c) + C1) / (μ² + (μ+c)² + C1)
    mu, c = 0.2, 0.1
    a, b = np.full((1, 3, 32, 32), mu), np.full((1, 3, 32, 32), mu + c)
    c1 = (0.01 * 2) ** 2
    assert ev.mse(a, b)[0] == pytest.approx(c * c)
    assert ev.psnr(a, b)[0] == pytest.approx(10 * np.log10(4 / c ** 2))          # 26.02 dB
    assert ev.ssim(a, b)[0] == pytest.approx((2 * mu * (mu + c) + c1) / (mu ** 2 + (mu + c) ** 2 + c1), rel=1e-12)
    # the same picture on a [0, 255] scale gives the same PSNR with data_range 255
    to255 = lambda x: (x + 1) * 127.5
    assert ev.psnr(to255(a), to255(b), data_range=255)[0] == pytest.approx(ev.psnr(a, b)[0])


def test_shifted_image_loses_ssim_and_mse_is_the_mean_squared_difference():
    x = textured(2, seed=1)
    shifted = np.roll(x, 2, axis=3)
    assert ev.mse(x, shifted) == pytest.approx(((x - shifted) ** 2).mean(axis=(1, 2, 3)))
    one, two, four = (ev.ssim(x, np.roll(x, k, axis=3)) for k in (1, 2, 4))
    assert (one < 1).all() and (two < one).all() and (four < two).all()    # further shifts, less similar
    # SSIM is symmetric and stays in [-1, 1]
    assert np.allclose(ev.ssim(x, shifted), ev.ssim(shifted, x))
    assert (np.abs(ev.ssim(x, -x)) <= 1).all() and (np.abs(ev.ssim(x, np.roll(x, 9, axis=2))) <= 1).all()


def test_ssim_matches_scikit_image_when_installed():
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(2)
    a = textured(3, seed=2)
    b = np.clip(a + rng.normal(0, 0.2, a.shape), -1, 1)
    theirs = [metrics.structural_similarity(a[i], b[i], data_range=2, channel_axis=0, gaussian_weights=True,
                                            sigma=1.5, use_sample_covariance=False) for i in range(3)]
    assert ev.ssim(a, b) == pytest.approx(theirs, abs=1e-10)


def test_metric_inputs_are_checked():
    with pytest.raises(ValueError, match="differ in shape"):
        ev.mse(np.zeros((1, 3, 32, 32)), np.zeros((1, 3, 16, 16)))
    with pytest.raises(ValueError, match="window does not fit"):
        ev.ssim(np.zeros((1, 3, 8, 8)), np.zeros((1, 3, 8, 8)))


# ------------------------------------------------------------------------------------- identity
def test_identity_retrieval_hits_the_right_person_and_misses_a_swapped_one():
    people = np.array([3, 7, 11])
    happy = np.tile(np.eye(8, dtype=np.float32)[1], (3, 1))
    bank = render_targets(people, happy)                                # each person, happy
    gallery = np.tile(np.arange(3), (3, 1))                             # every query sees all three
    neutral = render_targets(people, np.tile(np.eye(8, dtype=np.float32)[0], (3, 1)))
    # exact targets and the copied (neutral) sources of the right people: hits
    assert ev.identity_hits(bank, people, bank, people, gallery).all()
    assert ev.identity_hits(neutral, people, bank, people, gallery).all()
    # person 7's face handed in as person 3's result (and so on): a swapped identity misses
    swapped = bank[[1, 2, 0]]
    assert not ev.identity_hits(swapped, people, bank, people, gallery).any()


def test_face_mask_judges_the_face_not_the_backdrop():
    people = np.array([0, 1])
    happy = np.tile(np.eye(8, dtype=np.float32)[1], (2, 1))
    bank = render_targets(people, happy)
    face = ev.face_mask()
    assert face.shape == (32, 32) and 300 < face.sum() < 400 and face[16, 16] and not face[0, 0]
    # person 1's face pasted onto person 0's picture (backdrop, hair and clothes of person 0)
    hybrid = np.where(face, bank[1], bank[0])[None]
    assert ev.identity_hits(hybrid, [1], bank, people, [[0, 1]], mask=face).all()        # the face decides
    assert ev.identity_hits(hybrid, [0], bank, people, [[0, 1]]).all()                   # whole image: the rest wins


def test_retrieval_only_looks_inside_each_querys_gallery():
    bank = np.stack([np.full((3, 32, 32), v) for v in (0.0, 0.5, 1.0)])
    query = np.full((1, 3, 32, 32), 0.9)
    assert ev.nearest_in_gallery(query, bank, [[0, 1, 2]]).tolist() == [2]
    assert ev.nearest_in_gallery(query, bank, [[0, 1]]).tolist() == [1]    # 2 is not a candidate


def test_evaluation_set_exact_targets_galleries_and_no_change_pairs_left_out():
    faces = emotion_faceset(n_subjects=3, gazes=(0, 2))
    es = ev.evaluation_set(faces)
    # 3 people x 2 gazes x 8 x 8 pairs, minus the 8 no-change pairs per (person, gaze)
    assert es.pairs_total == 3 * 2 * 64 and len(es) == 3 * 2 * 56
    assert (np.abs(es.source_labels - es.target_labels).max(axis=1) > 0).all()
    # the renderer's exact targets are the dataset's own target images
    keep = np.abs(faces.labels[faces.pairs[:, 0]] - faces.labels[faces.pairs[:, 1]]).max(axis=1) > 0
    assert np.array_equal(es.x_target, faces.images[faces.pairs[keep, 1]])
    # each gallery: every held-out person once, all with the pair's target label
    assert es.gallery.shape == (len(es), 3)
    assert all(sorted(es.bank_subjects[row]) == [0, 1, 2] for row in es.gallery)
    own = es.gallery[np.arange(len(es)), es.subjects]                    # subjects are 0, 1, 2
    assert np.array_equal(es.bank[own], es.x_target)
    # a non-synthetic set (the renderer not used) finds the same targets in its own images
    real = faces.subset(faces.subject_ids)
    real.meta = {}
    es_real = ev.evaluation_set(real)
    assert np.array_equal(es_real.x_target, es.x_target) and np.array_equal(es_real.bank[es_real.gallery], es.bank[es.gallery])


def test_au_evaluation_set_and_score_with_exact_targets():
    from tinycdaae.data.synthetic import au_faceset
    frames = au_faceset(n_subjects=3, frames_per_subject=12)
    es = ev.evaluation_set(frames)
    keep = np.abs(frames.labels[frames.pairs[:, 0]] - frames.labels[frames.pairs[:, 1]]).max(axis=1) > 0
    assert len(es) == keep.sum() < es.pairs_total                       # all-zero partners dropped
    assert np.array_equal(es.x_target, frames.images[frames.pairs[keep, 1]])   # rendered = dataset's
    reader = ev.ExpressionReader("au", 12, ev.ClassifierConfig(epochs=1)).fit(frames.images, frames.labels)
    summary, per_pair = ev.score(es.x_target, es, reader)               # the real targets themselves
    assert summary["mse"] == 0 and summary["identity_top1"] == 1.0 and per_pair["au_abs_error"].shape == (len(es), 12)
    assert summary["au_mae"] == pytest.approx(np.abs(reader.predict(es.x_target) - es.target_labels).mean())


# ------------------------------------------------------------------------ expression classifier
def quadrant_images(n, seed):
    """4 classes: a bright square in quadrant k of a noisy dark image. Linearly separable."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 4, n)
    x = rng.normal(-0.5, 0.2, (n, 3, 32, 32)).astype(np.float32)
    for i, k in enumerate(classes):
        r, c = divmod(int(k), 2)
        x[i, :, 16 * r + 4:16 * r + 12, 16 * c + 4:16 * c + 12] += 1.2
    return x, classes


def test_reader_learns_separable_classes_and_its_confusion_matrix_counts():
    x, y = quadrant_images(256, seed=3)
    reader = ev.ExpressionReader("emotion", 4, ev.ClassifierConfig(epochs=3, seed=0)).fit(x, np.eye(4)[y])
    x_new, y_new = quadrant_images(200, seed=4)                        # fresh samples
    predicted = reader.predict(x_new)
    assert (predicted == y_new).mean() > 0.9
    counts = ev.confusion_matrix(y_new, predicted, 4)
    assert counts.sum() == 200 and counts.sum(axis=1).tolist() == np.bincount(y_new, minlength=4).tolist()
    assert reader.history[-1] < reader.history[0]                      # the loss went down


def test_reader_training_length_follows_the_number_of_faces_unless_given():
    auto = ev.ClassifierConfig()
    assert auto.epochs_for(720) == 15 and auto.epochs_for(3600) == 3 and auto.epochs_for(10 ** 6) == 3
    assert ev.ClassifierConfig(epochs=2).epochs_for(720) == 2
    with pytest.raises(ValueError, match="epochs"):
        ev.ClassifierConfig(epochs=0)


def test_confusion_matrix_and_per_class_accuracy_on_known_counts():
    counts = ev.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], 4)
    assert counts.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    acc = ev.per_class_accuracy(counts)
    assert acc[:3].tolist() == [0.5, 1.0, pytest.approx(2 / 3)] and np.isnan(acc[3])   # class 3: no samples


def test_au_reader_regresses_intensities():
    rng = np.random.default_rng(5)
    intensity = rng.uniform(0, 1, (256, 2)).astype(np.float32)
    x = np.full((256, 3, 32, 32), -0.5, np.float32)
    x[:, :, :16] += intensity[:, 0, None, None, None]                 # top half brightness: AU "a"
    x[:, :, 16:] += intensity[:, 1, None, None, None]                 # bottom half: AU "b"
    reader = ev.ExpressionReader("au", 2, ev.ClassifierConfig(epochs=8, seed=0)).fit(x[:200], intensity[:200])
    predicted = reader.predict(x[200:])
    assert predicted.min() >= 0 and predicted.max() <= 1
    assert np.abs(predicted - intensity[200:]).mean() < 0.1           # guessing 0.5 scores ~0.25


def test_confusion_picture_shades_and_numbers():
    image = ev.confusion_image(np.diag([5, 3, 2]), cell=36)
    assert image.shape == (36 + 3 * 36 + 1, 36 + 3 * 36 + 1, 3) and image.dtype == np.uint8
    corner = lambda i, j: image[36 + i * 36 + 2, 36 + j * 36 + 2]      # a pixel clear of the digits
    assert corner(0, 0).tolist() == [8, 48, 107] and corner(0, 1).tolist() == [255, 255, 255]


# ---------------------------------------------------------------------------------- aggregation
def test_aggregate_gives_mean_and_sample_std_per_metric_and_class():
    runs = [{"mse": 1.0, "per_class_expression_accuracy": {"happy": 0.5, "sad": None},
             "by_change": {"large": {"identity_top1": 0.2}}, "confusion": [[1, 0], [0, 1]]},
            {"mse": 3.0, "per_class_expression_accuracy": {"happy": 1.0, "sad": 0.4},
             "by_change": {"large": {"identity_top1": 0.4}}, "confusion": [[2, 1], [0, 0]]}]
    out = ev.aggregate(runs)
    assert out["mse"] == {"mean": 2.0, "std": pytest.approx(np.sqrt(2)), "n": 2}
    assert out["per_class_expression_accuracy"]["happy"]["mean"] == 0.75
    assert out["per_class_expression_accuracy"]["sad"] == {"mean": 0.4, "std": None, "n": 1}   # None skipped
    assert out["by_change"]["large"]["identity_top1"]["mean"] == pytest.approx(0.3)
    assert out["confusion"] == [[3, 1], [0, 1]]                        # counts add up
    assert ev.aggregate(runs[:1])["mse"] == {"mean": 1.0, "std": None, "n": 1}


# -------------------------------------------------------------------------- the commands, for real
def run_cli(*args, timeout=300, cache=None):
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
    if cache is not None:                   # aligned real photos go here, not into the user's cache
        env["TINYCDAAE_CACHE"] = str(cache)
    return subprocess.run([sys.executable, os.path.join(REPO, "run.py"), *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


TINY = ["--subjects", "8", "--folds", "2", "--width", "0.0625", "--epochs", "1", "--batch-size", "64",
        "--device", "cpu", "--reader-epochs", "1"]


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """`run.py compare` on the tiniest settings: four 12-step runs, then the evaluation."""
    out = tmp_path_factory.mktemp("compare")
    result = run_cli("compare", "--out", out, "--variants", "n2", "none", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


@pytest.mark.other_process
def test_compare_trains_the_variants_and_writes_tables_and_pictures(compared):
    out, result = compared
    for name in ("results.md", "results.json", "samples.png", "confusion_n2.png", "confusion_none.png",
                 "confusion_copy_input.png", "confusion_real.png", "n2/checkpoint.npz", "none/checkpoint.npz"):
        assert (out / name).exists(), name
    results = json.loads((out / "results.json").read_text())
    assert results["order"] == ["n2", "none", "copy input"]
    md = (out / "results.md").read_text()
    assert "| copy input | 1 |" in md and "| n2 | 1 |" in md and "confusion_n2.png" in md
    import imageio.v3 as iio  # samples.png: 3 held-out people x (real row + 2 networks), input + 8 labels
    assert iio.imread(out / "samples.png").shape == (9 * (32 * 3 + 2) + 2, 9 * (32 * 3 + 2) + 2, 3)
    # a second compare resumes the finished runs instead of training them again
    again = run_cli("compare", "--out", out, "--variants", "n2", *TINY)
    assert again.returncode == 0 and "already done 1 epochs" in again.stdout


@pytest.mark.other_process
def test_evaluate_copy_baseline_equals_the_metrics_computed_directly(compared):
    from tinycdaae.data.datasets import load_dataset, split_for_training
    run_dir, _ = compared
    out = run_dir / "eval_one"
    result = run_cli("evaluate", "--checkpoint", run_dir / "n2", "--out", out, "--device", "cpu", "--reader-epochs", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    copy = next(r for r in results["runs"] if r["network"] == "copy input")["metrics"]
    # rebuild the held-out pairs by hand: the 4 people of fold 0 of 2, target label != source label
    faces = load_dataset("synthetic", kind="emotion", n_subjects=8)
    _, test = split_for_training(faces, 0, 2, seed=0)
    pairs = test.pairs[np.abs(test.labels[test.pairs[:, 0]] - test.labels[test.pairs[:, 1]]).max(axis=1) > 0]
    x_s, x_t = test.images[pairs[:, 0]], test.images[pairs[:, 1]]
    assert copy["pairs"] == len(pairs) == 4 * 3 * 56
    assert copy["mse"] == pytest.approx(((x_s.astype(np.float64) - x_t) ** 2).mean(), rel=1e-9)
    assert copy["psnr"] == pytest.approx(np.mean(10 * np.log10(4 / ((x_s.astype(np.float64) - x_t) ** 2).mean(axis=(1, 2, 3)))), rel=1e-9)
    assert copy["ssim"] == pytest.approx(ev.ssim(x_s, x_t).mean(), rel=1e-9)
    assert copy["identity_top1"] == 1.0           # the copied face is the right person
    assert results["order"] == ["n2", "copy input"]


@pytest.mark.other_process
def test_evaluate_refuses_another_fold_and_a_missing_checkpoint(compared, tmp_path):
    run_dir, _ = compared
    other_fold = run_cli("evaluate", "--checkpoint", run_dir / "n2", "--fold", "1", "--out", tmp_path)
    assert other_fold.returncode == 2 and "held out" in other_fold.stderr and "Traceback" not in other_fold.stderr
    missing = run_cli("evaluate", "--checkpoint", tmp_path / "nothing.npz", "--out", tmp_path)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


# ------------------------------------------------------------------ real photos with two labels
LONDON = os.path.join(REPO, "tests", "data", "london")


class CopyModel:
    """A stand-in network that returns its input (the weights do not matter here)."""
    def generate(self, images, labels):
        return {"x_hat": np.asarray(images, np.float32)}


@pytest.fixture(scope="module")
def london_split(tmp_path_factory):
    """The 6 London test people as a folder set (neutral, happy): 3 train, 3 held out."""
    pytest.importorskip("dlib")
    from tinycdaae.data.datasets import load_dataset, split_for_training
    faces = load_dataset("folder", LONDON, tmp_path_factory.mktemp("cache"), folds=2, progress=False)
    train, test = split_for_training(faces, 0, 2)
    return ev.Split("london test photos fold 0/2", train, test, [("n2", None, CopyModel)])


def test_two_label_evaluation_reports_dlib_identity(london_split, tmp_path):
    import imageio.v3 as iio
    said = []
    results = ev.evaluate_splits([london_split], tmp_path, ev.ClassifierConfig(epochs=1), say=said.append)
    assert results["label_names"] == ["neutral", "happy"] and results["identity_dlib"] == "dlib"
    for name in ("n2", "copy input"):
        # 3 held-out people: each neutral face asks for happy and back, 6 pairs
        assert results["summary"][name]["pairs"]["mean"] == 6
        assert results["summary"][name]["identity_dlib_top1"]["mean"] == 1.0     # the copied face: the person
        assert set(results["summary"][name]["per_class_expression_accuracy"]) == {"neutral", "happy"}
    assert any("1.000 (dlib)" in line for line in said)
    md = (tmp_path / "results.md").read_text()
    assert "| identity (dlib) ↑ |" in md and "| copy input | 1 | 6 |" in md and "1. neutral" in md and "2. happy" in md
    assert "3. " not in md.split("## Per target emotion: expression accuracy")[1].split("##")[0]
    # samples: 3 people x (their real images + the network's row), input + 2 labels
    assert iio.imread(tmp_path / "samples.png").shape == (6 * (32 * 3 + 2) + 2, 3 * (32 * 3 + 2) + 2, 3)
    assert iio.imread(tmp_path / "confusion_n2.png").shape[0] == 36 + 2 * 36 + 1   # a 2x2 matrix


def test_without_dlib_the_dlib_column_is_left_out_with_a_note(london_split, tmp_path, monkeypatch):
    monkeypatch.setattr(ev.job, "face_identity_missing", lambda: "dlib is not installed (pip install -e \".[data]\")")
    said = []
    results = ev.evaluate_splits([london_split], tmp_path, ev.ClassifierConfig(epochs=1), say=said.append)
    assert "identity_dlib_top1" not in results["summary"]["copy input"]
    assert results["identity_dlib"].startswith("skipped: dlib is not installed")
    assert [line for line in said if "dlib" in line] == ["identity (dlib): skipped, dlib is not installed "
                                                         "(pip install -e \".[data]\")"]
    md = (tmp_path / "results.md").read_text()
    assert "identity (dlib) ↑" not in md and "Identity (dlib) skipped: dlib is not installed" in md


def test_synthetic_faces_are_not_judged_by_dlib(tmp_path):
    faces = emotion_faceset(n_subjects=4, gazes=(0,))
    from tinycdaae.data.datasets import split_for_training
    train, test = split_for_training(faces, 0, 2)
    results = ev.evaluate_splits([ev.Split("synthetic", train, test, [])], tmp_path,
                                 ev.ClassifierConfig(epochs=1), say=lambda *_: None)
    assert results["identity_dlib"] is None and "identity_dlib_top1" not in results["summary"]["copy input"]


@pytest.mark.other_process
def test_compare_on_the_built_in_london_photos(tmp_path):
    pytest.importorskip("dlib")
    result = run_cli("compare", "--dataset", "london", "--variants", "n2", "--folds", "2", "--width", "0.0625",
                     "--epochs", "1", "--batch-size", "64", "--device", "cpu", "--reader-epochs", "1",
                     "--max-pairs", "20", "--out", tmp_path / "cmp", timeout=300, cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "cmp" / "results.json").read_text())
    assert results["label_names"] == ["neutral", "happy"] and results["title"] == "london fold 0/2"
    assert 0 <= results["summary"]["n2"]["identity_dlib_top1"]["mean"] <= 1
    assert results["summary"]["copy input"]["identity_dlib_top1"]["mean"] == 1.0
    assert "(dlib)" in result.stdout

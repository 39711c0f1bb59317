"""Loaders on real faces: RaFD-named copies of the London photos, a tiny DISFA video, the CSV folder."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tinycdaae.data import prepare as prepare_module
from tinycdaae.data.align import align_file, read_image
from tinycdaae.data.datasets import load_dataset, split_for_training
from tinycdaae.data.disfa import disfa_sample_pairs, read_au_file
from tinycdaae.data.labels import AUS, EMOTIONS
from tinycdaae.data.pairs import FaceSet
from tinycdaae.data.rafd import parse_rafd_name
from tinycdaae.errors import DatasetError
from tinycdaae.files import atomic_write

pytest.importorskip("dlib")
LONDON = Path(__file__).parent / "data" / "london"
PEOPLE = ("001", "004", "005", "006", "025", "042")


def quiet(**kw):
    return dict(progress=False, **kw)


# ------------------------------------------------------------------------------------- RaFD
def make_rafd_tree(root):
    """6 people x {neutral, happy} x 3 gazes under RaFD names (real photos), plus junk."""
    root.mkdir()
    for subject, person in enumerate(PEOPLE, 1):
        for emotion in ("neutral", "happy"):
            for gaze in ("frontal", "left", "right"):
                name = f"Rafd090_{subject:02d}_Caucasian_female_{emotion}_{gaze}.jpg"
                shutil.copy(LONDON / f"{person}_{emotion}.jpg", root / name)
    junk = {
        "notes.txt": b"not an image",
        "IMG_1234.jpg": (LONDON / "001_happy.jpg").read_bytes(),
        "Rafd090_01_Caucasian_female_bored_frontal.jpg": b"x",         # unknown emotion
        "Rafd090_01_Caucasian_female_happy.jpg": b"x",                 # no gaze
        "Rafd090_01_Caucasian_female_happy_up.jpg": b"x",              # unknown gaze
        "Rafd045_01_Caucasian_female_happy_frontal.jpg": b"x",         # side camera: not used
        "Rafd090_07_Moroccan_male_sad_frontal.jpg": b"\xff\xd8\xff broken jpeg",   # unreadable
    }
    for name, data in junk.items():
        (root / name).write_bytes(data)
    import imageio.v3 as iio
    iio.imwrite(root / "Rafd090_08_Moroccan_male_neutral_frontal.jpg", np.full((300, 200, 3), 90, np.uint8))
    (root / "copy").mkdir()                                            # a duplicate in a subfolder
    shutil.copy(root / "Rafd090_01_Caucasian_female_happy_left.jpg", root / "copy")
    return root


@pytest.fixture(scope="module")
def rafd(tmp_path_factory):
    root = make_rafd_tree(tmp_path_factory.mktemp("rafd") / "RaFD")
    cache = tmp_path_factory.mktemp("cache")
    return root, cache, load_dataset("rafd", root, cache, workers=2, **quiet())


def test_rafd_names_parse():
    fields = parse_rafd_name("Rafd090_01_Caucasian_female_angry_frontal.jpg")
    assert (fields["angle"], fields["subject"], fields["emotion"], fields["gaze"]) == ("090", 1, "angry", "frontal")
    assert parse_rafd_name("Rafd090_12_Kid_male_Contemptuous_Right.JPG")["emotion"] == "contemptuous"
    for bad in ("Rafd090_01_Caucasian_female_bored_frontal.jpg", "Rafd090_01_Caucasian_female_happy.jpg",
                "rafd90_01_Caucasian_female_happy_left.jpg", "Rafd090_01_Caucasian_female_happy_left.png",
                "notes.txt"):
        assert parse_rafd_name(bad) is None, bad


def test_rafd_loader_builds_the_papers_pairs(rafd):
    root, cache, fs = rafd
    assert fs.kind == "emotion" and fs.label_names == EMOTIONS
    assert fs.images.shape == (36, 3, 32, 32) and fs.images.dtype == np.float32
    assert sorted(np.unique(fs.subjects).tolist()) == [1, 2, 3, 4, 5, 6]    # 7 unreadable, 8 faceless
    assert set(np.unique(fs.labels.argmax(1))) == {EMOTIONS.index("neutral"), EMOTIONS.index("happy")}
    # each image with every image of its subject and gaze (here 2 emotions): 36 x 2 pairs
    assert len(fs) == 72
    src, tgt = fs.pairs.T
    assert (fs.subjects[src] == fs.subjects[tgt]).all() and (fs.groups[src] == fs.groups[tgt]).all()
    for i, source in enumerate(fs.meta["sources"]):                        # labels follow file names
        assert EMOTIONS[fs.labels[i].argmax()] in os.path.basename(source)
    skipped = fs.meta["skipped"]
    assert sorted(os.path.basename(p) for p in skipped["unparsed"]) == [
        "IMG_1234.jpg", "Rafd090_01_Caucasian_female_bored_frontal.jpg",
        "Rafd090_01_Caucasian_female_happy.jpg", "Rafd090_01_Caucasian_female_happy_up.jpg", "notes.txt"]
    assert [os.path.basename(p) for p in skipped["other_angle"]] == ["Rafd045_01_Caucasian_female_happy_frontal.jpg"]
    assert len(skipped["duplicates"]) == 1


def test_rafd_manifest_lists_no_face_and_unreadable(rafd):
    root, cache, fs = rafd
    manifest = json.loads(Path(fs.meta["manifest"]).read_text())
    assert manifest["counts"] == {"ok": 36, "no_face": 1, "unreadable": 1}
    by_name = {os.path.basename(it["source"]): it for it in manifest["items"]}
    assert by_name["Rafd090_08_Moroccan_male_neutral_frontal.jpg"]["status"] == "no_face"
    assert by_name["Rafd090_07_Moroccan_male_sad_frontal.jpg"]["status"] == "unreadable"


def test_rafd_crops_equal_the_single_photo_alignment(rafd):
    root, cache, fs = rafd
    i = fs.meta["sources"].index(str(root / "Rafd090_03_Caucasian_female_happy_right.jpg"))
    np.testing.assert_array_equal(fs.images[i], align_file(LONDON / "005_happy.jpg").image)


def test_rafd_folds_are_subject_independent(rafd):
    fs = rafd[2]
    seen = []
    for fold in range(4):
        train, test = split_for_training(fs, fold, 4)
        assert not set(train.subjects) & set(test.subjects)
        assert len(train) + len(test) == len(fs)
        seen += list(np.unique(test.subjects))
    assert sorted(seen) == [1, 2, 3, 4, 5, 6]


def test_second_load_uses_the_cache_and_a_changed_file_remakes_it(rafd, monkeypatch, capsys):
    root, cache, fs = rafd

    def no_aligning(*args):
        raise AssertionError("aligned again although nothing changed")
    monkeypatch.setattr(prepare_module, "align_face", no_aligning)
    again = load_dataset("rafd", root, cache, **quiet())
    np.testing.assert_array_equal(again.images, fs.images)
    assert "36 images of 6 people" in capsys.readouterr().err
    monkeypatch.undo()
    before = set(os.listdir(cache))
    os.utime(root / "Rafd090_02_Caucasian_female_happy_left.jpg", ns=(1, 1))   # "edited"
    load_dataset("rafd", root, cache, workers=1, **quiet())
    new = set(os.listdir(cache)) - before
    assert len(new) == 2 and not [f for f in os.listdir(cache) if f.endswith(".tmp")]


def test_damaged_cache_is_remade(tmp_path, capsys):
    data = tmp_path / "faces"
    data.mkdir()
    for person in PEOPLE[:2]:
        shutil.copy(LONDON / f"{person}_happy.jpg", data)
    (data / "labels.csv").write_text("path,subject,emotion\n001_happy.jpg,a,happy\n004_happy.jpg,b,happy\n")
    first = load_dataset("folder", data, tmp_path / "cache", folds=2, **quiet())
    [cached] = [p for p in (tmp_path / "cache").iterdir() if p.suffix == ".npz"]
    cached.write_bytes(cached.read_bytes()[:100])                             # truncated
    second = load_dataset("folder", data, tmp_path / "cache", folds=2, **quiet())
    assert "is damaged" in capsys.readouterr().err
    np.testing.assert_array_equal(first.images, second.images)


# ------------------------------------------------------------------------------------ DISFA
FRAMES = 6


def write_video(path, photo, frames=FRAMES):
    """A tiny 224x224 video of a real photo sliding right by 4 px a frame."""
    import imageio_ffmpeg
    still = read_image(photo)[:448:2, :448:2]                                  # (224, 224, 3)
    writer = imageio_ffmpeg.write_frames(str(path), (224, 224), codec="mpeg4", quality=None,
                                         output_params=["-q:v", "2"], macro_block_size=16)
    writer.send(None)
    for i in range(frames):
        writer.send(np.ascontiguousarray(np.roll(still, 4 * i, axis=1)))
    writer.close()


def au_value(subject, au_index, frame):
    """A label pattern the test can recompute: 0-5, with all-zero frames at frame 1."""
    return 0 if frame == 1 else (subject + au_index + frame) % 6


@pytest.fixture(scope="module")
def disfa(tmp_path_factory):
    root = tmp_path_factory.mktemp("disfa") / "DISFA"
    (root / "Videos_LeftCamera").mkdir(parents=True)
    for subject, photo in ((1, "001_neutral.jpg"), (4, "004_happy.jpg"), (5, "005_neutral.jpg")):
        write_video(root / "Videos_LeftCamera" / f"LeftVideoSN{subject:03d}_comp.avi", LONDON / photo)
    for subject, n_frames in ((1, FRAMES + 1), (4, FRAMES), (5, FRAMES), (9, FRAMES)):
        folder = root / "ActionUnit_Labels" / f"SN{subject:03d}"
        folder.mkdir(parents=True)
        for j, au in enumerate(AUS):
            if subject == 5 and au == "AU26":
                continue                                                      # SN005 lacks one AU
            lines = [f"{f},{au_value(subject, j, f)}" for f in range(1, n_frames + 1)]
            (folder / f"SN{subject:03d}_{au.lower()}.txt").write_text("\n".join(lines) + "\n")
    return root, load_dataset("disfa", root, tmp_path_factory.mktemp("cache"), folds=2, workers=2,
                              **quiet())


def test_disfa_reads_video_frames_with_their_labels(disfa):
    root, fs = disfa
    assert fs.kind == "au" and fs.label_names == AUS
    assert sorted(np.unique(fs.subjects).tolist()) == [1, 4]      # 5: AU26 missing, 9: no video
    assert fs.images.shape == (2 * FRAMES, 3, 32, 32)             # SN001's 7th labelled frame: no video
    for i in range(len(fs.images)):
        s, frame = fs.subjects[i], fs.meta["frames"][i] + 1        # video frame 0 = label frame 1
        expected = [au_value(s, j, frame) / 5 for j in range(len(AUS))]
        np.testing.assert_allclose(fs.labels[i], expected)
    for s in (1, 4):                                               # frame order: the face slides 4 px
        nose_x = np.array([m[30, 0] for m, subj in zip(fs.meta["landmarks"], fs.subjects) if subj == s])
        np.testing.assert_allclose(np.diff(nose_x), 4, atol=1)
    manifest = json.loads(Path(fs.meta["manifest"]).read_text())
    assert manifest["counts"]["unreadable"] == 1
    assert any("beyond the end" in it["message"] for it in manifest["items"])
    assert any("AU26" in p for p in fs.meta["skipped"]) and any("SN009" in p for p in fs.meta["skipped"])


def test_disfa_pairs_are_resampled_inside_each_fold(disfa):
    fs = disfa[1]
    assert fs.meta["pairing"] == "disfa_sampled"
    # per AU every non-zero frame (fewer than 2000 here) + the all-zero frames (frame 1 of each video)
    assert len(fs) == (fs.labels > 0).sum() + ((fs.labels == 0).all(1)).sum()
    train, test = split_for_training(fs, 0, 2, seed=0)
    for part in (train, test):
        assert len(np.unique(part.subjects)) == 1 and len(part) == (part.labels > 0).sum() + 1
        assert (part.subjects[part.pairs[:, 0]] == part.subjects[part.pairs[:, 1]]).all()


def test_disfa_sampling_follows_each_aus_intensity_distribution():
    rng = np.random.default_rng(0)
    n = 12000
    labels = np.where(rng.random((n, 12)) < 0.3, rng.integers(1, 6, (n, 12)) / 5, 0).astype(np.float32)
    labels[:1500] = 0                                                     # some all-zero frames
    subjects = rng.integers(0, 5, n)
    fs = FaceSet(np.zeros((n, 3, 2, 2), np.float32), subjects, labels, AUS, "au", np.zeros((0, 2)))
    sampled = disfa_sample_pairs(fs, np.random.default_rng(1), per_au=2000, zeros=1000)
    targets = sampled.pairs[:, 1]
    assert len(targets) == 12 * 2000 + 1000
    assert (subjects[sampled.pairs[:, 0]] == subjects[targets]).all()
    assert ((labels[targets] == 0).all(1)).sum() >= 1000
    for j in range(12):                                                   # block j holds AU j's draws
        drawn = labels[targets[2000 * j:2000 * (j + 1)], j]
        assert (drawn > 0).all() and len(np.unique(targets[2000 * j:2000 * (j + 1)])) == 2000
        population = labels[labels[:, j] > 0, j]
        for level in np.unique(population):                               # same histogram, +-3 points
            assert abs((drawn == level).mean() - (population == level).mean()) < 0.03


def test_disfa_label_file_errors_name_the_line(tmp_path):
    bad = tmp_path / "SN001_au1.txt"
    bad.write_text("1,0\n2,zero\n")
    with pytest.raises(DatasetError, match="line 2"):
        read_au_file(bad)
    bad.write_text("1,0\n2,7\n")
    with pytest.raises(DatasetError, match="0-5"):
        read_au_file(bad)


# ----------------------------------------------------------------------------- your folder
def test_folder_csv_end_to_end_on_real_faces(tmp_path):
    fs = load_dataset("folder", LONDON, tmp_path, **quiet())
    # the labels of a dataset are the labels it has: neutral and happy, in EMOTIONS order
    assert fs.images.shape == (12, 3, 32, 32) and fs.kind == "emotion" and fs.label_names == ("neutral", "happy")
    assert fs.labels.shape == (12, 2) and (fs.labels.sum(axis=1) == 1).all()
    assert len(np.unique(fs.subjects)) == 6 and len(fs) == 24            # 2 images x 2 partners x 6
    assert fs.meta["subject_names"] == list(PEOPLE)
    for i, source in enumerate(fs.meta["sources"]):
        assert fs.label_names[fs.labels[i].argmax()] in source and fs.meta["subject_names"][fs.subjects[i]] in source
    np.testing.assert_array_equal(fs.images[0], align_file(LONDON / "001_neutral.jpg").image)
    train, test = split_for_training(fs, 1, 4)
    assert len(train.images) + len(test.images) == 12 and not set(train.subjects) & set(test.subjects)


def test_an_emotion_column_gives_the_emotions_it_uses_in_the_fixed_order(tmp_path):
    from tinycdaae.data.folder import read_label_csv
    data = write_folder(tmp_path, "path,subject,emotion", [
        "001_neutral.jpg,anna,Surprised", "001_happy.jpg,anna,happy", "004_neutral.jpg,ben,neutral",
        "004_happy.jpg,ben,surprised"], photos=())
    _, _, labels, names, kind, _ = read_label_csv(data / "labels.csv")
    assert kind == "emotion" and names == ("neutral", "happy", "surprised")      # EMOTIONS order, not file order
    np.testing.assert_array_equal(labels, np.eye(3, dtype=np.float32)[[2, 1, 0, 2]])


def write_folder(tmp_path, header, rows, photos=("001_neutral", "001_happy", "004_neutral", "004_happy")):
    data = tmp_path / "mine"
    data.mkdir(exist_ok=True)
    for p in photos:
        shutil.copy(LONDON / f"{p}.jpg", data)
    (data / "labels.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    return data


def test_folder_with_au_columns_and_own_classes(tmp_path):
    data = write_folder(tmp_path, "Path,Subject,AU12,au6", [
        "001_neutral.jpg,anna,0,0", "001_happy.jpg,anna,0.8,0.6", "004_neutral.jpg,ben,0,0.1",
        "004_happy.jpg,ben,1,0.4"])
    fs = load_dataset("folder", data, tmp_path / "c", folds=2, **quiet())
    assert fs.kind == "au" and fs.label_names == ("AU6", "AU12")          # in labels.AUS order
    np.testing.assert_allclose(fs.labels[1], [0.6, 0.8])
    assert len(fs) == 4 and (fs.subjects[fs.pairs[:, 0]] == fs.subjects[fs.pairs[:, 1]]).all()
    (data / "labels.csv").write_text("path,subject,class\n001_neutral.jpg,anna,calm\n001_happy.jpg,anna,"
                                     "glad\n004_neutral.jpg,ben,calm\n004_happy.jpg,ben,glad\n")
    fs = load_dataset("folder", data, tmp_path / "c", folds=2, **quiet())
    assert fs.label_names == ("calm", "glad") and fs.labels[:, 1].tolist() == [0, 1, 0, 1]


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("name,words", [("rafd", ["rafd.nl", "Rafd090_01_Caucasian_female_angry_frontal.jpg"]),
                                        ("disfa", ["mohammadmahoor.com/disfa", "LeftVideoSN001_comp.avi",
                                                   "SN001_au1.txt"]),
                                        ("folder", ["labels.csv", "path,subject,emotion"])])
def test_missing_data_directory_explains_dataset_and_layout(tmp_path, name, words):
    with pytest.raises(DatasetError) as err:
        load_dataset(name, tmp_path / "nowhere", tmp_path / "c", **quiet())
    message = str(err.value)
    assert "does not exist" in message and f"--dataset {name} --data-dir" in message
    for word in words:
        assert word in message


def test_unknown_emotions_are_listed_with_a_count(tmp_path):
    data = write_folder(tmp_path, "path,subject,emotion", [
        "001_neutral.jpg,anna,neutral", "001_happy.jpg,anna,joyful", "004_neutral.jpg,ben,calm",
        "004_happy.jpg,ben,Happy"])
    with pytest.raises(DatasetError, match=r"2 row\(s\) name an unknown emotion: row 3 'joyful'; row 4 'calm'"):
        load_dataset("folder", data, tmp_path / "c", **quiet())


@pytest.mark.parametrize("header,rows,match", [
    ("path,subject,AU12,AU7,AU99", ["001_happy.jpg,a,1,0,0"], r"2 unknown AU column\(s\): AU7, AU99"),
    ("path,subject,AU12", ["001_happy.jpg,a,3", "004_happy.jpg,b,x"], r"2 AU value\(s\).*divide 0-5"),
    ("path,subject,emotion,AU12", ["001_happy.jpg,a,happy,1"], "exactly one kind of label"),
    ("file_name,who,emotion", ["001_happy.jpg,a,happy"], "needs a 'path' and a 'subject'"),
    ("path,subject,emotion", ["001_happy.jpg,,happy"], r"1 row\(s\) without a path or subject: row 2"),
])
def test_bad_csv_contents_say_what_is_wrong(tmp_path, header, rows, match):
    data = write_folder(tmp_path, header, rows, photos=())
    with pytest.raises(DatasetError, match=match):
        load_dataset("folder", data, tmp_path / "c", **quiet())


def test_missing_and_corrupt_images_are_skipped_and_counted(tmp_path, capsys):
    data = write_folder(tmp_path, "path,subject,emotion", [
        "001_neutral.jpg,anna,neutral", "001_happy.jpg,anna,happy", "004_neutral.jpg,ben,neutral",
        "004_happy.jpg,ben,happy", "gone.jpg,ben,sad", "broken.png,carl,sad"])
    (data / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    fs = load_dataset("folder", data, tmp_path / "c", folds=2, **quiet())
    assert len(fs.images) == 4
    err = capsys.readouterr().err
    assert "4 of 6 pictures aligned" in err and "2 unreadable, skipped" in err
    assert "gone.jpg" in err and "broken.png" in err


def test_too_few_people_for_the_folds(tmp_path):
    with pytest.raises(DatasetError, match="only 6 subject.*too few for 8 subject-independent folds"):
        load_dataset("folder", LONDON, tmp_path, folds=8, **quiet())
    fs = load_dataset("folder", LONDON, tmp_path, folds=0, **quiet())
    with pytest.raises(DatasetError, match="only 6 subjects, too few for 7"):
        split_for_training(fs, 0, 7)


# ------------------------------------------------------------------------- built-in London
def test_london_is_built_in_and_aligns_all_156_photos(tmp_path):
    fs = load_dataset("london", cache_dir=tmp_path, workers=1, **quiet())
    assert fs.images.shape == (156, 3, 32, 32) and len(fs.subject_ids) == 78
    assert fs.kind == "emotion" and fs.label_names == ("neutral", "happy") and fs.labels.shape == (156, 2)
    assert (fs.labels.sum(axis=0) == 78).all() and len(fs) == 78 * 4     # 2 images x 2 partners per person
    assert fs.meta["dataset"] == "london" and os.path.basename(fs.meta["manifest"]).startswith("london-")
    manifest = json.loads(Path(fs.meta["manifest"]).read_text())
    assert manifest["dataset"] == "london" and manifest["counts"] == {"ok": 156, "no_face": 0, "unreadable": 0}
    # the six test photos are among them, aligned exactly as the folder loader aligns them
    first = fs.meta["sources"].index(next(s for s in fs.meta["sources"] if s.endswith("001_neutral.jpg")))
    np.testing.assert_array_equal(fs.images[first], align_file(LONDON / "001_neutral.jpg").image)


def test_london_refuses_a_data_dir(tmp_path):
    with pytest.raises(DatasetError, match="london is built in.*leave out --data-dir"):
        load_dataset("london", tmp_path, tmp_path / "c", **quiet())


def test_london_photos_are_package_data_with_their_attribution():
    """pyproject.toml's package data must match every file of assets/london, or a regular install
    would ship the loader without its photos."""
    import fnmatch

    tomllib = pytest.importorskip("tomllib")      # Python 3.11+
    import tinycdaae
    from tinycdaae.data.folder import LONDON_DIR
    pyproject = Path(tinycdaae.__file__).parent.parent / "pyproject.toml"
    patterns = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]["tinycdaae"]
    files = sorted(os.listdir(LONDON_DIR))
    assert len([f for f in files if f.endswith(".jpg")]) == 156
    for name in files:
        assert any(fnmatch.fnmatch(f"assets/london/{name}", p) for p in patterns), name
    readme = (Path(LONDON_DIR) / "README.md").read_text()
    for credit in ("DeBruine", "Jones", "doi:10.6084/m9.figshare.5047666.v5", "CC BY 4.0",
                   "https://creativecommons.org/licenses/by/4.0/", "signed consent"):
        assert credit in readme, credit


def test_unknown_dataset_and_missing_data_dir_flag(tmp_path):
    with pytest.raises(DatasetError, match="choose one of synthetic, rafd, disfa, folder"):
        load_dataset("affectnet", tmp_path)
    with pytest.raises(DatasetError, match="needs --data-dir"):
        load_dataset("rafd")


def test_empty_data_directories_explain_the_layout(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="(?s)no frontal RaFD images found.*rafd.nl"):
        load_dataset("rafd", tmp_path / "empty", tmp_path / "c", **quiet())
    with pytest.raises(DatasetError, match="no DISFA videos or label files found"):
        load_dataset("disfa", tmp_path / "empty", tmp_path / "c", **quiet())
    with pytest.raises(DatasetError, match="0 CSV files"):
        load_dataset("folder", tmp_path / "empty", tmp_path / "c", **quiet())


def test_an_interrupted_cache_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "cache" / "set-0123.npz"

    def killed(f):
        f.write(b"half of it")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        atomic_write(str(target), killed)
    assert list((tmp_path / "cache").iterdir()) == []
    atomic_write(str(target), lambda f: f.write(b"all of it"))
    assert target.read_bytes() == b"all of it" and len(list((tmp_path / "cache").iterdir())) == 1

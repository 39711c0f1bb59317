import numpy as np
import pytest

from tinycdaae.data.labels import AUS, EMOTIONS, parse_label
from tinycdaae.data.pairs import FaceSet, pairs_within_groups, random_partner_pairs, split, subject_folds


def _emotion_like(n_subjects=6):
    subjects = np.repeat(np.arange(n_subjects), 24)               # 8 emotions x 3 gazes each
    groups = np.tile(np.repeat(np.arange(3), 8), n_subjects)
    labels = np.tile(np.eye(8, dtype=np.float32), (3 * n_subjects, 1))
    images = np.zeros((len(subjects), 3, 32, 32), np.float32)
    return FaceSet(images, subjects, labels, EMOTIONS, "emotion",
                   pairs_within_groups(subjects, groups), groups)


def test_rafd_pairing_rule_gives_8_pairs_per_image():
    fs = _emotion_like()
    assert len(fs) == 8 * len(fs.images)                           # each image with its 8 partners
    src, tgt = fs.pairs.T
    assert (fs.subjects[src] == fs.subjects[tgt]).all() and (fs.groups[src] == fs.groups[tgt]).all()
    assert len(np.unique(fs.pairs, axis=0)) == len(fs.pairs)


def test_folds_are_subject_disjoint_and_cover_everyone():
    folds = subject_folds(np.arange(10), k=4, seed=3)
    assert sorted(np.concatenate(folds).tolist()) == list(range(10))
    fs = _emotion_like(8)
    for fold in range(4):
        train, test = split(fs, fold, 4)
        assert not set(train.subject_ids) & set(test.subject_ids)
        assert len(train) + len(test) == len(fs)                   # no pair lost by the split
        s, t = test.pairs.T
        assert (test.subjects[s] == test.subjects[t]).all()


def test_too_few_subjects_for_folds_is_a_clear_error():
    with pytest.raises(ValueError, match="too few for 4"):
        subject_folds([1, 2, 3], k=4)


def test_random_partner_pairs_stay_within_subject():
    subjects = np.repeat(np.arange(4), 10)
    pairs = random_partner_pairs(subjects, np.arange(40), np.random.default_rng(0))
    assert (subjects[pairs[:, 0]] == subjects[pairs[:, 1]]).all()


def test_pair_across_subjects_is_refused():
    with pytest.raises(ValueError, match="different subjects"):
        FaceSet(np.zeros((2, 3, 32, 32), np.float32), np.array([0, 1]), np.zeros((2, 8), np.float32),
                EMOTIONS, "emotion", np.array([[0, 1]]))


def test_parse_label():
    assert parse_label("happy", EMOTIONS).tolist() == np.eye(8)[1].tolist()
    mix = parse_label("happy=0.5,surprised=0.5", EMOTIONS)
    assert mix[1] == 0.5 and mix[7] == 0.5 and mix.sum() == 1.0
    au = parse_label("AU12=0.8,au6=0.5", AUS)
    assert au[AUS.index("AU12")] == pytest.approx(0.8) and au[AUS.index("AU6")] == 0.5
    with pytest.raises(ValueError, match="valid names are: neutral, happy"):
        parse_label("joyful", EMOTIONS)


def test_subset_keeps_per_image_metadata_as_it_was():
    fs = _emotion_like(4)
    fs.meta.update(gaze=fs.groups.copy(), files=[f"img{i}.png" for i in range(len(fs.images))], note="x")
    part = fs.subset([1, 3])
    keep = np.isin(fs.subjects, [1, 3])
    assert isinstance(part.meta["gaze"], np.ndarray)
    np.testing.assert_array_equal(part.meta["gaze"], fs.groups[keep])
    assert part.meta["files"] == [f"img{i}.png" for i in np.flatnonzero(keep)] and part.meta["note"] == "x"

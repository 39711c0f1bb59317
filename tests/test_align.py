"""Alignment on real photographs (tests/data/london: 6 people x neutral/happy, CC BY 4.0)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinycdaae.data import align

pytest.importorskip("dlib")
LONDON = Path(__file__).parent / "data" / "london"
PHOTOS = sorted(LONDON.glob("*.jpg"))

# Measured on the 12 photos: the stable points land within 0.43 px RMS of the template (one
# 32x32 crop pixel = 1); after rotating/scaling/shifting a photo the crops differ by about 0.03
# on average in [-1, 1] units (2 = black to white). The tolerances leave a margin above that.
TEMPLATE_TOLERANCE_PX = 0.6
SAME_CROP_TOLERANCE = 0.06


@pytest.fixture(scope="module")
def faces():
    return [align.align_file(p) for p in PHOTOS]


def transformed(rgb, degrees, scale, shift):
    """The photo rotated by `degrees` and scaled by `scale` about its centre, then shifted."""
    from scipy.ndimage import affine_transform
    th = np.deg2rad(degrees)
    forward = scale * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    centre = np.array(rgb.shape[:2], float) / 2
    inverse = np.linalg.inv(forward)                  # affine_transform maps output -> input
    offset = centre - inverse @ (centre + np.array(shift, float))
    out = np.stack([affine_transform(rgb[:, :, c].astype(float), inverse, offset, order=1, mode="nearest")
                    for c in range(3)], 2)
    return np.clip(out.round(), 0, 255).astype(np.uint8)


def stable_rms(face):
    error = align.apply_transform(face.transform, face.landmarks) - align.TEMPLATE
    return np.sqrt((error[align.STABLE_POINTS] ** 2).sum(1).mean())


def test_every_photo_lands_on_the_template(faces):
    assert len(faces) == 12
    for face in faces:
        assert face.image.shape == (3, 32, 32) and face.image.dtype == np.float32
        assert -1 <= face.image.min() < face.image.max() <= 1
        assert face.crop.shape == (32, 32, 3) and face.crop.dtype == np.uint8
        assert face.landmarks.shape == (68, 2) and face.transform.shape == (2, 3)
        assert face.message == ""
        assert stable_rms(face) < TEMPLATE_TOLERANCE_PX


def test_template_is_what_the_photos_measure(faces):
    remeasured = align.measure_template([f.landmarks for f in faces])
    assert np.abs(remeasured - align.TEMPLATE).max() < 0.02   # TEMPLATE is printed to 0.01 px


@pytest.mark.parametrize("degrees,scale,shift", [(20, 0.7, (30, -20)), (-15, 1.3, (-40, 25))])
def test_rotated_scaled_shifted_photo_gives_the_same_crop(faces, degrees, scale, shift):
    original = faces[PHOTOS.index(LONDON / "001_neutral.jpg")]
    moved = align.align_face(transformed(align.read_image(LONDON / "001_neutral.jpg"), degrees, scale, shift))
    assert stable_rms(moved) < TEMPLATE_TOLERANCE_PX
    assert np.abs(moved.image - original.image).mean() < SAME_CROP_TOLERANCE
    # teeth: a different person's crop is far from it
    other = faces[PHOTOS.index(LONDON / "042_neutral.jpg")]
    assert np.abs(other.image - original.image).mean() > 3 * SAME_CROP_TOLERANCE


def test_similarity_transform_recovers_a_known_one_and_never_mirrors():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(13, 2)) * 50
    th, s, t = 0.4, 0.2, np.array([3.0, -7.0])
    R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    M = align.similarity_transform(p, s * p @ R.T + t)
    np.testing.assert_allclose(M, np.hstack([s * R, t[:, None]]), atol=1e-10)
    mirrored = p * np.array([-1.0, 1.0])                       # a reflection is not a similarity
    M = align.similarity_transform(p, mirrored)
    assert np.linalg.det(M[:, :2]) > 0


def test_largest_of_several_faces_is_used_and_said():
    big = align.read_image(LONDON / "004_neutral.jpg")                       # (450, 450, 3)
    small = big[::2, ::2]                                                    # (225, 225, 3)
    canvas = np.full((450, 700, 3), 255, np.uint8)
    canvas[:, :450], canvas[100:325, 470:695] = big, small
    face = align.align_face(canvas)
    assert "2 faces found, used the largest" in face.message
    assert face.landmarks[:, 0].max() < 450                                  # on the big one


def test_no_face_is_a_specific_error(tmp_path):
    import imageio.v3 as iio
    with pytest.raises(align.NoFaceError):
        align.align_face(np.full((200, 200, 3), 128, np.uint8))
    iio.imwrite(tmp_path / "wall.png", np.full((120, 90, 3), 200, np.uint8))
    with pytest.raises(align.NoFaceError, match="wall.png"):
        align.align_file(tmp_path / "wall.png")
    assert issubclass(align.NoFaceError, ValueError)


def test_read_image_gives_contiguous_rgb_uint8_from_any_format(tmp_path):
    import imageio.v3 as iio
    rgb = align.read_image(LONDON / "005_happy.jpg")[::4, ::4]               # (113, 113, 3)
    gray = rgb.mean(2).astype(np.uint8)
    cases = {
        "gray.png": (gray, np.repeat(gray[:, :, None], 3, 2)),
        "rgba.png": (np.dstack([rgb, np.full(gray.shape, 255, np.uint8)]), rgb),
        "gray16.png": (gray.astype(np.uint16) * 257, np.repeat(gray[:, :, None], 3, 2)),
    }
    for name, (pixels, expected) in cases.items():
        iio.imwrite(tmp_path / name, pixels)
        out = align.read_image(tmp_path / name)
        assert out.dtype == np.uint8 and out.shape == expected.shape and out.flags.c_contiguous, name
        np.testing.assert_array_equal(out, expected, err_msg=name)
    sixteen_bit_rgb = align.to_rgb_uint8(rgb.astype(np.uint16) * 257)     # Pillow cannot write it
    np.testing.assert_array_equal(sixteen_bit_rgb, rgb)
    palette = np.zeros((40, 30, 3), np.uint8)
    palette[:20] = [255, 0, 0]                                               # two colours: exact in a GIF
    iio.imwrite(tmp_path / "two.gif", np.stack([palette, palette[::-1]]))    # animated: first frame
    out = align.read_image(tmp_path / "two.gif")
    assert out.shape == (40, 30, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, palette)


def test_unreadable_files_raise_a_specific_error(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (tmp_path / "empty.png").write_bytes(b"")
    for path in (tmp_path / "broken.jpg", tmp_path / "empty.png", tmp_path / "missing.jpg"):
        with pytest.raises(align.UnreadableImageError, match=path.name):
            align.read_image(path)


def test_missing_landmark_model_says_what_to_install(monkeypatch):
    monkeypatch.setattr(align.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(align.MissingExtraError, match=r"pip install -e \"\.\[data\]\""):
        align.landmark_model_path()


def test_importing_the_package_loads_no_image_or_face_libraries():
    code = ("import sys, tinycdaae, tinycdaae.data.pairs, tinycdaae.data.labels, tinycdaae.data.datasets; "
            "print(sorted(m for m in ('dlib', 'imageio', 'scipy', 'tqdm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_shrinking_averages_instead_of_aliasing():
    # 1-px black/white stripes shrunk 10x must become flat grey; point sampling would give
    # stripes or a flat black or white depending on where the samples fall
    stripes = np.zeros((320, 320, 3), np.uint8)
    stripes[:, ::2] = 255
    M = np.array([[0.1, 0.0, 0.0], [0.0, 0.1, 0.0]])
    crop = align.warp_to_crop(stripes, M)
    assert crop.shape == (32, 32, 3)
    inner = crop[1:-1, 1:-1].astype(float)        # the border samples run past the photo's edge
    assert np.abs(inner - 127.5).max() < 8

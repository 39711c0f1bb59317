"""Who is in a 32×32 (or 64×64) face, as dlib's face-recognition network sees it: 128-d descriptors.

    descriptors(images)      (N, 3, S, S) in [-1, 1], S = 32 or 64 -> (N, 128) float32
    unavailable_reason()     "" when dlib and its model file are installed, else why not

dlib's ResNet (dlib_face_recognition_resnet_model_v1.dat, shipped in the PyPI package
face-recognition-models beside the 68-landmark model) maps a face chip to a 128-d vector in which
the same person lies close (trained on millions of faces of thousands of people: a feature that
has learnt what tells people apart, unlike raw pixels, and was never trained on our data). It
expects 150×150 chips aligned as `dlib.get_face_chip` aligns them. Our crops are aligned too, to
align.TEMPLATE, so the chip is one fixed similarity of the crop: CHIP_FROM_CROP, which puts the
template's landmarks where dlib's chip puts the same photo's landmarks (measured on the London
test photos by `measure_chip_transform`; tests/test_face_identity.py re-measures it). The crop is
upsampled bilinearly through that map; the whole chip lies inside the crop, so no padding is
invented. What a 32×32 face still tells the network is measured in docs/evaluation.md.

dlib is imported inside functions: importing this module never needs it.
"""
import importlib.util

import numpy as np

from ..data.align import model_file
from ..errors import MissingExtraError

CHIP = 150              # dlib's chip side (get_face_chip's default size)
CHIP_PADDING = 0.25     # and its default padding, which the network was trained with
# crop (x, y) -> chip (x, y): chip = CHIP_FROM_CROP @ (x, y, 1). Scale 5.03 (32 px -> ~161 px,
# so the chip's 150 px lie inside the crop), a 0.4 degree turn, the face moved up and left a little.
CHIP_FROM_CROP = np.array([[5.0333, -0.0383, -4.8885],
                           [0.0383, 5.0333, -8.9729]], np.float64)
BATCH = 64              # chips per call of the network: bounds the memory of the chip batch


def descriptor_model_path():
    """dlib's face-recognition model file from face-recognition-models (align.model_file)."""
    return model_file("dlib_face_recognition_resnet_model_v1.dat", "face-recognition model")


def unavailable_reason():
    """"" when descriptors can be computed here, else a one-line reason (what to install)."""
    if importlib.util.find_spec("dlib") is None:
        return "dlib is not installed (pip install -e \".[data]\")"
    try:
        descriptor_model_path()
    except MissingExtraError as err:
        return str(err)
    return ""


_MODEL = {}   # per process: the network, loaded once (~22 MB)


def _model():
    if not _MODEL:
        try:
            import dlib
        except ImportError:
            raise MissingExtraError("dlib is not installed; face descriptors need it. Install the "
                                    "data extras with: pip install -e \".[data]\"") from None
        _MODEL["net"] = dlib.face_recognition_model_v1(descriptor_model_path())
    return _MODEL["net"]


def to_chips(images, transform=CHIP_FROM_CROP, size=CHIP):
    """(N, 3, H, W) in [-1, 1] -> (N, size, size, 3) uint8 RGB chips, contiguous, as dlib wants.

    Chip pixel centres sit at integer (x, y) (dlib's convention), crop pixel (r, c) covers
    [c, c+1) x [r, r+1) (align.py's), so a chip pixel samples the crop at M^-1 (x, y) - 0.5."""
    from scipy.ndimage import map_coordinates
    images = np.asarray(images, np.float64)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W), got shape {images.shape}")
    scale = images.shape[-1] / 32.0                 # CHIP_FROM_CROP is in 32×32 crop pixels
    A, t = np.asarray(transform)[:, :2] / scale, np.asarray(transform)[:, 2]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    chip_xy = np.stack([xx.ravel(), yy.ravel()], 1)                     # (size², 2)
    crop_xy = (chip_xy - t) @ np.linalg.inv(A).T - 0.5                  # array coordinates
    coords = [crop_xy[:, 1], crop_xy[:, 0]]                             # (row, column)
    pixels = np.round((images + 1.0) * 127.5).clip(0, 255)             # the uint8 the crop was
    out = np.empty((len(images), size, size, 3), np.uint8)
    for n in range(len(images)):
        for c in range(3):
            sampled = map_coordinates(pixels[n, c], coords, order=1, mode="nearest")
            out[n, :, :, c] = np.round(sampled).clip(0, 255).reshape(size, size)
    return out


def descriptors(images, batch=BATCH):
    """(N, 3, 32, 32) in [-1, 1] -> (N, 128) float32 dlib face descriptors. Same person:
    Euclidean distance typically below 0.6 on full-size photos (dlib's threshold); on 32×32
    crops distances are larger and only the ranking is used (nearest_in_gallery)."""
    net = _model()
    images = np.asarray(images, np.float32)
    # One network pass per distinct image: the copy baseline's queries repeat each source image
    # once per target label (7 times on RaFD), and a pass costs ~50-80 ms on one CPU core.
    distinct, back = np.unique(images.reshape(len(images), -1), axis=0, return_inverse=True)
    distinct = distinct.reshape(-1, *images.shape[1:])
    out = np.zeros((len(distinct), 128), np.float32)
    for start in range(0, len(distinct), batch):
        chips = list(to_chips(distinct[start:start + batch]))
        out[start:start + len(chips)] = np.asarray(net.compute_face_descriptor(chips), np.float32)
    return out[np.asarray(back).ravel()]


def measure_chip_transform(photos):
    """Photos (each (H, W, 3) uint8 with one face) -> the (2, 3) crop -> chip similarity: where
    dlib's get_face_chip(…, CHIP, CHIP_PADDING) puts each photo's 68 landmarks, averaged, fitted
    (align.similarity_transform) from align.TEMPLATE. How CHIP_FROM_CROP was made."""
    import dlib

    from ..data.align import TEMPLATE, _dlib_models, similarity_transform
    detector, predictor = _dlib_models()
    in_chip = []
    for rgb in photos:
        box = max(detector(rgb, 0), key=lambda b: b.area())
        shape = predictor(rgb, box)
        details = dlib.get_face_chip_details(shape, CHIP, CHIP_PADDING)
        # dlib maps the rectangle, turned by `angle` about its centre, onto the chip's corners
        r, angle = details.rect, details.angle
        centre = np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2])
        turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        corners = (np.array([[r.left(), r.top()], [r.right(), r.top()], [r.right(), r.bottom()]]) - centre) @ turn.T + centre
        chip_corners = np.array([[0, 0], [details.cols - 1, 0], [details.cols - 1, details.rows - 1]], np.float64)
        affine = np.linalg.solve(np.hstack([corners, np.ones((3, 1))]), chip_corners)    # (3, 2)
        landmarks = np.array([[p.x, p.y] for p in shape.parts()], np.float64)
        in_chip.append(np.hstack([landmarks, np.ones((68, 1))]) @ affine)              # (68, 2)
    # dlib's chip fits the points 17-67 (brows, eyes, nose, mouth); the jaw line is left out
    return similarity_transform(TEMPLATE[17:], np.mean(in_chip, 0)[17:])

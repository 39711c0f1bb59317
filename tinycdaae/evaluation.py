"""Numbers instead of a user study: how well a network draws *unseen* people with a new expression.

The paper judged its variants by figures and an online survey. Here every (source image, target
label) pair of the held-out people is scored three ways, for each network and for the baseline
that copies its input (x̂ = x_s):

  target fidelity   x̂ against the person's real image with the target label x_t:
                    MSE, PSNR and SSIM (images in [-1, 1], so the data range is L = 2)
  identity          top-1 retrieval: among held-out real images that all carry the target label
                    (one per held-out person), is the one nearest to x̂ (pixels inside the face)
                    the same person?
  expression        a small CNN trained on real training-fold images only (never on generated
                    ones) reads x̂: its accuracy against the target label (emotions) or its mean
                    absolute error of AU intensities (action units). Its score on real held-out
                    images is the reference ("ceiling"; generated faces cleaner than the real
                    ones can beat it).

On real photographs (every dataset but the synthetic one) identity is also judged by dlib's
face-recognition network when dlib is installed (face_identity.py): the same retrieval, with
128-d descriptors instead of pixels ("identity (dlib)"). It is a feature learnt on other people's
faces, which separates people across expressions where pixels falter (measured on the London
photos: README, Evaluation). The synthetic faces are not photographs, so there it is not used.

Why these together (docs/stability.md shows both failures): expression accuracy alone flatters a network that draws a
generic face with the right expression (the no-connection control), and identity alone flatters
the copy baseline, which keeps the person perfectly and never changes the expression.

The identity feature space is raw pixels inside the face ellipse (FACE_ELLIPSE), on purpose.
Every candidate in a retrieval shares the target label, so the expression is (as far as the data
allows) the same for all of them and what separates them is the person: face shape, skin, eyes,
brows. A feature learnt from the training people would have to generalise to unseen ones, and
the expression classifier's features are trained to *ignore* identity. Pixels are crude but
assume nothing and cannot be gamed by a network that learnt the same features. The backdrop is
left out because it identifies a synthetic person by itself (whole-image retrieval is reported
too, to show how much).

Pairs whose target label equals the source's label are left out: they ask for no change (the
copy baseline is exact there and its PSNR infinite), and the task measured is changing one.

Pure NumPy and the project's layers; pictures are written through
grids.save_png, which imports imageio only when called.
"""
import functools
import json
import math
import os
from dataclasses import dataclass

import numpy as np

from . import backend
from .face_identity import unavailable_reason as face_identity_missing
from .layers import Conv2d, Dense, Flatten, LeakyReLU, Sequential
from .losses import mse as mse_loss
from .losses import softmax_cross_entropy
from .optim import Adam

DATA_RANGE = 2.0        # images live in [-1, 1]: the largest possible pixel difference is 2
SSIM_SIGMA = 1.5        # Wang et al. 2004: Gaussian window, σ = 1.5 ...
SSIM_RADIUS = 5         # ... 11×11 (radius 5), as in their code and scikit-image's gaussian_weights
SSIM_K1, SSIM_K2 = 0.01, 0.03   # C1 = (K1·L)², C2 = (K2·L)², L = DATA_RANGE


# ------------------------------------------------------------------------------ target fidelity
def _as_images(a, name):
    a = np.asarray(a, np.float64)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4:
        raise ValueError(f"{name} must be images (N, C, H, W) or (C, H, W), got shape {a.shape}")
    return a


def mse(a, b):
    """Mean squared error per image: (1/CHW) Σ (a − b)². a, b (N, C, H, W) -> (N,)."""
    a, b = _as_images(a, "a"), _as_images(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"image batches differ in shape: {a.shape} and {b.shape}")
    return ((a - b) ** 2).mean(axis=(1, 2, 3))


def psnr(a, b, data_range=DATA_RANGE):
    """Peak signal-to-noise ratio per image, in dB: PSNR = 10 log10(L² / MSE), L = data range
    (2 for our [-1, 1] images; a [0, 255] image would use 255 — same number for the same picture).

    Identical images have MSE 0 and PSNR +inf, returned as such (not capped): a cap would be an
    arbitrary number that moves averages. The evaluation never averages one: it leaves out the
    pairs that ask for no change, the only ones where a generated image can match exactly."""
    err = mse(a, b)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range ** 2 / err)


def _gaussian_window(sigma=SSIM_SIGMA, radius=SSIM_RADIUS):
    """1-D Gaussian weights w_i ∝ exp(−i² / 2σ²), i = −r..r, summing to 1; the 2-D window is
    their outer product (separable)."""
    i = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-i * i / (2 * sigma * sigma))
    return w / w.sum()


def _window_matrix(size, weights):
    """(size − 2r, size) matrix M with the window in each row, shifted one column per row, so that
    M @ v is the weighted mean of v over every *full* window position ("valid" filtering)."""
    taps = len(weights)
    m = np.zeros((size - taps + 1, size))
    for i in range(size - taps + 1):
        m[i, i:i + taps] = weights
    return m


def ssim(a, b, data_range=DATA_RANGE, sigma=SSIM_SIGMA, radius=SSIM_RADIUS):
    """Structural similarity per image (Wang, Bovik, Sheikh & Simoncelli 2004), mean over the
    SSIM map and the channels. With local Gaussian-weighted means μ, variances σ² and covariance
    σ_ab (window 11×11, σ = 1.5):

        SSIM = (2 μ_a μ_b + C1)(2 σ_ab + C2) / ((μ_a² + μ_b² + C1)(σ_a² + σ_b² + C2)),
        C1 = (0.01 L)², C2 = (0.03 L)², L = 2.

    Only windows that lie wholly inside the image count (as in Wang's code and scikit-image):
    22×22 positions on a 32×32 face. Statistics are weighted population moments (no N/(N−1)),
    as in the paper. Identical images give 1 up to rounding; 1 is the best.
    a, b (N, C, H, W) -> (N,).
    """
    a, b = _as_images(a, "a"), _as_images(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"image batches differ in shape: {a.shape} and {b.shape}")
    if min(a.shape[2:]) <= 2 * radius:
        raise ValueError(f"SSIM's {2 * radius + 1}x{2 * radius + 1} window does not fit {a.shape[2:]} images")
    w = _gaussian_window(sigma, radius)
    rows, cols = _window_matrix(a.shape[2], w), _window_matrix(a.shape[3], w)   # (H', H), (W', W)

    def local_mean(x):   # the separable Gaussian as two large matrix products
        n, c, h, w_ = x.shape
        along_w = (x.reshape(-1, w_) @ cols.T).reshape(n, c, h, -1)     # (N, C, H, W')
        along_h = np.tensordot(rows, along_w, axes=([1], [2]))          # (H', N, C, W')
        return along_h.transpose(1, 2, 0, 3)                            # (N, C, H', W')

    mu_a, mu_b = local_mean(a), local_mean(b)
    var_a = local_mean(a * a) - mu_a * mu_a
    var_b = local_mean(b * b) - mu_b * mu_b
    cov = local_mean(a * b) - mu_a * mu_b
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return ssim_map.mean(axis=(1, 2, 3))


# ------------------------------------------------------------------------------------- identity
# The face region of an aligned face: an ellipse (centre row 16.5, column 15.5; semi-axes 12 rows
# and 9 columns on a 32×32 image, scaled for other sizes). Alignment puts every face there
# (align.py's template; the renderer draws them there). Identity is judged inside it: outside lie
# the backdrop and clothes, and in the synthetic set each person has a backdrop colour of their
# own — a cue that survives even when a network draws somebody else's face (measured: the
# no-connection control keeps 89% whole-image hits but 39% face hits; README, Evaluation).
FACE_ELLIPSE = (16.5 / 32, 15.5 / 32, 12 / 32, 9 / 32)


def face_mask(height=32, width=32):
    """(H, W) bool: True inside FACE_ELLIPSE."""
    cy, cx, ry, rx = FACE_ELLIPSE
    yy, xx = np.mgrid[0:height, 0:width]
    return ((yy - cy * height) / (ry * height)) ** 2 + ((xx - cx * width) / (rx * width)) ** 2 <= 1


def nearest_in_gallery(queries, bank, gallery, chunk=128):
    """For each query, the bank image nearest in pixel space (Euclidean) among its own gallery.

    queries (P, C, H, W); bank (B, C, H, W); gallery (P, G) int rows of `bank` that query p may
    match (e.g. one image per held-out person, all with p's target label).
    Returns (P,) bank rows. Ties go to the first gallery entry."""
    queries = np.asarray(queries, np.float64)                      # (P, ...) any image layout
    bank = np.asarray(bank, np.float64)
    gallery = np.asarray(gallery, np.int64)
    if gallery.ndim != 2 or len(gallery) != len(queries):
        raise ValueError(f"gallery must be (P, G) with P = {len(queries)} queries, got {gallery.shape}")
    flat_q = queries.reshape(len(queries), -1)                     # (P, D)
    flat_b = bank.reshape(len(bank), -1)                           # (B, D)
    best = np.empty(len(queries), np.int64)
    for start in range(0, len(queries), chunk):
        rows = gallery[start:start + chunk]                        # (p, G)
        diff = flat_b[rows] - flat_q[start:start + chunk, None]    # (p, G, D)
        dist = (diff * diff).sum(axis=2)                           # (p, G) squared distances
        best[start:start + chunk] = rows[np.arange(len(rows)), dist.argmin(axis=1)]
    return best


def identity_hits(queries, query_subjects, bank, bank_subjects, gallery, mask=None):
    """(P,) bool: is the nearest gallery image (see nearest_in_gallery) of the query's person?
    mask (H, W) bool: compare only those pixels (e.g. face_mask()); None: the whole image.
    queries and bank may also be feature vectors (P, D), (B, D), e.g. dlib descriptors."""
    if mask is not None:
        keep = np.asarray(mask, bool)
        queries, bank = np.asarray(queries)[..., keep], np.asarray(bank)[..., keep]   # (P, C, M), (B, C, M)
    nearest = nearest_in_gallery(queries, bank, gallery)
    return np.asarray(bank_subjects)[nearest] == np.asarray(query_subjects)


# ------------------------------------------------------------------------ expression classifier
READER_FACES_SEEN = 10800   # default training length: 15 epochs of 30 people's 720 faces (measured, README)


@dataclass
class ClassifierConfig:
    epochs: int = None        # None: enough epochs to show the reader READER_FACES_SEEN faces, at least 3
    batch_size: int = 32      # as the CDAAE
    lr: float = 1e-3          # Adam, as the CDAAE's autoencoder
    seed: int = 0             # weights and data order; the same seed gives the same classifier

    def __post_init__(self):
        if (self.epochs is not None and self.epochs < 1) or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(f"classifier needs epochs >= 1 (or None), batch_size >= 1 and lr > 0, got {self}")

    def epochs_for(self, n_images):
        return self.epochs or max(3, math.ceil(READER_FACES_SEEN / max(n_images, 1)))


class ExpressionReader:
    """A small CNN from the project's layers that reads the expression of a 32×32 face:

        conv 5×5/2 3→16, LeakyReLU (16×16) → conv 5×5/2 16→32, LeakyReLU (8×8)
        → dense 2048→64, LeakyReLU → dense 64→K

    kind "emotion": K class logits, trained with softmax cross-entropy; predict() gives classes.
    kind "au": K AU intensities, trained with MSE; predict() gives them clipped to [0, 1].
    Trained on real training-fold images only, so generated images are judged by a reader that
    never saw a generated face (and never saw the held-out people).
    """

    def __init__(self, kind, n_outputs, config=None):
        if kind not in ("emotion", "au"):
            raise ValueError(f"kind must be 'emotion' or 'au', got {kind!r}")
        self.kind, self.n_outputs = kind, int(n_outputs)
        self.config = config or ClassifierConfig()
        rng = np.random.default_rng(self.config.seed)
        self.net = Sequential(
            Conv2d(3, 16, 5, 2, 2, rng=rng, name="reader.conv1"), LeakyReLU(0.2),
            Conv2d(16, 32, 5, 2, 2, rng=rng, name="reader.conv2"), LeakyReLU(0.2),
            Flatten(), Dense(32 * 8 * 8, 64, rng=rng, name="reader.dense1"), LeakyReLU(0.2),
            Dense(64, self.n_outputs, rng=rng, name="reader.out"))
        self.history = []     # mean training loss per epoch

    def _loss(self, outputs, targets):
        if self.kind == "emotion":
            return softmax_cross_entropy(outputs, targets)
        return mse_loss(outputs, targets)

    def fit(self, images, labels):
        """images (N, 3, 32, 32) in [-1, 1]; labels (N, K): one-hot rows or AU intensities."""
        images, labels = np.asarray(images, np.float32), np.asarray(labels, np.float32)
        if labels.shape != (len(images), self.n_outputs):
            raise ValueError(f"labels must be ({len(images)}, {self.n_outputs}), got {labels.shape}")
        cfg = self.config
        optimizer = Adam(self.net.params(), lr=cfg.lr)
        order_rng = np.random.default_rng([cfg.seed, 1])
        for _ in range(cfg.epochs_for(len(images))):
            order = order_rng.permutation(len(images))
            total = 0.0               # summed on the device: one read-back per epoch, not per batch
            for start in range(0, len(images), cfg.batch_size):
                rows = order[start:start + cfg.batch_size]
                x = backend.to_device(images[rows])
                y = backend.to_device(labels[rows])
                optimizer.zero_grad()
                outputs, caches = self.net.forward(x)                  # (B, K)
                loss, d_outputs = self._loss(outputs, y)
                self.net.backward(d_outputs, caches, need_dx=False)
                optimizer.step()
                total = total + loss.astype("float64") * len(rows)
            self.history.append(float(total) / len(images))
        return self

    def outputs(self, images, chunk=512):
        """Raw outputs (N, K): logits, or unclipped intensities."""
        images = np.asarray(images, np.float32)
        out = [backend.to_host(self.net.forward(backend.to_device(images[s:s + chunk]))[0])
               for s in range(0, len(images), chunk)]
        return np.concatenate(out) if out else np.zeros((0, self.n_outputs), np.float32)

    def predict(self, images):
        """Emotions: (N,) class indices. AUs: (N, K) intensities clipped to [0, 1]."""
        out = self.outputs(images)
        return out.argmax(axis=1) if self.kind == "emotion" else np.clip(out, 0.0, 1.0)


def confusion_matrix(true, predicted, n_classes):
    """counts[i, j] = how many samples of class i were read as class j (rows: truth)."""
    true, predicted = np.asarray(true, np.int64), np.asarray(predicted, np.int64)
    counts = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(counts, (true, predicted), 1)
    return counts


def per_class_accuracy(counts):
    """Diagonal over row sums: the fraction of each true class read correctly (NaN: no samples)."""
    counts = np.asarray(counts, np.float64)
    rows = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, np.diag(counts) / rows, np.nan)


# ------------------------------------------------------------------------- the evaluation pairs
@dataclass
class EvaluationSet:
    """The held-out pairs to score, with everything each metric needs, built once per split.

    x_source, x_target (P, 3, 32, 32); target_labels (P, L); subjects (P,) the person of each
    pair; bank (B, 3, 32, 32) real images of held-out people with bank_subjects (B,); gallery
    (P, G) rows of bank: for pair p one image per held-out person with p's target label (and
    p's group, e.g. gaze, where the data has it); change (P,) = MSE(x_source, x_target), the size
    of the change asked for."""
    x_source: np.ndarray
    x_target: np.ndarray
    source_labels: np.ndarray
    target_labels: np.ndarray
    subjects: np.ndarray
    bank: np.ndarray
    bank_subjects: np.ndarray
    gallery: np.ndarray
    label_names: tuple
    kind: str
    exact_targets: bool       # True: targets rendered exactly (synthetic); False: real images
    pairs_total: int          # held-out pairs before leaving out no-change pairs and sampling

    @functools.cached_property
    def change(self):                      # computed once, read by every network's scoring
        return mse(self.x_source, self.x_target)

    @functools.cached_property
    def bank_descriptors(self):            # dlib descriptors of the bank: once per split
        from .face_identity import descriptors
        return descriptors(self.bank)

    def __len__(self):
        return len(self.x_source)


def _synthetic_seed(faceset):
    seeds = np.unique(np.asarray(faceset.meta["identity_seed"]))
    if len(seeds) != 1:
        raise ValueError(f"the held-out set mixes synthetic identity seeds {seeds.tolist()}")
    return int(seeds[0])


def evaluation_set(test_set, max_pairs=None, seed=0):
    """Score-ready pairs of a held-out FaceSet (see EvaluationSet).

    Pairs whose target label equals the source label are dropped (no change asked for). If more
    than max_pairs remain, a seeded random subset is kept. Synthetic sets (meta "source" ==
    "synthetic") get exact targets and galleries from the renderer (any person with any label,
    same gaze); other sets use their real images: for each person, the image whose label is
    nearest to the target label, preferring the source's group (RaFD: its gaze), which for
    RaFD-like sets is exactly that person's image with the target label."""
    pairs = test_set.pairs
    src, tgt = pairs[:, 0], pairs[:, 1]
    labels = np.asarray(test_set.labels, np.float32)
    changes = np.abs(labels[src] - labels[tgt]).max(axis=1) > 1e-6
    pairs = pairs[changes]
    if len(pairs) == 0:
        raise ValueError("the held-out set has no pair that asks for a change of expression")
    if max_pairs is not None and len(pairs) > max_pairs:
        keep = np.sort(np.random.default_rng(seed).choice(len(pairs), max_pairs, replace=False))
        pairs = pairs[keep]
    src, tgt = pairs[:, 0], pairs[:, 1]
    people = test_set.subject_ids                                          # (S,)
    synthetic = test_set.meta.get("source") == "synthetic"
    # the group a gallery must match: the data's pairing group, which is the gaze for RaFD and
    # for synthetic faces (the renderer draws a target in that gaze)
    groups = np.asarray(test_set.groups, np.int64)[src]
    target_labels = labels[tgt]
    # One gallery per distinct (target label, group): its people in `people` order.
    keys = np.concatenate([target_labels, groups[:, None].astype(np.float32)], axis=1)
    unique_keys, key_of_pair = np.unique(keys, axis=0, return_inverse=True)
    key_of_pair = key_of_pair.ravel()
    n_keys, n_people = len(unique_keys), len(people)
    if synthetic:
        from .synthetic import render_targets
        key_labels = np.repeat(unique_keys[:, :-1], n_people, axis=0)      # (K*S, L)
        key_groups = np.repeat(unique_keys[:, -1].astype(np.int64), n_people)
        bank_subjects = np.tile(people, n_keys)                            # (K*S,)
        bank = render_targets(bank_subjects, key_labels, key_groups, _synthetic_seed(test_set))
    else:
        rows = np.empty((n_keys, n_people), np.int64)
        images_of = [np.flatnonzero(test_set.subjects == person) for person in people]
        for k, key in enumerate(unique_keys):
            distance = np.round(np.abs(labels - key[:-1]).sum(axis=1), 6)  # (N,) L1 label distance
            other_group = np.asarray(test_set.groups) != int(key[-1])
            for s, mine in enumerate(images_of):   # nearest label, then same group, then first
                rows[k, s] = mine[np.lexsort((mine, other_group[mine], distance[mine]))[0]]
        bank = test_set.images[rows.ravel()]
        bank_subjects = test_set.subjects[rows.ravel()]
    gallery = key_of_pair[:, None] * n_people + np.arange(n_people)        # (P, S) rows of bank
    subjects = test_set.subjects[src]
    if synthetic:   # the exact target: the bank image of the pair's own person
        own = np.searchsorted(people, subjects)
        x_target = bank[gallery[np.arange(len(pairs)), own]]
    else:
        x_target = test_set.images[tgt]
    return EvaluationSet(np.asarray(test_set.images[src], np.float32), np.asarray(x_target, np.float32),
                         labels[src], target_labels, subjects, np.asarray(bank, np.float32),
                         np.asarray(bank_subjects), gallery, tuple(test_set.label_names), test_set.kind,
                         synthetic, int(len(test_set.pairs)))


# -------------------------------------------------------------------------------------- scoring
def score(x_hat, evalset, reader, dlib_identity=False):
    """Every metric for generated images x_hat (P, 3, 32, 32) aligned with evalset's pairs.

    dlib_identity: also the identity retrieval with dlib's face descriptors (identity_dlib_top1;
    needs dlib, see face_identity.unavailable_reason()).
    Returns (summary, per_pair): summary holds the means (JSON-ready); per_pair the arrays
    (mse, psnr, ssim, identity_hit, identity_dlib_hit if asked for, and expression_correct or
    au_abs_error)."""
    x_hat = np.asarray(x_hat, np.float32)
    if x_hat.shape != evalset.x_target.shape:
        raise ValueError(f"x_hat has shape {x_hat.shape}, the evaluation set needs {evalset.x_target.shape}")
    per_pair = {"mse": mse(x_hat, evalset.x_target), "psnr": psnr(x_hat, evalset.x_target),
                "ssim": ssim(x_hat, evalset.x_target),
                "identity_hit": identity_hits(x_hat, evalset.subjects, evalset.bank, evalset.bank_subjects,
                                              evalset.gallery, mask=face_mask(*x_hat.shape[2:])),
                "identity_hit_whole": identity_hits(x_hat, evalset.subjects, evalset.bank,
                                                    evalset.bank_subjects, evalset.gallery)}
    summary = {"pairs": len(evalset), "mse": float(per_pair["mse"].mean()),
               "psnr": float(per_pair["psnr"].mean()), "ssim": float(per_pair["ssim"].mean()),
               "identity_top1": float(per_pair["identity_hit"].mean()),
               "identity_top1_whole_image": float(per_pair["identity_hit_whole"].mean())}
    if dlib_identity:   # the same gallery, nearest by Euclidean distance between descriptors
        from .face_identity import descriptors
        per_pair["identity_dlib_hit"] = identity_hits(descriptors(x_hat), evalset.subjects,
                                                      evalset.bank_descriptors, evalset.bank_subjects,
                                                      evalset.gallery)
        summary["identity_dlib_top1"] = float(per_pair["identity_dlib_hit"].mean())
    names = list(evalset.label_names)
    per_item, expression_summary = expression_scores(reader, x_hat, evalset.target_labels, evalset.kind, names)
    per_pair["expression_correct" if evalset.kind == "emotion" else "au_abs_error"] = per_item
    summary.update(expression_summary)
    # by target class: identity too (does a variant lose people on some expressions only?)
    target_class = evalset.target_labels.argmax(axis=1)
    summary["per_class_identity_top1"] = {
        name: float(per_pair["identity_hit"][target_class == k].mean()) if (target_class == k).any() else None
        for k, name in enumerate(names)} if evalset.kind == "emotion" else {}
    # by size of the change asked for: terciles of MSE(x_s, x_t), the same edges for every network
    bins = change_bins(evalset.change)
    expr = per_pair.get("expression_correct", per_pair.get("au_abs_error"))
    expr = expr if expr.ndim == 1 else expr.mean(axis=1)
    summary["by_change"] = {name: {"pairs": int(m.sum()), "identity_top1": float(per_pair["identity_hit"][m].mean()),
                                   ("expression_accuracy" if evalset.kind == "emotion" else "au_mae"):
                                       float(expr[m].mean()), "mse": float(per_pair["mse"][m].mean())}
                            for name, m in bins.items() if m.any()}
    return summary, per_pair


def change_bins(change):
    """Pairs split into thirds by the size of the change asked for (MSE between the real source
    and target): {"small": mask, "medium": mask, "large": mask}."""
    edges = np.quantile(change, [1 / 3, 2 / 3])
    return {"small": change <= edges[0], "medium": (change > edges[0]) & (change <= edges[1]),
            "large": change > edges[1]}


def expression_scores(reader, images, target_labels, kind, names):
    """The expression reader on `images` against the labels they should show.
    Returns (per image: correct or not (emotions) / absolute error per AU (P, L),
    summary: accuracy, per class and confusion counts / mean absolute error and per AU)."""
    if kind == "emotion":
        truth, predicted = target_labels.argmax(axis=1), reader.predict(images)
        counts = confusion_matrix(truth, predicted, len(names))
        correct = predicted == truth
        return correct, {"expression_accuracy": float(correct.mean()),
                         "per_class_expression_accuracy": dict(zip(names, _floats(per_class_accuracy(counts)))),
                         "confusion": counts.tolist()}
    errors = np.abs(reader.predict(images) - target_labels)                # (P, L)
    return errors, {"au_mae": float(errors.mean()), "per_au_mae": dict(zip(names, _floats(errors.mean(axis=0))))}


def reader_ceiling(reader, test_set):
    """The expression reader on every real held-out image: the best a generated image can hope
    for. Emotions: accuracy, per class, confusion; AUs: mean absolute error, per AU."""
    labels = np.asarray(test_set.labels, np.float32)
    _, summary = expression_scores(reader, test_set.images, labels, test_set.kind, list(test_set.label_names))
    return {"images": len(labels), **summary}


def _floats(values):
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, np.float64)]


# ---------------------------------------------------------------------------------- aggregation
def mean_std(values):
    """(mean, sample standard deviation with N−1, n) of the finite values; std is None for n=1
    (one run says nothing about spread)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None, None, 0
    n = len(finite)
    return float(np.mean(finite)), (float(np.std(finite, ddof=1)) if n > 1 else None), n


def aggregate(summaries):
    """Many runs of one network (folds or seeds) -> {metric: {"mean", "std", "n"}} for every
    scalar metric, and the same for each entry of the per-class / per-AU / by-change dicts."""
    out = {}
    keys = [k for k in summaries[0] if k not in ("confusion",)]
    for key in keys:
        first = summaries[0][key]
        if isinstance(first, dict):
            out[key] = {}
            for sub in first:
                if isinstance(first[sub], dict):
                    out[key][sub] = {m: _stat([s[key][sub][m] for s in summaries if sub in s[key]])
                                     for m in first[sub]}
                else:
                    out[key][sub] = _stat([s[key][sub] for s in summaries])
        elif isinstance(first, (int, float)):
            out[key] = _stat([s[key] for s in summaries])
    if "confusion" in summaries[0]:
        out["confusion"] = np.sum([s["confusion"] for s in summaries], axis=0).tolist()   # counts add up
    return out


def _stat(values):
    mean, std, n = mean_std(values)
    return {"mean": mean, "std": std, "n": n}


# ------------------------------------------------------------------------------------- pictures
# A 3×5 pixel font for the digits and '%', so the confusion picture carries its own numbers
# without a font library. Each glyph: 5 rows of 3 bits.
_GLYPHS = {"0": "111101101101111", "1": "010110010010111", "2": "111001111100111",
           "3": "111001111001111", "4": "101101111001001", "5": "111100111001111",
           "6": "111100111101111", "7": "111001010010010", "8": "111101111101111",
           "9": "111101111001111", "-": "000000111000000"}


def _draw_text(image, text, top, left, colour, scale):
    """Stamp `text` (digits and '-') into image (H, W, 3) uint8 at (top, left), in place."""
    for i, ch in enumerate(text):
        bits = np.array([int(b) for b in _GLYPHS[ch]], bool).reshape(5, 3)
        glyph = bits.repeat(scale, 0).repeat(scale, 1)                         # (5s, 3s)
        y, x = top, left + i * 4 * scale
        region = image[y:y + glyph.shape[0], x:x + glyph.shape[1]]
        region[glyph[:region.shape[0], :region.shape[1]]] = colour


def confusion_image(counts, cell=36, scale=2):
    """A confusion matrix as an RGB heat-map (H, W, 3) uint8: rows = target label, columns = label
    read by the classifier, both in the label order of results.md, numbered 1..K along the top and
    the left. Each cell's shade is its share of the row (white 0% → dark blue 100%) and it shows
    that share in whole percent."""
    counts = np.asarray(counts, np.float64)
    k = len(counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.nan_to_num(counts / counts.sum(axis=1, keepdims=True))     # (K, K) row shares
    margin = cell
    size = margin + k * cell + 1
    image = np.full((size, size, 3), 255, np.uint8)
    white, blue = np.array([255, 255, 255.0]), np.array([8, 48, 107.0])
    for i in range(k):
        for j in range(k):
            top, left = margin + i * cell, margin + j * cell
            colour = white + share[i, j] * (blue - white)
            image[top:top + cell, left:left + cell] = np.round(colour).astype(np.uint8)
            text = str(int(round(100 * share[i, j])))
            ink = (255, 255, 255) if share[i, j] > 0.5 else (0, 0, 0)
            width = (4 * len(text) - 1) * scale
            _draw_text(image, text, top + (cell - 5 * scale) // 2, left + (cell - width) // 2, ink, scale)
    grid_lines = margin + np.arange(k + 1) * cell
    image[grid_lines.clip(max=size - 1), margin:] = 160                        # horizontal lines
    image[margin:, grid_lines.clip(max=size - 1)] = 160                        # vertical lines
    for i in range(k):   # class numbers 1..K: along the top (predicted) and the left (target)
        text = str(i + 1)
        width = (4 * len(text) - 1) * scale
        centre = margin + i * cell + (cell - width) // 2
        _draw_text(image, text, (margin - 5 * scale) // 2, centre, (0, 0, 0), scale)
        _draw_text(image, text, margin + i * cell + (cell - 5 * scale) // 2, (margin - width) // 2,
                   (0, 0, 0), scale)
    return image


# ---------------------------------------------------------------------------------------- report
def _fmt(stat, digits, percent=False):
    """'0.123 ± 0.004' (or '12.3%') from {"mean", "std", "n"}; '—' when missing."""
    if stat is None or stat.get("mean") is None:
        return "—"
    scale, unit = (100.0, "%") if percent else (1.0, "")
    text = f"{stat['mean'] * scale:.{digits}f}"
    if stat.get("std") is not None:
        text += f" ± {stat['std'] * scale:.{digits}f}"
    return text + unit


def _plain(value, digits, percent=False):
    return _fmt({"mean": value, "std": None}, digits, percent)


def markdown_report(results):
    """results.json's content -> results.md text."""
    kind = results["kind"]
    names = results["label_names"]
    rows = results["summary"]          # {network: aggregate}, copy baseline included
    order = results["order"]
    lines = [f"# Evaluation on held-out people: {results['title']}", ""]
    lines += [f"{results['description']}", ""]
    expr_head = "expression accuracy ↑" if kind == "emotion" else "AU mean abs. error ↓"
    expr_key = "expression_accuracy" if kind == "emotion" else "au_mae"
    dlib = results.get("identity_dlib") == "dlib"           # the dlib column, where it was measured
    lines += ["| network | runs | pairs | MSE ↓ | PSNR (dB) ↑ | SSIM ↑ | identity top-1, face ↑ | "
              "identity top-1, whole image | " + ("identity (dlib) ↑ | " if dlib else "") + f"{expr_head} |",
              "|---|---|---|---|---|---|---|---|---|" + ("---|" if dlib else "")]
    for name in order:
        s = rows[name]
        lines.append(f"| {name} | {s['mse']['n']} | {int(s['pairs']['mean'])} | {_fmt(s['mse'], 4)} | "
                     f"{_fmt(s['psnr'], 2)} | {_fmt(s['ssim'], 3)} | {_fmt(s['identity_top1'], 1, True)} | "
                     f"{_fmt(s['identity_top1_whole_image'], 1, True)} | "
                     + (f"{_fmt(s.get('identity_dlib_top1'), 1, True)} | " if dlib else "") +
                     f"{_fmt(s[expr_key], 1, True) if kind == 'emotion' else _fmt(s[expr_key], 3)} |")
    if str(results.get("identity_dlib")).startswith("skipped"):
        lines += ["", f"Identity (dlib) {results['identity_dlib']}."]
    ceiling = results["ceiling"]
    lines += ["", f"Expression reader on the real held-out images (the ceiling): "
              f"{_fmt(ceiling[expr_key], 1, True) if kind == 'emotion' else _fmt(ceiling[expr_key], 3)}"
              f" over {results['ceiling_images']} images"
              + (f" (answering the training mean for every face: {_fmt(ceiling['au_mae_mean_guess'], 3)})"
                 if kind == "au" else "") + ". Identity chance level: "
              f"1 in {results['people_per_gallery']} ({100 / results['people_per_gallery']:.0f}%).", ""]
    # by size of change
    lines += ["## By the size of the change asked for", "",
              "Pairs split into thirds by the MSE between the real source and target images "
              "(small / medium / large change). Each cell: " + ("expression accuracy" if kind == "emotion" else
                                                       "AU mean absolute error") + " / identity top-1 (face).", "",
              "| network | small | medium | large |", "|---|---|---|---|"]
    for name in order:
        cells = []
        for b in ("small", "medium", "large"):
            stat = rows[name]["by_change"].get(b)
            cells.append("—" if stat is None else
                         f"{_fmt(stat[expr_key], 1, kind == 'emotion') if kind == 'emotion' else _fmt(stat[expr_key], 3)}"
                         f" / {_fmt(stat['identity_top1'], 0, True)}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    # per class
    per_key = "per_class_expression_accuracy" if kind == "emotion" else "per_au_mae"
    lines += ["", "## Per " + ("target emotion: expression accuracy" if kind == "emotion" else
                                "action unit: mean absolute intensity error"), "",
              "| " + ("target" if kind == "emotion" else "AU") + " | real (ceiling) | " + " | ".join(order) + " |",
              "|---|---|" + "---|" * len(order)]
    for i, label in enumerate(names):
        cells = [_fmt(rows[n][per_key].get(label), 1 if kind == "emotion" else 3, kind == "emotion") for n in order]
        lines.append(f"| {i + 1}. {label} | {_fmt(ceiling[per_key].get(label), 1 if kind == 'emotion' else 3, kind == 'emotion')} | "
                     + " | ".join(cells) + " |")
    if kind == "emotion":
        lines += ["", "## Per target emotion: identity top-1 (face)", "",
                  "| target | " + " | ".join(order) + " |", "|---|" + "---|" * len(order)]
        for i, label in enumerate(names):
            lines.append(f"| {i + 1}. {label} | " + " | ".join(
                _fmt(rows[n]["per_class_identity_top1"].get(label), 0, True) for n in order) + " |")
        lines += ["", "## Confusion matrices (paper Fig. 6c)", "",
                  "Rows: target emotion; columns: emotion read by the classifier; numbers 1..K as in "
                  "the tables above; each cell is its share of the row in percent (counts summed "
                  "over runs are in results.json).", ""]
        for name in results["confusion_images"]:
            lines.append(f"![{name}]({results['confusion_images'][name]})")
    if results.get("samples_image"):
        networks = results["sample_networks"]
        lines += ["", "## What the networks draw", "",
                  f"For {results['sample_people']} held-out people: their real images with every label "
                  "(under a white cell), then one row per network (" + ", ".join(networks) + "), each "
                  "starting with the input face. Labels in the order of the tables above. (First split only.)",
                  "", f"![samples]({results['samples_image']})"]
    lines += ["", "## Runs", "", "| network | checkpoint | split | " + ("expression acc." if kind == "emotion" else "AU MAE")
              + " | identity top-1, face |", "|---|---|---|---|---|"]
    for run in results["runs"]:
        m = run["metrics"]
        lines.append(f"| {run['network']} | {run['checkpoint'] or '(copies the input)'} | {run['split']} | "
                     f"{_plain(m[expr_key], 1, kind == 'emotion') if kind == 'emotion' else _plain(m[expr_key], 3)} | "
                     f"{_plain(m['identity_top1'], 1, True)} |")
    return "\n".join(lines) + "\n"


def write_report(out_dir, results):
    """results.json, results.md and confusion_<network>.png (emotions) into out_dir.
    Returns the paths written."""
    from .grids import save_png
    os.makedirs(out_dir, exist_ok=True)
    written = []
    results["confusion_images"] = {}
    if results["kind"] == "emotion":
        pictures = [("real", results["ceiling"]["confusion"])] + \
                   [(n, results["summary"][n]["confusion"]) for n in results["order"]]
        for name, counts in pictures:
            file = f"confusion_{name.replace(' ', '_')}.png"
            save_png(os.path.join(out_dir, file), confusion_image(counts))
            results["confusion_images"][name] = file
            written.append(os.path.join(out_dir, file))
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(markdown_report(results))
    return [os.path.join(out_dir, "results.md"), os.path.join(out_dir, "results.json")] + written


# ------------------------------------------------------------------------------- the whole job
BASELINE = "copy input"      # x̂ = x_s: keeps the person perfectly, never changes the expression
NETWORK_ORDER = ("n1", "n2", "n3", "none")


@dataclass
class Split:
    """One held-out fold and the networks trained with it held out.

    name: e.g. "synthetic-emotion fold 0/4"; train, test: FaceSets (train only feeds the
    expression reader); networks: list of (network name, checkpoint path, load) where load() -> a
    model with .generate(images, labels) (loaded lazily, one at a time)."""
    name: str
    train: object
    test: object
    networks: list


def evaluate_splits(splits, out_dir, reader_config=None, max_pairs=None, title="", say=print):
    """Score every network of every split and the copy baseline; write results.md, results.json
    and the confusion PNGs to out_dir; return the results dict (as written to results.json).

    Per split: the evaluation pairs and one expression reader (trained on that split's training
    people). Networks of the same name across splits (folds) or seeds are averaged: mean ± sample
    standard deviation."""
    import time
    if not splits:
        raise ValueError("nothing to evaluate: no split given")
    kinds = {s.test.kind for s in splits}
    names = {tuple(s.test.label_names) for s in splits}
    if len(kinds) != 1 or len(names) != 1:
        raise ValueError("the checkpoints were trained on different kinds of labels "
                         f"({sorted(kinds)}, {sorted(names)}); evaluate them separately")
    kind, label_names = kinds.pop(), list(names.pop())
    reader_config = reader_config or ClassifierConfig()
    # dlib's identity: for photographs only (not the rendered faces), and only where dlib and its
    # model are installed; otherwise the column is left out and the reason said once.
    photographs = all(s.test.meta.get("source") != "synthetic" for s in splits)
    dlib_missing = face_identity_missing() if photographs else ""
    dlib_identity = photographs and not dlib_missing
    if dlib_missing:
        say(f"identity (dlib): skipped, {dlib_missing}")
    runs, ceilings, per_network, people = [], [], {}, set()
    for split in splits:
        t0 = time.perf_counter()
        evalset = evaluation_set(split.test, max_pairs)
        people.add(evalset.gallery.shape[1])
        reader = ExpressionReader(kind, len(label_names), reader_config)
        reader.fit(split.train.images, split.train.labels)
        ceiling = reader_ceiling(reader, split.test)
        if kind == "au":   # what answering the training mean for every face would score
            train_mean = np.asarray(split.train.labels, np.float64).mean(axis=0)
            ceiling["au_mae_mean_guess"] = float(np.abs(np.asarray(split.test.labels) - train_mean).mean())
        ceilings.append(ceiling)
        expr_key = "expression_accuracy" if kind == "emotion" else "au_mae"
        say(f"{split.name}: {len(evalset)} pairs that change the expression (of {evalset.pairs_total}), "
            f"{evalset.gallery.shape[1]} held-out people; expression reader trained on "
            f"{len(split.train.images)} real training images for {reader_config.epochs_for(len(split.train.images))} "
            f"epochs in {time.perf_counter() - t0:.0f} s, "
            f"{expr_key} on real held-out images {ceiling[expr_key]:.3f}")
        candidates = [(BASELINE, None, None)] + list(split.networks)
        for network, path, load in candidates:
            t0 = time.perf_counter()
            x_hat = evalset.x_source if load is None else load().generate(evalset.x_source,
                                                                         evalset.target_labels)["x_hat"]
            summary, _ = score(x_hat, evalset, reader, dlib_identity)
            per_network.setdefault(network, []).append(summary)
            runs.append({"network": network, "checkpoint": path, "split": split.name, "metrics": summary})
            say(f"  {network:<10} MSE {summary['mse']:.4f}  PSNR {summary['psnr']:.2f} dB  "
                f"SSIM {summary['ssim']:.3f}  identity {summary['identity_top1']:.3f} (face), "
                f"{summary['identity_top1_whole_image']:.3f} (whole)"
                + (f", {summary['identity_dlib_top1']:.3f} (dlib)" if dlib_identity else "") + "  "
                f"{expr_key} {summary[expr_key]:.3f}  ({time.perf_counter() - t0:.0f} s)")
    order = [n for n in NETWORK_ORDER if n in per_network] + \
            sorted(n for n in per_network if n not in NETWORK_ORDER and n != BASELINE) + [BASELINE]
    results = {
        "title": title or ", ".join(s.name for s in splits), "kind": kind, "label_names": label_names,
        "description": (
            "Every (source image, target label) pair of the held-out people whose target label "
            "differs from the source's. Fidelity: x̂ against the person's real image with the target "
            + ("label, rendered exactly" if all(s.test.meta.get("source") == "synthetic" for s in splits)
               else "label") +
            " (MSE and PSNR = 10 log10(L²/MSE) with L = 2 for [-1, 1] images; SSIM with an 11×11 "
            "Gaussian window, σ = 1.5). Identity: is the nearest, in pixel space, of the held-out "
            "people's real images with the target label the same person? Compared inside the face "
            "ellipse (the main number), and over the whole image (backdrop included)"
            + ("; and by dlib's face-recognition network: nearest by Euclidean distance between 128-d "
               "face descriptors of the 32×32 faces upsampled to dlib's 150×150 chip (identity (dlib))"
               if dlib_identity else "") + ". Expression: a small CNN "
            "trained on the real training-fold images reads x̂"
            + (" (accuracy against the target emotion)." if kind == "emotion"
               else " (mean absolute error of the 12 AU intensities in [0, 1]).")
            + " Several runs of a network (folds, seeds): mean ± sample standard deviation."),
        "order": order, "people_per_gallery": min(people),
        # "dlib": the identity_dlib_top1 column is there; "skipped: why"; None: not for this data
        "identity_dlib": "dlib" if dlib_identity else (f"skipped: {dlib_missing}" if dlib_missing else None),
        "ceiling": aggregate(ceilings), "ceiling_images": int(sum(c["images"] for c in ceilings)),
        "reader": {"architecture": "conv 5x5/2 3-16, conv 5x5/2 16-32, dense 2048-64, dense 64-K, LeakyReLU 0.2",
                   "epochs": [reader_config.epochs_for(len(s.train.images)) for s in splits],
                   "batch_size": reader_config.batch_size,
                   "lr": reader_config.lr, "seed": reader_config.seed},
        "summary": {n: aggregate(per_network[n]) for n in order},
        "runs": runs,
    }
    sheet = comparison_sheet(splits[0])
    results["sample_people"] = min(3, len(splits[0].test.subject_ids))
    results["sample_networks"] = [name for name, _, _ in splits[0].networks]
    if sheet is not None:
        from .grids import save_png, tile
        save_png(os.path.join(out_dir, "samples.png"), tile(sheet, scale=3))
        results["samples_image"] = "samples.png"
    write_report(out_dir, results)
    return results


def comparison_sheet(split, n_people=3):
    """A picture of what the numbers measure: for a few held-out people, a row of their real
    images with every label (under a white cell), then one row per network, each starting with
    the input face and then x̂ for every label. (rows, 1 + L, 3, H, W), or None where the data has
    no real image of a person with each label (AU frames)."""
    from . import grids
    rows = grids.sample_faces(split.test, n_people)
    labels = grids.each_label(len(split.test.label_names))
    targets = grids.real_targets(split.test, rows, labels)
    if targets is None:
        return None
    faces = split.test.images[rows]
    blank = np.ones_like(faces[:, None])                                   # (R, 1, 3, H, W) white
    blocks = [np.concatenate([blank, targets], axis=1)]                    # real images first
    blocks += [grids.expression_grid(load(), faces, labels) for _, _, load in split.networks]
    return np.stack(blocks, axis=1).reshape(-1, *blocks[0].shape[1:])      # person by person

"""The dataset shape every loader returns, the paper's pairing rules and subject-independent folds.

A training example is a pair (x_s, x_t, l_t): source and target images of the *same person* and
the target's label. Every loader (synthetic, RaFD, DISFA, your own folder) returns a ``FaceSet``;
the trainer and the evaluation only ever see this class. Pure NumPy: no image readers here.
"""
from dataclasses import dataclass, field

import numpy as np


@dataclass
class FaceSet:
    images: np.ndarray        # (N, 3, 32, 32) float32 in [-1, 1]
    subjects: np.ndarray      # (N,) int64 person id; pairs and folds never mix people
    labels: np.ndarray        # (N, L) float32: one-hot emotions or AU intensities in [0, 1]
    label_names: tuple        # L names (labels.EMOTIONS or labels.AUS, or a folder's classes)
    kind: str                 # "emotion" (one-hot classes) or "au" (intensities)
    pairs: np.ndarray         # (P, 2) int64 rows (source index, target index), same subject
    groups: np.ndarray = None # (N,) int64 pairing group inside a subject (RaFD: the gaze); or None
    meta: dict = field(default_factory=dict)  # free-form provenance (source files, renderer params)

    def __post_init__(self):
        n = len(self.images)
        if self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must be (N, 3, H, W), got {self.images.shape}")
        if len(self.subjects) != n or len(self.labels) != n:
            raise ValueError(f"{n} images but {len(self.subjects)} subjects and {len(self.labels)} labels")
        if self.labels.shape[1] != len(self.label_names):
            raise ValueError(f"labels have {self.labels.shape[1]} columns but {len(self.label_names)} names")
        if self.kind not in ("emotion", "au"):
            raise ValueError(f"kind must be 'emotion' or 'au', got {self.kind!r}")
        if self.groups is None:
            self.groups = np.zeros(n, np.int64)
        self.pairs = np.asarray(self.pairs, np.int64).reshape(-1, 2)
        if len(self.pairs) and (self.subjects[self.pairs[:, 0]] != self.subjects[self.pairs[:, 1]]).any():
            raise ValueError("a pair joins two different subjects; pairs must stay within one person")

    def __len__(self):
        return len(self.pairs)

    @property
    def subject_ids(self):
        return np.unique(self.subjects)

    def batch(self, pair_rows):
        """Pairs -> (x_s (B,3,H,W), x_t (B,3,H,W), l_t (B,L)) as NumPy arrays."""
        src, tgt = self.pairs[pair_rows, 0], self.pairs[pair_rows, 1]
        return self.images[src], self.images[tgt], self.labels[tgt]

    def subset(self, subject_ids):
        """The images and pairs of the given people only, indices renumbered."""
        keep = np.isin(self.subjects, np.asarray(subject_ids))
        new_index = np.full(len(self.images), -1, np.int64)
        new_index[keep] = np.arange(keep.sum())
        pair_keep = keep[self.pairs[:, 0]] & keep[self.pairs[:, 1]]
        meta = dict(self.meta)
        for key, value in self.meta.items():  # per-image metadata follows the images, same type
            if isinstance(value, np.ndarray) and len(value) == len(self.images):
                meta[key] = value[keep]
            elif isinstance(value, list) and len(value) == len(self.images):
                meta[key] = [value[i] for i in np.flatnonzero(keep)]
        return FaceSet(self.images[keep], self.subjects[keep], self.labels[keep], self.label_names,
                       self.kind, new_index[self.pairs[pair_keep]], self.groups[keep], meta)


def pairs_within_groups(subjects, groups):
    """Every ordered pair (s, t) with the same subject and the same group, itself included.

    RaFD's rule: each image with the 8 images of the same subject and same gaze -> 8 pairs per
    image, 64 per (subject, gaze). Returns (P, 2) int64.
    """
    subjects, groups = np.asarray(subjects), np.asarray(groups)
    out = []
    keys = np.stack([subjects, groups], 1)
    _, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    for g in range(inverse.max() + 1 if len(inverse) else 0):
        members = np.flatnonzero(inverse == g)
        s, t = np.meshgrid(members, members, indexing="ij")   # (m, m) each
        out.append(np.stack([s.ravel(), t.ravel()], 1))      # (m*m, 2)
    return np.concatenate(out).astype(np.int64) if out else np.zeros((0, 2), np.int64)


def random_partner_pairs(subjects, targets, rng):
    """DISFA's rule: each target index paired with a random image of the same subject as source.

    targets: (T,) image indices; rng: np.random.Generator. Returns (T, 2) int64 (source, target).
    """
    subjects = np.asarray(subjects)
    by_subject = {s: np.flatnonzero(subjects == s) for s in np.unique(subjects)}
    sources = np.array([rng.choice(by_subject[subjects[t]]) for t in targets], np.int64)
    return np.stack([sources, np.asarray(targets, np.int64)], 1)


def subject_folds(subject_ids, k=4, seed=0):
    """Split people into k disjoint test folds (the paper: 4-fold cross-validation over subjects).

    Returns a list of k arrays of subject ids; fold i is the test set of split i.
    """
    ids = np.unique(np.asarray(subject_ids))
    if k < 2:
        raise ValueError(f"need at least 2 folds, got k={k}")
    if len(ids) < k:
        raise ValueError(f"only {len(ids)} subjects, too few for {k} subject-independent folds; "
                         f"add subjects or lower the number of folds")
    order = np.random.default_rng(seed).permutation(ids)
    return [np.sort(f) for f in np.array_split(order, k)]


def split(faceset, fold=0, k=4, seed=0):
    """(train FaceSet, test FaceSet) for fold `fold` of k; no person is in both."""
    if not 0 <= fold < k:
        raise ValueError(f"fold must be in 0..{k - 1}, got {fold}")
    folds = subject_folds(faceset.subjects, k, seed)
    test_ids = folds[fold]
    train_ids = np.setdiff1d(faceset.subject_ids, test_ids)
    return faceset.subset(train_ids), faceset.subset(test_ids)

"""The evaluation set: the held-out pairs that ask for a change of expression, their exact or real
targets, and the galleries (one image per held-out person with the target label) for identity."""
import functools
from dataclasses import dataclass

import numpy as np

from .metrics import mse


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
        from ..data.synthetic import render_targets
        key_labels = np.repeat(unique_keys[:, :-1], n_people, axis=0)      # (K*S, L)
        key_groups = np.repeat(unique_keys[:, -1].astype(np.int64), n_people)
        bank_subjects = np.tile(people, n_keys)                            # (K*S,)
        bank = render_targets(bank_subjects, key_labels, key_groups, _synthetic_seed(test_set),
                              size=test_set.images.shape[-1])                # the set's own size
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

"""One entry point for every dataset, as the command line uses it.

    faceset = load_dataset(name, data_dir, cache_dir=None, folds=4)     # rafd, disfa, folder need data_dir
    faceset = load_dataset("london")                                    # built in: synthetic, london
    train, test = split_for_training(faceset, fold, k=4, seed=0)       # subject-independent

`split_for_training` is `pairs.split` plus what DISFA needs: its pairs are *sampled per training
fold* (per AU up to 2000 frames where the AU is non-zero, plus 1000 all-zero frames, each with a
random partner frame of the same person), so after splitting, the pairs of each side are drawn
again from that side's people only. For every other dataset it is exactly `pairs.split`.
Bad input raises align.DatasetError (a ValueError) whose message says what is wrong: print it.
"""
import numpy as np

from ..errors import DatasetError
from .pairs import split

DATASETS = ("synthetic", "rafd", "disfa", "folder", "london")
BUILT_IN = ("synthetic", "london")   # shipped with the package: no --data-dir


def load_dataset(name, data_dir=None, cache_dir=None, folds=4, workers=None, progress=True, seed=0,
                 size=32, **options):
    """name -> FaceSet. Real datasets (london included) are aligned once and cached under cache_dir (default
    ~/.cache/tinycdaae); `folds` > 0 checks there are enough people for that many folds;
    workers: processes for the alignment (None: all cores); seed: the synthetic people, and
    DISFA's and the folder's pair sampling; size: the side of the faces, 32 (the paper's) or any
    multiple of 16 (real photos are aligned at it, synthetic faces drawn at it). `options` go to
    the synthetic set."""
    if name == "synthetic":
        from .synthetic import au_faceset, emotion_faceset
        kind = options.pop("kind", "emotion")
        return (emotion_faceset if kind == "emotion" else au_faceset)(seed=seed, size=size, **options)
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if options:
        raise DatasetError(f"unknown option(s) for {name}: {', '.join(sorted(options))}")
    common = dict(cache_dir=cache_dir, folds=folds, workers=workers, progress=progress, size=size)
    if name == "london":
        # Refused rather than ignored: a --data-dir given here is most likely meant for another
        # dataset, and silently training on the built-in photos instead would hide that.
        if data_dir is not None:
            raise DatasetError("--dataset london is built in (its photos ship with the package); "
                               "leave out --data-dir, or use --dataset folder --data-dir PATH for your own photos")
        from .folder import load_london
        return load_london(seed=seed, **common)
    if data_dir is None:
        raise DatasetError(f"--dataset {name} needs --data-dir PATH (where your copy of it lives)")
    if name == "rafd":
        from .rafd import load_rafd
        return load_rafd(data_dir, **common)
    if name == "disfa":
        from .disfa import load_disfa
        return load_disfa(data_dir, seed=seed, **common)
    from .folder import load_folder
    return load_folder(data_dir, seed=seed, **common)


def split_for_training(faceset, fold=0, k=4, seed=0):
    """(train, test) FaceSets for fold `fold` of k, no person in both; DISFA's pairs re-sampled."""
    try:
        train, test = split(faceset, fold, k, seed)
    except ValueError as err:  # too few subjects, or a fold number out of range
        raise DatasetError(str(err)) from None
    if faceset.meta.get("pairing") == "disfa_sampled":
        from .disfa import disfa_sample_pairs
        rng = np.random.default_rng([seed, fold])
        train, test = disfa_sample_pairs(train, rng), disfa_sample_pairs(test, rng)
    return train, test

"""Does the expression reader read the face, or the whole crop? Score London runs with both.

    python scripts/reader_face_only.py runs/london/n2-seed0-fold0 runs/london/n2-seed1-fold1 ...

`run.py evaluate` trains its expression reader on the whole 32×32 crop of the real training
photos, backdrop, hair and ears included. This script trains, per held-out fold, that same reader
and a second one on the same photos with everything outside the face ellipse set to 0
(evaluation.metrics.face_mask, the ellipse the identity column uses), then reads each run's
generated faces (every held-out pair that changes the expression, as `evaluate` does) with both.
For each: the reader's accuracy on the real held-out photos (its ceiling), and on the generated
faces overall and per direction (→ neutral, → happy). With the whole crop, the reader may count
whatever a label changes at the crop's edges (the lighting of a photo session) as expression;
the face-only reader cannot. Measured in docs/stability.md ("Fold 0, looked at closely").
"""
import argparse
import os

import numpy as np

from tinycdaae import checkpoint
from tinycdaae.checkpoint import load_model
from tinycdaae.cli import load_training_data
from tinycdaae.evaluation.evalset import evaluation_set
from tinycdaae.evaluation.metrics import face_mask
from tinycdaae.evaluation.reader import ClassifierConfig, ExpressionReader


def stored_split(run_dir):
    """(dataset, data_dir, fold, folds) of a run, as `run.py train` stored them in its checkpoint;
    `evaluate` rebuilds the held-out people from the same options."""
    meta = checkpoint.read(os.path.join(run_dir, "checkpoint.npz"), arrays=False)[0]
    options = meta["extra"].get("options")
    if options is None or options["dataset"] != "london":
        raise SystemExit(f"{run_dir}: not a London run written by `run.py train`")
    return options["dataset"], options.get("data_dir"), options["fold"], options["folds"]


def runs_by_fold(runs):
    """Group London run folders by the split they were trained on: yields (fold, train, test, runs)
    in fold order, each split's people loaded once, as `evaluate` rebuilds them."""
    by_split = {}
    for run in runs:
        by_split.setdefault(stored_split(run), []).append(run)
    for (dataset, data_dir, fold, folds), group in sorted(by_split.items(), key=lambda item: item[0][2:]):
        train, test = load_training_data({"dataset": dataset, "data_dir": data_dir, "fold": fold,
                                          "folds": folds, "size": 32})
        yield fold, train, test, group


def readers_for(train, test, mask):
    """{name: (reader, how to show it an image batch, accuracy on the real held-out photos)}."""
    readers = {}
    for name, view in (("whole crop", lambda x: x), ("face only", lambda x: x * mask)):
        reader = ExpressionReader("emotion", len(train.label_names), ClassifierConfig(), image_size=32)
        reader.fit(view(train.images), train.labels)
        ceiling = float(np.mean(reader.predict(view(test.images)) == test.labels.argmax(1)))
        readers[name] = (reader, view, ceiling)
    return readers


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="London run folders (each holding checkpoint.npz)")
    args = p.parse_args()
    mask = face_mask(32, 32).astype(np.float32)                    # (32, 32), broadcast over N and C
    for _, train, test, runs in runs_by_fold(args.runs):
        pairs = evaluation_set(test)
        readers = readers_for(train, test, mask)
        target = pairs.target_labels.argmax(1)                     # (P,) emotion asked for
        to_neutral = target == train.label_names.index("neutral")  # (P,) the smile is to be removed
        for run in runs:
            model, _ = load_model(os.path.join(run, "checkpoint.npz"))
            x_hat = model.generate(pairs.x_source, pairs.target_labels)["x_hat"]   # (P, 3, 32, 32)
            cells = []
            for name, (reader, view, ceiling) in readers.items():
                hit = reader.predict(view(x_hat)) == target
                cells.append(f"{name}: ceiling {ceiling:.2f}, expression {hit.mean():.2f} "
                             f"(→ neutral {hit[to_neutral].mean():.2f}, → happy {hit[~to_neutral].mean():.2f})")
            print(f"{os.path.basename(os.path.normpath(run))}: " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()

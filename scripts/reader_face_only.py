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

from tinycdaae.checkpoint import load_model
from tinycdaae.data.datasets import load_dataset, split_for_training
from tinycdaae.evaluation.evalset import evaluation_set
from tinycdaae.evaluation.metrics import face_mask
from tinycdaae.evaluation.reader import ClassifierConfig, ExpressionReader

FOLDS = 4


def fold_of(run_dir):
    """The held-out fold of a run, from the name run.py gives it (...-foldK)."""
    name = os.path.basename(os.path.normpath(run_dir))
    if "-fold" not in name:
        raise SystemExit(f"{run_dir}: expected a run folder named like n2-seed0-fold2")
    return int(name.rsplit("-fold", 1)[1][0])


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
    faces = load_dataset("london", None, folds=FOLDS, size=32, progress=False)
    neutral = faces.label_names.index("neutral")
    mask = face_mask(32, 32).astype(np.float32)                    # (32, 32), broadcast over N and C
    by_fold = {}
    for run in args.runs:
        by_fold.setdefault(fold_of(run), []).append(run)
    for fold, runs in sorted(by_fold.items()):
        train, test = split_for_training(faces, fold, FOLDS)
        pairs = evaluation_set(test)
        readers = readers_for(train, test, mask)
        target = pairs.target_labels.argmax(1)                     # (P,) emotion asked for
        for run in runs:
            model, _ = load_model(os.path.join(run, "checkpoint.npz"))
            x_hat = model.generate(pairs.x_source, pairs.target_labels)["x_hat"]   # (P, 3, 32, 32)
            cells = []
            for name, (reader, view, ceiling) in readers.items():
                read = reader.predict(view(x_hat))
                to_neutral, to_happy = target == neutral, target != neutral
                cells.append(f"{name}: ceiling {ceiling:.2f}, expression {np.mean(read == target):.2f} "
                             f"(→ neutral {np.mean(read[to_neutral] == target[to_neutral]):.2f}, "
                             f"→ happy {np.mean(read[to_happy] == target[to_happy]):.2f})")
            print(f"{os.path.basename(os.path.normpath(run))}: " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()

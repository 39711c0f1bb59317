"""docs/size64.png: the same held-out London people, N2 at 32x32 next to N2 at 64x64.

    python scripts/size64_picture.py --small runs/size64/n2-32-seed0 --large runs/size64/n2-64-seed0 \
        [--people 5] [--out docs/size64.png]

Both runs must hold out the same fold (same recipe and seed is the fair comparison). One row per
person and direction: the real source photo, the 32x32 network's output, the 64x64 network's, and
the real photo with the target label; first neutral -> happy, then happy -> neutral. Every face is
shown 128 px wide (32x32 enlarged 4x, 64x64 enlarged 2x, nearest neighbour), the source and the
real target at 64x64.
"""
import argparse
import os

import numpy as np

from tinycdaae import backend, checkpoint, grids
from tinycdaae.data.datasets import load_dataset, split_for_training


def held_out(run, size):
    """The held-out FaceSet of a run (its fold), aligned at `size`, and its model."""
    path = os.path.join(run, "checkpoint.npz")
    meta, _ = checkpoint.read(path, arrays=False)
    o = meta["extra"]["options"]
    faces = load_dataset(o["dataset"], folds=o["folds"], size=size, progress=False)
    _, test = split_for_training(faces, o["fold"], o["folds"], seed=0)
    model = checkpoint.load_model(path)[0]
    assert model.config.image_size == size, f"{run} is a {model.config.image_size}x{model.config.image_size} run"
    return test, model, (o["fold"], o["folds"])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", required=True, help="a 32x32 London run directory")
    parser.add_argument("--large", required=True, help="a 64x64 London run directory")
    parser.add_argument("--people", type=int, default=5)
    parser.add_argument("--out", default=os.path.join("docs", "size64.png"))
    args = parser.parse_args()
    backend.use("cpu")
    test32, model32, fold32 = held_out(args.small, 32)
    test64, model64, fold64 = held_out(args.large, 64)
    assert fold32 == fold64 and np.array_equal(test32.subjects, test64.subjects), "runs hold out different people"
    names = list(test64.label_names)
    rows = []
    for source, target in (("neutral", "happy"), ("happy", "neutral")):
        label = np.eye(len(names), dtype=np.float32)[names.index(target)]
        for person in test64.subject_ids[:args.people]:
            mine = test64.subjects == person
            i = np.flatnonzero(mine & (test64.labels.argmax(1) == names.index(source)))[0]
            j = np.flatnonzero(mine & (test64.labels.argmax(1) == names.index(target)))[0]
            small = grids.generate(model32, test32.images[i][None], label[None])[0, 0]     # (3, 32, 32)
            large = grids.generate(model64, test64.images[i][None], label[None])[0, 0]     # (3, 64, 64)
            small = small.repeat(2, axis=1).repeat(2, axis=2)                              # shown as 64x64
            rows.append([test64.images[i], small, large, test64.images[j]])
    grids.save_png(args.out, grids.tile(np.asarray(rows, np.float32), scale=2))
    print(f"wrote {args.out}: columns source photo, N2 32x32, N2 64x64, real target; "
          f"rows neutral -> happy then happy -> neutral, {args.people} held-out people (fold {fold64[0]})")


if __name__ == "__main__":
    main()

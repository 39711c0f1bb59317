"""Where does a London run's MSE to the real target come from? The face, or the crop around it?

    python scripts/mse_by_region.py runs/london/n2-seed0-fold0 runs/london/n2-seed1-fold1 ...

`run.py evaluate` scores the MSE between each generated face and the person's real photo with the
target label, over the whole 32×32 crop. Two photos of one person differ all over that crop, not
only where the expression is: hair falls differently, the head turns a little, the light of the
session changes. This script splits the same MSE (every held-out pair that changes the
expression, as `evaluate` takes them) into three regions that add up to it:

    face    inside the face ellipse (evaluation.metrics.face_mask, the identity column's face)
    sides   the 5 leftmost and 5 rightmost columns outside it (hair, ears, backdrop)
    rest    everything else (forehead, hair on top, neck, collar)

each as Σ over the region's pixels of the squared error / the number of pixels in the whole
crop, for the run and for copying the input. Measured in docs/stability.md ("Where fold 0's
distance to the target lies").
"""
import argparse
import os

import numpy as np
from reader_face_only import runs_by_fold  # scripts/: each run's split, as `evaluate` reads it

from tinycdaae.checkpoint import load_model
from tinycdaae.evaluation.evalset import evaluation_set
from tinycdaae.evaluation.metrics import face_mask

SIDE_COLUMNS = 5


def regions(size=32):
    """{name: (H, W) bool}: face, sides, rest; disjoint, covering the crop."""
    face = face_mask(size, size)
    sides = np.zeros((size, size), bool)
    sides[:, :SIDE_COLUMNS] = sides[:, -SIDE_COLUMNS:] = True
    sides &= ~face
    return {"face": face, "sides": sides, "rest": ~face & ~sides}


def split_mse(images, targets, masks):
    """images, targets (P, 3, H, W) -> {region: its share of the MSE}; the shares sum to the MSE."""
    error = ((np.asarray(images) - np.asarray(targets)) ** 2).mean(axis=1)      # (P, H, W)
    pixels = error.shape[1] * error.shape[2]
    return {name: float(error[:, mask].sum(axis=1).mean() / pixels) for name, mask in masks.items()}


def describe(shares):
    return (f"{sum(shares.values()):.4f} = face {shares['face']:.4f} + sides {shares['sides']:.4f} "
            f"+ rest {shares['rest']:.4f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="London run folders (each holding checkpoint.npz)")
    args = p.parse_args()
    masks = regions(32)
    for fold, _, test, runs in runs_by_fold(args.runs):
        pairs = evaluation_set(test)
        copying = split_mse(pairs.x_source, pairs.x_target, masks)
        print(f"fold {fold}, copying the input: {describe(copying)}", flush=True)
        for run in runs:
            model, _ = load_model(os.path.join(run, "checkpoint.npz"))
            x_hat = model.generate(pairs.x_source, pairs.target_labels)["x_hat"]   # (P, 3, 32, 32)
            shares = split_mse(x_hat, pairs.x_target, masks)
            change = shares["face"] / copying["face"] - 1
            print(f"  {os.path.basename(os.path.normpath(run))}: {describe(shares)} (in the face "
                  f"{abs(change):.0%} {'below' if change < 0 else 'above'} copying)", flush=True)


if __name__ == "__main__":
    main()

"""scripts/mse_by_region.py: its three regions tile the crop, and their shares add up to the MSE
that `evaluate` reports, so the split in docs/stability.md accounts for all of it."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
from mse_by_region import SIDE_COLUMNS, regions, split_mse  # noqa: E402

from tinycdaae.evaluation.metrics import face_mask  # noqa: E402


def test_the_regions_tile_the_crop():
    masks = regions(32)
    stacked = np.stack(list(masks.values()))                       # (3, 32, 32)
    assert (stacked.sum(axis=0) == 1).all()                        # disjoint, and nothing left out
    assert np.array_equal(masks["face"], face_mask(32, 32))
    middle = masks["sides"][:, SIDE_COLUMNS:-SIDE_COLUMNS]
    assert not middle.any() and masks["sides"].sum() > 8 * SIDE_COLUMNS       # the two side bands only


def test_the_shares_add_up_to_the_mse_and_land_where_the_error_is():
    rng = np.random.default_rng(0)
    targets = rng.uniform(-1, 1, (6, 3, 32, 32)).astype(np.float32)
    images = targets + rng.normal(0, 0.1, targets.shape).astype(np.float32)
    shares = split_mse(images, targets, regions(32))
    assert sum(shares.values()) == pytest.approx(float(((images - targets) ** 2).mean()), rel=1e-5)
    only_sides = targets.copy()
    only_sides[..., 0] += 0.5                                      # an error in the first column only
    moved = split_mse(only_sides, targets, regions(32))
    assert moved["face"] == 0 and moved["rest"] == 0 and moved["sides"] > 0

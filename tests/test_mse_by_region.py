"""scripts/mse_by_region.py: its three regions tile the crop, and their shares add up to the MSE
that `evaluate` reports, so the split in docs/stability.md accounts for all of it."""
import importlib
import os

import numpy as np
import pytest

from tinycdaae.evaluation.metrics import face_mask

SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts")


@pytest.fixture
def script(monkeypatch):
    """scripts/mse_by_region.py as a module; it imports its neighbour reader_face_only, as it does
    when run from scripts/."""
    monkeypatch.syspath_prepend(SCRIPTS)
    return importlib.import_module("mse_by_region")


def test_the_regions_tile_the_crop(script):
    masks, SIDE_COLUMNS = script.regions(32), script.SIDE_COLUMNS
    stacked = np.stack(list(masks.values()))                       # (3, 32, 32)
    assert (stacked.sum(axis=0) == 1).all()                        # disjoint, and nothing left out
    assert np.array_equal(masks["face"], face_mask(32, 32))
    middle = masks["sides"][:, SIDE_COLUMNS:-SIDE_COLUMNS]
    assert not middle.any() and masks["sides"].sum() > 8 * SIDE_COLUMNS       # the two side bands only


def test_the_shares_add_up_to_the_mse_and_land_where_the_error_is(script):
    regions, split_mse = script.regions, script.split_mse
    rng = np.random.default_rng(0)
    targets = rng.uniform(-1, 1, (6, 3, 32, 32)).astype(np.float32)
    images = targets + rng.normal(0, 0.1, targets.shape).astype(np.float32)
    shares = split_mse(images, targets, regions(32))
    assert sum(shares.values()) == pytest.approx(float(((images - targets) ** 2).mean()), rel=1e-5)
    only_sides = targets.copy()
    only_sides[..., 0] += 0.5                                      # an error in the first column only
    moved = split_mse(only_sides, targets, regions(32))
    assert moved["face"] == 0 and moved["rest"] == 0 and moved["sides"] > 0

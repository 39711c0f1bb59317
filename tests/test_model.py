"""The CDAAE network, its objective and checkpoints (issue: the CDAAE)."""
import os

import numpy as np
import pytest

from tinycdaae import checkpoint, gradcheck
from tinycdaae.backend import to_device, to_host
from tinycdaae.model import CDAAE, ModelConfig
from tinycdaae.objective import Objective

SKIPS = ("n1", "n2", "n3", "none")


def small_model(skip="n2", seed=0, **kw):
    return CDAAE(ModelConfig(skip=skip, width=0.125, label_dim=8, seed=seed, **kw))


def smooth_batch(n, seed):
    """n smooth 32×32 RGB images in [-1, 1] (random low-frequency patterns, learnable fast)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32] / 32.0
    freq = rng.uniform(0.5, 3, (n, 3, 2))
    phase = rng.uniform(0, 2 * np.pi, (n, 3))
    img = np.sin(2 * np.pi * (freq[..., 0, None, None] * xx + freq[..., 1, None, None] * yy) + phase[..., None, None])
    return (0.8 * img).astype(np.float32)                                  # (n, 3, 32, 32)


def fixed_pairs(n=8, seed=0):
    x_s, x_t = smooth_batch(n, seed), smooth_batch(n, seed + 1)
    labels = np.eye(8, dtype=np.float32)[np.arange(n) % 8]
    return x_s, x_t, labels


@pytest.mark.parametrize("group,desc,thunk", gradcheck.network_checks(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_whole_network_gradients_every_block(group, desc, thunk):
    errors = thunk()
    expected = {"E1", "E2", "G1", "G2", "D_E", "D_G"} if desc.startswith("autoencoder") else {"D_E", "D_G"}
    assert set(errors) == expected                       # every block was covered
    assert max(errors.values()) < gradcheck.NETWORK_TOLERANCE, errors


@pytest.mark.parametrize("skip,shape", [("n1", (64, 16, 16)), ("n2", (128, 8, 8)), ("n3", (256, 4, 4)), ("none", None)])
def test_shapes_at_reference_width(skip, shape):
    model = CDAAE(ModelConfig(skip=skip))
    x = np.zeros((2, 3, 32, 32), np.float32)
    out = model.generate(x, np.eye(8, dtype=np.float32)[:2])
    assert out["x_hat"].shape == (2, 3, 32, 32) and out["z"].shape == (2, 100)
    assert (out["d"] is None) if shape is None else out["d"].shape == (2,) + shape
    assert np.abs(out["x_hat"]).max() <= 1                        # tanh output
    if shape is not None:
        assert np.abs(out["d"]).max() <= 1                         # G1 ends in tanh: a bounded difference
    # the reference layer widths (docstring of tinycdaae/model.py)
    assert [p.shape for p in model.E1.params() + model.E2.params() if p.name.endswith(".w")] == \
        [(64, 3, 5, 5), (128, 64, 5, 5), (256, 128, 5, 5), (512, 256, 5, 5), (100, 2048)]
    assert [p.shape for p in model.D_E.params() if p.name.endswith(".w")] == [(64, 100), (32, 64), (16, 32), (1, 16)]
    assert [p.shape for p in model.D_G.params() if p.name.endswith(".w")] == \
        [(16, 3, 5, 5), (32, 16, 5, 5), (64, 32, 5, 5), (128, 64, 5, 5), (1024, 512), (1, 1024)]


@pytest.mark.parametrize("skip", SKIPS)
def test_the_skip_connection_is_really_there(skip, monkeypatch):
    """Perturb E1's features on the skip path only (E2 keeps seeing the original features):
    x̂ must change for N1/N2/N3 and must not for `none`."""
    model = small_model(skip)
    x_s, _, labels = map(to_device, fixed_pairs(4))
    x_hat, z, _, _ = model.autoencode(x_s, labels)
    h, _ = model.E1.forward(x_s)
    original_e1, original_e2 = model.E1.forward, model.E2.forward
    monkeypatch.setattr(model.E2, "forward", lambda features: original_e2(h))     # E2 sees the original h
    monkeypatch.setattr(model.E1, "forward", lambda x: (original_e1(x)[0] + 0.5, None))
    x_hat_perturbed, z_perturbed, _, _ = model.autoencode(x_s, labels)
    np.testing.assert_array_equal(to_host(z), to_host(z_perturbed))
    change = np.abs(to_host(x_hat_perturbed) - to_host(x_hat)).max()
    if skip == "none":
        assert change == 0
    else:
        assert change > 1e-3


def test_seeded_training_is_bit_identical():
    x_s, x_t, labels = fixed_pairs()
    runs = []
    for _ in range(2):
        objective = Objective(small_model("n2", seed=3), prior_seed=5)
        losses = [objective.step(x_s, x_t, labels) for _ in range(3)]
        runs.append((losses, [to_host(p.data.copy()) for p in objective.model.params()]))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)
    other = Objective(small_model("n2", seed=4), prior_seed=5)
    assert other.step(x_s, x_t, labels) != runs[0][0][0]          # the seed matters


@pytest.mark.parametrize("skip", ["n2", "none"])
def test_save_load_continue_equals_one_run(tmp_path, skip):
    x_s, x_t, labels = fixed_pairs()
    straight = Objective(small_model(skip), real_label=0.9)
    for _ in range(5):
        straight.step(x_s, x_t, labels)

    first = Objective(small_model(skip), real_label=0.9)
    for _ in range(3):
        first.step(x_s, x_t, labels)
    path = tmp_path / "ckpt.npz"
    checkpoint.save(path, first, extra={"epoch": 1})
    resumed, extra = checkpoint.load(path)
    assert extra == {"epoch": 1} and resumed.step_count == 3 and resumed.config.real_label == 0.9
    for _ in range(2):
        resumed.step(x_s, x_t, labels)
    for a, b in zip(straight.model.params(), resumed.model.params()):
        assert a.name == b.name
        np.testing.assert_array_equal(to_host(a.data), to_host(b.data))
    for name, opt in straight.optimizers.items():
        assert opt.t == resumed.optimizers[name].t
        for p, q in zip(opt.params, resumed.optimizers[name].params):
            np.testing.assert_array_equal(to_host(opt.m[p]), to_host(resumed.optimizers[name].m[q]))


def test_checkpoint_from_another_network_is_refused_naming_the_mismatch(tmp_path):
    path = tmp_path / "n1.npz"
    checkpoint.save(path, Objective(small_model("n1")))
    target = Objective(CDAAE(ModelConfig(skip="n2", width=0.25, label_dim=12)))
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.restore(path, target)
    message = str(err.value)
    assert "skip: checkpoint has 'n1', this model has 'n2'" in message
    assert "width" in message and "label_dim" in message and "latent_dim" not in message


def test_missing_or_corrupt_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(checkpoint.CheckpointError, match="not a readable"):
        checkpoint.load(bad)


def test_a_save_killed_midway_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    objective = Objective(small_model())
    path = tmp_path / "ckpt.npz"
    checkpoint.save(path, objective, extra={"epoch": 1})
    before = path.read_bytes()
    x_s, x_t, labels = fixed_pairs()
    objective.step(x_s, x_t, labels)

    def dies_midway(file, **arrays):
        file.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt                                   # Ctrl-C during the write
    monkeypatch.setattr(np, "savez", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, objective, extra={"epoch": 2})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.npz"]                    # no temporary file left behind
    monkeypatch.undo()
    _, extra = checkpoint.load(path)
    assert extra == {"epoch": 1}


def test_a_few_hundred_steps_drive_the_reconstruction_loss_down():
    """8 fixed pairs, 300 steps at width 1/8, the paper's hyper-parameters. The loss starts near
    the targets' variance (~0.33) and the autoencoder memorises 8 smooth targets: measured drops
    are 30× (seed 1) and 21× (seed 2). We assert 10×: a broken gradient or update stays near 1×,
    while the margin absorbs seed-to-seed variation."""
    x_s, x_t, labels = fixed_pairs()
    objective = Objective(small_model("n2", seed=1))
    first = objective.step(x_s, x_t, labels)["loss_R"]
    for _ in range(299):
        last = objective.step(x_s, x_t, labels)
    assert last["loss_R"] < first / 10, (first, last)
    assert np.isfinite(list(last.values())).all()


def test_the_weight_average_changes_what_draws_never_how_it_trains(tmp_path):
    """ema_decay > 0 keeps θ̄ beside training: the trained weights stay bit for bit those of a run
    without it; the checkpoint carries θ̄ (and resumes it exactly); load_model draws with θ̄."""
    x_s, x_t, labels = fixed_pairs()
    plain, averaged = Objective(small_model()), Objective(small_model(), ema_decay=0.9)
    for _ in range(3):
        plain.step(x_s, x_t, labels)
        averaged.step(x_s, x_t, labels)
    for a, b in zip(plain.model.params(), averaged.model.params()):
        np.testing.assert_array_equal(to_host(a.data), to_host(b.data))
    assert averaged.average.t == 3 and plain.average is None
    path = tmp_path / "ckpt.npz"
    checkpoint.save(path, averaged)
    drawn, _ = checkpoint.load_model(path)
    with averaged.drawing_weights():
        expected = averaged.model.generate(x_s, labels)["x_hat"]
    np.testing.assert_array_equal(drawn.generate(x_s, labels)["x_hat"], expected)
    assert not np.array_equal(expected, averaged.model.generate(x_s, labels)["x_hat"])   # θ̄ ≠ θ
    resumed, _ = checkpoint.load(path)                      # resuming restores θ (and the average)
    for objective in (averaged, resumed):
        objective.step(x_s, x_t, labels)
    for p, q in zip(averaged.average.params, resumed.average.params):
        np.testing.assert_array_equal(to_host(averaged.average.averaged(p)), to_host(resumed.average.averaged(q)))
    arrays = dict(np.load(path))                            # a checkpoint that lost its average
    np.savez(tmp_path / "cut.npz", **{k: v for k, v in arrays.items() if not k.startswith("average/")})
    with pytest.raises(checkpoint.CheckpointError, match="no array 'average/"):
        checkpoint.load(tmp_path / "cut.npz")

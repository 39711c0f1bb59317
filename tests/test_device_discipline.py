"""The CuPy path without a GPU: run the real training step, generation and a checkpoint on a strict
stand-in array module (tests/strict_device.py) that fails on NumPy functions applied to device
arrays, on host arrays mixed into device arithmetic, and on implicit device->host conversion."""
import numpy as np
import pytest
import strict_device

from tinycdaae import backend, checkpoint
from tinycdaae.model import CDAAE, ModelConfig
from tinycdaae.objective import Objective


@pytest.fixture
def strict_backend():
    backend.use_module(strict_device.xp, "strict")
    strict_device.transfers["scalar"] = 0
    yield strict_device
    backend.use("cpu")


def test_the_stand_in_catches_each_mistake(strict_backend):
    dev = backend.to_device(np.ones((2, 3), np.float32))
    with pytest.raises(strict_device.DeviceDisciplineError, match="np.concatenate"):
        np.concatenate([dev, dev])
    with pytest.raises(strict_device.DeviceDisciplineError, match="mixed"):
        dev + np.ones((2, 3), np.float32)
    with pytest.raises(strict_device.DeviceDisciplineError, match="np.where"):
        np.where(dev > 0, dev, 0)
    with pytest.raises(strict_device.DeviceDisciplineError, match="tolist"):
        dev.tolist()
    with pytest.raises(strict_device.DeviceDisciplineError, match="assigned"):
        dev[...] = np.zeros((2, 3), np.float32)
    dev[0] = 5.0                                                   # scalars are fine, as on CuPy
    assert isinstance(backend.xp.concatenate([dev, dev]), strict_device.DeviceArray)
    assert backend.to_host(dev * 2).sum() == 2 * (5 * 3 + 3)


def test_the_host_only_numpy_functions_refuse_device_arrays(strict_backend, monkeypatch):
    """What `--device strict` installs around every test: np.asarray(dev) and np.testing on a
    device result raise, as on CuPy, where the stand-in's arrays alone cannot refuse them."""
    for module, name, replacement in strict_device.host_only_functions():
        monkeypatch.setattr(module, name, replacement)
    dev = backend.to_device(np.ones(3))
    with pytest.raises(strict_device.DeviceDisciplineError, match="np.asarray"):
        np.asarray(dev)
    with pytest.raises(strict_device.DeviceDisciplineError, match="np.testing.assert_allclose"):
        np.testing.assert_allclose(dev, 1.0)
    np.testing.assert_allclose(backend.to_host(dev), 1.0)


@pytest.mark.parametrize("skip", ["n2", "none"])
def test_training_step_generation_and_checkpoint_stay_on_device(strict_backend, skip, tmp_path):
    rng = np.random.default_rng(0)
    x_s, x_t = rng.uniform(-1, 1, (2, 4, 3, 32, 32)).astype(np.float32)
    labels = np.eye(8, dtype=np.float32)[[0, 1, 2, 3]]
    objective = Objective(CDAAE(ModelConfig(skip=skip, width=0.0625)))
    assert all(isinstance(p.data, strict_device.DeviceArray) for p in objective.model.params())
    metrics = objective.step(x_s, x_t, labels)                     # host batches go in; fine
    metrics = objective.step(x_s, x_t, labels, adversarial=False)
    assert np.isfinite(list(metrics.values())).all()
    # per step, only the returned metrics cross to the host: one scalar per loss/accuracy
    strict_device.transfers["scalar"] = 0
    metrics = objective.step(x_s, x_t, labels)
    assert strict_device.transfers["scalar"] == len(metrics)
    out = objective.model.generate(x_s, labels)
    assert type(out["x_hat"]) is np.ndarray and out["x_hat"].shape == (4, 3, 32, 32)
    checkpoint.save(tmp_path / "c.npz", objective)
    restored = Objective(CDAAE(ModelConfig(skip=skip, width=0.0625, seed=9)))
    checkpoint.restore(tmp_path / "c.npz", restored)
    for p, q in zip(objective.model.params(), restored.model.params()):
        assert isinstance(q.data, strict_device.DeviceArray)
        np.testing.assert_array_equal(backend.to_host(p.data), backend.to_host(q.data))


def test_the_strict_run_computes_the_same_numbers_as_numpy(strict_backend):
    rng = np.random.default_rng(1)
    x_s, x_t = rng.uniform(-1, 1, (2, 4, 3, 32, 32)).astype(np.float32)
    labels = np.eye(8, dtype=np.float32)[[4, 5, 6, 7]]
    strict = Objective(CDAAE(ModelConfig(width=0.0625))).step(x_s, x_t, labels)
    backend.use("cpu")
    plain = Objective(CDAAE(ModelConfig(width=0.0625))).step(x_s, x_t, labels)
    assert strict == plain


def test_gradient_checks_run_on_the_device_backend(strict_backend):
    """The gradient checker works on device arrays too (what a lent GPU runs in float64): every
    layer/loss row and one whole-network row pass under the strict stand-in."""
    from tinycdaae import gradcheck
    for group, desc, thunk in gradcheck.layer_checks():
        errors = thunk()
        assert max(errors.values()) < gradcheck.LAYER_TOLERANCE, (group, desc, errors)
    for group, desc, thunk in gradcheck.network_checks(skips=("n2",), entries_per_param=1):
        errors = thunk()
        assert max(errors.values()) < gradcheck.NETWORK_TOLERANCE, (group, desc, errors)


def test_the_expression_reader_reads_its_loss_back_once_per_epoch(strict_backend):
    """The evaluation's reader trains on the device; its loss is summed there and read back once
    per epoch (a float() per batch would stall a GPU on every batch)."""
    from tinycdaae.evaluation import ClassifierConfig, ExpressionReader
    rng = np.random.default_rng(2)
    images = rng.uniform(-1, 1, (40, 3, 32, 32)).astype(np.float32)
    labels = np.eye(8, dtype=np.float32)[rng.integers(0, 8, 40)]
    reader = ExpressionReader("emotion", 8, ClassifierConfig(epochs=2, batch_size=8))    # 5 batches an epoch
    reader.fit(images, labels)
    assert len(reader.history) == 2 and strict_device.transfers["scalar"] == 2

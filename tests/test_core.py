"""Layers, losses, Adam and the gradient checker (issue: core)."""
import platform
import subprocess
import sys

import numpy as np
import pytest

from tinycdaae import backend, gradcheck, im2col, layers, losses, reference
from tinycdaae.backend import to_device, to_host
from tinycdaae.model import CDAAE, ModelConfig
from tinycdaae.objective import Objective, ObjectiveConfig
from tinycdaae.optim import Adam, WeightAverage

F64 = np.float64


@pytest.mark.parametrize("group,desc,thunk", gradcheck.layer_checks(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_every_layer_and_loss_passes_gradcheck(group, desc, thunk):
    errors = thunk()
    assert len(errors) >= 1
    assert max(errors.values()) < gradcheck.LAYER_TOLERANCE, (group, desc, errors)


@pytest.fixture(params=["channels-last col2im", "few-channels col2im"])
def col2im_path(request, monkeypatch):
    """Run a test through each of the two col2im strategies (im2col.col2im_of_product picks one
    by the channel count; forcing the threshold makes every shape take the chosen one)."""
    monkeypatch.setattr(im2col, "FEW_CHANNELS", -1 if request.param.startswith("channels-last") else 10**6)
    return request.param


def test_few_channels_col2im_equals_col2im():
    rng = np.random.default_rng(5)
    for n, out_h, out_w, k_h, k_w, c, s in [(2, 4, 5, 5, 5, 3, 2), (1, 3, 3, 3, 2, 2, 1), (2, 3, 2, 4, 4, 1, 3)]:
        cols = rng.standard_normal((n, out_h, out_w, k_h, k_w, c))
        padded_h, padded_w = (out_h - 1) * s + k_h + 1, (out_w - 1) * s + k_w   # with and without a spare row
        expected = to_host(im2col.col2im(to_device(cols), padded_h, padded_w, s))
        cols_t = to_device(np.ascontiguousarray(cols.transpose(3, 4, 5, 0, 1, 2)))   # (HH, WW, C, N, H', W')
        got = to_host(im2col.col2im_few_channels(cols_t, padded_h, padded_w, s))
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("n,c,h,w,f,k,s,p", [
    (2, 3, 8, 8, 4, 5, 2, 2), (1, 1, 7, 5, 2, 3, 1, 1), (3, 2, 9, 9, 3, 4, 3, 0), (2, 4, 6, 7, 5, 1, 1, 0)])
def test_conv_matches_loop_oracle_forward_and_backward(n, c, h, w, f, k, s, p, col2im_path):
    rng = np.random.default_rng(0)
    conv = layers.Conv2d(c, f, k, s, p, rng=rng, dtype=F64)
    x = rng.standard_normal((n, c, h, w))
    y, cache = conv.forward(to_device(x))
    w_, b_ = to_host(conv.w.data), to_host(conv.b.data)
    np.testing.assert_allclose(to_host(y), reference.conv2d_loop(x, w_, b_, s, p), rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(y.shape)
    dx = conv.backward(to_device(dout), cache)
    dx_ref, dw_ref, db_ref = reference.conv2d_loop_backward(dout, x, w_, s, p)
    np.testing.assert_allclose(to_host(dx), dx_ref, atol=1e-12)
    np.testing.assert_allclose(to_host(conv.w.grad), dw_ref, atol=1e-12)
    np.testing.assert_allclose(to_host(conv.b.grad), db_ref, atol=1e-12)


@pytest.mark.parametrize("n,c,h,w,f,k,s,p,op", [
    (2, 3, 4, 4, 2, 5, 2, 2, 1), (1, 1, 3, 5, 2, 3, 2, 0, 0), (2, 2, 3, 3, 3, 3, 1, 1, 0), (1, 2, 2, 3, 1, 4, 3, 1, 2)])
def test_conv_transpose_matches_loop_oracle(n, c, h, w, f, k, s, p, op, col2im_path):
    rng = np.random.default_rng(1)
    deconv = layers.ConvTranspose2d(c, f, k, s, p, op, rng=rng, dtype=F64)
    x = rng.standard_normal((n, c, h, w))
    y, _ = deconv.forward(to_device(x))
    expected = reference.conv_transpose2d_loop(x, to_host(deconv.w.data), to_host(deconv.b.data), s, p, op)
    assert y.shape == expected.shape == (n, f, (h - 1) * s - 2 * p + k + op, (w - 1) * s - 2 * p + k + op)
    np.testing.assert_allclose(to_host(y), expected, atol=1e-12)


def test_conv_transpose_is_the_adjoint_of_conv(col2im_path):
    """<conv(x), y> = <x, convT(y)> for the same weights and no bias: the defining property."""
    rng = np.random.default_rng(2)
    conv = layers.Conv2d(3, 4, 5, 2, 2, rng=rng, dtype=F64)
    deconv = layers.ConvTranspose2d(4, 3, 5, 2, 2, 1, rng=rng, dtype=F64)
    deconv.w.data[...] = conv.w.data                      # (F=4, C=3, 5, 5) used as (C_in=4, F_out=3)
    conv.b.data[...] = 0
    deconv.b.data[...] = 0
    x, y = to_device(rng.standard_normal((2, 3, 8, 8))), to_device(rng.standard_normal((2, 4, 4, 4)))
    assert np.isclose(float((conv.forward(x)[0] * y).sum()), float((x * deconv.forward(y)[0]).sum()), rtol=1e-12)


def test_same_padding_halves_and_doubles_like_the_reference_net():
    x = to_device(np.zeros((2, 3, 32, 32), np.float32))
    y, _ = layers.Conv2d(3, 8, 5, 2, 2).forward(x)
    assert y.shape == (2, 8, 16, 16) and y.dtype == np.float32
    z, _ = layers.ConvTranspose2d(8, 3, 5, 2, 2, 1).forward(y)
    assert z.shape == (2, 3, 32, 32)


def test_plain_nchw_inputs_and_weights_give_the_same_numbers():
    """Memory order is only a speed detail: a C-contiguous weight and input give identical y."""
    rng = np.random.default_rng(3)
    conv = layers.Conv2d(3, 5, 5, 2, 2, rng=rng, dtype=F64)
    x = to_device(rng.standard_normal((2, 3, 8, 8)))
    y1, _ = conv.forward(x)
    conv.w.data = backend.xp.ascontiguousarray(conv.w.data)
    y2, _ = conv.forward(backend.xp.asfortranarray(x))
    np.testing.assert_array_equal(to_host(y1), to_host(y2))


def test_planted_wrong_gradient_is_caught():
    class BrokenTanh(layers.Tanh):
        def backward(self, dout, y):
            return dout * (1 - y)          # forgot to square y

    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 4))
    assert max(gradcheck.check_layer(layers.Tanh(), x, rng).values()) < 1e-7
    assert max(gradcheck.check_layer(BrokenTanh(), x, rng).values()) > 1e-2

    class ForgotBiasGrad(layers.Dense):
        def backward(self, dout, x):
            self.w.grad += dout.T @ x
            return dout @ self.w.data      # bias gradient never added

    errors = gradcheck.check_layer(ForgotBiasGrad(3, 2, dtype=F64), rng.standard_normal((4, 3)), rng)
    assert errors["dense.b"] > 0.5 and errors["dense.w"] < 1e-7


def test_gradcheck_refuses_float32():
    with pytest.raises(TypeError, match="float64"):
        gradcheck.check_layer(layers.Dense(3, 2), np.ones((2, 3), np.float32))


def test_layer_used_twice_accumulates_both_gradients():
    """A discriminator sees a real and a fake batch in one step: its weight gradient must be the
    sum of both calls' gradients, which is what you get from one call on the stacked batch."""
    rng = np.random.default_rng(5)
    conv = layers.Conv2d(2, 3, 5, 2, 2, rng=rng, dtype=F64)
    real, fake = to_device(rng.standard_normal((2, 2, 6, 6))), to_device(rng.standard_normal((3, 2, 6, 6)))
    d_real, d_fake = to_device(rng.standard_normal((2, 3, 3, 3))), to_device(rng.standard_normal((3, 3, 3, 3)))
    conv.zero_grad()
    y_real, cache_real = conv.forward(real)
    y_fake, cache_fake = conv.forward(fake)        # second call must not overwrite the first cache
    conv.backward(d_real, cache_real)
    conv.backward(d_fake, cache_fake)
    two_calls = conv.w.grad.copy(), conv.b.grad.copy()
    conv.zero_grad()
    _, cache = conv.forward(backend.xp.concatenate([real, fake]))
    conv.backward(backend.xp.concatenate([d_real, d_fake]), cache)
    np.testing.assert_allclose(to_host(two_calls[0]), to_host(conv.w.grad), atol=1e-12)
    np.testing.assert_allclose(to_host(two_calls[1]), to_host(conv.b.grad), atol=1e-12)
    conv.zero_grad()
    assert not conv.w.grad.any() and not conv.b.grad.any()


def test_adam_matches_hand_computed_updates():
    """Three steps of Adam on one scalar, computed by hand from Algorithm 1 of the paper."""
    p = layers.Param(to_device(np.array([1.0])), "theta")
    opt = Adam([p], lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8)
    grads = [0.5, -1.0, 2.0]
    m = v = 0.0
    theta = 1.0
    for t, g in enumerate(grads, start=1):
        p.grad[...] = g
        opt.step()
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        theta -= 0.1 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        assert float(p.data[0]) == pytest.approx(theta, rel=1e-12)
    # first step of Adam moves every parameter by ~lr whatever the gradient's scale
    q = layers.Param(to_device(np.array([0.0, 0.0])))
    q.grad[...] = to_device(np.array([1e-4, -300.0]))
    Adam([q], lr=0.01).step()
    np.testing.assert_allclose(to_host(q.data), [-0.01, 0.01], rtol=1e-3)


@pytest.mark.parametrize("beta2, bound", [(0.999, 3.16), (0.99, 1.0)])
def test_adam_step_after_a_sudden_large_gradient_is_bounded_by_beta2(beta2, bound):
    """After a long run of small gradients (1e-3), a gradient 1000x larger moves the weight by about
    lr·(1 − β1)/√(1 − β2): 3.16·lr with β2 = 0.999, 1·lr with 0.99. That ratio, not the size of
    the gradient, is how far one surprising batch can throw the network (docs/stability.md)."""
    p = layers.Param(to_device(np.array([0.0])), "theta")
    opt = Adam([p], lr=0.01, beta1=0.9, beta2=beta2)
    for _ in range(3000):
        p.grad[...] = 1e-3
        opt.step()
    before = float(p.data[0])
    p.grad[...] = 1.0
    opt.step()
    step = (before - float(p.data[0])) / 0.01                  # in units of lr
    assert step == pytest.approx(bound, rel=0.02)


def test_an_objective_hands_both_adam_betas_to_all_three_optimizers():
    model = CDAAE(ModelConfig(label_dim=2, width=0.0625))
    objective = Objective(model, ObjectiveConfig(adam_beta1=0.5, adam_beta2=0.99))
    assert [(o.beta1, o.beta2) for o in objective.optimizers.values()] == [(0.5, 0.99)] * 3
    assert [(o.beta1, o.beta2) for o in Objective(model).optimizers.values()] == [(0.9, 0.999)] * 3


def test_adam_state_is_per_parameter_object():
    a, b = layers.Param(to_device(np.zeros(2)), "w"), layers.Param(to_device(np.zeros(2)), "w")   # same name on purpose
    opt = Adam([a, b], lr=0.1)
    a.grad[...], b.grad[...] = 1.0, -1.0
    opt.step()
    assert (opt.m[a] > 0).all() and (opt.m[b] < 0).all()
    with pytest.raises(ValueError, match="twice"):
        Adam([a, a])


def test_weight_average_is_the_bias_corrected_moving_average():
    """θ̄_t = Σ_i (1 − δ) δ^(t−i) θ_i / (1 − δ^t), computed by hand for three steps of θ."""
    p = layers.Param(to_device(np.array([5.0])), "theta")
    average = WeightAverage([p], decay=0.9)
    assert float(average.averaged(p)[0]) == 5.0                  # nothing averaged yet: θ itself
    thetas = [1.0, 2.0, 4.0]
    for t, theta in enumerate(thetas, start=1):
        p.data[...] = theta
        average.update()
        by_hand = sum(0.1 * 0.9 ** (t - i) * thetas[i - 1] for i in range(1, t + 1)) / (1 - 0.9 ** t)
        assert float(to_host(average.averaged(p))[0]) == pytest.approx(by_hand, rel=1e-12)
    assert average.t == 3 and float(to_host(p.data)[0]) == 4.0   # averaging never moves θ
    with pytest.raises(ValueError, match="decay"):
        WeightAverage([p], decay=1.0)


def test_weight_average_swaps_in_and_always_puts_the_weights_back():
    """Inside `swapped_in` the parameters hold θ̄; after it, exactly θ again, also when the block
    raises. A conv weight is a strided view of its layer's storage: it must stay that view."""
    conv = layers.Conv2d(3, 4, 5, 2, rng=np.random.default_rng(0), name="c")
    weight = conv.params()[0]
    theta = to_host(weight.data).copy()
    average = WeightAverage(conv.params(), decay=0.5)
    for shift in (1.0, 3.0):
        weight.data += shift
        average.update()
    after = to_host(weight.data).copy()
    storage, strides = weight.data, weight.data.strides       # the array swapped_in must write into
    with average.swapped_in():
        np.testing.assert_allclose(to_host(weight.data), theta + (0.5 * 1 + 1 * 4) / 1.5, rtol=1e-5)
    np.testing.assert_array_equal(to_host(weight.data), after)
    with pytest.raises(RuntimeError), average.swapped_in():
        raise RuntimeError("a sample picture failed")
    np.testing.assert_array_equal(to_host(weight.data), after)
    assert weight.data is storage and weight.data.strides == strides


def on_device(loss_fn, pred, target):
    """A loss run on the active device from host inputs; (value, gradient) back on the host."""
    value, grad = loss_fn(to_device(pred), to_device(target))
    return to_host(value), to_host(grad)


def test_extreme_logits_give_finite_bce_and_gradients():
    z = np.array([[-1e4], [-80.0], [-50.0], [0.0], [50.0], [80.0], [1e4]], np.float32)
    for target in (0.0, 1.0):
        y = np.full_like(z, target)
        loss, grad = on_device(losses.bce_with_logits, z, y)
        assert np.isfinite(loss) and np.isfinite(grad).all()
    loss, grad = on_device(losses.bce_with_logits, np.array([[1e4]], np.float32), np.array([[0.0]], np.float32))
    assert loss == pytest.approx(1e4, rel=1e-6) and grad[0, 0] == pytest.approx(1.0)
    loss, _ = on_device(losses.bce_with_logits, np.array([[60.0]]), np.array([[1.0]]))
    assert 0 <= loss < 1e-20                               # log(1 + e^-60) ≈ 8.8e-27, not 0 by cancellation


def test_bce_matches_the_naive_formula_where_that_is_safe():
    rng = np.random.default_rng(6)
    z, y = rng.standard_normal((10, 1)), rng.uniform(0, 1, (10, 1))
    s = 1 / (1 + np.exp(-z))
    naive = -(y * np.log(s) + (1 - y) * np.log(1 - s)).mean()
    assert on_device(losses.bce_with_logits, z, y)[0] == pytest.approx(naive, rel=1e-12)


def test_softmax_cross_entropy_known_values_and_extreme_logits():
    # two classes with equal logits: softmax = (1/2, 1/2), loss log 2, gradient (±1/2) / N
    loss, grad = on_device(losses.softmax_cross_entropy, np.zeros((2, 2)), np.eye(2))
    assert loss == pytest.approx(np.log(2)) and np.allclose(grad, [[-0.25, 0.25], [0.25, -0.25]])
    rng = np.random.default_rng(7)
    z, y = rng.standard_normal((6, 5)), np.eye(5)[rng.integers(0, 5, 6)]
    naive = -(y * np.log(np.exp(z) / np.exp(z).sum(1, keepdims=True))).sum(1).mean()
    assert on_device(losses.softmax_cross_entropy, z, y)[0] == pytest.approx(naive, rel=1e-12)
    # logits far beyond float32's exp range: the naive formula overflows, this must not
    z = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 1e4]], np.float32)
    loss, grad = on_device(losses.softmax_cross_entropy, z, np.eye(3, dtype=np.float32)[[0, 0]])
    assert np.isfinite(loss) and np.isfinite(grad).all()
    assert loss == pytest.approx((1e4 + np.log(2)) / 2, rel=1e-6)   # row 1 right and certain; row 2: 1e4 + log 2
    assert grad[0].tolist() == [0, 0, 0] and grad[1, 0] == pytest.approx(-0.5)


def test_mse_value():
    loss, grad = on_device(losses.mse, np.array([1.0, 3.0]), np.array([0.0, 0.0]))
    assert loss == 5.0 and grad.tolist() == [1.0, 3.0]


def test_gradcheck_command_prints_table_and_exit_code(capsys):
    assert gradcheck.main([]) == 0
    out = capsys.readouterr().out
    assert "Conv2d" in out and "ConvTranspose2d" in out and "bce_with_logits" in out and "FAIL" not in out


def test_asking_for_gpu_without_cupy_is_a_clear_error(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_cupy(name, *args, **kwargs):
        if name == "cupy":
            raise ImportError("No module named 'cupy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cupy)
    with pytest.raises(backend.BackendError, match="pip install cupy"):
        backend.use("gpu")
    assert backend.use("auto") is np and backend.device_name() == "cpu"
    backend.use("cpu")


def test_adam_in_cache_blocks_equals_adam_on_whole_arrays(monkeypatch):
    """The CPU path updates parameters block by block in memory order (conv weights are views of
    channels-last storage); it must give exactly the numbers of one pass over whole arrays —
    also for a weight replaced by a plain C-ordered array, whose moments keep the old layout."""
    def make():
        rng = np.random.default_rng(0)
        conv, dense = layers.Conv2d(8, 16, 5, 2, 2, rng=rng), layers.Dense(300, 700, rng=rng)
        for p in conv.params() + dense.params():
            p.grad[...] = to_device(rng.standard_normal(p.shape))
        return conv, dense, Adam(conv.params() + dense.params(), lr=0.01)

    conv_a, dense_a, opt_a = make()
    conv_b, dense_b, opt_b = make()
    monkeypatch.setattr(backend, "elementwise_chunk", lambda: 1000)        # many blocks, a ragged end
    conv_a.w.data = backend.xp.ascontiguousarray(conv_a.w.data)                      # layouts now differ
    for _ in range(3):
        opt_a.step()
    monkeypatch.setattr(backend, "elementwise_chunk", lambda: None)
    conv_b.w.data = backend.xp.ascontiguousarray(conv_b.w.data)
    for _ in range(3):
        opt_b.step()
    initial = [to_host(p.data) for p in make()[0].params() + make()[1].params()]
    for p, q, p0 in zip(conv_a.params() + dense_a.params(), conv_b.params() + dense_b.params(), initial):
        np.testing.assert_array_equal(to_host(p.data), to_host(q.data))
        assert np.abs(to_host(p.data) - p0).min() > 0          # every entry was updated


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="keep_freed_memory tunes glibc's allocator; elsewhere it is a no-op")
def test_keep_freed_memory_makes_repeated_allocations_reuse_memory():
    """A training step allocates the same large temporaries every time. After keep_freed_memory()
    a repeated round of such allocations must not page-fault fresh memory in (glibc's default
    returned it to the OS: ~30,000 faults over these 10 rounds on the development machine)."""
    script = (
        "import resource, numpy as np\n"
        "from tinycdaae import backend\n"
        "assert backend.keep_freed_memory()\n"
        "sizes = [13 << 20, 3 << 20, 8 << 20, 1 << 20, 20 << 20, 5 << 20]\n"
        "def one_round():\n"
        "    arrays = [np.ones(s // 4, np.float32) for s in sizes]   # touches every page\n"
        "for _ in range(3): one_round()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(10): one_round()\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    pages_per_round = sum([13, 3, 8, 1, 20, 5]) * 2 ** 20 // 4096
    assert int(result.stdout) < pages_per_round // 10, result.stdout

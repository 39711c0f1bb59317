"""Checkers for the walkthrough's exercises.

Each exercise is a stub cell in a chapter: a function the learner fills in, followed by
``exercises.check("name", function)``. The checker runs the function on fresh random inputs and
compares it with the package's own code (the library is the reference). It never raises: it prints
"solved" or "not solved yet" with the reason, and returns True or False. That is how every chapter
still runs top to bottom with the stubs unsolved (the test suite runs them that way), while a
learner sees at once whether their answer is right. tests/test_exercises.py checks that every
checker says "not solved yet" to the stub as it is in the notebook and "solved" to the solution in
walkthrough/solutions/.

Stuck? The solutions are in walkthrough/solutions/chNN.py — try first: the derivation above each
stub has everything needed.
"""
import traceback

import numpy as np

from tinycdaae import layers
from tinycdaae.losses import bce_with_logits
from tinycdaae.model import CDAAE, ModelConfig
from tinycdaae.objective import ObjectiveConfig, autoencoder_pass
from tinycdaae.optim import Adam

CHECKS = {}        # name -> checker(fn) -> None if right, else a sentence saying what is wrong
CHAPTER = {}       # name -> the chapter whose stub it is


def exercise(chapter):
    def register(checker):
        CHECKS[checker.__name__] = checker
        CHAPTER[checker.__name__] = chapter
        return checker
    return register


def check(name, fn, quiet=False):
    """Run the checker of exercise `name` on the learner's `fn`. Returns True when it is right."""
    try:
        problem = CHECKS[name](fn)
    except NotImplementedError:
        problem = "the stub still raises NotImplementedError: fill it in"
    except Exception as err:                       # the learner's code crashed: say where
        frame = traceback.extract_tb(err.__traceback__)[-1]
        problem = f"it raised {type(err).__name__}: {err} (line {frame.lineno}: {frame.line})"
    if not quiet:
        if problem is None:
            print(f"[solved] {name}: matches the library.")
        else:
            print(f"[not solved yet] {name}: {problem}")
    return problem is None


def _close(name, got, want, rtol=1e-7, atol=1e-10):
    if got is None:
        return f"{name} is None"
    got = np.asarray(got, dtype=np.float64)
    if got.shape != np.shape(want):
        return f"{name} has shape {got.shape}, expected {np.shape(want)}"
    if not np.allclose(got, want, rtol=rtol, atol=atol):
        err = np.abs(got - want).max()
        return f"{name} differs from the library's by up to {err:.3g}"
    return None


def _first(*problems):
    return next((p for p in problems if p is not None), None)


# ------------------------------------------------------------------------------------ chapter 1
@exercise(1)
def conv_backward_im2col(fn):
    """fn(x, w, dout, stride, pad) -> (dx, dw, db) of a convolution, via im2col and GEMMs."""
    rng = np.random.default_rng(11)
    for (n, c, h, f, k, s, p) in [(2, 3, 7, 4, 5, 2, 2), (1, 2, 6, 3, 3, 1, 1)]:
        conv = layers.Conv2d(c, f, kernel=k, stride=s, pad=p, rng=rng, dtype=np.float64)
        x = rng.standard_normal((n, c, h, h))
        y, cache = conv.forward(x)
        dout = rng.standard_normal(y.shape)
        conv.zero_grad()
        dx = conv.backward(dout, cache)
        got = fn(x.copy(), np.array(conv.w.data), dout.copy(), s, p)
        if not isinstance(got, tuple) or len(got) != 3:
            return "return the tuple (dx, dw, db)"
        problem = _first(_close("dx", got[0], dx), _close("dw", got[1], conv.w.grad), _close("db", got[2], conv.b.grad))
        if problem:
            return problem + f" (kernel {k}, stride {s}, pad {p})"
    return None


# ------------------------------------------------------------------------------------ chapter 2
@exercise(2)
def conv_transpose_forward(fn):
    """fn(x, w, stride, pad, output_pad) -> y: the transposed convolution, bias 0, as a scatter."""
    rng = np.random.default_rng(12)
    for (n, c, h, f, k, s, p, op) in [(2, 3, 4, 2, 5, 2, 2, 1), (1, 2, 3, 3, 3, 2, 1, 0)]:
        layer = layers.ConvTranspose2d(c, f, k, s, p, op, rng=rng, dtype=np.float64)
        layer.b.data[...] = 0
        x = rng.standard_normal((n, c, h, h))
        want = layer.forward(x)[0]
        problem = _close("y", fn(x.copy(), np.array(layer.w.data), s, p, op), want)
        if problem:
            return problem + f" (kernel {k}, stride {s}, pad {p}, output_pad {op})"
    return None


# ------------------------------------------------------------------------------------ chapter 3
@exercise(3)
def dense_backward(fn):
    """fn(dout, x, w) -> (dx, dw, db) of y = x wᵀ + b."""
    rng = np.random.default_rng(13)
    dense = layers.Dense(5, 3, rng=rng, dtype=np.float64)
    x = rng.standard_normal((4, 5))
    y, cache = dense.forward(x)
    dout = rng.standard_normal(y.shape)
    dense.zero_grad()
    dx = dense.backward(dout, cache)
    got = fn(dout.copy(), x.copy(), np.array(dense.w.data))
    if not isinstance(got, tuple) or len(got) != 3:
        return "return the tuple (dx, dw, db)"
    return _first(_close("dx", got[0], dx), _close("dw", got[1], dense.w.grad), _close("db", got[2], dense.b.grad))


@exercise(3)
def stable_bce(fn):
    """fn(z, y) -> (mean loss, gradient wrt z), finite for any logit, in float32 too."""
    rng = np.random.default_rng(14)
    z = np.concatenate([rng.standard_normal(6) * 3, [-200.0, -30.0, 30.0, 200.0]]).astype(np.float32)
    y = np.concatenate([rng.uniform(0, 1, 6), [1.0, 0.0, 1.0, 0.0]]).astype(np.float32)
    want_loss, want_grad = bce_with_logits(z.astype(np.float64), y.astype(np.float64))
    got = fn(z.copy(), y.copy())
    if not isinstance(got, tuple) or len(got) != 2:
        return "return the tuple (loss, gradient)"
    loss, grad = got
    if not np.all(np.isfinite(np.asarray(loss, np.float64))) or not np.all(np.isfinite(np.asarray(grad, np.float64))):
        return "not finite for logits of ±30 and ±200 in float32: use the stable form"
    return _first(_close("loss", loss, want_loss, rtol=1e-5, atol=1e-6),
                  _close("gradient", grad, want_grad, rtol=1e-5, atol=1e-7))


# ------------------------------------------------------------------------------------ chapter 4
@exercise(4)
def adam_step(fn):
    """fn(theta, g, m, v, t, lr, beta1, beta2, eps) -> (theta, m, v) after Adam's step number t."""
    rng = np.random.default_rng(15)
    p = layers.Param(rng.standard_normal((3, 4)))
    opt = Adam([p], lr=1e-2, beta1=0.8, beta2=0.99, eps=1e-8)
    theta, m, v = p.data.copy(), np.zeros((3, 4)), np.zeros((3, 4))
    for t in range(1, 4):
        g = rng.standard_normal((3, 4))
        p.zero_grad(); p.accumulate(g)
        opt.step()
        got = fn(theta.copy(), g.copy(), m.copy(), v.copy(), t, 1e-2, 0.8, 0.99, 1e-8)
        if not isinstance(got, tuple) or len(got) != 3:
            return "return the tuple (theta, m, v)"
        theta, m, v = (np.asarray(a, np.float64) for a in got)
        problem = _first(_close("m", m, opt.m[p], rtol=1e-10), _close("v", v, opt.v[p], rtol=1e-10),
                         _close("theta", theta, p.data, rtol=1e-9))
        if problem:
            return problem + f" at step t={t}"
    return None


# ------------------------------------------------------------------------------------ chapter 5
@exercise(5)
def centred_gradient(fn):
    """fn(f, x, h) -> the centred-difference gradient of the scalar f() with respect to the array x
    (x is changed in place and put back)."""
    rng = np.random.default_rng(16)
    a = rng.standard_normal((3, 4))
    x = rng.standard_normal((3, 4))
    before = x.copy()
    f = lambda: float(np.sum(np.tanh(x) * a) + 0.5 * np.sum(x ** 3))
    got = fn(f, x, 1e-6)
    if not np.array_equal(x, before):
        return "x was not put back exactly as it was"
    return _close("gradient", got, a * (1 - np.tanh(x) ** 2) + 1.5 * x ** 2, rtol=1e-7, atol=1e-9)


# ------------------------------------------------------------------------------------ chapter 6
def _small_model_and_forward(seed):
    rng = np.random.default_rng(seed)
    model = CDAAE(ModelConfig(skip="n2", width=0.125, label_dim=8, seed=seed, dtype="float64"))
    x_s, x_t = rng.uniform(-1, 1, (2, 4, 3, 32, 32))
    l_t = np.eye(8)[rng.integers(0, 8, 4)]
    return model, x_s, x_t, l_t, model.autoencode(x_s, l_t)


@exercise(6)
def autoencoder_loss(fn):
    """fn(x_hat, x_t, logit_z, logit_x, alpha, beta1, beta2) -> α L_R + β1 L_E^ns + β2 L_G^ns."""
    model, _, x_t, _, forward = _small_model_and_forward(17)
    cfg = ObjectiveConfig(beta1=0.3, beta2=0.2)          # not the defaults: the weights must be used
    x_hat, z = forward[0], forward[1]
    logit_z, logit_x = model.D_E.forward(z)[0], model.D_G.forward(x_hat)[0]
    want = autoencoder_pass(model, x_t, forward, cfg)["loss_total"]
    got = fn(x_hat.copy(), x_t.copy(), logit_z.copy(), logit_x.copy(), cfg.alpha, cfg.beta1, cfg.beta2)
    return _close("the total", got, want, rtol=1e-9)


# ------------------------------------------------------------------------------------ chapter 7
@exercise(7)
def gradient_at_the_cut(fn):
    """fn(model, dz, d_decoder_in, cache_e2) -> dL/dh, h = E1(x_s): both paths into h."""
    for skip in ("n2", "n1", "none"):
        rng = np.random.default_rng(18)
        model = CDAAE(ModelConfig(skip=skip, width=0.125, label_dim=8, seed=3, dtype="float64"))
        x_s = rng.uniform(-1, 1, (2, 3, 32, 32))
        l_t = np.eye(8)[[1, 5]]
        x_hat, z, d, cache = model.autoencode(x_s, l_t)
        dx_hat, dz_extra = rng.standard_normal(x_hat.shape), rng.standard_normal(z.shape)
        model.zero_grad_all()
        model.autoencode_backward(dx_hat, dz_extra, cache)          # the library: E1's gradients
        want = [p.grad.copy() for p in model.E1.params()]
        cache_e1, cache_e2, cache_g1, cache_g2 = cache
        model.zero_grad_all()
        d_decoder_in = model.G2.backward(dx_hat, cache_g2)
        dz = layers.split_grad(model.G1.backward(d_decoder_in, cache_g1), model.config.latent_dim)[0] + dz_extra
        dh = fn(model, dz, d_decoder_in, cache_e2)
        for p in model.E1.params():
            p.zero_grad()
        if dh is None or np.shape(dh) != np.shape(d_decoder_in):
            return f"return dL/dh, of shape {np.shape(d_decoder_in)} (got {None if dh is None else np.shape(dh)})"
        model.E1.backward(np.asarray(dh), cache_e1, need_dx=False)
        for p, w in zip(model.E1.params(), want):
            problem = _close(f"E1's gradient {p.name}", p.grad, w, rtol=1e-8)
            if problem:
                return problem + f" for skip={skip!r}"
    return None

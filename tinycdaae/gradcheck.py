"""Numerical gradient checks: centred finite differences in float64.

For a scalar function f of an array θ, the centred difference
    ∂f/∂θ_i ≈ (f(θ + h e_i) − f(θ − h e_i)) / 2h
has error O(h²) (the forward difference has O(h)). With h = 1e-6 in float64 the truncation error
(~h² ≈ 1e-12) and the rounding error (~ε_64 / h ≈ 1e-10) are both tiny, so a correct backward
agrees to a relative error around 1e-8 or better. In float32 the rounding error alone is of order
ε_32·|f| / h — for f of order 1 and the same h, up to ~1e-1 (walkthrough chapter 5 measures
~1e-2 on tanh): float32 checks fail for reasons that have nothing to do with the code, which is
why everything here insists on float64.

A layer maps an array to an array, so we contract it with a random upstream gradient G:
f(θ) = Σ y(θ) ⊙ G. Its exact gradient is what backward(G) returns, for any G; a random G makes
every output element count (an all-ones G would hide errors that cancel in a sum).

Relative error: ‖a − n‖ / max(‖a‖ + ‖n‖, tiny) over the checked entries.

Command: ``python -m tinycdaae.gradcheck`` (or ``python run.py gradcheck``) prints every check as a
table and exits non-zero if any fails.
"""
import sys
import time

import numpy as np

from . import backend

LAYER_TOLERANCE = 1e-7     # relative error a correct float64 layer stays well under (~1e-9 seen)
NETWORK_TOLERANCE = 1e-6   # whole networks: longer chains, more rounding (~1e-9 seen)


def rel_error(analytic, numeric):
    a, n = backend.to_host(analytic).ravel(), backend.to_host(numeric).ravel()
    return float(np.linalg.norm(a - n) / max(np.linalg.norm(a) + np.linalg.norm(n), 1e-30))


def numerical_gradient(f, array, h=1e-6, entries=None):
    """Centred differences of the scalar f() with respect to `array`, perturbed in place.

    entries: flat indices to check (None = all). Returns (flat indices, estimated gradient there).
    The array is restored exactly after each probe.
    """
    if array.dtype != np.float64:
        raise TypeError(f"gradient checks need float64 arrays (got {array.dtype}): in float32 the "
                        "rounding error of a finite difference swamps the gradient")
    flat = array.reshape(-1) if array.flags.c_contiguous else None
    idx = np.arange(array.size) if entries is None else np.asarray(entries)
    grads = np.empty(len(idx))
    for k, i in enumerate(idx):
        pos = np.unravel_index(int(i), array.shape)
        target = flat if flat is not None else array
        key = int(i) if flat is not None else pos
        old = float(target[key])
        target[key] = old + h
        f_plus = float(f())
        target[key] = old - h
        f_minus = float(f())
        target[key] = old
        grads[k] = (f_plus - f_minus) / (2 * h)
    return idx, grads


def _pick(size, max_entries, rng):
    if max_entries is None or size <= max_entries:
        return np.arange(size)
    return rng.choice(size, max_entries, replace=False)


def check_function(forward_backward, inputs, params, rng, max_entries=None, h=1e-6):
    """Generic check. forward_backward() must zero the parameter gradients, run the forward pass,
    return (scalar loss, [d loss / d input for each input]) and leave parameter gradients in
    each Param's .grad. Returns {name: relative error} for every input and parameter."""
    _, input_grads = forward_backward()
    analytic = {f"input{k}": backend.to_host(g) for k, g in enumerate(input_grads)}
    analytic.update({p.name: backend.to_host(p.grad).copy() for p in params})
    arrays = {f"input{k}": x for k, x in enumerate(inputs)}
    arrays.update({p.name: p.data for p in params})
    errors = {}
    for name, array in arrays.items():
        entries = _pick(array.size, max_entries, rng)
        idx, numeric = numerical_gradient(lambda: forward_backward()[0], array, h, entries)
        errors[name] = rel_error(analytic[name].reshape(-1)[idx], numeric)
    return errors


def check_layer(layer, x, rng=None, max_entries=None):
    """Check backward of a one-input layer against finite differences of Σ forward(x) ⊙ G."""
    rng = rng if rng is not None else np.random.default_rng(0)
    x = backend.to_device(x)                                           # host data -> the active device
    y, _ = layer.forward(x)
    upstream = backend.to_device(rng.standard_normal(y.shape))         # random G, same shape as y

    def forward_backward():
        layer.zero_grad()
        y, cache = layer.forward(x)
        return float((y * upstream).sum()), [layer.backward(upstream, cache)]

    return check_function(forward_backward, [x], layer.params(), rng, max_entries)


def check_loss(loss_fn, pred, target):
    """Check a loss's returned gradient with respect to its first argument."""
    pred, target = backend.to_device(pred), backend.to_device(target)
    def forward_backward():
        value, grad = loss_fn(pred, target)
        return float(value), [grad]

    return check_function(forward_backward, [pred], [], np.random.default_rng(0))


# ---- the table printed by the command ---------------------------------------------------------

def layer_checks():
    """(group, description, thunk returning {name: rel error}) for every layer and loss, swept over
    configurations: odd sizes, batch 1, one channel, stride 1 and 2, kernel > stride (overlapping
    windows), padding 0/1/2, output padding."""
    from . import layers, losses
    rng = np.random.default_rng(0)
    f64 = np.float64
    checks = []
    conv_configs = [  # (N, C, H, W, F, kernel, stride, pad)
        (2, 3, 7, 7, 4, 3, 1, 1), (1, 1, 5, 6, 2, 3, 2, 0), (2, 2, 8, 8, 3, 5, 2, 2),
        (1, 3, 9, 7, 2, 4, 3, 1), (3, 2, 6, 6, 1, 1, 1, 0), (2, 1, 5, 5, 2, 5, 1, 2),
    ]
    for n, c, h, w, f, k, s, p in conv_configs:
        desc = f"x({n},{c},{h},{w}) F={f} k={k} s={s} p={p}"
        checks.append(("Conv2d", desc, lambda n=n, c=c, h=h, w=w, f=f, k=k, s=s, p=p: check_layer(
            layers.Conv2d(c, f, k, s, p, rng=np.random.default_rng(1), dtype=f64),
            rng.standard_normal((n, c, h, w)), rng)))
    deconv_configs = [  # (N, C, H, W, F, kernel, stride, pad, output_pad)
        (2, 3, 4, 4, 2, 5, 2, 2, 1), (1, 1, 3, 5, 2, 3, 2, 0, 0), (2, 2, 3, 3, 3, 3, 1, 1, 0),
        (1, 2, 2, 3, 1, 4, 3, 1, 2), (2, 1, 5, 4, 2, 2, 2, 0, 1), (1, 3, 2, 2, 2, 5, 2, 1, 0),
    ]
    for n, c, h, w, f, k, s, p, op in deconv_configs:
        desc = f"x({n},{c},{h},{w}) F={f} k={k} s={s} p={p} op={op}"
        checks.append(("ConvTranspose2d", desc,
                       lambda n=n, c=c, h=h, w=w, f=f, k=k, s=s, p=p, op=op: check_layer(
                           layers.ConvTranspose2d(c, f, k, s, p, op, rng=np.random.default_rng(2), dtype=f64),
                           rng.standard_normal((n, c, h, w)), rng)))
    for n, i, o in [(4, 7, 3), (1, 5, 1), (3, 1, 6)]:
        checks.append(("Dense", f"x({n},{i}) out={o}", lambda n=n, i=i, o=o: check_layer(
            layers.Dense(i, o, rng=np.random.default_rng(3), dtype=f64), rng.standard_normal((n, i)), rng)))
    # activations: keep inputs away from LeakyReLU's kink at 0, where the derivative jumps
    away_from_zero = lambda shape: rng.choice([-1, 1], shape) * rng.uniform(0.1, 2, shape)
    for name, layer in [("LeakyReLU", layers.LeakyReLU(0.2)), ("Tanh", layers.Tanh()),
                        ("Sigmoid", layers.Sigmoid())]:
        checks.append((name, "x(3,2,3,5)", lambda layer=layer: check_layer(layer, away_from_zero((3, 2, 3, 5)), rng)))
    checks.append(("Flatten", "x(2,3,4,5)", lambda: check_layer(layers.Flatten(), rng.standard_normal((2, 3, 4, 5)), rng)))
    checks.append(("Reshape", "x(2,60)->(3,4,5)", lambda: check_layer(layers.Reshape(3, 4, 5), rng.standard_normal((2, 60)), rng)))
    checks.append(("Sequential", "conv-lrelu-deconv-tanh", lambda: check_layer(layers.Sequential(
        layers.Conv2d(2, 3, 5, 2, 2, rng=np.random.default_rng(4), dtype=f64), layers.LeakyReLU(),
        layers.ConvTranspose2d(3, 2, 5, 2, 2, 1, rng=np.random.default_rng(5), dtype=f64), layers.Tanh()),
        rng.standard_normal((2, 2, 6, 6)), rng)))
    checks.append(("mse", "(4,3,5,5)", lambda: check_loss(
        losses.mse, rng.standard_normal((4, 3, 5, 5)), rng.standard_normal((4, 3, 5, 5)))))
    for target in (0.0, 1.0, 0.9):
        checks.append(("bce_with_logits", f"z(8,1) y={target}", lambda target=target: check_loss(
            losses.bce_with_logits, rng.standard_normal((8, 1)) * 3, np.full((8, 1), target))))
    one_hot = np.eye(4)[[0, 3, 1, 3, 2]]                                  # (5, 4) one class per row
    soft = rng.dirichlet(np.ones(4), 5)                                   # (5, 4) rows summing to 1
    for desc, target, scale in (("z(5,4) one-hot", one_hot, 1.0), ("z(5,4) soft targets", soft, 1.0),
                                ("z(5,4) one-hot, |z|~30", one_hot, 30.0)):
        checks.append(("softmax_cross_entropy", desc, lambda target=target, scale=scale: check_loss(
            losses.softmax_cross_entropy, rng.standard_normal((5, 4)) * scale, target)))
    return checks


def network_checks(skips=("n1", "n2", "n3", "none"), width=0.0625, entries_per_param=3, seed=0, image_size=32):
    """Whole-network checks, one row per (variant, objective): the autoencoder objective
    α·L_R + β1·L_E^ns + β2·L_G^ns with respect to E1, E2, G1, G2 (and, since it backprops through them,
    D_E and D_G), and the discriminator objective L_D_E + L_D_G with respect to D_E and D_G.

    Small width (channels 4-8-16-32), float64, a few random entries of every Param. The weights
    β1 = β2 = 0.5 (instead of the paper's 1e-2, 1e-3) keep the adversarial paths' gradients large
    enough that finite differences can see them: the check is of the backward code, which is the
    same for any weights. Errors are reported per block (norm over that block's checked entries).
    image_size: the side of the faces (32, the paper's; 64 checks the --size 64 network, whose
    convs end at 4x4 and whose dense layers are 4x wider). At 64 the step is h = 1e-6, not 1e-5:
    with 4x the units, a ±1e-5 probe moves some LeakyReLU input across its kink at 0 (seed 0:
    errors up to 4e-4 in E1, G1, D_G at h = 1e-5, all below 2e-7 at 1e-6); a finite difference
    across a kink measures the kink, not the backward code.
    """
    h = 1e-5 if image_size <= 32 else 1e-6
    from .model import CDAAE, ModelConfig
    from .objective import ObjectiveConfig, autoencoder_pass, discriminator_pass
    checks = []
    for skip in skips:
        for objective_name in ("autoencoder", "discriminators"):
            def thunk(skip=skip, objective_name=objective_name):
                rng = np.random.default_rng(seed)
                model = CDAAE(ModelConfig(skip=skip, width=width, label_dim=3, latent_dim=10,
                                          image_size=image_size, dtype="float64", seed=seed))
                x_s, x_t = (backend.to_device(a) for a in rng.uniform(-1, 1, (2, 2, 3, image_size, image_size)))
                labels = backend.to_device(np.eye(3)[[0, 2]])
                z_prior = backend.to_device(rng.standard_normal((2, 10)))
                config = ObjectiveConfig(beta1=0.5, beta2=0.5, real_label=0.9)
                if objective_name == "autoencoder":
                    params = model.params()

                    def forward_backward():
                        model.zero_grad_all()
                        out = autoencoder_pass(model, x_t, model.autoencode(x_s, labels), config)
                        return out["loss_total"], []
                else:
                    params = model.discriminator_params()
                    x_hat, z, _, _ = model.autoencode(x_s, labels)      # held fixed in the D step

                    def forward_backward():
                        model.zero_grad_all()
                        out = discriminator_pass(model, x_s, z, x_hat, z_prior, config.real_label)
                        return out["loss_D_E"] + out["loss_D_G"], []
                return block_errors(model, forward_backward, params, rng, entries_per_param, h)
            size = "" if image_size == 32 else f" {image_size}x{image_size}"
            checks.append((f"CDAAE {skip}{size}", f"{objective_name} objective", thunk))
    return checks


def block_errors(model, forward_backward, params, rng, entries_per_param, h=1e-5):
    """Relative error per network block over a few random entries of each of its Params."""
    forward_backward()
    grads = [backend.to_host(p.grad).copy() for p in params]     # before any probe moves them
    analytic, numeric = {}, {}
    block_of = {id(p): name for name, block in model.blocks.items() for p in block.params()}
    for p, a in zip(params, grads):
        entries = _pick(p.data.size, entries_per_param, rng)
        idx, num = numerical_gradient(lambda: forward_backward()[0], p.data, h, entries)
        block = block_of[id(p)]
        analytic.setdefault(block, []).append(a.reshape(-1)[idx])
        numeric.setdefault(block, []).append(num)
    return {block: rel_error(np.concatenate(analytic[block]), np.concatenate(numeric[block]))
            for block in analytic}


def run_checks(checks, tolerance, out=None):
    """Run (group, description, thunk) checks, print one row each; returns the number failed."""
    out = out or sys.stdout
    failed = 0
    print(f"{'check':<21} {'configuration':<34} {'max rel error':>13}  {'worst':<16} result", file=out)
    for group, desc, thunk in checks:
        t0 = time.perf_counter()
        errors = thunk()
        worst = max(errors, key=errors.get)
        ok = errors[worst] < tolerance
        failed += not ok
        print(f"{group:<21} {desc:<34} {errors[worst]:>13.2e}  {worst:<16} "
              f"{'pass' if ok else 'FAIL'} ({time.perf_counter() - t0:.1f}s)", file=out, flush=True)
    return failed


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(
        prog="gradcheck", description="Check every hand-written backward pass against centred "
        "finite differences in float64 and print a table; exits 1 if any check fails.")
    parser.add_argument("--layers-only", action="store_true", help="skip the whole-network rows")
    parser.add_argument("--size", type=int, choices=(32, 64), default=32,
                        help="side of the faces of the whole-network rows (default 32, the paper's)")
    args = parser.parse_args(argv)
    backend.use("cpu")
    print(f"Layers and losses (pass if relative error < {LAYER_TOLERANCE:g}):")
    failed = run_checks(layer_checks(), LAYER_TOLERANCE)
    if not args.layers_only:
        print(f"\nWhole CDAAE at {args.size}x{args.size}, every block, all four variants (pass if relative "
              f"error < {NETWORK_TOLERANCE:g}):")
        failed += run_checks(network_checks(image_size=args.size), NETWORK_TOLERANCE)
    print(f"\n{failed} failed" if failed else "\nall gradient checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

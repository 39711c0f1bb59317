"""Look inside a training run: what happens to z, D_E and the label path, step by step.

    python scripts/diagnose_latent.py --recipe paper --seed 2 --out runs/diagnose-paper-s2
    python scripts/diagnose_latent.py --recipe stable --seed 2 --out runs/diagnose-stable-s2

Trains N2 exactly as `run.py --dataset london --width 1 --recipe R` would (same seeds, same data
order, same held-out fold, the recipe's epochs and learning-rate schedule; --epochs,
--no-face-only-targets and --lr-decay-epochs as run.py's), and
every `--every` steps records, on the current batch:

  D_E's logits        mean logit on the encoder's codes z and on prior samples z* ~ N(0, I)
  z against the prior per-dimension mean and std of z over the batch (prior: 0 and 1), mean ‖z‖
                      (prior: ≈ √100 = 10)
  gradients into z    ‖∂(α L_R)/∂z‖ (through G1) and ‖∂(β1 L_E)/∂z‖ (through D_E), batch means
  the difference d    mean |d| and the fraction of d's units saturated (|d| > 0.99, tanh's flat end)
  the label path      mean |x̂(l_a) − x̂(l_b)| on a fixed batch of held-out faces for every pair of
                      the data's labels (0: the output ignores the label), and the norms of G1's
                      first-layer weights on the z inputs and on the label inputs
  Adam's steps        the largest step any weight of E and G took at this step, in units of the
                      learning rate: |m̂| / (√v̂ + ε) (1 while gradients keep their size; up to
                      (1 − β1)/√(1 − β2) when a gradient is suddenly far larger than the recent ones)

It writes diagnostics.jsonl (one line per record) and diagnostics.png (the curves).
The data is the built-in London photos by default (or --dataset folder --data-dir DIR).
"""
import argparse
import json
import os

import numpy as np

from tinycdaae import backend
from tinycdaae.cli import TRAIN_DEFAULTS
from tinycdaae.data.datasets import load_dataset, split_for_training
from tinycdaae.model import CDAAE, ModelConfig
from tinycdaae.objective import Objective
from tinycdaae.recipes import RECIPES, default_epochs, objective_config, recipe_options, train_config
from tinycdaae.training import augment, epoch_batches, label_effect, run_seeds


def norm_rows(a):
    return float(backend.xp.sqrt((a.astype("float64") ** 2).sum(axis=1)).mean())


class Probe:
    """Wraps the model's functions to catch what passes through one autoencoder step."""

    def __init__(self, model):
        self.model, self.seen = model, {}
        self.rng = np.random.default_rng(12345)
        g1_backward, backward = model.G1.backward, model.autoencode_backward

        def g1_backward_probe(dout, cache, need_dx=True):
            dzl = g1_backward(dout, cache, need_dx)
            self.seen["grad_z_from_L_R"] = norm_rows(dzl[:, :model.config.latent_dim])
            return dzl

        def backward_probe(dx_hat, dz_extra, cache):
            self.seen["grad_z_from_L_E"] = 0.0 if dz_extra is None else norm_rows(dz_extra)
            return backward(dx_hat, dz_extra, cache)

        model.G1.backward, model.autoencode_backward = g1_backward_probe, backward_probe


def largest_adam_step(opt):
    """max over opt's weights of |m̂| / (√v̂ + ε): the last step's size in units of the learning rate."""
    xp = backend.xp
    c1, c2 = 1 - opt.beta1 ** opt.t, 1 - opt.beta2 ** opt.t
    return max(float((xp.abs(opt.m[p]) / c1 / (xp.sqrt(opt.v[p] / c2) + opt.eps)).max()) for p in opt.params)


def record(model, objective, probe, x_s, l_t, fixed_faces, label_rows):
    xp = backend.xp
    x_hat, z, d, _ = model.autoencode(backend.to_device(x_s), backend.to_device(l_t))
    prior = probe.rng.standard_normal(z.shape).astype(z.dtype)   # its own draws: training's stay as they are
    logit_z = model.D_E.forward(z)[0]
    logit_prior = model.D_E.forward(backend.to_device(prior))[0]
    dense = model.G1.layers[0].w.data                                  # (out, latent + L)
    latent = model.config.latent_dim
    out = {"logit_D_E_z": float(logit_z.mean()), "logit_D_E_prior": float(logit_prior.mean()),
           "z_mean_abs": float(xp.abs(z.mean(axis=0)).mean()), "z_std": float(z.std(axis=0).mean()),
           "z_norm": norm_rows(z), "d_abs": float(xp.abs(d).mean()),
           "d_saturated": float((xp.abs(d) > 0.99).mean()),
           "w_G1_z": float(xp.sqrt((dense[:, :latent] ** 2).sum())),
           "w_G1_label": float(xp.sqrt((dense[:, latent:] ** 2).sum())),
           "label_effect": label_effect(model, fixed_faces, label_rows),
           "adam_step_E_G": largest_adam_step(objective.opt_autoencoder)}
    return {**out, **probe.seen}


def plot(records, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    steps = [r["step"] for r in records]
    panels = [("D_E's mean logit", ("logit_D_E_z", "logit_D_E_prior"), None),
              ("D_E's loss", ("loss_D_E",), 2 * np.log(2)),
              ("‖z‖ (prior ≈ 10), per-dim std of z (prior 1)", ("z_norm", "z_std"), None),
              ("gradient reaching z", ("grad_z_from_L_R", "grad_z_from_L_E"), None),
              ("G1 input weights (norm)", ("w_G1_z", "w_G1_label"), None),
              ("label effect: mean |x̂(a) − x̂(b)|", ("label_effect",), None),
              ("reconstruction L_R", ("loss_R",), None),
              ("difference d", ("d_abs", "d_saturated"), None),
              ("largest Adam step in E, G (× lr)", ("adam_step_E_G",), None)]
    fig, axes = plt.subplots(3, 3, figsize=(14, 9.5))
    for ax, (name, keys, line) in zip(axes.ravel(), panels):
        for key in keys:
            ax.plot(steps, [r.get(key, np.nan) for r in records], label=key)   # no D terms in a warm-up
        if line is not None:
            ax.axhline(line, color="grey", lw=0.8, ls="--", label="chance")
        if name.startswith(("gradient", "‖z‖", "D_E's loss")):
            ax.set_yscale("log")
        if name.startswith("D_E's mean logit"):
            ax.set_yscale("symlog")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
        ax.set_xlabel("step", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="london")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--recipe", choices=sorted(RECIPES), default="paper")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--epochs", type=int, default=None, help="default: the recipe's for the dataset, as run.py's")
    p.add_argument("--face-only-targets", action=argparse.BooleanOptionalAction, default=None,
                   help="default: the recipe's for the dataset")
    p.add_argument("--lr-decay-epochs", type=int, default=None, metavar="N", help="default: the recipe's for the dataset")
    p.add_argument("--every", type=int, default=4, help="record every N steps")
    p.add_argument("--lr-d-e", type=float, default=None, metavar="LR", help="D_E's learning rate; default: the recipe's")
    p.add_argument("--adam-beta2", type=float, default=None, metavar="B",
                   help="Adam's second-moment decay, all three optimizers; default: the recipe's")
    p.add_argument("--out", required=True)
    p.add_argument("--replot", action="store_true", help="only redraw diagnostics.png from OUT/diagnostics.jsonl")
    args = p.parse_args(argv)
    title = f"N2, recipe {args.recipe}, seed {args.seed}, fold {args.fold}"
    if args.lr_d_e is not None:
        title += f", D_E at {args.lr_d_e:g}"
    if args.adam_beta2 is not None:
        title += f", Adam β2 {args.adam_beta2:g}"
    if args.replot:
        with open(os.path.join(args.out, "diagnostics.jsonl")) as f:
            return plot([json.loads(line) for line in f], os.path.join(args.out, "diagnostics.png"), title)
    backend.use("cpu")
    backend.keep_freed_memory()
    faces = load_dataset(args.dataset, args.data_dir, progress=False)
    train, test = split_for_training(faces, args.fold, 4)
    weight_seed, prior_seed, order_seed = run_seeds(args.seed)
    model = CDAAE(ModelConfig(skip="n2", width=args.width, label_dim=len(train.label_names), seed=weight_seed))
    options = recipe_options(args.recipe, args.dataset)
    if args.lr_d_e is not None:
        options["lr_d_e"] = args.lr_d_e
    if args.adam_beta2 is not None:
        options["adam_beta2"] = args.adam_beta2
    for name in ("face_only_targets", "lr_decay_epochs"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    epochs = args.epochs or default_epochs(args.recipe, args.dataset) or TRAIN_DEFAULTS["epochs"]   # as run.py
    objective = Objective(model, objective_config(options, prior_seed))
    probe = Probe(model)
    fixed = test.images[:32]
    label_rows = np.eye(len(train.label_names), dtype=np.float32)
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(order_seed)
    records = []
    config = train_config(options, epochs=epochs, seed=order_seed)   # the warm-up, pair transforms, schedule
    with open(os.path.join(args.out, "diagnostics.jsonl"), "w") as f:
        for epoch in range(epochs):
            order = rng.permutation(len(train))
            batches = epoch_batches(order, 32, config.full_batches)
            for rows in batches:
                x_s, x_t, l_t = augment(train.batch(rows), config, objective.step_count)
                objective.scale_learning_rates(config.learning_rate_scale(objective.step_count, len(batches)))
                metrics = objective.step(x_s, x_t, l_t, adversarial=config.adversarial(epoch, objective.step_count))
                if objective.step_count % args.every == 0:
                    r = {"step": objective.step_count, "epoch": epoch + 1, **metrics,
                         **record(model, objective, probe, x_s, l_t, fixed, label_rows)}
                    records.append(r)
                    f.write(json.dumps(r) + "\n")
            last = records[-1]
            print(f"epoch {epoch + 1}: " + " ".join(f"{k}={last.get(k, float('nan')):.3g}" for k in
                  ("loss_R", "loss_D_E", "acc_D_E", "logit_D_E_z", "logit_D_E_prior", "z_norm",
                   "grad_z_from_L_R", "grad_z_from_L_E", "label_effect", "adam_step_E_G")), flush=True)
    plot(records, os.path.join(args.out, "diagnostics.png"), title)


if __name__ == "__main__":
    main()

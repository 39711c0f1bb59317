"""The CDAAE objective (paper eqs. 2-5) and its alternating training step.

    min_{E,G} max_{D_E,D_G}  α·L_R + β1·L_E + β2·L_G                                   (eq. 2)
    L_R = mean ‖x̂_t − x_t‖²                         reconstruction of the *target*  (eq. 3)
    L_E = E_{z*~N(0,I)}[log D_E(z*)] + E_x[log(1 − D_E(E(x_s)))]                       (eq. 4)
    L_G = E_x[log D_G(x_s)] + E_x[log(1 − D_G(x̂_t))]                                    (eq. 5)

with α = 1, β1 = 1e-2, β2 = 1e-3. Written as losses to *minimise* with binary cross-entropy on
logits, BCE(z, y) = −[y log σ(z) + (1 − y) log(1 − σ(z))]:

    discriminators:  L_D_E = BCE(D_E(z*), 1) + BCE(D_E(z), 0)
                     L_D_G = BCE(D_G(x_s), 1) + BCE(D_G(x̂), 0)
    autoencoder:     α·MSE(x̂, x_t) + β1·BCE(D_E(z), 1) + β2·BCE(D_G(x̂), 1)
                   = α·L_R + β1·L_E^ns + β2·L_G^ns   (log keys loss_R, loss_E, loss_G, loss_total)

The autoencoder's adversarial terms use the non-saturating form (maximise log D(fake), i.e.
minimise BCE(D(fake), 1)) rather than minimising log(1 − D(fake)), whose gradient vanishes
exactly when the discriminator wins — the usual GAN practice. These non-saturating terms are
L_E^ns = BCE(D_E(z), 1) ≥ 0 and L_G^ns = BCE(D_G(x̂), 1) ≥ 0: not the min–max values L_E, L_G ≤ 0
of eqs. 4-5, so the logged loss_total is not eq. 2's value.

One step: one forward of E and G; one update of D_E and D_G together (Adam, lr 1e-4) on that
(fixed) z and x̂; then one update of E and G (Adam, lr 1e-3) through the *updated*
discriminators. E and G do not change between the two updates, so their forward is shared.
"""
import contextlib
import math
from dataclasses import asdict, dataclass

import numpy as np

from . import backend
from .errors import ConfigError
from .losses import bce_with_logits, mse
from .optim import Adam, WeightAverage


@dataclass
class ObjectiveConfig:
    alpha: float = 1.0            # weight of the reconstruction loss L_R (paper: 1)
    beta1: float = 1e-2           # weight of the latent adversarial term (L_E; E minimises L_E^ns) (paper: 1e-2)
    beta2: float = 1e-3           # weight of the image adversarial term (L_G; G minimises L_G^ns) (paper: 1e-3)
    lr_autoencoder: float = 1e-3  # Adam learning rate for E and G (paper: 1e-3)
    lr_d_e: float = 1e-4          # Adam learning rate for D_E (paper: 1e-4; lower it if D_E overpowers E)
    lr_d_g: float = 1e-4          # Adam learning rate for D_G (paper: 1e-4)
    adam_beta1: float = 0.9       # Adam's first-moment decay for all three optimizers (Adam's default;
                                  # GANs often use 0.5). Not the paper's β1, which weighs L_E.
    adam_beta2: float = 0.999     # Adam's second-moment decay for all three optimizers (Adam's default
                                  # and the paper's). Bounds the step a sudden large gradient can take:
                                  # about lr·(1 − β1)/√(1 − β2), 3.2·lr at 0.999, 1·lr at 0.99.
    real_label: float = 1.0       # discriminators' target for real samples; 0.9 = one-sided label smoothing
    ema_decay: float = 0.0        # δ of the moving average of E and G's weights that draws the faces
                                  # (optim.WeightAverage); 0 = draw with the last weights (paper)
    prior_seed: int = 0           # seed of the N(0, I) samples z* shown to D_E

    def __post_init__(self):
        for name in ("alpha", "beta1", "beta2"):
            if not 0 <= getattr(self, name) < math.inf:
                raise ConfigError(name, f"must be a number, 0 or more (the paper's is "
                                        f"{ObjectiveConfig.__dataclass_fields__[name].default:g}), got {getattr(self, name)}")
        for name in ("lr_autoencoder", "lr_d_e", "lr_d_g"):
            if not 0 < getattr(self, name) < math.inf:
                raise ConfigError(name, f"must be a positive number, got {getattr(self, name)}")
        if not 0.0 <= self.adam_beta1 < 1.0:
            raise ConfigError("adam_beta1", f"must be in [0, 1) (0.9 is usual), got {self.adam_beta1}")
        if not 0.0 < self.adam_beta2 < 1.0:
            raise ConfigError("adam_beta2", f"must be in (0, 1) (0.999 is usual), got {self.adam_beta2}")
        if not 0.5 < self.real_label <= 1.0:
            raise ConfigError("real_label", f"must be in (0.5, 1], got {self.real_label}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError("ema_decay", f"must be in [0, 1) (0 = off; the stable recipe's is 0.99), got {self.ema_decay}")


def accuracy(logits_real, logits_fake):
    """Fraction of real samples called real (logit > 0) and fake called fake, over both batches."""
    return ((logits_real > 0).sum() + (logits_fake <= 0).sum()) / (len(logits_real) + len(logits_fake))


def discriminator_pass(model, x_s, z, x_hat, z_prior, real_label=1.0):
    """L_D_E + L_D_G for fixed z, x̂; accumulates the gradients of D_E and D_G.
    Each discriminator sees a real and a fake batch: two forwards, two backwards (gradients add)."""
    out = {}
    for name, net, real, fake in (("D_E", model.D_E, z_prior, z), ("D_G", model.D_G, x_s, x_hat)):
        logit_real, cache_real = net.forward(real)                         # (N, 1)
        logit_fake, cache_fake = net.forward(fake)                         # (N, 1)
        loss_real, dlogit_real = bce_with_logits(logit_real, backend.xp.full_like(logit_real, real_label))
        loss_fake, dlogit_fake = bce_with_logits(logit_fake, backend.xp.zeros_like(logit_fake))
        net.backward(dlogit_real, cache_real, need_dx=False)               # inputs are constants here
        net.backward(dlogit_fake, cache_fake, need_dx=False)
        out[f"loss_{name}"] = loss_real + loss_fake
        out[f"acc_{name}"] = accuracy(logit_real, logit_fake)
    return out


def autoencoder_pass(model, x_t, forward, config, adversarial=True):
    """α·L_R + β1·L_E^ns + β2·L_G^ns for one autoencoder forward; accumulates E and G gradients.
    `forward` is model.autoencode(x_s, l_t)'s result. With adversarial=False only α·L_R (warm-up).
    D's parameter gradients are touched too (we backprop *through* D); the D step clears them."""
    x_hat, z, _, cache = forward
    loss_r, dx_hat = mse(x_hat, x_t)                                       # (N,3,H,W)
    dx_hat = dx_hat * config.alpha
    out = {"loss_R": loss_r}
    dz = None
    if adversarial:
        logit_z, cache_z = model.D_E.forward(z)
        loss_e, dlogit_z = bce_with_logits(logit_z, backend.xp.ones_like(logit_z))   # non-saturating: L_E^ns
        dz = model.D_E.backward(dlogit_z * config.beta1, cache_z)          # (N, latent)
        logit_x, cache_x = model.D_G.forward(x_hat)
        loss_g, dlogit_x = bce_with_logits(logit_x, backend.xp.ones_like(logit_x))
        dx_hat = dx_hat + model.D_G.backward(dlogit_x * config.beta2, cache_x)
        out.update(loss_E=loss_e, loss_G=loss_g)                            # L_E^ns, L_G^ns
        total = config.alpha * loss_r + config.beta1 * loss_e + config.beta2 * loss_g
    else:
        total = config.alpha * loss_r
    model.autoencode_backward(dx_hat, dz, cache)
    out["loss_total"] = total
    return out


class Objective:
    """The model, its three Adam optimizers (E+G, D_E, D_G), the prior's random stream, and (when
    config.ema_decay > 0) the moving average of E and G's weights used to draw faces."""

    def __init__(self, model, config=None, **overrides):
        self.model = model
        self.config = config = config or ObjectiveConfig(**overrides)
        betas = {"beta1": config.adam_beta1, "beta2": config.adam_beta2}
        self.opt_autoencoder = Adam(model.autoencoder_params(), lr=config.lr_autoencoder, **betas)
        self.opt_d_e = Adam(model.D_E.params(), lr=config.lr_d_e, **betas)
        self.opt_d_g = Adam(model.D_G.params(), lr=config.lr_d_g, **betas)
        self.rng = np.random.default_rng(config.prior_seed)     # z* ~ N(0, I), drawn on the host
        self.step_count = 0
        self.average = (WeightAverage(model.autoencoder_params(), config.ema_decay)
                        if config.ema_decay > 0 else None)

    @property
    def optimizers(self):
        return {"autoencoder": self.opt_autoencoder, "D_E": self.opt_d_e, "D_G": self.opt_d_g}

    def scale_learning_rates(self, scale):
        """Every optimizer's rate becomes its configured rate × scale (a learning-rate schedule;
        TrainConfig.learning_rate_scale). The three rates keep their ratios."""
        self.opt_autoencoder.lr = self.config.lr_autoencoder * scale
        self.opt_d_e.lr = self.config.lr_d_e * scale
        self.opt_d_g.lr = self.config.lr_d_g * scale

    def sample_prior(self, n):
        """z* ~ N(0, I): (n, latent). Drawn on the host so CPU and GPU runs see the same numbers."""
        z = self.rng.standard_normal((n, self.model.config.latent_dim))
        return backend.to_device(z.astype(self.model.config.dtype))

    def step(self, x_s, x_t, l_t, adversarial=True):
        """One alternating update on a batch of pairs. Arrays may be host or device arrays.
        Returns every loss term and both discriminators' accuracies as Python floats.
        adversarial=False: autoencoder warm-up (no D update, L_R only)."""
        dtype = self.model.config.dtype
        x_s, x_t, l_t = (backend.to_device(a, dtype=dtype) for a in (x_s, x_t, l_t))
        forward = self.model.autoencode(x_s, l_t)
        metrics = {}
        if adversarial:
            x_hat, z = forward[0], forward[1]
            self.opt_d_e.zero_grad()
            self.opt_d_g.zero_grad()
            metrics.update(discriminator_pass(self.model, x_s, z, x_hat, self.sample_prior(len(z)),
                                              self.config.real_label))
            self.opt_d_e.step()
            self.opt_d_g.step()
        self.opt_autoencoder.zero_grad()
        metrics.update(autoencoder_pass(self.model, x_t, forward, self.config, adversarial))
        self.opt_autoencoder.step()
        if self.average is not None:
            self.average.update()                               # after E and G's update: θ̄ follows θ
        self.step_count += 1
        return {k: float(v) for k, v in metrics.items()}       # one device -> host sync per step

    def drawing_weights(self):
        """`with objective.drawing_weights():` the model holds the weights that draw faces: the
        moving average θ̄ when there is one, else the current weights (then it changes nothing)."""
        return self.average.swapped_in() if self.average is not None else contextlib.nullcontext()

    def config_dict(self):
        return asdict(self.config)

"""The CDAAE network (Zhou & Shi 2017): encoder E = E1|E2, decoder G = G1|G2, and the two
discriminators D_E (on the latent code) and D_G (on images).

    E1: x (N,3,32,32) -> h (the features at the cut)         E2: h -> z ∈ R¹⁰⁰
    G1: [z, l] -> d (same shape as h, tanh)                   G2: h + d -> x̂ (N,3,32,32), tanh
    x̂ = G2(E1(x_s) + G1(E2(E1(x_s)), l))                                       (paper eq. 1)

The cut ("skip") is at position ① (after the first conv, 64×16×16: N1), ② (after the second,
128×8×8: N2, the paper's choice), or ③ (after the third, 256×4×4: N3). ``none`` is the CAAE-like
control: the same network cut at ②, but with no connection (x̂ = G2(G1(z, l))) and an ordinary
LeakyReLU where G1 would end in tanh.

Reference widths; `width` scales every channel count for quick runs:

    E: conv 5×5/2 3→64 ① → 128 ② → 256 ③ → 512, LeakyReLU(0.2) after each; dense 2048 → 100
    G: dense (100+L) → 512×2×2, LeakyReLU; deconv 5×5/2 512→256 ③ → 128 ② → 64 ① → 3, tanh
    D_E: dense 100 → 64 → 32 → 16 → 1 (LeakyReLU between; sigmoid folded into the loss)
    D_G: conv 5×5/2 3→16→32→64→128 (32 → 2 spatial), dense 512 → 1024, LeakyReLU, dense → 1

Every LeakyReLU follows a conv, deconv or dense layer and runs in place on its output (no other
reader of that output exists; see layers.LeakyReLU). Every network returns logits / activations and caches; the objective (objective.py) decides what
to backpropagate. This file knows nothing about losses or optimizers.
"""
from dataclasses import asdict, dataclass

import numpy as np

from . import backend
from .errors import ConfigError
from .layers import Conv2d, ConvTranspose2d, Dense, Flatten, LeakyReLU, Reshape, Sequential, Tanh, concat, split_grad

SKIPS = ("n1", "n2", "n3", "none")
CUT_POSITION = {"n1": 1, "n2": 2, "n3": 3, "none": 2}   # number of encoder convs in E1


# The widest network a config accepts: channels 256-512-1024-2048, 4x the reference. Beyond it a
# typo (an extra zero) would ask for gigabytes before failing.
MAX_WIDTH = 4.0


@dataclass
class ModelConfig:
    skip: str = "n2"          # where the difference connection joins E and G: n1 | n2 | n3 | none
    width: float = 1.0        # channel multiplier; 1.0 is the reference 64-128-256-512
    label_dim: int = 8        # 8 one-hot emotions, or 12 AU intensities
    latent_dim: int = 100     # z ∈ R¹⁰⁰ with prior N(0, I), as in the paper
    image_size: int = 32      # 32×32 inputs; four stride-2 convs bring it to 2×2
    dtype: str = "float32"    # float32 for training; float64 for gradient checks
    seed: int = 0             # initial weights are a function of this seed alone

    def __post_init__(self):
        if self.skip not in SKIPS:
            raise ValueError(f"unknown skip {self.skip!r}; choose one of {', '.join(SKIPS)}")
        if not self.width > 0:
            raise ConfigError("width", f"must be positive (1.0 is the reference network), got {self.width}")
        if not self.width <= MAX_WIDTH:          # also refuses inf
            raise ConfigError("width", f"must be at most {MAX_WIDTH:g} (1.0 is the reference network, "
                                       f"{MAX_WIDTH:g} already has {MAX_WIDTH ** 2:g}x its weights), got {self.width}")
        if self.label_dim < 1 or self.latent_dim < 1:
            raise ValueError(f"label_dim and latent_dim must be >= 1, got {self.label_dim}, {self.latent_dim}")
        if self.image_size % 16 or self.image_size < 16:
            raise ValueError(f"image_size must be a multiple of 16 (four stride-2 convs), got {self.image_size}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")

    def channels(self, base):
        return max(1, int(round(base * self.width)))


class CDAAE:
    """All six blocks, built from one seed. Blocks are Sequentials (see layers.py)."""

    def __init__(self, config=None, **overrides):
        self.config = config = config or ModelConfig(**overrides)
        rng = np.random.default_rng(config.seed)
        dtype = np.dtype(config.dtype)
        enc = [3] + [config.channels(c) for c in (64, 128, 256, 512)]   # channels at each depth
        side = config.image_size // 16                                  # 2 for 32×32 inputs
        cut = CUT_POSITION[config.skip]

        def conv(i, name):   # encoder conv i: enc[i] -> enc[i+1], then LeakyReLU
            return [Conv2d(enc[i], enc[i + 1], 5, 2, 2, rng=rng, dtype=dtype, name=name), LeakyReLU(0.2, inplace=True)]

        def deconv(i, name, last_activation):   # decoder deconv: enc[i+1] -> enc[i]
            return [ConvTranspose2d(enc[i + 1], enc[i], 5, 2, 2, 1, rng=rng, dtype=dtype, name=name),
                    last_activation]

        # Encoder: convs 1..cut form E1; the rest, flattened into the dense layer to z, form E2.
        e1 = [layer for i in range(cut) for layer in conv(i, f"E.conv{i + 1}")]
        e2 = [layer for i in range(cut, 4) for layer in conv(i, f"E.conv{i + 1}")]
        e2 += [Flatten(), Dense(enc[4] * side * side, config.latent_dim, rng=rng, dtype=dtype, name="E.dense_z")]
        # Decoder: the dense layer from [z, l] and deconvs 4..cut+1 form G1. Its last layer is tanh:
        # its output is the *difference* d added to E1's features (a LeakyReLU for `none`).
        g1 = [Dense(config.latent_dim + config.label_dim, enc[4] * side * side, rng=rng, dtype=dtype,
                    name="G.dense_in"), LeakyReLU(0.2, inplace=True), Reshape(enc[4], side, side)]
        for i in range(3, cut - 1, -1):
            is_difference = i == cut
            act = Tanh() if is_difference and config.skip != "none" else LeakyReLU(0.2, inplace=True)
            g1 += deconv(i, f"G.deconv{i + 1}", act)
        # G2: the remaining deconvs back to the image; the image layer ends in tanh (x̂ ∈ [-1, 1]).
        g2 = [layer for i in range(cut - 1, -1, -1)
              for layer in deconv(i, f"G.deconv{i + 1}", Tanh() if i == 0 else LeakyReLU(0.2, inplace=True))]
        self.E1, self.E2, self.G1, self.G2 = Sequential(*e1), Sequential(*e2), Sequential(*g1), Sequential(*g2)

        # D_E on z: 100 -> 64 -> 32 -> 16 -> 1 (logit)
        de = [config.latent_dim, 64, 32, 16]
        layers_de = []
        for i in range(3):
            layers_de += [Dense(de[i], de[i + 1], rng=rng, dtype=dtype, name=f"D_E.dense{i + 1}"),
                          LeakyReLU(0.2, inplace=True)]
        self.D_E = Sequential(*layers_de, Dense(16, 1, rng=rng, dtype=dtype, name="D_E.out"))

        # D_G on images: conv 3->16->32->64->128 (32 -> 2 spatial), dense 512 -> 1024 -> 1 (logit)
        dg = [3] + [config.channels(c) for c in (16, 32, 64, 128)]
        layers_dg = []
        for i in range(4):
            layers_dg += [Conv2d(dg[i], dg[i + 1], 5, 2, 2, rng=rng, dtype=dtype, name=f"D_G.conv{i + 1}"),
                          LeakyReLU(0.2, inplace=True)]
        hidden = config.channels(1024)
        self.D_G = Sequential(*layers_dg, Flatten(),
                              Dense(dg[4] * side * side, hidden, rng=rng, dtype=dtype, name="D_G.dense1"),
                              LeakyReLU(0.2, inplace=True), Dense(hidden, 1, rng=rng, dtype=dtype, name="D_G.out"))

    # ---- parameters -------------------------------------------------------------------------------
    @property
    def blocks(self):
        return {"E1": self.E1, "E2": self.E2, "G1": self.G1, "G2": self.G2, "D_E": self.D_E, "D_G": self.D_G}

    def autoencoder_params(self):
        return self.E1.params() + self.E2.params() + self.G1.params() + self.G2.params()

    def discriminator_params(self):
        return self.D_E.params() + self.D_G.params()

    def params(self):
        return self.autoencoder_params() + self.discriminator_params()

    def zero_grad_all(self):
        for p in self.params():
            p.zero_grad()

    def named_params(self):
        return {p.name: p for p in self.params()}

    # ---- the autoencoder: eq. (1) ---------------------------------------------------------------
    def autoencode(self, x_s, labels):
        """x_s (N,3,H,W), labels (N,L) -> (x̂ (N,3,H,W), z (N,latent), d or None, cache)."""
        h, cache_e1 = self.E1.forward(x_s)                     # (N, C_cut, H_cut, W_cut)
        z, cache_e2 = self.E2.forward(h)                       # (N, latent)
        zl = concat(z, labels.astype(z.dtype, copy=False))     # (N, latent + L)
        g1_out, cache_g1 = self.G1.forward(zl)                 # (N, C_cut, H_cut, W_cut)
        if self.config.skip == "none":
            decoder_in, d = g1_out, None                       # no connection: CAAE-like control
        else:
            d = g1_out                                         # the difference, in (-1, 1)
            decoder_in = h + d                                 # eq. (1): E1(x_s) + d
        x_hat, cache_g2 = self.G2.forward(decoder_in)          # (N, 3, H, W)
        return x_hat, z, d, (cache_e1, cache_e2, cache_g1, cache_g2)

    def autoencode_backward(self, dx_hat, dz_extra, cache):
        """Backprop d(objective)/dx̂ and an extra d(objective)/dz (from the latent adversarial
        term) into the gradients of E1, E2, G1, G2. Nothing is returned: x_s is data."""
        cache_e1, cache_e2, cache_g1, cache_g2 = cache
        d_decoder_in = self.G2.backward(dx_hat, cache_g2)      # (N, C_cut, H_cut, W_cut)
        dzl = self.G1.backward(d_decoder_in, cache_g1)         # (N, latent + L)
        dz, _ = split_grad(dzl, self.config.latent_dim)        # the label is an input, not learned
        if dz_extra is not None:
            dz = dz + dz_extra
        dh = self.E2.backward(dz, cache_e2)                    # (N, C_cut, H_cut, W_cut)
        if self.config.skip != "none":
            dh = dh + d_decoder_in                             # the skip: h feeds G2 directly too
        self.E1.backward(dh, cache_e1, need_dx=False)

    def generate(self, images, labels, chunk=256):
        """Inference: images (N,3,H,W) in [-1,1], labels (N,L) -> dict of host arrays
        x_hat (N,3,H,W), z (N,latent) and d (the difference at the cut; None for `none`).
        Runs `chunk` faces at a time, so any N fits in memory (a grid of thousands of faces)."""
        if np.ndim(images) != 4 or tuple(np.shape(images)[1:]) != (3, self.config.image_size, self.config.image_size):
            raise ValueError(f"images must be (N, 3, {self.config.image_size}, {self.config.image_size}), "
                             f"got {np.shape(images)}")
        if tuple(np.shape(labels)) != (len(images), self.config.label_dim):
            raise ValueError(f"labels must be (N, {self.config.label_dim}) for this model, got {np.shape(labels)}")
        parts = {"x_hat": [], "z": [], "d": []}
        for start in range(0, len(images), chunk):
            x = backend.to_device(images[start:start + chunk], dtype=self.config.dtype)   # host or device
            l = backend.to_device(labels[start:start + chunk], dtype=self.config.dtype)
            x_hat, z, d, _ = self.autoencode(x, l)
            for key, value in (("x_hat", x_hat), ("z", z), ("d", d)):
                if value is not None:
                    parts[key].append(backend.to_host(value))
        return {key: np.concatenate(value) if value else None for key, value in parts.items()}

    def config_dict(self):
        return asdict(self.config)

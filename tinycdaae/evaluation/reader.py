"""The expression reader: a small CNN, built from the project's own layers, that reads the
expression of a 32×32 face (or of any size that is a multiple of 4: --size 64); trained on real
training-fold images only. Plus its confusion counts."""
import math
from dataclasses import dataclass

import numpy as np

from .. import backend
from ..layers import Conv2d, Dense, Flatten, LeakyReLU, Sequential
from ..losses import mse as mse_loss
from ..losses import softmax_cross_entropy
from ..optim import Adam

# ------------------------------------------------------------------------ expression classifier
READER_FACES_SEEN = 10800   # default training length: 15 epochs of 30 people's 720 faces (measured, docs/evaluation.md)


@dataclass
class ClassifierConfig:
    epochs: int = None        # None: enough epochs to show the reader READER_FACES_SEEN faces, at least 3
    batch_size: int = 32      # as the CDAAE
    lr: float = 1e-3          # Adam, as the CDAAE's autoencoder
    seed: int = 0             # weights and data order; the same seed gives the same classifier

    def __post_init__(self):
        if (self.epochs is not None and self.epochs < 1) or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(f"classifier needs epochs >= 1 (or None), batch_size >= 1 and lr > 0, got {self}")

    def epochs_for(self, n_images):
        return self.epochs or max(3, math.ceil(READER_FACES_SEEN / max(n_images, 1)))


class ExpressionReader:
    """A small CNN from the project's layers that reads the expression of a 32×32 face:

        conv 5×5/2 3→16, LeakyReLU (16×16) → conv 5×5/2 16→32, LeakyReLU (8×8)
        → dense 2048→64, LeakyReLU → dense 64→K
    (at image_size S the dense layer reads 32·(S/4)² features: 8192 at 64×64; the rest is the same)

    kind "emotion": K class logits, trained with softmax cross-entropy; predict() gives classes.
    kind "au": K AU intensities, trained with MSE; predict() gives them clipped to [0, 1].
    Trained on real training-fold images only, so generated images are judged by a reader that
    never saw a generated face (and never saw the held-out people).
    """

    def __init__(self, kind, n_outputs, config=None, image_size=32):
        if kind not in ("emotion", "au"):
            raise ValueError(f"kind must be 'emotion' or 'au', got {kind!r}")
        if image_size % 4 or image_size < 4:
            raise ValueError(f"image_size must be a multiple of 4 (two stride-2 convs), got {image_size}")
        self.kind, self.n_outputs = kind, int(n_outputs)
        self.config = config or ClassifierConfig()
        rng = np.random.default_rng(self.config.seed)
        self.net = Sequential(
            Conv2d(3, 16, 5, 2, 2, rng=rng, name="reader.conv1"), LeakyReLU(0.2),
            Conv2d(16, 32, 5, 2, 2, rng=rng, name="reader.conv2"), LeakyReLU(0.2),
            Flatten(), Dense(32 * (image_size // 4) ** 2, 64, rng=rng, name="reader.dense1"), LeakyReLU(0.2),
            Dense(64, self.n_outputs, rng=rng, name="reader.out"))
        self.history = []     # mean training loss per epoch

    def _loss(self, outputs, targets):
        if self.kind == "emotion":
            return softmax_cross_entropy(outputs, targets)
        return mse_loss(outputs, targets)

    def fit(self, images, labels):
        """images (N, 3, S, S) in [-1, 1]; labels (N, K): one-hot rows or AU intensities."""
        images, labels = np.asarray(images, np.float32), np.asarray(labels, np.float32)
        if labels.shape != (len(images), self.n_outputs):
            raise ValueError(f"labels must be ({len(images)}, {self.n_outputs}), got {labels.shape}")
        cfg = self.config
        optimizer = Adam(self.net.params(), lr=cfg.lr)
        order_rng = np.random.default_rng([cfg.seed, 1])
        for _ in range(cfg.epochs_for(len(images))):
            order = order_rng.permutation(len(images))
            total = 0.0               # summed on the device: one read-back per epoch, not per batch
            for start in range(0, len(images), cfg.batch_size):
                rows = order[start:start + cfg.batch_size]
                x = backend.to_device(images[rows])
                y = backend.to_device(labels[rows])
                optimizer.zero_grad()
                outputs, caches = self.net.forward(x)                  # (B, K)
                loss, d_outputs = self._loss(outputs, y)
                self.net.backward(d_outputs, caches, need_dx=False)
                optimizer.step()
                total = total + loss.astype("float64") * len(rows)
            self.history.append(float(total) / len(images))
        return self

    def outputs(self, images, chunk=512):
        """Raw outputs (N, K): logits, or unclipped intensities."""
        images = np.asarray(images, np.float32)
        out = [backend.to_host(self.net.forward(backend.to_device(images[s:s + chunk]))[0])
               for s in range(0, len(images), chunk)]
        return np.concatenate(out) if out else np.zeros((0, self.n_outputs), np.float32)

    def predict(self, images):
        """Emotions: (N,) class indices. AUs: (N, K) intensities clipped to [0, 1]."""
        out = self.outputs(images)
        return out.argmax(axis=1) if self.kind == "emotion" else np.clip(out, 0.0, 1.0)


def confusion_matrix(true, predicted, n_classes):
    """counts[i, j] = how many samples of class i were read as class j (rows: truth)."""
    true, predicted = np.asarray(true, np.int64), np.asarray(predicted, np.int64)
    counts = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(counts, (true, predicted), 1)
    return counts


def per_class_accuracy(counts):
    """Diagonal over row sums: the fraction of each true class read correctly (NaN: no samples)."""
    counts = np.asarray(counts, np.float64)
    rows = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, np.diag(counts) / rows, np.nan)

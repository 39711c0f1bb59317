"""The training loop: epochs of shuffled pairs, a per-step log, per-epoch checkpoints and samples.

    trainer = Trainer(objective, train_set, TrainConfig(epochs=30), out_dir="runs/demo")
    status = trainer.run()          # "finished", "interrupted" (Ctrl-C) or "diverged"

Like minGPT's trainer, this file knows nothing special about the model: it calls
``objective.step(x_s, x_t, l_t, adversarial)`` and ``checkpoint.save``; the per-epoch picture
comes from a ``sample_fn(path)`` the caller passes in (run.py draws grids.expression_grid).

What it writes in out_dir:
    log.jsonl         one JSON object per step (every loss term and both discriminators'
                      accuracies), plus lines with an "event" key (epoch summaries, warnings, stops)
    checkpoint.npz    after every epoch and on Ctrl-C; never after a NaN (see below)
    samples/epoch_003.png   whatever sample_fn draws, after every epoch, with the weights that
                      draw faces (the weight average when the recipe keeps one: objective.drawing_weights)
    .lock             run.py holds it for the life of a run (lock_run_folder): one run per folder

Exact resume. The data order comes from one seeded generator; its state at the start of the
current epoch, the number of batches done in that epoch and the monitors' memory all go into the
checkpoint's `extra`. Resuming rebuilds the epoch's permutation from that state and skips the
batches already done, so a resumed run takes exactly the steps an uninterrupted one would.

Safety. Every step's losses are checked before anything is saved: a NaN or infinity, or a
reconstruction loss that climbs far above its best (divergence), stops the run and leaves the
last checkpoint — written at the end of the last good epoch — untouched. Ctrl-C does not cut a
step in half: the first one asks the loop to stop after the current step, which is then saved;
a second Ctrl-C aborts at once without saving.
"""
import functools
import json
import math
import os
import signal
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass

import numpy as np

from . import backend, checkpoint
from .errors import ConfigError

CHANCE_LOSS_D = 2 * math.log(2)   # a discriminator that answers 0.5 everywhere: BCE(real) + BCE(fake)
DIVERGED_LOSS_R = 0.1             # an MSE this large is a face off by ~40 grey levels: not a good run


def run_seeds(seed):
    """One run seed -> three independent integer seeds (weights, prior samples, data order).
    Seeding three generators with the same integer would make them draw the same numbers."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(3)]


@dataclass
class TrainConfig:
    epochs: int = 40                  # the paper's "about 40 epochs" on RaFD
    batch_size: int = 32              # the paper's batch size
    warmup_epochs: int = 0            # epochs of reconstruction only (no D updates) before eqs 4-5; paper: 0
    warmup_steps: int = 0             # the same counted in steps (the warm-up lasts until both are done)
    seed: int = 0                     # seed of the data order (the weights and the prior have their own)
    flip: bool = False                # mirror each pair (input and target together) with probability 1/2
    colour_jitter: float = 0.0        # recolour each pair: per channel x -> g*x + b, g in 1±c, b in ±c
    shift: int = 0                    # move each pair by up to this many pixels in y and in x
    full_batches: bool = False        # top the epoch's short last batch up to batch_size (epoch_batches)
    face_only_targets: bool = False   # targets keep the input's pixels outside the face (face_only_targets)
    lr_decay_epochs: int = 0          # the last N epochs (all, in a shorter run) lower every learning
                                      # rate linearly towards 0 (learning_rate_scale); 0 = constant (paper)
    monitor_window: int = 50          # steps averaged by the collapse and divergence monitors
    collapse_patience: int = 200      # steps a sign of latent collapse must last before a warning
    divergence_factor: float = 10.0   # stop when L_R's running mean reaches this many times its best
    label_effect_threshold: float = 0.1   # warn below this fraction of the data's own change (measured:
                                          # ~0.01 for label-blind London runs, 0.7-0.9 for working ones)
    label_effect_patience: int = 2        # epochs in a row below it before the warning
    label_effect_grace: float = 0.25      # fraction of the epochs (and all warm-up epochs) not judged:
                                          # every run copies its input for a while first

    def __post_init__(self):
        if self.epochs < 1:
            raise ConfigError("epochs", f"must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError("batch_size", f"must be at least 1, got {self.batch_size}")
        if not 0 <= self.colour_jitter < 1:
            raise ConfigError("colour_jitter", "must be in [0, 1) (the default recipe uses 0.3 on the "
                                               f"synthetic faces), got {self.colour_jitter}")
        for name in ("warmup_epochs", "warmup_steps", "shift"):
            if getattr(self, name) < 0:
                raise ConfigError(name, f"must be 0 or more, got {getattr(self, name)}")
        if self.lr_decay_epochs < 0:
            raise ConfigError("lr_decay_epochs", f"must be 0 or more, got {self.lr_decay_epochs}")
        if self.monitor_window < 1 or self.collapse_patience < 1 or not self.divergence_factor > 1:
            raise ValueError("monitor_window and collapse_patience must be >= 1, divergence_factor > 1")
        if self.label_effect_patience < 1 or not 0 <= self.label_effect_grace <= 1:
            raise ValueError("label_effect_patience must be >= 1 and label_effect_grace in [0, 1]")

    def label_grace_epochs(self, steps_per_epoch):
        warmup = max(self.warmup_epochs, -(-self.warmup_steps // steps_per_epoch))   # ceil
        return max(warmup, int(self.epochs * self.label_effect_grace))

    def learning_rate_scale(self, step, steps_per_epoch):
        """The factor on every learning rate for the step after `step` steps. Constant (1) until the
        last lr_decay_epochs epochs (all of them in a shorter run), then linear towards 0 (the usual
        schedule of image-to-image GANs): with T = epochs·steps_per_epoch steps in all and
        K = min(lr_decay_epochs, epochs)·steps_per_epoch,
            scale(s) = min(1, (T − s) / K),     s = 0 … T − 1,
        so the last step takes 1/K of the rate. The weights then settle instead of ending on one
        step's noise. It depends on the step alone, so a resumed run follows the same schedule."""
        if self.lr_decay_epochs == 0:
            return 1.0
        total, decay = self.epochs * steps_per_epoch, min(self.lr_decay_epochs, self.epochs) * steps_per_epoch
        return min(1.0, (total - step) / decay)

    def adversarial(self, epoch, step):
        """Whether the step after `step` steps (in epoch `epoch`, from 0) is past the warm-up."""
        return epoch >= self.warmup_epochs and step >= self.warmup_steps


def epoch_batches(order, batch_size, full=False):
    """An epoch's batches: the shuffled pair rows `order` (P,) cut into runs of batch_size.

    When P is not a multiple of batch_size the last batch is short (London's 58 training people
    give 232 pairs: 7 batches of 32 and one of 8). Its gradient is a mean over fewer pairs, so its
    noise is √(32/8) = 2x that of the others, for the encoder, the decoder and both discriminators
    alike; Adam's step does not know which batch was short. With full=True that batch is topped up
    with the first pairs of the same order (seen twice in this epoch), so every step averages
    batch_size pairs; the number of steps is the same."""
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    missing = batch_size - len(batches[-1])
    if full and missing > 0:
        refill = order[np.arange(missing) % len(order)]          # (missing,) wraps if P < batch_size
        batches[-1] = np.concatenate([batches[-1], refill])
    return batches


# --------------------------------------------------------------------------------- monitors
def _rate(x):
    """A learning rate as it is typed on the command line: 0.002 -> '2e-3'."""
    mantissa, exponent = f"{x:e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def failure_advice(objective_config=None):
    """What to try when a monitor fires, given the run's settings (ObjectiveConfig, or None: unknown).
    The default recipe trains D_E at twice the encoder's rate; the advice names that rate for this run."""
    if objective_config is None:
        return ("the default recipe (--recipe stable) avoids this by training D_E twice as fast as the "
                "encoder; with other settings, try --lr-d-e 2e-3")
    twice = 2 * objective_config.lr_autoencoder
    if objective_config.lr_d_e >= twice:
        return ("D_E already learns twice as fast as the encoder here, as in the default recipe; runs that "
                "fail even so are measured in docs/stability.md and docs/size64.md: try another --seed")
    if objective_config.lr_d_e >= objective_config.lr_autoencoder:
        return ("D_E learns at the encoder's rate here; the default recipe trains it twice as fast, which "
                f"kept the label in a run this rate lost (docs/stability.md): try --lr-d-e {_rate(twice)}")
    return ("the default recipe (--recipe stable) avoids this by training D_E twice as fast as the "
            f"encoder; with other settings, try --lr-d-e {_rate(twice)}")


class LatentCollapseMonitor:
    """Watches the latent discriminator D_E: its loss should hover near chance, 2 ln 2 ≈ 1.39
    (D_E unsure, the codes z look like prior samples). It warns when the running mean of the last
    `window` adversarial steps stays far from chance in either direction:

      - far above (L_D_E > FAR · 2 ln 2): D_E is wrong about most samples. Either the encoder's
        codes fool it (L_E^ns -> 0: "collapse"), or it is *confidently wrong* (accuracy near 0: it
        calls codes real and prior samples fake) because the encoder drives z to wherever D_E
        last said "real" faster than D_E can follow. Either way the prior no longer shapes z.
      - far below (L_D_E < 2 ln 2 / FAR, or accuracy >= 0.99): D_E tells codes from prior
        samples every time; the encoder's L_E^ns gradient is then large and may drown L_R's.

    A sign must last `patience` steps in a row to be reported; it is reported once until it
    clears. Training is never stopped for it: it is a warning with the numbers and advice.
    """

    FAR = 2.0   # "far from chance": a factor of 2 either way

    def __init__(self, window, patience, advice=None):          # defaults: TrainConfig
        self.window, self.patience = window, patience
        self.advice = advice or failure_advice()
        self.loss_d_e, self.loss_e, self.acc_d_e = (deque(maxlen=window) for _ in range(3))
        self.streak = 0          # consecutive steps showing a sign
        self.reported = False    # already warned about the current episode

    def diagnose(self):
        """A sentence describing the running means if they show a sign, else None."""
        mean_d, mean_e, mean_acc = (float(np.mean(q)) for q in (self.loss_d_e, self.loss_e, self.acc_d_e))
        numbers = (f"over the last {self.window} steps L_D_E = {mean_d:.2f} (chance {CHANCE_LOSS_D:.2f}), "
                   f"L_E^ns = {mean_e:.3f}, acc_D_E = {mean_acc:.2f}")
        if mean_d > self.FAR * CHANCE_LOSS_D:
            if mean_acc <= 0.01:
                return ("D_E is confidently wrong: it calls the encoder's codes real and N(0, I) samples "
                        f"fake, so the prior no longer shapes z ({numbers})")
            return (f"latent discriminator collapse: D_E's loss is far above chance while the encoder "
                    f"fools it, so the prior no longer shapes z ({numbers})")
        if mean_acc >= 0.99 or mean_d < CHANCE_LOSS_D / self.FAR:
            return f"D_E is overpowering the encoder: it tells codes from N(0, I) samples ({numbers})"
        return None

    def update(self, metrics):
        """Feed one step's metrics; returns a warning message the step a sign has lasted
        `patience` steps, else None. Warm-up steps (no D_E loss) are ignored."""
        if "loss_D_E" not in metrics:
            return None
        self.loss_d_e.append(metrics["loss_D_E"])
        self.loss_e.append(metrics["loss_E"])
        self.acc_d_e.append(metrics["acc_D_E"])
        sign = self.diagnose() if len(self.loss_d_e) == self.window else None
        if sign is None:
            self.streak, self.reported = 0, False
            return None
        self.streak += 1
        if self.streak >= self.patience and not self.reported:
            self.reported = True
            return f"{sign}. The run continues; if the samples stop changing expression, {self.advice}."
        return None

    def state(self):
        return {"loss_d_e": list(self.loss_d_e), "loss_e": list(self.loss_e), "acc_d_e": list(self.acc_d_e),
                "streak": self.streak, "reported": self.reported}

    def load_state(self, state):
        for name in ("loss_d_e", "loss_e", "acc_d_e"):
            getattr(self, name).extend(state[name])
        self.streak, self.reported = state["streak"], state["reported"]


def label_effect(model, faces, labels):
    """How much the output depends on the label: the mean absolute pixel difference between
    x̂ = G(faces, l_a) and G(faces, l_b), averaged over every pair a < b of the rows of `labels`.
    faces (N, 3, H, W) in [-1, 1], labels (L, label_dim). 0: the network ignores the label."""
    outputs = [model.generate(faces, np.repeat(row[None], len(faces), axis=0))["x_hat"] for row in labels]
    gaps = [np.abs(outputs[a] - outputs[b]).mean() for a in range(len(outputs)) for b in range(a)]
    return float(np.mean(gaps))


class LabelEffectMonitor:
    """Watches whether the generated faces still depend on the label: after each epoch,
    label_effect (the mean |x̂(l_a) − x̂(l_b)| over a fixed batch of faces and every pair of the
    data's labels) against the change the data itself asks for, the mean |x_t − x_s| over the
    pairs whose label changes. A network that learnt the label changes its output by a sizeable
    fraction of that; one that copies its input or ignores the label, by almost nothing.

    It warns, once, when the ratio stays below `threshold` for `patience` epochs in a row after
    the first `grace` epochs (every network starts by copying its input; see docs/stability.md)."""

    def __init__(self, threshold, patience, grace, advice=None):          # defaults: TrainConfig
        self.threshold, self.patience, self.grace = threshold, patience, grace
        self.advice = advice or failure_advice()
        self.streak, self.reported = 0, False

    def update(self, epoch, effect, data_change):
        """Feed one epoch's numbers; returns a warning message or None."""
        ratio = effect / max(data_change, 1e-12)
        if epoch <= self.grace or ratio >= self.threshold:
            self.streak, self.reported = 0, False
            return None
        self.streak += 1
        if self.streak >= self.patience and not self.reported:
            self.reported = True
            return (f"the generated faces hardly depend on the label: changing the label changes the "
                    f"output by {effect:.4f} on average, {ratio:.0%} of the change the data asks for "
                    f"({data_change:.4f}), for {self.streak} epochs in a row. The network is copying its "
                    f"input or ignoring the label; {self.advice}.")
        return None

    def state(self):
        return {"streak": self.streak, "reported": self.reported}

    def load_state(self, state):
        self.streak, self.reported = state["streak"], state["reported"]


class DivergenceMonitor:
    """Stops a run whose reconstruction loss blows up: the running mean of L_R over `window`
    steps rising to `factor` times the lowest running mean seen, and above DIVERGED_LOSS_R."""

    def __init__(self, window, factor):            # defaults: TrainConfig
        self.factor = factor
        self.recent = deque(maxlen=window)
        self.best = math.inf

    def update(self, metrics):
        """Returns a message when the run has diverged, else None."""
        self.recent.append(metrics["loss_R"])
        if len(self.recent) < self.recent.maxlen:
            return None
        self.best = min(self.best, float(np.mean(self.recent)))
        return self._past_the_stop(self.recent, "diverged")

    def recent_blowup(self, last=8):
        """The same stopping point for the mean of the last `last` steps only: a sudden blow-up,
        which the `window`-step running mean reaches some steps later. Asked before each save, so
        that the checkpoint kept after a divergence is a good one. A message, or None."""
        if not math.isfinite(self.best) or len(self.recent) < last:
            return None
        return self._past_the_stop(list(self.recent)[-last:], "blew up")

    def _past_the_stop(self, values, verb):
        """The message when the mean of `values` is `factor` times the best and above DIVERGED_LOSS_R."""
        mean = float(np.mean(values))
        if mean > self.factor * self.best and mean > DIVERGED_LOSS_R:
            return (f"the reconstruction loss {verb}: its mean over the last {len(values)} steps "
                    f"is {mean:.4f}, {mean / self.best:.0f}x its best ({self.best:.4f})")
        return None

    def state(self):
        return {"recent": list(self.recent), "best": self.best if math.isfinite(self.best) else None}

    def load_state(self, state):
        self.recent.extend(state["recent"])
        self.best = math.inf if state["best"] is None else state["best"]


# ----------------------------------------------------------------------------------- helpers
def label_probe(faceset, n_faces=32, max_pairs=1024):
    """What LabelEffectMonitor looks at, fixed for a whole run: source faces (n, 3, H, W) of pairs
    whose label changes (evenly spread over the pairs), the label rows to compare (the data's
    distinct labels if there are at most 16, else each label alone at full strength: AU data),
    and the data's own change, the mean |x_t − x_s| over up to max_pairs such pairs."""
    labels = np.asarray(faceset.labels, np.float32)
    pairs = faceset.pairs
    changing = pairs[np.abs(labels[pairs[:, 0]] - labels[pairs[:, 1]]).max(axis=1) > 1e-6]
    if len(changing) == 0:
        return None
    faces = faceset.images[changing[np.linspace(0, len(changing) - 1, n_faces).astype(int), 0]]
    sample = changing[np.linspace(0, len(changing) - 1, min(max_pairs, len(changing))).astype(int)]
    data_change = float(np.abs(faceset.images[sample[:, 1]] - faceset.images[sample[:, 0]]).mean())
    rows = np.unique(labels, axis=0)
    rows = rows if len(rows) <= 16 else np.eye(labels.shape[1], dtype=np.float32)
    return faces, rows, data_change


def mirror_half(batch, seed, step):
    """Mirror a random half of the pairs left-right, input and target together. The label stays:
    an emotion, or DISFA's AU intensities, which are coded for both sides of the face. The coin
    flips come from (seed, step), not from a stream that would have to be saved, so a resumed
    run mirrors exactly the pairs an uninterrupted one would."""
    x_s, x_t, l_t = batch                                    # (B,3,H,W), (B,3,H,W), (B,L)
    mirrored = np.random.default_rng((seed, step)).random(len(x_s)) < 0.5          # (B,) bool
    x_s, x_t = x_s.copy(), x_t.copy()
    x_s[mirrored] = x_s[mirrored][..., ::-1]                 # W is the last axis
    x_t[mirrored] = x_t[mirrored][..., ::-1]
    return x_s, x_t, l_t


def jitter_pairs(batch, seed, step, colour, shift):
    """Recolour and move each pair, input and target by the same amount, so that the pair still
    shows one person changing expression and the label stays true. Why: a network trained on few
    people learns to redraw *those* people (synthetic-40 trains to L_R ~ 0.001 and redraws a new
    face worse than copying it); a pair seen in a new colour and position is, to the network, a
    new person, and what it learns must then hold for people it has not seen.

    colour c: per pair and channel, x -> clip(g x + b, -1, 1) with g ~ U(1-c, 1+c), b ~ U(-c, c)
    (skin, hair, background and light in new tints); shift s: per pair, a move by (dy, dx) in
    {-s..s}^2 pixels, the border pixels repeated into the uncovered edge. The draws come from
    (seed, step), like mirror_half's, so a resumed run sees exactly the batches of an
    uninterrupted one."""
    x_s, x_t, l_t = batch                                    # (B,3,H,W), (B,3,H,W), (B,L)
    rng = np.random.default_rng((seed, step, 1))             # not mirror_half's (seed, step) stream
    n = len(x_s)
    if colour > 0:
        gain = rng.uniform(1 - colour, 1 + colour, (n, 3, 1, 1)).astype(x_s.dtype)   # (B,3,1,1)
        offset = rng.uniform(-colour, colour, (n, 3, 1, 1)).astype(x_s.dtype)
        x_s = np.clip(gain * x_s + offset, -1, 1)
        x_t = np.clip(gain * x_t + offset, -1, 1)
    if shift > 0:
        moves = rng.integers(-shift, shift + 1, (n, 2))      # (B, 2): dy, dx
        x_s, x_t = _shifted(x_s, moves, shift), _shifted(x_t, moves, shift)
    return x_s, x_t, l_t


# Where the face sits in an aligned crop: an ellipse (cy, cx, ry, rx) in fractions of the crop's
# height and width. It is evaluation.metrics.FACE_ELLIPSE, the identity column's face; the core
# never imports the evaluation, so the numbers are repeated here (tests/test_stability.py checks
# that both agree). How far past it the target fades into the input, in units of its radii:
FACE_ELLIPSE = (16.5 / 32, 15.5 / 32, 12 / 32, 9 / 32)
FACE_FADE = 0.3


@functools.lru_cache(maxsize=4)
def face_weight(size):
    """(size, size) float32: how much of the real target a face_only_targets pair keeps at each
    pixel. With r the pixel's distance from the centre of the face ellipse in units of its radii
    (FACE_ELLIPSE; r = 1 on its edge):

        w = clip((1 + FACE_FADE − r) / FACE_FADE, 0, 1)       1 inside the face, 0 from r = 1.3 out

    Cached: the trainer asks for it on every step, and it depends on the size alone (read-only)."""
    cy, cx, ry, rx = FACE_ELLIPSE
    yy, xx = np.mgrid[0:size, 0:size]                        # as evaluation.metrics.face_mask
    r = np.sqrt(((yy - cy * size) / (ry * size)) ** 2 + ((xx - cx * size) / (rx * size)) ** 2)   # (H, W)
    w = np.clip((1 + FACE_FADE - r) / FACE_FADE, 0, 1).astype(np.float32)
    w.flags.writeable = False
    return w


def face_only_targets(batch):
    """Replace each target outside the face by its input: x_t ← w·x_t + (1 − w)·x_s (w: face_weight).

    Two photos of one person differ outside the face too (hair falls differently, the head turns
    a little, the light of the session changes), and no label explains those differences. Trained
    on them, the network learns the training people's own changes there as part of the label and
    draws them on people it has never seen. With these targets, the label changes the face, and
    everything around it is redrawn from the input. Measured in docs/stability.md: on the London
    photos every run then draws closer to the real targets than copying, and the network no longer
    learns the sides by heart, so it can train longer for a clear expression. The default recipe
    uses it on the London photos (120 epochs, decaying rates); off for other data and in the
    paper's recipe."""
    x_s, x_t, l_t = batch                                    # (B,3,H,W), (B,3,H,W), (B,L)
    w = face_weight(x_s.shape[-1])                           # (H, W)
    return x_s, (w * x_t + (1 - w) * x_s).astype(x_t.dtype), l_t


def augment(batch, config, step):
    """The pair transforms `config` asks for, as the trainer applies them before step `step`:
    the face-only targets (config.face_only_targets), mirroring (config.flip), then recolouring
    and moving (config.colour_jitter, config.shift)."""
    if config.face_only_targets:
        batch = face_only_targets(batch)
    if config.flip:
        batch = mirror_half(batch, config.seed, step)
    if config.colour_jitter or config.shift:
        batch = jitter_pairs(batch, config.seed, step, config.colour_jitter, config.shift)
    return batch


def _shifted(images, moves, s):
    """images (B,3,H,W) each moved by moves[i] = (dy, dx): content at (y, x) goes to (y+dy, x+dx)."""
    height, width = images.shape[2:]
    padded = np.pad(images, ((0, 0), (0, 0), (s, s), (s, s)), mode="edge")     # (B,3,H+2s,W+2s)
    out = np.empty_like(images)
    for i, (dy, dx) in enumerate(moves):
        out[i] = padded[i, :, s - dy:s - dy + height, s - dx:s - dx + width]
    return out


def all_finite(arrays):
    """Whether every value of every array is finite. Run on each batch before its step (about a
    millisecond for a batch of 32x32 faces): a NaN in the data would otherwise surface as a NaN
    loss, and the divergence message would blame the learning rates."""
    for a in arrays:
        xp = np if isinstance(a, np.ndarray) else backend.xp
        if not bool(xp.isfinite(a).all()):
            return False
    return True


def non_finite_terms(metrics):
    """Names of the loss terms that are NaN or infinite."""
    return [name for name, value in metrics.items() if not math.isfinite(value)]


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked: another run holds it, or its log is damaged.
    The message says which folder and what to do; run.py prints it and exits with code 2."""


def lock_run_folder(out_dir):
    """Take the run folder for this process: an exclusive lock on OUT/.lock, held until the
    returned file is closed (or the process ends). A second run into the same folder, started
    while this one lives, gets RunFolderError naming the holder's process id: two trainings
    writing one log and one checkpoint would both "succeed" and leave a mixture of two runs.

    Why flock: the kernel drops the lock when its holder's file is closed, which happens however
    the process ends (exit, Ctrl-C, kill -9, a crash). A lock left by a dead run therefore no
    longer exists and the next run takes it over at once, with no stale-pid guessing and no race
    between "is it stale?" and "take it". The file itself is never deleted (deleting it would let
    a third process lock a fresh inode while the second still holds the old one); it only records
    the holder's pid for the message. On systems without fcntl (Windows) there is no lock.
    """
    os.makedirs(out_dir, exist_ok=True)
    try:
        import fcntl
    except ImportError:                                   # Windows: run unlocked
        return None
    path = os.path.join(out_dir, ".lock")
    f = open(path, "a+")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:                                       # held by a live process
        f.seek(0)
        holder = f.read().strip() or "unknown (it is starting)"
        f.close()
        raise RunFolderError(f"{out_dir} is in use by another training run (process id {holder}); "
                             f"wait for it to finish, or choose another --out") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def set_log_aside(path):
    """Rename an existing log to log.previous-<time>.jsonl; returns the new name. A new run
    whose folder holds a log but no checkpoint (e.g. a first epoch that diverged) must not append
    to it: the log would then mix two runs' step numbers."""
    stem, ext = os.path.splitext(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target, n = f"{stem}.previous-{stamp}{ext}", 1
    while os.path.exists(target):                         # two in one second: number them
        target, n = f"{stem}.previous-{stamp}-{n}{ext}", n + 1
    os.replace(path, target)
    return target


def truncate_log(path, last_step):
    """Drop log lines written after `last_step` (steps done after the checkpoint a run resumes
    from, e.g. before a NaN stop or a kill), so the log stays one line per step. A last line that
    is not JSON is a line torn by a kill in the middle of a write: it is dropped. Any other
    unreadable line is damage this cannot repair: RunFolderError."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [line for line in f if line.strip()]
    kept = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
            step = record.get("step", 0) if isinstance(record, dict) else None
        except ValueError:
            step = None
        if step is None or not isinstance(step, (int, float)):
            if number == len(lines):                      # torn by a kill: drop it
                break
            raise RunFolderError(f"{path}: line {number} is not a log record; the log is damaged. "
                                 f"Move it aside (e.g. rename it to log.damaged.jsonl) and resume again")
        if step <= last_step:
            kept.append(line if line.endswith("\n") else line + "\n")
    with open(path, "w") as f:
        f.writelines(kept)


class StopRequest:
    """Turns the first Ctrl-C (SIGINT) into a flag the loop checks between steps; the second
    one raises KeyboardInterrupt as usual. Used as a context manager around the loop."""

    def __init__(self):
        self.requested = False
        self.previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():   # signals reach the main thread only
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


# ----------------------------------------------------------------------------------- trainer
class Trainer:
    """Trains `objective` on the pairs of `train_set` (a FaceSet) and writes into `out_dir`.

    extra_info: JSON-able facts stored in every checkpoint (run.py stores the options and the
    label names that `generate` needs). resume: the `extra` of the checkpoint being continued
    (checkpoint.restore has already loaded the weights into `objective`).
    """

    def __init__(self, objective, train_set, config, out_dir, sample_fn=None, extra_info=None,
                 resume=None, resume_hint="", say=print):
        self.objective, self.train_set, self.config = objective, train_set, config
        self.out_dir, self.sample_fn, self.extra_info = out_dir, sample_fn, dict(extra_info or {})
        self.resume_hint, self.say = resume_hint, say
        self.checkpoint_path = os.path.join(out_dir, "checkpoint.npz")
        self.log_path = os.path.join(out_dir, "log.jsonl")
        advice = failure_advice(objective.config)
        self.collapse = LatentCollapseMonitor(config.monitor_window, config.collapse_patience, advice)
        self.divergence = DivergenceMonitor(config.monitor_window, config.divergence_factor)
        self.label_monitor = LabelEffectMonitor(config.label_effect_threshold, config.label_effect_patience,
                                                config.label_grace_epochs(self.steps_per_epoch()), advice)
        self.probe = label_probe(train_set)
        self.epoch = 0                 # epochs completed
        self.batch_in_epoch = 0        # batches completed in the current epoch
        self.rng_state = np.random.default_rng(config.seed).bit_generator.state   # at this epoch's start
        self.saved_step = None         # step of the checkpoint on disk from this run, if any
        if resume is not None:
            trainer_state = resume["trainer"]
            self.epoch, self.batch_in_epoch = trainer_state["epoch"], trainer_state["batch_in_epoch"]
            self.rng_state = trainer_state["order_rng"]
            self.collapse.load_state(trainer_state["collapse"])
            self.divergence.load_state(trainer_state["divergence"])
            if "label_effect" in trainer_state:            # checkpoints written before this monitor lack it
                self.label_monitor.load_state(trainer_state["label_effect"])
            self.saved_step = objective.step_count
            truncate_log(self.log_path, objective.step_count)
        elif os.path.exists(self.log_path):      # a log without the run it belonged to: keep it apart
            moved = set_log_aside(self.log_path)
            self.say(f"{self.log_path} was left by an earlier run that saved no checkpoint; moved it "
                     f"to {moved} and starting a fresh log")

    def steps_per_epoch(self):
        return max(1, -(-len(self.train_set) // self.config.batch_size))      # ceil: the last batch may be short

    def state(self):
        return {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "order_rng": self.rng_state,
                "collapse": self.collapse.state(), "divergence": self.divergence.state(),
                "label_effect": self.label_monitor.state(),
                "config": asdict(self.config)}

    def save(self):
        checkpoint.save(self.checkpoint_path, self.objective, extra={**self.extra_info, "trainer": self.state()})
        self.saved_step = self.objective.step_count

    def _save_if_finite(self):
        """Save and return None; or, when the last update made a weight NaN or infinite, write
        nothing and stop as diverged (returns "diverged"). The losses of a step are computed before
        its update, so an update can still break the weights: never write such a checkpoint."""
        xp = backend.xp
        if not all(bool(xp.isfinite(p.data).all()) for p in self.objective.model.params()):
            return self._stop_diverged("a weight became NaN or infinite in the last update",
                                       self.objective.step_count)
        blowup = self.divergence.recent_blowup()
        if blowup:                    # the running mean lags a sudden blow-up: keep the older checkpoint
            return self._stop_diverged(blowup, self.objective.step_count)
        self.save()
        return None

    def log(self, record):
        self.log_file.write(json.dumps(record) + "\n")
        self.log_file.flush()

    def run(self):
        """Train until config.epochs are done. Returns "finished", "interrupted", "diverged" or
        "bad_data" (a NaN or infinity in the data itself)."""
        cfg = self.config
        if len(self.train_set) == 0:
            raise ValueError("the training set has no pairs")
        if self.epoch >= cfg.epochs:
            self.say(f"this run has already done {self.epoch} epochs; give a larger --epochs to train further")
            return "finished"
        os.makedirs(self.out_dir, exist_ok=True)
        started = time.perf_counter()
        with open(self.log_path, "a") as self.log_file, StopRequest() as stop:
            while self.epoch < cfg.epochs:
                stopped = self._run_epoch(stop, started)
                if stopped:
                    return stopped
        self.say(f"done: {cfg.epochs} epochs, {self.objective.step_count} steps in "
                 f"{time.perf_counter() - started:.0f} s; checkpoint {self.checkpoint_path}")
        return "finished"

    def _run_epoch(self, stop, started):
        """One epoch (or the rest of one, after a resume): its batches, then the save, the sample
        picture and the epoch's log line. Returns a stop status, or None to go on."""
        cfg, n_pairs = self.config, len(self.train_set)
        rng = np.random.default_rng()
        rng.bit_generator.state = self.rng_state
        order = rng.permutation(n_pairs)                                      # (P,) pair rows
        batches = epoch_batches(order, cfg.batch_size, cfg.full_batches)
        epoch_start = time.perf_counter()
        stopped, sums, count = self._run_batches(batches, stop, started)
        if stopped:
            return stopped
        if stop.requested and self.batch_in_epoch < len(batches):
            return self._stop_interrupted()
        # the epoch is complete
        self.epoch, self.batch_in_epoch, self.rng_state = self.epoch + 1, 0, rng.bit_generator.state
        stopped = self._end_epoch(sums, count, epoch_start)
        if stopped:
            return stopped
        if stop.requested:
            return self._stop_interrupted()
        return None

    def _run_batches(self, batches, stop, started):
        """The epoch's remaining batches, with a progress bar. Returns (stop status or None,
        summed metrics, steps taken)."""
        from tqdm import tqdm
        cfg = self.config
        warming_up = not cfg.adversarial(self.epoch, self.objective.step_count)
        sums, count = {}, 0
        bar = tqdm(total=len(batches), initial=self.batch_in_epoch, leave=False, unit="batch",
                   mininterval=0.5,
                   desc=f"epoch {self.epoch + 1}/{cfg.epochs}" + (" (warm-up)" if warming_up else ""))
        try:
            for b in range(self.batch_in_epoch, len(batches)):
                if stop.requested:
                    break
                adversarial = cfg.adversarial(self.epoch, self.objective.step_count)
                metrics = self._step(b, batches[b], adversarial, started)
                if isinstance(metrics, str):                 # a stop status
                    return metrics, sums, count
                for name, value in metrics.items():
                    sums[name] = sums.get(name, 0.0) + value
                count += 1
                bar.set_postfix_str(self._short(metrics), refresh=False)
                bar.update(1)
        finally:
            bar.close()
        return None, sums, count

    def _step(self, b, rows, adversarial, started):
        """One optimisation step on batch b (its pair rows), logged and watched by the monitors.
        Returns the step's metrics, or a stop status (bad data, divergence)."""
        from tqdm import tqdm
        batch = augment(self.train_set.batch(rows), self.config, self.objective.step_count)
        if not all_finite(batch):       # the data's fault, not the optimiser's
            return self._stop_bad_data(b + 1, rows)
        self.objective.scale_learning_rates(
            self.config.learning_rate_scale(self.objective.step_count, self.steps_per_epoch()))
        metrics = self.objective.step(*batch, adversarial=adversarial)
        step = self.objective.step_count
        bad = non_finite_terms(metrics)
        problem = (f"{', '.join(bad)} became {metrics[bad[0]]} at step {step}" if bad
                   else self.divergence.update(metrics))
        if problem:
            return self._stop_diverged(problem, step)
        self.batch_in_epoch = b + 1
        self.log({"step": step, "epoch": self.epoch + 1, "batch": b + 1, **metrics,
                  "seconds": round(time.perf_counter() - started, 3)})
        warning = self.collapse.update(metrics)
        if warning:
            tqdm.write(f"warning (step {step}): {warning}")
            self.log({"event": "collapse_warning", "step": step, "message": warning})
        return metrics

    def _end_epoch(self, sums, count, epoch_start):
        """After a complete epoch: the label-effect check, the checkpoint, the sample picture and
        the epoch's log line. Returns a stop status, or None."""
        label_numbers = self._check_label_effect()           # before the save: its state is saved
        stopped = self._save_if_finite()
        if stopped:
            return stopped
        sample_path = None
        if self.sample_fn is not None:
            sample_path = os.path.join(self.out_dir, "samples", f"epoch_{self.epoch:03d}.png")
            with self.objective.drawing_weights():        # the faces `generate` would draw now
                self.sample_fn(sample_path)
        means = {**{name: total / max(count, 1) for name, total in sums.items()}, **label_numbers}
        seconds = time.perf_counter() - epoch_start
        if self.config.lr_decay_epochs:        # the factor the epoch's last step took its rates with
            means["lr_scale"] = self.config.learning_rate_scale(self.objective.step_count - 1, self.steps_per_epoch())
        self.log({"event": "epoch", "step": self.objective.step_count, "epoch": self.epoch,
                  "steps_this_session": count, "seconds": round(seconds, 2), **means})
        self.say(f"epoch {self.epoch}/{self.config.epochs} ({seconds:.0f} s, step {self.objective.step_count}): "
                 f"{self._short(means)}" + (f" -> {sample_path}" if sample_path else ""))
        return None

    def _check_label_effect(self):
        """After an epoch: measure how much the output depends on the label, warn if it has stopped
        depending on it. Returns the numbers for the epoch's log line."""
        if self.probe is None:
            return {}
        faces, rows, data_change = self.probe
        effect = label_effect(self.objective.model, faces, rows)
        warning = self.label_monitor.update(self.epoch, effect, data_change)
        if warning:
            self.say(f"warning (epoch {self.epoch}): {warning}")
            self.log({"event": "label_warning", "step": self.objective.step_count, "epoch": self.epoch,
                      "message": warning})
        return {"label_effect": effect, "label_effect_ratio": effect / data_change}

    @staticmethod
    def _short(metrics):
        """The loss terms for the progress bar and the epoch line."""
        names = (("loss_R", "L_R", ".4f"), ("loss_E", "L_E^ns", ".3f"), ("loss_G", "L_G^ns", ".3f"),
                 ("loss_D_E", "L_D_E", ".3f"), ("loss_D_G", "L_D_G", ".3f"),
                 ("acc_D_E", "acc_D_E", ".2f"), ("acc_D_G", "acc_D_G", ".2f"),
                 ("label_effect_ratio", "label_effect", ".2f"))
        return " ".join(f"{short}={metrics[key]:{fmt}}" for key, short, fmt in names if key in metrics)

    def _stop_interrupted(self):
        stopped = self._save_if_finite()
        if stopped:
            return stopped
        self.log({"event": "interrupted", "step": self.objective.step_count})
        self.say(f"interrupted: saved step {self.objective.step_count} (epoch {self.epoch + 1}, "
                 f"{self.batch_in_epoch} batches into it) to {self.checkpoint_path}."
                 + (f" Resume with: {self.resume_hint}" if self.resume_hint else ""))
        return "interrupted"

    def _stop_bad_data(self, batch_number, pair_rows):
        """The next batch holds a NaN or infinite pixel or label: stop before the update, write
        nothing, and say it is the data (no learning rate fixes that)."""
        pairs = self.train_set.pairs[pair_rows]
        images = np.unique(pairs)
        bad = [int(i) for i in images if not np.isfinite(self.train_set.images[i]).all()
               or not np.isfinite(self.train_set.labels[i]).all()]
        problem = (f"the training data holds NaN or infinite values (batch {batch_number} of epoch "
                   f"{self.epoch + 1}; image/label rows {bad[:8]}{' ...' if len(bad) > 8 else ''})")
        self.log({"event": "bad_data", "step": self.objective.step_count, "message": problem})
        self.say(f"stopped: {problem}. This is the data, not the training settings: check the images "
                 f"and labels it was built from. Nothing was written for this step.")
        return "bad_data"

    def _stop_diverged(self, problem, step):
        self.log({"event": "diverged", "step": step, "message": problem})
        if self.saved_step is not None:
            kept = f"the last good checkpoint, {self.checkpoint_path} (step {self.saved_step}), is kept"
        else:
            kept = "no checkpoint was written (this happened in the first epoch)"
        self.say(f"stopped: {problem}; {kept}. Lower the learning rates (--lr, --lr-d-e) or try "
                 f"--warmup-epochs / --label-smoothing.")
        return "diverged"

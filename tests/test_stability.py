"""The training recipes and the monitors that watch for the latent-discriminator failure.

Each warning is driven by real training of a tiny network on synthetic faces (no mocked
metrics): a configuration built to fail fires it, the default recipe stays quiet. And the
paper's recipe, one flag away, is exactly the library's paper settings, bit for bit."""
import json
import os

import numpy as np
import pytest

from tinycdaae import checkpoint
from tinycdaae.data.datasets import load_dataset, split_for_training
from tinycdaae.model import CDAAE, ModelConfig
from tinycdaae.objective import Objective, ObjectiveConfig
from tinycdaae.recipes import RECIPES, default_epochs, objective_config, recipe_options, train_config
from tinycdaae.training import LabelEffectMonitor, LatentCollapseMonitor, TrainConfig, Trainer, face_only_targets, label_effect, label_probe


@pytest.fixture(scope="module")
def faces():
    """8 synthetic people, 2 folds: 4 to train on (x 3 gazes x 64 pairs = 768 pairs)."""
    return split_for_training(load_dataset("synthetic", kind="emotion", n_subjects=8), 0, 2)


def train(tmp_path, train_set, objective_options, epochs, batch_size=64, **train_options):
    """Train a tiny N2 for real; return (status, the log's warning events, the trainer)."""
    model = CDAAE(ModelConfig(width=0.125, seed=1))
    objective = Objective(model, ObjectiveConfig(prior_seed=2, **objective_options))
    config = TrainConfig(epochs=epochs, batch_size=batch_size, seed=3, **train_options)
    trainer = Trainer(objective, train_set, config, str(tmp_path), say=lambda message: None)
    status = trainer.run()
    with open(os.path.join(tmp_path, "log.jsonl")) as f:
        events = [json.loads(line) for line in f if '"event"' in line]
    return status, [e for e in events if e["event"].endswith("warning")], trainer


# ----------------------------------------------------------------- D_E far from chance, both ways
def test_d_e_warning_fires_when_the_encoder_outruns_a_frozen_d_e(tmp_path, faces):
    """D_E barely learns (lr 1e-7) while the encoder chases its 'real' side with a strong L_E:
    D_E's loss climbs far above chance, and the trainer says so, with numbers, once."""
    status, warnings, _ = train(tmp_path, faces[0], {"lr_d_e": 1e-7, "beta1": 1.0, "lr_autoencoder": 3e-3},
                                epochs=4, monitor_window=10, collapse_patience=10)
    assert status == "finished"                                     # a warning never stops the run
    d_e = [w for w in warnings if w["event"] == "collapse_warning"]
    assert len(d_e) == 1, warnings
    assert "far above chance" in d_e[0]["message"] or "confidently wrong" in d_e[0]["message"]
    assert "L_D_E = " in d_e[0]["message"] and "--recipe stable" in d_e[0]["message"]


def test_d_e_warning_fires_when_d_e_overpowers_a_frozen_encoder(tmp_path, faces):
    status, warnings, _ = train(tmp_path, faces[0], {"lr_d_e": 1e-2, "lr_autoencoder": 1e-7},
                                epochs=4, monitor_window=10, collapse_patience=10)
    d_e = [w for w in warnings if w["event"] == "collapse_warning"]
    assert status == "finished" and len(d_e) == 1 and "overpowering" in d_e[0]["message"]


@pytest.mark.long_training
def test_no_warning_with_the_default_recipe(tmp_path, faces):
    options = objective_config(RECIPES["stable"]).__dict__
    options = {k: v for k, v in options.items() if k != "prior_seed"}
    # 20 epochs of 12 steps; the label is judged from epoch 11 on (this tiny network starts to
    # follow it around epoch 8: ratio 0.07, then 0.11 at epoch 9 and 0.3 at epoch 12)
    status, warnings, trainer = train(tmp_path, faces[0], options, epochs=20, monitor_window=10,
                                      collapse_patience=10, label_effect_grace=0.5)
    assert status == "finished" and warnings == []
    with open(os.path.join(tmp_path, "log.jsonl")) as f:
        epochs = [json.loads(line) for line in f if '"event": "epoch"' in line]
    assert epochs[-1]["label_effect_ratio"] > trainer.config.label_effect_threshold


# ------------------------------------------------------------------------ the label stops mattering
@pytest.mark.long_training
def test_label_warning_fires_when_the_output_ignores_the_label(tmp_path, faces):
    """An autoencoder that cannot learn (lr 1e-9) stays at its initial, label-blind output."""
    status, warnings, trainer = train(tmp_path, faces[0], {"lr_autoencoder": 1e-9}, epochs=8,
                                      label_effect_patience=2, label_effect_grace=0.5)
    labels = [w for w in warnings if w["event"] == "label_warning"]
    assert status == "finished" and len(labels) == 1
    grace = trainer.config.label_grace_epochs(trainer.steps_per_epoch())
    assert labels[0]["epoch"] == grace + 2                          # first judged epoch, then patience
    assert "hardly depend on the label" in labels[0]["message"]


def test_label_effect_measures_the_outputs_dependence_on_the_label(faces):
    train_set = faces[0]
    images, rows, data_change = label_probe(train_set)
    assert images.shape == (32, 3, 32, 32) and rows.shape == (8, 8) and 0.01 < data_change < 1
    model = CDAAE(ModelConfig(width=0.125, seed=1))
    assert label_effect(model, images, rows) > 0
    model.G1.layers[0].w.data[:, model.config.latent_dim:] = 0          # cut the label out of G1
    assert label_effect(model, images, rows) == 0


def test_label_monitor_grace_patience_and_state():
    monitor = LabelEffectMonitor(threshold=0.1, patience=2, grace=3)
    blind = [monitor.update(epoch, 0.001, 0.1) for epoch in range(1, 8)]
    assert [bool(m) for m in blind] == [False, False, False, False, True, False, False]
    other = LabelEffectMonitor(threshold=0.1, patience=2, grace=3)
    other.load_state(json.loads(json.dumps(monitor.state())))
    assert other.update(8, 0.001, 0.1) is None and other.update(9, 0.05, 0.1) is None  # cleared
    assert other.update(10, 0.001, 0.1) is None and other.update(11, 0.001, 0.1)       # a new episode


def test_d_e_monitor_names_a_confidently_wrong_discriminator():
    monitor = LatentCollapseMonitor(window=5, patience=5)
    wrong = {"loss_D_E": 40.0, "loss_E": 0.5, "acc_D_E": 0.0}
    messages = [m for m in (monitor.update(wrong) for _ in range(20)) if m]
    assert len(messages) == 1 and "confidently wrong" in messages[0] and "L_D_E = 40.00" in messages[0]


# ---------------------------------------------------------------------------------- the recipes
def test_paper_recipe_is_the_papers_settings():
    assert objective_config(RECIPES["paper"]) == ObjectiveConfig()      # the library's defaults: the paper's
    assert RECIPES["paper"]["warmup_epochs"] == 0 == TrainConfig().warmup_epochs
    assert RECIPES["paper"]["warmup_steps"] == 0 == TrainConfig().warmup_steps
    assert RECIPES["paper"]["ema_decay"] == 0 == ObjectiveConfig().ema_decay      # drawn with the last weights
    assert RECIPES["paper"]["colour_jitter"] == 0 == TrainConfig().colour_jitter  # the pairs as they are
    assert RECIPES["paper"]["shift"] == 0 == TrainConfig().shift
    assert RECIPES["paper"]["full_batches"] is False is TrainConfig().full_batches   # the last batch may be short
    assert RECIPES["paper"]["face_only_targets"] is False is TrainConfig().face_only_targets   # the real targets
    assert RECIPES["paper"]["lr_decay_epochs"] == 0 == TrainConfig().lr_decay_epochs   # constant rates
    assert recipe_options("paper", "synthetic") == RECIPES["paper"]     # the paper's on every dataset


def test_the_stable_recipe_recolours_the_synthetic_faces_only():
    assert recipe_options("stable", "synthetic") == {**RECIPES["stable"], "colour_jitter": 0.3}
    for photos in ("folder", "rafd", "disfa", None):
        assert recipe_options("stable", photos) == RECIPES["stable"] and RECIPES["stable"]["colour_jitter"] == 0
    assert train_config(recipe_options("stable", "synthetic"), epochs=1).colour_jitter == 0.3
    assert not RECIPES["stable"]["face_only_targets"] and not RECIPES["stable"]["full_batches"]   # options only


def test_the_stable_recipe_trains_the_london_photos_on_face_only_targets_longer_with_decaying_rates():
    london = recipe_options("stable", "london")
    assert london == {**RECIPES["stable"], "face_only_targets": True, "lr_decay_epochs": 20}
    config = train_config(london, epochs=default_epochs("stable", "london"))
    assert config.face_only_targets and config.lr_decay_epochs == 20 and config.epochs == 120
    assert recipe_options("paper", "london") == RECIPES["paper"] and default_epochs("paper", "london") == 60
    assert default_epochs("stable", "synthetic") is None is default_epochs("stable", "folder")


def test_the_command_line_takes_each_recipes_london_settings_unless_typed(tmp_path):
    """`run.py train --dataset london`: 120 epochs, face-only targets, decaying rates; with
    --recipe paper 60 epochs and neither; a typed value wins over both."""
    from tinycdaae.cli import build_parser, resolve_train_options

    def options(*argv):
        return resolve_train_options(build_parser().parse_args(["train", "--dataset", "london", *argv,
                                                                "--out", str(tmp_path / "run")]))[0]
    stable, paper = options(), options("--recipe", "paper")
    assert (stable["epochs"], stable["face_only_targets"], stable["lr_decay_epochs"]) == (120, True, 20)
    assert (paper["epochs"], paper["face_only_targets"], paper["lr_decay_epochs"]) == (60, False, 0)
    typed = options("--epochs", "30", "--no-face-only-targets", "--lr-decay-epochs", "0")
    assert (typed["epochs"], typed["face_only_targets"], typed["lr_decay_epochs"]) == (30, False, 0)
    assert options("--dataset", "synthetic")["epochs"] == 10    # the last --dataset wins: the general default


# The library side of the comparison below, run in its own process with the same environment as
# the CLI (one BLAS thread): BLAS results can differ with the thread count, and the claim is
# about the recipe, not about BLAS.
LIBRARY_RUN = """
import sys
from tinycdaae.data.datasets import load_dataset, split_for_training
from tinycdaae.model import CDAAE, ModelConfig
from tinycdaae.objective import Objective, ObjectiveConfig
from tinycdaae.training import Trainer, TrainConfig, run_seeds
train_set, _ = split_for_training(load_dataset("synthetic", kind="emotion", n_subjects=4, folds=2), 0, 2)
weight_seed, prior_seed, order_seed = run_seeds(0)
objective = Objective(CDAAE(ModelConfig(width=0.0625, seed=weight_seed)), ObjectiveConfig(prior_seed=prior_seed))
Trainer(objective, train_set, TrainConfig(epochs=2, batch_size=128, seed=order_seed), sys.argv[2],
        say=lambda message: None).run()
"""


@pytest.mark.other_process
def test_recipe_paper_on_the_command_line_is_the_paper_bit_for_bit(tmp_path):
    """`run.py --recipe paper` trains exactly what the library does with the paper's settings
    (ObjectiveConfig's defaults, which are the paper's: test_paper_recipe_is_the_papers_settings)."""
    import subprocess
    import sys
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = tmp_path / "cli"
    subprocess.run([sys.executable, os.path.join(repo, "run.py"), "--recipe", "paper", "--subjects", "4",
                    "--folds", "2", "--width", "0.0625", "--batch-size", "128", "--epochs", "2",
                    "--device", "cpu", "--out", str(out)], env=env, check=True, capture_output=True, cwd=repo)
    subprocess.run([sys.executable, "-c", LIBRARY_RUN, repo, str(tmp_path / "lib")], env=env, check=True,
                   capture_output=True, cwd=repo)
    cli_arrays = checkpoint.read(str(out / "checkpoint.npz"))[1]
    lib_arrays = checkpoint.read(str(tmp_path / "lib" / "checkpoint.npz"))[1]
    weights = [k for k in lib_arrays if k != "meta_json"]
    assert len(weights) > 20 and all(np.array_equal(cli_arrays[k], lib_arrays[k]) for k in weights)
    paper = checkpoint.read(str(out / "checkpoint.npz"), arrays=False)[0]["objective_config"]
    assert paper["lr_d_e"] == 1e-4 and paper["adam_beta1"] == 0.9 and paper["adam_beta2"] == 0.999


def test_a_warm_up_in_steps_ends_mid_epoch_and_counts_both_ways(tmp_path, faces):
    """--warmup-steps 5: the first 5 steps update no discriminator (no D losses logged), the 6th
    does; with --warmup-epochs too, the warm-up lasts until both counts are done."""
    status, _, trainer = train(tmp_path, faces[0], {}, epochs=1, warmup_steps=5)     # 12 steps an epoch
    with open(os.path.join(tmp_path, "log.jsonl")) as f:
        steps = [json.loads(line) for line in f if '"event"' not in line]
    assert status == "finished" and len(steps) == trainer.steps_per_epoch() == 12
    assert [("loss_D_E" in s) for s in steps] == [False] * 5 + [True] * 7
    both = TrainConfig(warmup_epochs=1, warmup_steps=20)
    assert [both.adversarial(epoch, step) for epoch, step in ((0, 30), (1, 12), (1, 20), (2, 24))] == \
        [False, False, True, True]
    assert both.label_grace_epochs(steps_per_epoch=8) == 10           # a quarter of 40 epochs
    assert TrainConfig(epochs=4, warmup_steps=20).label_grace_epochs(steps_per_epoch=8) == 3   # ceil(20 / 8)


# ----------------------------------------------------------------- full batches
def test_epoch_batches_top_the_short_last_batch_up_from_the_epochs_start():
    from tinycdaae.training import epoch_batches
    order = np.random.default_rng(0).permutation(232)                 # London fold 0: 232 pairs
    short = epoch_batches(order, 32)
    assert [len(b) for b in short] == [32] * 7 + [8]                  # the paper's: one batch of 8
    full = epoch_batches(order, 32, full=True)
    assert [len(b) for b in full] == [32] * 8                         # as many steps, all of 32
    assert np.array_equal(full[-1], np.concatenate([order[224:], order[:24]]))
    assert all(np.array_equal(a, b) for a, b in zip(short[:7], full[:7]))
    assert sorted(np.concatenate(full)[:232]) == list(range(232))     # every pair still once first
    assert [len(b) for b in epoch_batches(order[:64], 32, full=True)] == [32, 32]   # nothing to top up
    tiny = epoch_batches(np.array([2, 0, 1]), 8, full=True)           # fewer pairs than a batch: wraps
    assert len(tiny) == 1 and list(tiny[0]) == [2, 0, 1, 2, 0, 1, 2, 0]


def test_the_trainer_steps_on_full_batches_only_when_asked(tmp_path, faces):
    """768 pairs in batches of 100: 7 of 100 and one of 68, or with full_batches 8 of 100."""
    for full in (False, True):
        model = CDAAE(ModelConfig(width=0.0625, seed=1))
        objective = Objective(model, ObjectiveConfig(prior_seed=2))
        sizes, step = [], objective.step
        objective.step = lambda x_s, x_t, l_t, **kw: sizes.append(len(x_s)) or step(x_s, x_t, l_t, **kw)
        config = TrainConfig(epochs=1, batch_size=100, seed=3, full_batches=full)
        assert Trainer(objective, faces[0], config, str(tmp_path / str(full)), say=lambda m: None).run() == "finished"
        assert sizes == [100] * 7 + [100 if full else 68]
    for recipe in ("paper", "stable"):                                # an option, off in both recipes
        assert train_config(recipe_options(recipe, "london"), epochs=1).full_batches is False
        asked = {**recipe_options(recipe, "london"), "full_batches": True}
        assert train_config(asked, epochs=1).full_batches is True


def test_learning_rates_fall_linearly_over_the_last_epochs_only_when_asked(tmp_path, faces):
    """768 pairs in batches of 100 (8 steps an epoch), 2 epochs, the last one decaying: every rate
    is its own for the first 8 steps, then (16 − s)/8 of it at step s = 8 … 15 (the last 1/8),
    all three keeping their ratios. Without decay they never change."""
    for decay in (0, 1):
        model = CDAAE(ModelConfig(width=0.0625, seed=1))
        objective = Objective(model, ObjectiveConfig(prior_seed=2, lr_d_e=2e-3))
        rates, step = [], objective.step
        objective.step = lambda *batch, **kw: rates.append(
            (objective.opt_autoencoder.lr, objective.opt_d_e.lr, objective.opt_d_g.lr)) or step(*batch, **kw)
        config = TrainConfig(epochs=2, batch_size=100, seed=3, lr_decay_epochs=decay)
        assert Trainer(objective, faces[0], config, str(tmp_path / str(decay)), say=lambda m: None).run() == "finished"
        scales = [1.0] * 16 if decay == 0 else [1.0] * 8 + [(16 - s) / 8 for s in range(8, 16)]
        expected = np.array([(1e-3 * f, 2e-3 * f, 1e-4 * f) for f in scales])       # (16 steps, 3 rates)
        np.testing.assert_allclose(np.array(rates), expected, rtol=1e-12)
        with open(tmp_path / str(decay) / "log.jsonl") as f:
            epochs = [json.loads(line) for line in f if '"event": "epoch"' in line]
        assert [e.get("lr_scale") for e in epochs] == ([None, None] if decay == 0 else [1.0, 1 / 8])
    assert TrainConfig(epochs=60, lr_decay_epochs=20).learning_rate_scale(479, 8) == 1 / 160
    longer = TrainConfig(epochs=10, lr_decay_epochs=20)               # a shorter run decays throughout
    assert [longer.learning_rate_scale(s, 8) for s in (0, 40, 79)] == [1.0, 0.5, 1 / 80]
    for recipe, dataset in (("paper", "london"), ("stable", "synthetic"), ("stable", "folder")):
        assert train_config(recipe_options(recipe, dataset), epochs=1).lr_decay_epochs == 0   # London's own


# ----------------------------------------------------------------- mirroring (data augmentation)
def test_mirror_half_mirrors_input_and_target_together_and_repeats_per_step(faces):
    from tinycdaae.training import mirror_half
    x_s, x_t, l_t = faces[0].batch(np.arange(64))
    out_s, out_t, out_l = mirror_half((x_s, x_t, l_t), seed=3, step=7)
    mirrored_s = [not np.array_equal(out_s[i], x_s[i]) for i in range(64)]
    mirrored_t = [not np.array_equal(out_t[i], x_t[i]) for i in range(64)]
    assert mirrored_s == mirrored_t, "a pair's input and target must be mirrored together"
    assert 16 <= sum(mirrored_s) <= 48                     # about half (Binomial(64, 1/2))
    for i in np.flatnonzero(mirrored_s):                  # mirrored means W reversed, nothing else
        assert np.array_equal(out_s[i], x_s[i][..., ::-1]) and np.array_equal(out_t[i], x_t[i][..., ::-1])
    assert out_l is l_t                                   # the label of a mirrored face is the same
    again = mirror_half((x_s, x_t, l_t), seed=3, step=7)  # (seed, step) decide: a resumed run repeats it
    assert np.array_equal(again[0], out_s) and np.array_equal(again[1], out_t)
    other = mirror_half((x_s, x_t, l_t), seed=3, step=8)
    assert not np.array_equal(other[0], out_s)
    assert np.array_equal(faces[0].batch(np.arange(64))[0], x_s), "the training set itself is untouched"


def test_colour_jitter_recolours_input_and_target_alike_and_repeats_per_step(faces):
    from tinycdaae.training import jitter_pairs
    x_s, x_t, l_t = faces[0].batch(np.arange(64))
    x_t[:8] = x_s[:8]                                     # 8 pairs whose target is their input
    out_s, out_t, out_l = jitter_pairs((x_s, x_t, l_t), seed=3, step=7, colour=0.3, shift=0)
    assert out_l is l_t and out_s.dtype == x_s.dtype and out_s.shape == x_s.shape
    assert np.array_equal(out_s[:8], out_t[:8]), "one recolouring per pair: equal images stay equal"
    assert out_s.min() >= -1 and out_s.max() <= 1 and out_t.min() >= -1 and out_t.max() <= 1
    # per pair and channel one affine map g x + b (where nothing was clipped): fit it on the input,
    # it must give the target too, and g, b must be inside 1 ± 0.3 and ± 0.3
    for i in range(8, 16):
        for c in range(3):
            inside = (np.abs(out_s[i, c]) < 0.999) & (np.abs(x_s[i, c] - x_s[i, c].mean()) > 0.05)
            g, b = np.polyfit(x_s[i, c][inside], out_s[i, c][inside], 1)
            assert 0.7 - 1e-3 <= g <= 1.3 + 1e-3 and -0.3 - 1e-3 <= b <= 0.3 + 1e-3
            inside_t = np.abs(out_t[i, c]) < 0.999
            assert np.allclose(out_t[i, c][inside_t], g * x_t[i, c][inside_t] + b, atol=1e-4)
    assert np.abs(out_s - x_s).mean() > 0.05                              # it does recolour
    again = jitter_pairs((x_s, x_t, l_t), seed=3, step=7, colour=0.3, shift=0)
    assert np.array_equal(again[0], out_s) and np.array_equal(again[1], out_t)   # (seed, step) decide
    assert not np.array_equal(jitter_pairs((x_s, x_t, l_t), seed=3, step=8, colour=0.3, shift=0)[0], out_s)
    assert np.array_equal(faces[0].batch(np.arange(64))[0][8:], x_s[8:]), "the training set is untouched"


def test_augment_applies_the_configs_transforms_in_the_trainers_order(faces):
    from tinycdaae.training import augment, jitter_pairs, mirror_half
    batch = faces[0].batch(np.arange(32))
    assert augment(batch, TrainConfig(seed=3), step=7) is batch          # nothing asked: the batch itself
    both = augment(batch, TrainConfig(seed=3, flip=True, colour_jitter=0.3, shift=1), step=7)
    by_hand = jitter_pairs(mirror_half(batch, 3, 7), 3, 7, colour=0.3, shift=1)
    assert all(np.array_equal(a, b) for a, b in zip(both, by_hand))
    every = augment(batch, TrainConfig(seed=3, face_only_targets=True, flip=True, colour_jitter=0.3), step=7)
    by_hand = jitter_pairs(mirror_half(face_only_targets(batch), 3, 7), 3, 7, colour=0.3, shift=0)
    assert all(np.array_equal(a, b) for a, b in zip(every, by_hand))


def test_face_only_targets_keep_the_target_in_the_face_and_the_input_around_it(faces):
    from tinycdaae.evaluation.metrics import FACE_ELLIPSE, face_mask
    from tinycdaae.training import FACE_ELLIPSE as TRAINING_FACE_ELLIPSE
    from tinycdaae.training import face_weight
    assert TRAINING_FACE_ELLIPSE == FACE_ELLIPSE                        # one face, repeated in the core
    w = face_weight(32)                                                 # (32, 32)
    assert np.array_equal(w == 1, face_mask(32, 32))                   # the identity column's face
    assert (w[:, :4] == 0).all() and (w[:, -4:] == 0).all() and (w[0] == 0).all()   # sides, top: the input
    assert w[:, 4:-4].sum(axis=0).min() < w[:, 4:-4].sum(axis=0).max() / 4  # fading out toward each side
    assert ((w > 0) & (w < 1)).sum() > 100                             # a soft edge, not a cut
    assert face_weight(64).shape == (64, 64) and face_weight(64).sum() == pytest.approx(4 * w.sum(), rel=0.02)
    x_s, x_t, l_t = faces[0].batch(np.arange(32))
    x_t = np.clip(x_t + 0.2, -1, 1)                                     # a session's light: the whole photo
    out_s, out_t, out_l = face_only_targets((x_s, x_t, l_t))
    assert out_s is x_s and out_l is l_t and out_t.dtype == x_t.dtype  # the input and label as they were
    assert np.array_equal(out_t[..., w == 1], x_t[..., w == 1])         # the face: the real target
    assert np.array_equal(out_t[..., w == 0], x_s[..., w == 0])         # around it: the input
    between = (w > 0) & (w < 1)
    assert np.allclose(out_t[..., between], (w * x_t + (1 - w) * x_s)[..., between], atol=1e-6)
    assert np.abs(x_t - x_s)[..., w == 0].mean() > 0.1, "the target differs there, so the test can fail"


def test_shift_moves_input_and_target_by_the_same_pixels():
    from tinycdaae.training import jitter_pairs
    n, size = 200, 12
    x_s = np.full((n, 3, size, size), -1, np.float32)
    x_t = np.full((n, 3, size, size), -1, np.float32)
    x_s[:, :, 5, 6] = 1                                   # one bright pixel, a different one in the target
    x_t[:, :, 4, 3] = 1
    out_s, out_t, _ = jitter_pairs((x_s, x_t, np.zeros((n, 8), np.float32)), seed=0, step=0, colour=0, shift=2)
    moves = set()
    for i in range(n):
        (ys, xs), (yt, xt) = (np.argwhere(o[i, 0] == 1)[0] for o in (out_s, out_t))
        assert (ys - 5, xs - 6) == (yt - 4, xt - 3), "input and target move together"
        assert max(abs(ys - 5), abs(xs - 6)) <= 2 and (out_s[i] == 1).sum() == 3      # moved, not smeared
        moves.add((ys - 5, xs - 6))
    assert len(moves) == 25                               # every move in {-2..2}^2 occurs in 200 draws
    ramp = np.tile(np.linspace(-1, 1, size, dtype=np.float32), (1, 3, size, 1))       # (1,3,12,12) x-ramp
    edges = set()
    for step in range(30):                                # the uncovered columns repeat the border
        moved = jitter_pairs((ramp, ramp, np.zeros((1, 8), np.float32)), seed=0, step=step, colour=0, shift=2)[0]
        dx = int(np.argmin(np.abs(moved[0, 0, 0] - ramp[0, 0, 0, 5]))) - 5
        assert np.allclose(moved[0, :, :, max(dx, 0):size + min(dx, 0)], ramp[0, :, :, max(-dx, 0):size - max(dx, 0)])
        if dx:
            edge = moved[0, :, :, :dx] if dx > 0 else moved[0, :, :, dx:]
            assert np.all(edge == (ramp[0, 0, 0, 0] if dx > 0 else ramp[0, 0, 0, -1]))
            edges.add(np.sign(dx))
    assert edges == {-1, 1}


def test_the_warnings_advice_fits_the_runs_own_settings():
    from tinycdaae.training import failure_advice
    assert "--lr-d-e 2e-3" in failure_advice(objective_config(RECIPES["paper"]))
    stable = failure_advice(objective_config(RECIPES["stable"]))
    assert "--lr-d-e" not in stable and "already learns twice as fast as the encoder" in stable
    same_rate = failure_advice(objective_config({**RECIPES["stable"], "lr_d_e": 1e-3}))
    assert "at the encoder's rate" in same_rate and "--lr-d-e 2e-3" in same_rate
    slower_encoder = failure_advice(objective_config({**RECIPES["paper"], "lr": 5e-4}))
    assert "--lr-d-e 1e-3" in slower_encoder                  # twice this run's encoder rate, not the default's


class TargetsBlowUpFrom:
    """The training pairs, with the targets flipped and tripled (x_t -> -3 x_t) from batch `start`
    on: L_R jumps ~100x within a few steps, as in a sudden divergence."""

    def __init__(self, faceset, start):
        self.faceset, self.start, self.calls = faceset, start, 0

    def __getattr__(self, name):
        return getattr(self.faceset, name)

    def __len__(self):
        return len(self.faceset)

    def batch(self, rows):
        x_s, x_t, l_t = self.faceset.batch(rows)
        self.calls += 1
        return (x_s, -3 * x_t, l_t) if self.calls >= self.start else (x_s, x_t, l_t)


def test_a_blow_up_in_an_epochs_last_steps_keeps_the_previous_checkpoint(tmp_path, faces):
    """8 epochs of 12 steps; the blow-up starts at step 93, four steps before the epoch-8 save. The
    50-step running mean has not reached the stopping point by then; the save is refused anyway,
    and the epoch-7 checkpoint (step 84) is the one kept."""
    blowing = TargetsBlowUpFrom(faces[0], start=93)
    model = CDAAE(ModelConfig(width=0.125, seed=1))
    objective = Objective(model, objective_config(RECIPES["stable"], prior_seed=2))
    trainer = Trainer(objective, blowing, TrainConfig(epochs=8, batch_size=64, seed=3), str(tmp_path),
                      say=lambda message: None)
    assert trainer.run() == "diverged"
    assert checkpoint.read(os.path.join(tmp_path, "checkpoint.npz"))[0]["step"] == 84
    with open(os.path.join(tmp_path, "log.jsonl")) as f:
        events = [json.loads(line) for line in f if '"event"' in line]
    assert events[-1]["event"] == "diverged" and "blew up" in events[-1]["message"]
    assert events[-1]["step"] == 96

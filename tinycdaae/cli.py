"""tinycdaae's command line: train a CDAAE, generate expressions on your own photo, check gradients.

    python run.py                                    train on the built-in synthetic faces
    python run.py --dataset rafd --data-dir RaFD     train on RaFD (same as `python run.py train ...`)
    python run.py --dataset london                   train on the built-in London photos (real faces)
    python run.py generate --checkpoint runs/NAME/checkpoint.npz --image photo.jpg --emotion happy
    python run.py gradcheck                          check every hand-written gradient
    python run.py evaluate --checkpoint runs/A runs/B   score networks on their held-out people
    python run.py compare                            train n1, n2, n3, none and evaluate them

`train` is the default command, so options without a command train. Each command is one
function below, registered in COMMANDS (gradcheck hands its arguments to tinycdaae.gradcheck);
adding a command means one add_parser block in build_parser and one function.

Mistakes in what you typed (options, paths, names, datasets, checkpoints) print one message to
stderr and exit with code 2, never a traceback; so do damaged checkpoints, a run folder another
training holds (see tinycdaae.training.lock_run_folder) and NaN in the training data. Ctrl-C during
training saves and exits with 130; a run stopped by a NaN loss or a diverging loss exits with 3.
"""
import argparse
import os
import sys

import numpy as np

from . import backend, checkpoint, grids
from .data.datasets import BUILT_IN, DATASETS
from .data.labels import AUS, EMOTIONS, parse_label
from .errors import ConfigError, DatasetError
from .model import MAX_WIDTH
from .recipes import DATASET_SETTINGS, DEFAULT_RECIPE, RECIPE_EPOCHS, RECIPE_OPTIONS, RECIPES, STABLE_REASONS, default_epochs, recipe_options
from .training import RunFolderError, run_seeds

EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 2, 3, 130
# Upper bounds on sizes typed by hand: beyond them a typo (an extra zero) would ask for gigabytes
# of memory or hours of work before failing, so they are refused at once with the bound.
MAX_STEPS = 64                        # generate --steps: a 64x64 manifold is 4096 faces already
MAX_SCALE = 32                        # generate --scale: 1024 px per face


class UsageError(ValueError):
    """A mistake in the command line: the message says what to type instead."""


# -------------------------------------------------------------------------------- the options
# Defaults of the training options. The parser's defaults are None so that `--resume` can tell
# an option you typed from one you left out (left out: the run's own value is used).
TRAIN_DEFAULTS = {
    "dataset": "synthetic",   # the built-in faces: no download
    "data_dir": None,
    "labels": "emotion",      # synthetic only: the 8 emotions (RaFD-like) or 12 AU intensities (DISFA-like)
    "subjects": 200,          # synthetic only: people rendered (150 train, 50 held out); with 40 it overfitted
    "skip": "n2",             # the paper's choice
    "width": 0.25,            # channels 16-32-64-128: ~10x cheaper than the reference, see docs/cli.md
    "fold": 0,
    "folds": 4,               # the paper's 4-fold subject-independent cross-validation
    "epochs": 10,             # measured: recognisable expressions on held-out synthetic people, docs/cli.md
    "batch_size": 32,         # paper
    "seed": 0,
    "recipe": DEFAULT_RECIPE, # the optimisation settings below come from it (tinycdaae/recipes.py)
}
# What defines a run: a resumed run keeps these (--epochs, --device and --out may change).
RUN_OPTIONS = tuple(k for k in TRAIN_DEFAULTS if k != "epochs") + RECIPE_OPTIONS
ARCHITECTURE_OPTIONS = ("skip", "width")   # a mismatch here is reported by the checkpoint module
# --size: the side of the faces. 32 is the paper's; 64 aligns (or draws) the same faces at twice
# the resolution, and the network's four stride-2 convs end at 4x4 instead of 2x2 (docs/size64.md).
# A checkpoint holds its size as model_config["image_size"] (not among the stored run options,
# so a 32x32 run's checkpoint is the same file it always was); generate and evaluate follow it.
SIZES, DEFAULT_SIZE = (32, 64), 32


def flag(name):
    return "--" + name.replace("_", "-")


def recipe_line(options):
    """'recipe: stable, epochs 120; unlike the paper's: --lr-d-e 0.002, ...': what this run trains
    with, so the screen says it (the per-dataset settings and any typed override included)."""
    paper = RECIPES["paper"]
    changed = [flag(k) if v is True else f"{flag(k)} {v:g}" if isinstance(v, float) else f"{flag(k)} {v}"
               for k in RECIPE_OPTIONS if (v := options[k]) != paper[k]]
    return (f"recipe: {options['recipe']}, epochs {options['epochs']}; "
            + ("unlike the paper's: " + ", ".join(changed) if changed else "the paper's settings"))


def add_train_options(p):
    _add_data_options(p.add_argument_group("data"), TRAIN_DEFAULTS)
    _add_model_and_training_options(p, TRAIN_DEFAULTS)
    _add_recipe_options(p.add_argument_group(
        "recipe (the optimisation settings; each option below overrides the recipe's value)"))
    run = p.add_argument_group("run")
    run.add_argument("--device", choices=("cpu", "gpu", "auto"), default="auto",
                     help="cpu (NumPy), gpu (CuPy) or auto: the GPU when CuPy sees one (default auto)")
    run.add_argument("--out", metavar="DIR", help="run directory for log.jsonl, checkpoint.npz and "
                     "samples/ (default runs/DATASET-LABELS-SKIP-foldK)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out exactly where "
                     "its checkpoint left it; options you leave out are taken from the run")


def _add_data_options(data, d):
    data.add_argument("--dataset", choices=DATASETS,
                      help=f"what to train on (default {d['dataset']}: built-in faces, no download; "
                           "london: 78 real people, neutral and happy, built in; "
                           "rafd/disfa/folder need --data-dir, see docs/datasets.md)")
    data.add_argument("--data-dir", metavar="PATH", help="where your copy of RaFD, DISFA or your own "
                      "labelled folder is (not for synthetic or london, which are built in)")
    data.add_argument("--labels", choices=("emotion", "au"),
                      help=f"synthetic only: train on the 8 emotions or on the 12 AU intensities "
                           f"(default {d['labels']}); real datasets bring their own kind")
    data.add_argument("--subjects", type=int, metavar="N",
                      help=f"synthetic only: number of people to render (default {d['subjects']})")
    data.add_argument("--fold", type=int, metavar="K", help=f"which fold of people is held out: never "
                      f"trained on, shown in the sample grids (0..folds-1, default {d['fold']})")
    data.add_argument("--folds", type=int, metavar="K", help=f"number of subject-independent folds "
                      f"(default {d['folds']}, as in the paper)")


def _add_model_and_training_options(p, d):
    model = p.add_argument_group("model")
    model.add_argument("--skip", choices=("n1", "n2", "n3", "none"),
                       help=f"where the difference connection joins encoder and decoder: n1 (16x16), "
                            f"n2 (8x8, the paper's choice), n3 (4x4), or none (CAAE-like control); "
                            f"default {d['skip']}")
    model.add_argument("--size", type=int, choices=SIZES, help=f"side of the faces in pixels: "
                       f"{DEFAULT_SIZE} (default, the paper's) or 64; photos are aligned at it, synthetic "
                       f"faces drawn at it (see docs/size64.md)")
    model.add_argument("--width", type=float, metavar="W",
                       help=f"channel multiplier: 1.0 is the reference 64-128-256-512 (default "
                            f"{d['width']}, 16-32-64-128, fast enough for a laptop CPU; at most {MAX_WIDTH:g})")
    train = p.add_argument_group("training")
    train.add_argument("--epochs", type=int, metavar="N", help=f"epochs to train in all (default "
                       f"{d['epochs']}; " + epochs_help()
                       + "); with --resume, raise it to train an earlier run further")
    train.add_argument("--batch-size", type=int, metavar="N",
                       help=f"pairs per step (default {d['batch_size']}, paper)")
    train.add_argument("--seed", type=int, metavar="N", help=f"one seed for the weights, the data order "
                       f"and the prior's samples; same seed, same run bit for bit on the CPU "
                       f"(default {d['seed']})")


def epochs_help():
    """'london 120, or 60 with --recipe paper': the datasets whose default epochs differ."""
    datasets = sorted({d for per_dataset in RECIPE_EPOCHS.values() for d in per_dataset})
    return "; ".join(f"{d} {RECIPE_EPOCHS[DEFAULT_RECIPE][d]}" + "".join(
        f", or {RECIPE_EPOCHS[r][d]} with --recipe {r}" for r in sorted(RECIPE_EPOCHS) if r != DEFAULT_RECIPE)
        for d in datasets)


def _add_recipe_options(recipe):
    recipe.add_argument("--recipe", choices=sorted(RECIPES), help=f"'{DEFAULT_RECIPE}' (default): the "
                        "paper's recipe, except: " + "; ".join(STABLE_REASONS.values()) + ". 'paper': Zhou & "
                        "Shi's settings exactly (N2 then learns the label in some seeds only; see docs/stability.md)")

    def recipe_default(k, fmt="g"):
        return ", ".join(f"{name} {format(values[k], fmt)}" for name, values in sorted(RECIPES.items()))

    recipe.add_argument("--lr", type=float, metavar="LR", help="Adam learning rate of the encoder "
                        f"and decoder ({recipe_default('lr')})")
    recipe.add_argument("--lr-d-e", type=float, metavar="LR", help="Adam learning rate of the latent "
                        f"discriminator D_E ({recipe_default('lr_d_e')})")
    recipe.add_argument("--lr-d-g", type=float, metavar="LR", help="Adam learning rate of the image "
                        f"discriminator D_G ({recipe_default('lr_d_g')})")
    recipe.add_argument("--adam-beta1", type=float, metavar="B", help="Adam's first-moment decay, all "
                        f"three optimizers ({recipe_default('adam_beta1')})")
    recipe.add_argument("--adam-beta2", type=float, metavar="B", help="Adam's second-moment decay, all "
                        f"three optimizers ({recipe_default('adam_beta2')})")
    recipe.add_argument("--latent-weight", type=float, metavar="W", help="β1, the weight of the latent "
                        "adversarial term L_E in the encoder's loss (the paper's eq. 2; "
                        f"{recipe_default('latent_weight')})")
    recipe.add_argument("--warmup-epochs", type=int, metavar="N", help="train the autoencoder alone "
                        "(reconstruction only) for N epochs before the adversarial terms "
                        f"({recipe_default('warmup_epochs', 'd')})")
    recipe.add_argument("--warmup-steps", type=int, metavar="N", help="the same warm-up counted in steps: the "
                        "first N steps train the autoencoder alone; the warm-up lasts until both counts are "
                        f"done ({recipe_default('warmup_steps', 'd')})")
    recipe.add_argument("--label-smoothing", type=float, nargs="?", const=0.1, metavar="S",
                        help="one-sided label smoothing: the discriminators aim at 1-S for real samples; "
                             f"the flag alone means S=0.1 ({recipe_default('label_smoothing')})")
    recipe.add_argument("--flip", action=argparse.BooleanOptionalAction, help="mirror a random half of "
                        "each batch's pairs left-right, input and target together; measured in "
                        f"docs/stability.md ({recipe_default('flip', '')})")
    recipe.add_argument("--full-batches", action=argparse.BooleanOptionalAction, help="top each epoch's "
                        "short last batch up to --batch-size with pairs from the start of the epoch, so "
                        f"every step averages as many pairs ({recipe_default('full_batches', '')})")
    recipe.add_argument("--face-only-targets", action=argparse.BooleanOptionalAction, help="train on "
                        "targets that keep the input's pixels outside the face (the label changes the face; "
                        "hair, backdrop and light are redrawn from the input); measured in docs/stability.md "
                        "(paper off; stable on for the London photos, off for other data)")
    recipe.add_argument("--lr-decay-epochs", type=int, metavar="N", help="lower every learning rate "
                        "linearly towards 0 over the run's last N epochs (all of them in a shorter run; the "
                        "three rates keep their ratios); "
                        "0 keeps them constant (paper 0; stable "
                        f"{DATASET_SETTINGS['stable']['london']['lr_decay_epochs']} for the London photos, 0 for other data)")
    recipe.add_argument("--colour-jitter", type=float, metavar="C", help="recolour each pair, input and "
                        "target alike: per colour channel x -> g*x + b with g in 1±C and b in ±C; 0 turns "
                        "it off (paper 0; stable "
                        f"{DATASET_SETTINGS['stable']['synthetic']['colour_jitter']:g} for the synthetic "
                        "faces, 0 for photographs)")
    recipe.add_argument("--shift", type=int, metavar="N", help="move each pair, input and target alike, by "
                        "up to N pixels in each direction; 0 turns it off; measured in docs/stability.md "
                        f"({recipe_default('shift', 'd')})")
    recipe.add_argument("--ema-decay", type=float, metavar="D", help="faces are drawn (samples, "
                        "generate, evaluate) with a moving average of the encoder's and decoder's weights "
                        "over the last ~1/(1-D) steps; 0 draws with the last weights "
                        f"({recipe_default('ema_decay')})")



def add_generate_options(p):
    p.add_argument("--checkpoint", metavar="PATH",
                   help="a checkpoint.npz written by training (or its run directory); default: the "
                        "built-in model, N2 trained on the 78 London people (neutral and happy)")
    p.add_argument("--image", required=True, metavar="PATH",
                   help="your photo: the face is found and aligned exactly as the training data was "
                        "(needs the [data] extras) at the checkpoint's size (32x32, or 64x64 for a "
                        "--size 64 run); an image of exactly that size is taken as already aligned "
                        "(e.g. aligned.png written with --scale 1)")
    what = p.add_argument_group("what to draw (any combination; none given: --grid all)")
    label = what.add_mutually_exclusive_group()
    label.add_argument("--emotion", metavar="SPEC", help="target emotion for result.png: 'happy', or a "
                       "mix 'happy=0.5,surprised=0.5' (names: those the checkpoint was trained on, at most "
                       + ", ".join(EMOTIONS) + "; the London photos have neutral and happy)")
    label.add_argument("--au", metavar="SPEC", help="target AU intensities in [0, 1] for result.png, "
                       "e.g. 'AU12=0.8,AU6=0.5'; unnamed AUs are 0 (names: " + ", ".join(AUS) + ")")
    what.add_argument("--grid", metavar="all|A,B", help="'all': the face with every label at full "
                      "strength (paper Fig. 5) -> grid.png; two names such as 'AU4,AU12': a "
                      "STEPS x STEPS manifold of their intensities 0..1 (Fig. 3) -> manifold.png")
    what.add_argument("--interpolate", nargs=2, metavar=("FROM", "TO"), help="a strip from one label "
                      "to another, each written like --emotion / --au: --interpolate neutral happy, "
                      "or --interpolate AU12=1 AU4=1,AU15=1 -> interpolation.png")
    what.add_argument("--steps", type=int, metavar="N", help="steps of the strip (default 8) or "
                      f"of each side of the manifold (default 5); 2..{MAX_STEPS}")
    p.add_argument("--out", metavar="DIR", help="output folder (default: generated/<photo name>/ "
                   "next to the checkpoint)")
    p.add_argument("--scale", type=int, default=4, metavar="N", help="enlarge the faces N "
                   f"times, nearest neighbour (default 4, at most {MAX_SCALE})")
    p.add_argument("--device", choices=("cpu", "gpu", "auto"), default="cpu",
                   help="cpu (default: one face is quick) or gpu / auto")


def program_name():
    """`tinycdaae` when run as the installed command; `run.py` otherwise (python run.py, python -m)."""
    return "tinycdaae" if os.path.basename(sys.argv[0]) == "tinycdaae" else "run.py"


def build_parser():
    parser = argparse.ArgumentParser(
        prog=program_name(), formatter_class=argparse.RawDescriptionHelpFormatter,
        description="tinycdaae: the Conditional Difference Adversarial Autoencoder (Zhou & Shi 2017)\n"
                    "in NumPy. `train` is the default command: `python run.py` trains on the\n"
                    "built-in synthetic faces.",
        epilog="examples:\n"
               "  python run.py                                  # train on synthetic faces\n"
               "  python run.py --dataset rafd --data-dir RaFD --epochs 40 --width 1\n"
               "  python run.py --resume --out runs/synthetic-emotion-n2-fold0 --epochs 40\n"
               "  python run.py generate --checkpoint runs/synthetic-emotion-n2-fold0/checkpoint.npz \\\n"
               "      --image me.jpg --emotion happy --grid all --interpolate neutral happy\n"
               "  python run.py gradcheck --layers-only\n"
               "Each command has its own --help, e.g. `python run.py generate --help`.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    train = commands.add_parser("train", help="train a CDAAE (the default command)",
                                description="Train a CDAAE. Writes OUT/log.jsonl (every loss term "
                                "per step), OUT/checkpoint.npz and OUT/samples/epoch_NNN.png after "
                                "every epoch. Ctrl-C saves; --resume continues exactly.")
    add_train_options(train)
    generate = commands.add_parser("generate", help="draw a face from your photo with a target expression",
                                   description="Align your photo as the training data was, then draw "
                                   "it with a target expression (result.png), all labels (grid.png), "
                                   "a 2-D manifold of two labels (manifold.png) or an interpolation "
                                   "strip (interpolation.png); the aligned input is aligned.png.")
    add_generate_options(generate)
    add_evaluation_commands(commands)
    commands.add_parser("gradcheck", help="check every hand-written gradient against finite "
                        "differences (options: see `python run.py gradcheck --help`)", add_help=False)
    return parser


# --------------------------------------------------------------------------------------- train
def resolve_train_options(args):
    """The typed options plus defaults; with --resume, the run's stored options fill the gaps and
    typed ones must agree with them. Returns a dict with every TRAIN_DEFAULTS key."""
    typed = {k: getattr(args, k) for k in RUN_OPTIONS + ("epochs",) if getattr(args, k) is not None}
    if typed.get("data_dir") is not None:
        typed["data_dir"] = os.path.abspath(typed["data_dir"])
    out = args.out or default_out({**TRAIN_DEFAULTS, **typed})
    check_out_folder(out)
    path = os.path.join(out, "checkpoint.npz")
    if not args.resume:
        if os.path.exists(path):
            raise UsageError(f"{out} already holds a run ({path}); add --resume to continue it, or "
                             f"choose another --out")
        recipe = typed.get("recipe", TRAIN_DEFAULTS["recipe"])
        dataset = typed.get("dataset", TRAIN_DEFAULTS["dataset"])
        # London's own epochs per recipe (recipes.RECIPE_EPOCHS: 120 stable, 60 paper); else ours
        epochs = {"epochs": default_epochs(recipe, dataset) or TRAIN_DEFAULTS["epochs"]}
        size = {"size": args.size or DEFAULT_SIZE}
        return {**TRAIN_DEFAULTS, **epochs, **recipe_options(recipe, dataset), **typed, **size}, out, None
    if not os.path.exists(path):
        raise UsageError(f"--resume: {out} has no checkpoint.npz, so there is nothing to resume; "
                         f"start the run without --resume, or give the --out of an earlier run")
    meta, _ = checkpoint.read(path, arrays=False)
    stored = meta["extra"].get("options")
    if stored is None:
        raise UsageError(f"{path} was not written by `run.py train` (it has no run options); "
                         f"it cannot be resumed from the command line")
    check_stored_options(stored, path)
    size = check_resume_size(args.size, meta, path)
    if "recipe" not in stored:   # runs from before recipes existed trained with the paper's settings
        stored = {**RECIPES["paper"], "recipe": "paper", **stored}
    stored = {"flip": False, "ema_decay": 0.0, "warmup_steps": 0, "colour_jitter": 0.0, "shift": 0,
              "adam_beta2": 0.999, "full_batches": False, "latent_weight": 1e-2,
              "face_only_targets": False, "lr_decay_epochs": 0, **stored}   # runs older than these options
    conflicts = [f"{flag(k)} {typed[k]!r} (the run has {stored[k]!r})" for k in RUN_OPTIONS
                 if k in typed and k not in ARCHITECTURE_OPTIONS and typed[k] != stored[k]]
    if conflicts:
        raise UsageError("--resume continues a run with its own settings, but you gave "
                         + "; ".join(conflicts) + ". Leave these options out, or start a new run "
                         "with another --out.")
    options = {**stored, **typed, "size": size}
    return options, out, meta["extra"]


def check_resume_size(typed, meta, path):
    """The size of the run being resumed (its checkpoint's image_size); a typed --size must agree."""
    size = meta["model_config"]["image_size"]
    if typed is not None and typed != size:
        raise UsageError(f"--resume: {path} is a {size}x{size} run, but you gave --size {typed}; a "
                         f"run keeps its size: leave --size out, or start a new run with another --out")
    return size


def check_out_folder(out):
    """--out must be a folder (or not exist yet): a file there would be overwritten or crash."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out} is an existing file, not a folder; give a folder name")


def option_types():
    """The type each stored run option must have, read off the defaults (a hand-edited checkpoint
    with e.g. "width": "big" is refused before anything is built from it)."""
    types = {}
    for k, v in {**TRAIN_DEFAULTS, **RECIPES[DEFAULT_RECIPE]}.items():
        types[k] = (str, type(None)) if v is None else (int, float) if isinstance(v, float) else type(v)
    return types


def check_stored_options(stored, path):
    if not isinstance(stored, dict):
        raise checkpoint.CheckpointError(f"{path}: its stored run options are damaged (not a table)")
    types = option_types()
    bad = [f"{k}={v!r}" for k, v in stored.items()
           if k in types and (not isinstance(v, types[k]) or isinstance(v, bool) != (types[k] is bool))]
    if bad:
        raise checkpoint.CheckpointError(f"{path}: stored run options of the wrong type: {', '.join(bad)}; "
                                         f"the checkpoint was damaged or edited by hand")


def default_out(options):
    labels = options["labels"] if options["dataset"] == "synthetic" else "data"
    size = options.get("size") or DEFAULT_SIZE
    return os.path.join("runs", f"{options['dataset']}-{labels}-{options['skip']}-fold{options['fold']}"
                        + ("" if size == DEFAULT_SIZE else f"-size{size}"))


def check_train_options(o):
    """Clear errors for the options no config holds; the configs check the rest (train_configs)."""
    if o["seed"] < 0:
        raise UsageError(f"--seed must be 0 or more, got {o['seed']}")
    if o["folds"] < 2:
        raise UsageError(f"--folds must be at least 2 (one fold is held out), got {o['folds']}")
    if not 0 <= o["fold"] < o["folds"]:
        raise UsageError(f"--fold must be in 0..{o['folds'] - 1} for --folds {o['folds']}, got {o['fold']}")
    if o["dataset"] in BUILT_IN and o["data_dir"] is not None:   # refused, not ignored: see datasets.py
        raise UsageError(f"--data-dir is for --dataset rafd, disfa or folder; --dataset {o['dataset']} is "
                         f"built in and needs none")
    if o["dataset"] == "synthetic":
        if o["subjects"] < o["folds"]:
            raise UsageError(f"--subjects must be at least --folds ({o['folds']}), got {o['subjects']}")
    else:
        for k in ("labels", "subjects"):
            if o[k] != TRAIN_DEFAULTS[k]:
                raise UsageError(f"{flag(k)} is for the synthetic faces; {o['dataset']} brings its own")
    train_configs(o)


def train_configs(o, label_dim=8):
    """(ModelConfig, ObjectiveConfig, TrainConfig) of a run. Each config checks its own values; a
    value out of range becomes one line naming the option: "--width must be positive, ..."."""
    from .model import ModelConfig
    from .recipes import objective_config, train_config
    weight_seed, prior_seed, order_seed = run_seeds(o["seed"])
    try:
        return (ModelConfig(skip=o["skip"], width=o["width"], label_dim=label_dim, image_size=o["size"],
                            seed=weight_seed),
                objective_config(o, prior_seed),
                train_config(o, epochs=o["epochs"], batch_size=o["batch_size"], seed=order_seed))
    except ConfigError as err:
        raise UsageError(f"{flag(err.field)} {err.reason}") from None


def load_training_data(o):
    """(train FaceSet, held-out FaceSet) for the options."""
    from .data.datasets import load_dataset, split_for_training
    if o["dataset"] == "synthetic":
        faceset = load_dataset("synthetic", folds=o["folds"], kind=o["labels"], n_subjects=o["subjects"],
                               size=o["size"])
    else:
        faceset = load_dataset(o["dataset"], o["data_dir"], folds=o["folds"], size=o["size"])
    # The fold split uses seed 0 whatever --seed is: runs with other seeds or other variants
    # hold out the same people and can be compared on them.
    return split_for_training(faceset, o["fold"], o["folds"], seed=0)


def cmd_train(args):
    from .training import lock_run_folder
    o, out, resumed = resolve_train_options(args)
    check_train_options(o)                     # before the lock: a refused run creates no folder
    lock = lock_run_folder(out)                # held until this process ends (see lock_run_folder)
    try:
        return train_locked(args, lock)
    finally:
        if lock is not None:
            lock.close()


def train_locked(args, lock):
    """cmd_train, holding the run folder. The options are read again under the lock: a run that
    finished (or saved a checkpoint) between the first reading and the lock is seen now."""
    from .model import CDAAE
    from .objective import Objective
    from .training import Trainer

    o, out, resumed = resolve_train_options(args)
    check_train_options(o)
    xp = backend.use(args.device)
    print(f"device: {backend.device_name()} ({xp.__name__})")
    train_set, test_set = load_training_data(o)
    label_names, kind = list(train_set.label_names), train_set.kind
    print(f"data: {o['dataset']} ({kind}: {', '.join(label_names)}); {len(train_set.subject_ids)} "
          f"training people, {len(train_set)} pairs; {len(test_set.subject_ids)} held-out people "
          f"(fold {o['fold']} of {o['folds']})")

    model_config, objective_config, config = train_configs(o, len(label_names))
    model = CDAAE(model_config)
    objective = Objective(model, objective_config)
    if resumed is not None:
        if resumed.get("label_names") != label_names:
            raise UsageError(f"the run was trained on labels {resumed.get('label_names')}, but the data "
                             f"now has {label_names}; resume with the same data")
        checkpoint.restore(os.path.join(out, "checkpoint.npz"), objective)   # architecture checked here
        print(f"resuming {out} at step {objective.step_count}")

    # The per-epoch picture (paper Fig. 2/5): held-out people down the side, the input first,
    # then one column per label at full strength (each emotion; or each AU at intensity 1).
    sample_rows = grids.sample_faces(test_set)
    faces = test_set.images[sample_rows]                                    # (R, 3, S, S), S = --size
    columns = grids.each_label(len(label_names))                            # (L, L)

    targets = grids.real_targets(test_set, sample_rows, columns)           # (R, L, 3, S, S) or None

    def sample_fn(path):
        grid = grids.expression_grid(model, faces, columns)                 # (R, 1 + L, 3, S, S)
        grids.save_png(path, grids.tile(grid if targets is None else grids.with_real_rows(grid, targets), scale=3))

    print(f"sample grids: {len(faces)} held-out people (rows) x [input, {', '.join(label_names)}]"
          + ("; under each row, the person's real images with those labels" if targets is not None else ""))
    print(recipe_line(o))
    print(f"writing {out}/log.jsonl, {out}/checkpoint.npz, {out}/samples/")
    resume_hint = f"python run.py --resume --out {out}"        # the run's options are in its checkpoint
    try:
        stored = {k: v for k, v in o.items() if k != "size"}    # the size is in model_config
        trainer = Trainer(objective, train_set, config, out, sample_fn=sample_fn,
                          extra_info={"options": stored, "label_names": label_names, "label_kind": kind},
                          resume=resumed, resume_hint=resume_hint)
    except (KeyError, TypeError, ValueError) as err:    # a damaged or hand-edited trainer state
        if resumed is None or isinstance(err, RunFolderError):
            raise
        raise checkpoint.CheckpointError(f"{out}/checkpoint.npz: its trainer state is damaged "
                                         f"({type(err).__name__}: {err}); it cannot be resumed") from None
    status = trainer.run()
    return {"finished": 0, "interrupted": EXIT_INTERRUPTED, "diverged": EXIT_DIVERGED,
            "bad_data": EXIT_USAGE}[status]


# ------------------------------------------------------------------------------------ generate
def checkpoint_labels(extra, label_dim):
    """(label names, kind) stored by training; guessed from the size for other checkpoints."""
    if "label_names" in extra:
        names, kind = extra["label_names"], extra.get("label_kind")
        if (not isinstance(names, list) or len(names) != label_dim or len(set(names)) != len(names)
                or not all(isinstance(n, str) and n for n in names) or kind not in ("emotion", "au")):
            raise checkpoint.CheckpointError(f"the checkpoint's stored label names ({names!r}, kind "
                                             f"{kind!r}) are damaged: expected {label_dim} distinct names "
                                             f"and kind emotion or au")
        return list(names), kind
    if label_dim == len(EMOTIONS):
        return list(EMOTIONS), "emotion"
    if label_dim == len(AUS):
        return list(AUS), "au"
    raise UsageError(f"the checkpoint has {label_dim} labels but does not name them")


def parse(spec, names, what):
    """parse_label with our error type (an unknown name lists the valid ones)."""
    try:
        return parse_label(spec, names)
    except ValueError as err:
        raise UsageError(f"{what}: {err}") from None


def load_face(path, size=DEFAULT_SIZE):
    """(3, size, size) float32 in [-1, 1] for the photo, aligned at the checkpoint's size; (face, remark)."""
    from .data.align import align_file, read_image, uint8_to_network
    if not os.path.exists(path):
        raise UsageError(f"--image {path} does not exist")          # not a file: read_image says so
    pixels = read_image(path)                                         # (H, W, 3) uint8
    if pixels.shape[:2] == (size, size):
        return uint8_to_network(pixels.transpose(2, 0, 1)), f"{size}x{size} image: taken as already aligned"
    aligned = align_file(path, size)
    return aligned.image, aligned.message


def cmd_generate(args):
    path = generate_checks(args)
    backend.use(args.device)
    model, extra = checkpoint.load_model(path)
    checkpoint.check_finite(model, path)
    names, kind = checkpoint_labels(extra, model.config.label_dim)
    asked = generate_labels(args, names, kind)         # every label checked before the slow alignment
    face, remark = load_face(args.image, model.config.image_size)
    stem = os.path.splitext(os.path.basename(args.image))[0]
    out = args.out or (os.path.join(os.path.dirname(os.path.abspath(path)), "generated", stem)
                       if args.checkpoint else os.path.join("runs", "generated", stem))
    written = draw_generated(model, face[None], asked, len(names), out, args)
    if remark:
        print(f"{args.image}: {remark}")
    print("wrote " + ", ".join(written))
    if asked["grid"] == "all":
        print(f"grid.png columns: input, {', '.join(names)}")
    elif asked["grid"] is not None:
        print(f"manifold.png: {asked['pair'][0]} 0 -> 1 down the rows, {asked['pair'][1]} 0 -> 1 across the columns")
    return 0


def generate_checks(args):
    """The checkpoint's path, after the checks that need no checkpoint."""
    if args.checkpoint is None:
        path = checkpoint.BUILT_IN_MODEL
        print(f"using the built-in model {os.path.relpath(path)} (N2 trained on the 78 London people, "
              f"labels neutral and happy); give --checkpoint to use your own")
    else:
        path = checkpoint_file(args.checkpoint)
    if not 1 <= args.scale <= MAX_SCALE:
        raise UsageError(f"--scale must be in 1..{MAX_SCALE}, got {args.scale}")
    if args.steps is not None and not 2 <= args.steps <= MAX_STEPS:
        raise UsageError(f"--steps must be in 2..{MAX_STEPS}, got {args.steps}")
    if args.steps is not None and not args.interpolate and (args.grid is None or args.grid.strip().lower() == "all"):
        raise UsageError("--steps sets the steps of --grid A,B or --interpolate FROM TO; give one of "
                         "them, or leave --steps out")
    if args.grid is not None and not args.grid.strip():
        raise UsageError("--grid is empty; give 'all' or two label names such as AU4,AU12")
    if args.out is not None:
        check_out_folder(args.out)
    return path


def generate_labels(args, names, kind):
    """What to draw, every label parsed: {"target": (L,) or None, "grid": None, "all" or "A,B",
    "pair": the two names and "axes": their columns (grid A,B), "ends": two (L,) (interpolate)}."""
    if args.emotion is not None and kind != "emotion":
        raise UsageError(f"this checkpoint was trained on action units ({', '.join(names)}); "
                         f"use --au, e.g. --au AU12=1")
    if args.au is not None and kind != "au":
        raise UsageError(f"this checkpoint was trained on emotions ({', '.join(names)}); "
                         f"use --emotion, e.g. --emotion happy")
    grid = args.grid.strip() if args.grid is not None else \
        None if (args.emotion or args.au or args.interpolate) else "all"
    asked = {"grid": "all" if grid is not None and grid.lower() == "all" else grid, "target": None}
    if args.emotion or args.au:
        asked["target"] = parse(args.emotion or args.au, names, "--emotion" if args.emotion else "--au")
    if asked["grid"] not in (None, "all"):
        asked["pair"], asked["axes"] = grid_axes(grid, names)
    if args.interpolate:
        asked["ends"] = [parse(spec, names, "--interpolate") for spec in args.interpolate]
    return asked


def grid_axes(grid, names):
    """--grid A,B -> ([A, B], [column of A, column of B])."""
    pair = [g.strip() for g in grid.split(",")]
    if len(pair) != 2:
        raise UsageError(f"--grid takes 'all' or two label names such as AU4,AU12, got {grid!r}")
    if any("=" in name for name in pair):
        raise UsageError(f"--grid takes two bare label names (each goes 0 -> 1 along one side), "
                         f"not weights: write e.g. --grid {pair[0].partition('=')[0]},"
                         f"{pair[1].partition('=')[0]}")
    axes = [int(np.argmax(parse(name, names, "--grid"))) for name in pair]
    if axes[0] == axes[1]:
        raise UsageError(f"--grid needs two different labels, got {pair[0]} twice")
    return pair, axes


def draw_generated(model, faces, asked, n_labels, out, args):
    """Write aligned.png and each picture asked for into out; returns the paths written."""
    written = []

    def write(name, cells):
        file = os.path.join(out, name)
        grids.save_png(file, grids.tile(cells, scale=args.scale))
        written.append(file)

    write("aligned.png", faces[:, None])                                 # faces (1, 3, S, S)
    if asked["target"] is not None:
        write("result.png", grids.generate(model, faces, asked["target"][None]))
    if asked["grid"] == "all":
        write("grid.png", grids.expression_grid(model, faces, grids.each_label(n_labels)))
    elif asked["grid"] is not None:
        labels = grids.manifold_labels(n_labels, *asked["axes"], args.steps or 5)    # (S, S, L)
        cells = grids.generate(model, faces, labels.reshape(-1, n_labels))           # (1, S*S, 3, H, W)
        write("manifold.png", cells.reshape(*labels.shape[:2], *cells.shape[2:]))     # (S, S, 3, H, W)
    if args.interpolate:
        strip = grids.interpolation_labels(*asked["ends"], args.steps or 8)           # (S, L)
        write("interpolation.png", grids.expression_grid(model, faces, strip))          # (1, 1 + S, ...)
    return written


# ------------------------------------------------------------------------- evaluate / compare
# Numbers instead of the paper's user study (tinycdaae/evaluation/). `evaluate` scores trained
# checkpoints on the people their run held out; `compare` trains the four variants with one
# budget and then evaluates them, in one call.
EVALUATE_DATA_OPTIONS = ("dataset", "data_dir", "labels", "subjects", "fold", "folds")
COMPARE_DEFAULTS = {   # the train command's defaults; the time it takes is measured in docs/evaluation.md
    "epochs": TRAIN_DEFAULTS["epochs"],       # 10 epochs = 9000 steps per variant at 200 people
    "width": TRAIN_DEFAULTS["width"],         # channels 16-32-64-128
    "subjects": TRAIN_DEFAULTS["subjects"],   # 150 people to train on, 50 held out (fold 0 of 4)
}


def add_evaluate_options(p):
    p.add_argument("--max-pairs", type=int, default=5000, metavar="N",
                   help="score at most N held-out pairs per fold, a seeded random subset when there "
                        "are more (default 5000; the default synthetic set's held-out fold has 8400)")
    p.add_argument("--reader-epochs", type=int, metavar="N",
                   help="epochs of the expression reader, trained on the real training-fold images "
                        "(default: enough to show it about 10,800 faces, at least 3; 15 for 30 people)")
    p.add_argument("--reader-seed", type=int, default=0, metavar="N",
                   help="seed of the expression reader (default 0)")
    p.add_argument("--device", choices=("cpu", "gpu", "auto"), default="auto",
                   help="cpu (NumPy), gpu (CuPy) or auto (default)")


def add_evaluation_commands(commands):
    """Register `evaluate` and `compare` on the subcommand parser."""
    ev = commands.add_parser(
        "evaluate", help="score checkpoints on their held-out people (fidelity, identity, expression)",
        description="Score checkpoints on the people their run held out, next to the baseline that "
        "copies its input: MSE/PSNR/SSIM against the real target, identity top-1 retrieval, and an "
        "expression reader trained on real training-fold images (accuracy, or AU error). Writes "
        "OUT/results.md, OUT/results.json and OUT/confusion_*.png. Several checkpoints of one "
        "variant (folds, seeds) are averaged: mean ± std.")
    ev.add_argument("--checkpoint", nargs="+", required=True, metavar="PATH",
                    help="checkpoint.npz files written by `run.py train` (or their run directories)")
    ev.add_argument("--out", default=os.path.join("runs", "evaluation"), metavar="DIR",
                    help="where the results go (default runs/evaluation)")
    data = ev.add_argument_group("data (stored in checkpoints from `run.py train`; give these only "
                                 "for other checkpoints, or --data-dir if the data moved)")
    data.add_argument("--dataset", choices=DATASETS)
    data.add_argument("--data-dir", metavar="PATH")
    data.add_argument("--labels", choices=("emotion", "au"))
    data.add_argument("--subjects", type=int, metavar="N")
    data.add_argument("--fold", type=int, metavar="K")
    data.add_argument("--folds", type=int, metavar="K")
    add_evaluate_options(ev)
    cmp = commands.add_parser(
        "compare", help="train n1, n2, n3 and none with one budget, then evaluate them",
        description="Train the four variants (n1, n2, n3, none) with the same data, seed and "
        "budget into OUT/<variant>, then run `evaluate` on them and the copy baseline. Runs already "
        "in OUT are resumed (finished ones are not trained again), so an interrupted compare "
        "continues where it stopped.")
    cmp.add_argument("--out", default=os.path.join("runs", "compare"), metavar="DIR",
                     help="folder for the runs and the results (default runs/compare)")
    cmp.add_argument("--variants", nargs="+", default=["n1", "n2", "n3", "none"],
                     choices=("n1", "n2", "n3", "none"), metavar="V", help="which (default all four)")
    cmp.add_argument("--seed", nargs="+", type=int, default=[0], metavar="S",
                     help="one or more seeds; several give mean ± std (default 0)")
    cmp.add_argument("--fold", nargs="+", type=int, default=[0], metavar="K",
                     help="one or more held-out folds; several give mean ± std (default 0)")
    cmp.add_argument("--folds", type=int, default=TRAIN_DEFAULTS["folds"], metavar="K",
                     help=f"number of subject folds (default {TRAIN_DEFAULTS['folds']})")
    cmp.add_argument("--epochs", type=int, metavar="N",
                     help=f"epochs per variant (default {COMPARE_DEFAULTS['epochs']}; "
                          + epochs_help() + ")")
    cmp.add_argument("--recipe", choices=sorted(RECIPES), default=DEFAULT_RECIPE,
                     help=f"the training recipe of every variant (default {DEFAULT_RECIPE}; see train --help)")
    cmp.add_argument("--width", type=float, default=COMPARE_DEFAULTS["width"], metavar="W",
                     help=f"channel multiplier (default {COMPARE_DEFAULTS['width']})")
    cmp.add_argument("--size", type=int, choices=SIZES, default=DEFAULT_SIZE,
                     help=f"side of the faces (default {DEFAULT_SIZE}, the paper's; see train --help)")
    cmp.add_argument("--subjects", type=int, default=COMPARE_DEFAULTS["subjects"], metavar="N",
                     help=f"synthetic people (default {COMPARE_DEFAULTS['subjects']})")
    cmp.add_argument("--labels", choices=("emotion", "au"), default="emotion",
                     help="synthetic only: emotions (default) or AU intensities")
    cmp.add_argument("--dataset", choices=DATASETS, default="synthetic")
    cmp.add_argument("--data-dir", metavar="PATH")
    cmp.add_argument("--batch-size", type=int, default=TRAIN_DEFAULTS["batch_size"], metavar="N")
    add_evaluate_options(cmp)


def checkpoint_file(path):
    return os.path.join(path, "checkpoint.npz") if os.path.isdir(path) else path


def evaluation_data_options(extra, typed, path):
    """The data options a checkpoint was trained with; typed options fill what it lacks. A typed
    option that contradicts the checkpoint is refused (another fold would score the network on
    the people it was trained on), except --data-dir (the same data may have moved)."""
    stored = dict(extra.get("options") or {})
    typed = dict(typed)
    if typed.get("data_dir") is not None:
        typed["data_dir"] = os.path.abspath(typed["data_dir"])
    conflicts = [f"{flag(k)} {typed[k]!r} (it was trained with {stored[k]!r})" for k in typed
                 if k != "data_dir" and k in stored and stored[k] != typed[k]]
    if conflicts:
        raise UsageError(f"{path}: " + "; ".join(conflicts) + ". A network is scored on the people its "
                         "own run held out; leave these options out.")
    options = {**TRAIN_DEFAULTS, **{k: stored[k] for k in EVALUATE_DATA_OPTIONS if k in stored}, **typed}
    if not stored:
        print(f"{path}: no stored run options (not written by `run.py train`); using "
              + ", ".join(f"{flag(k)} {options[k]}" for k in EVALUATE_DATA_OPTIONS), file=sys.stderr)
    return options


def describe_split(o):
    what = f"synthetic-{o['labels']} ({o['subjects']} people)" if o["dataset"] == "synthetic" else o["dataset"]
    size = "" if o["size"] == DEFAULT_SIZE else f" {o['size']}x{o['size']}"
    return f"{what}{size} fold {o['fold']}/{o['folds']}"


def run_evaluation(paths, args, out, typed=None):
    """Evaluate checkpoints (files or run dirs); `typed`: data options given on the command line."""
    from . import evaluation
    if args.max_pairs < 1 or (args.reader_epochs is not None and args.reader_epochs < 1):
        raise UsageError("--max-pairs and --reader-epochs must be at least 1")
    backend.use(args.device)
    splits = {}                                      # split key -> (options, [(network, path, load)])
    for given in paths:
        path = checkpoint_file(given)
        meta, _ = checkpoint.read(path, arrays=False)   # options only: the weights load later, one at a time
        extra, config = meta["extra"], meta["model_config"]
        if extra.get("options") is not None:
            check_stored_options(extra["options"], path)
        o = {**evaluation_data_options(extra, typed or {}, path), "size": config["image_size"]}
        key = tuple(o[k] for k in EVALUATE_DATA_OPTIONS + ("size",))   # the data at the network's size
        load = (lambda path=path: checkpoint.load_model(path)[0])     # the weights that draw faces
        splits.setdefault(key, (o, []))[1].append((config["skip"], path, load, extra, config))
    sizes = sorted({o["size"] for o, _ in splits.values()})
    if len(sizes) > 1:
        raise UsageError(f"the checkpoints work at different sizes ({', '.join(f'{s}x{s}' for s in sizes)}); "
                         f"evaluate each size on its own (its own --out) and compare the results")
    jobs = []
    for o, networks in splits.values():
        train_set, test_set = load_training_data(o)
        for network, path, _, extra, config in networks:
            names = extra.get("label_names")
            if config["label_dim"] != len(test_set.label_names) or (names and list(names) != list(test_set.label_names)):
                raise UsageError(f"{path} was trained on labels {names or config['label_dim']}, but the "
                                 f"data has {list(test_set.label_names)}")
        jobs.append(evaluation.Split(describe_split(o), train_set, test_set,
                                     [(n, p, load) for n, p, load, _, _ in networks]))
    reader = evaluation.ClassifierConfig(epochs=args.reader_epochs, seed=args.reader_seed)
    evaluation.evaluate_splits(jobs, out, reader, args.max_pairs, title=", ".join(j.name for j in jobs))
    with open(os.path.join(out, "results.md")) as f:
        print("\n" + f.read())
    pictures = " and confusion_*.png" if jobs[0].test.kind == "emotion" else ""
    print(f"wrote {out}/results.md, results.json{pictures}")
    return 0


def cmd_evaluate(args):
    typed = {k: getattr(args, k) for k in EVALUATE_DATA_OPTIONS if getattr(args, k) is not None}
    return run_evaluation(args.checkpoint, args, args.out, typed)


def cmd_compare(args):
    """Train every (variant, seed, fold) with the same options, then evaluate them all."""
    import time
    if args.dataset not in BUILT_IN and not args.data_dir:
        raise UsageError(f"--dataset {args.dataset} needs --data-dir PATH (where your copy of it lives)")
    several = len(args.seed) > 1 or len(args.fold) > 1
    paths, started = [], time.perf_counter()
    for fold in args.fold:
        for seed in args.seed:
            for variant in args.variants:
                run_dir = os.path.join(args.out, f"{variant}-seed{seed}-fold{fold}" if several else variant)
                print(f"\n== {variant}, seed {seed}, fold {fold}: {run_dir}", flush=True)
                status = cmd_train(compare_run(args, variant, seed, fold, run_dir))
                if status != 0:
                    print(f"run.py compare: training {run_dir} stopped (exit {status}); run the same "
                          f"compare command again to continue", file=sys.stderr)
                    return status
                paths.append(run_dir)
    print(f"\ntraining done in {time.perf_counter() - started:.0f} s; evaluating", flush=True)
    return run_evaluation(paths, args, args.out)


def compare_run(args, variant, seed, fold, run_dir):
    """The options of one training run of `compare`, as `train` would have parsed them (every
    option left out is None, so train takes its default or, resuming, the run's own)."""
    run = argparse.Namespace(**{k: None for k in RUN_OPTIONS + ("epochs",)})
    run.skip, run.width, run.recipe, run.seed, run.fold, run.folds = variant, args.width, args.recipe, seed, fold, args.folds
    run.epochs = args.epochs or default_epochs(args.recipe, args.dataset) or COMPARE_DEFAULTS["epochs"]
    run.batch_size, run.dataset, run.device, run.out = args.batch_size, args.dataset, args.device, run_dir
    run.size = args.size
    if args.dataset == "synthetic":
        run.labels, run.subjects = args.labels, args.subjects
    elif args.data_dir:
        run.data_dir = args.data_dir
    run.resume = os.path.exists(os.path.join(run_dir, "checkpoint.npz"))   # finished runs return at once
    return run


# ------------------------------------------------------------------------------------ gradcheck
def cmd_gradcheck(argv):
    from . import gradcheck
    return gradcheck.main(argv)


COMMANDS = {"train": cmd_train, "generate": cmd_generate, "evaluate": cmd_evaluate,
            "compare": cmd_compare}


def main(argv=None):
    """The command line (run.py and the `tinycdaae` command). Output piped into a reader that
    stops early (`tinycdaae --help | head`) ends quietly, without a traceback."""
    try:
        return run_command(argv)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no second error at exit
        return 1


def run_command(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv[:1] == ["gradcheck"]:             # its own parser (tinycdaae.gradcheck.main)
        return cmd_gradcheck(argv[1:])
    if argv in (["-h"], ["--help"]):          # the top-level help, then the default command's
        print(parser.format_help())
        print("options of `train` (the default command):\n")
        parser.parse_args(["train", "--help"])
    if not argv or argv[0] not in COMMANDS and argv[0] not in ("-h", "--help"):
        argv = ["train"] + argv               # train is the default command
    args = parser.parse_args(argv)            # unknown options: argparse prints usage, exits 2
    backend.keep_freed_memory()               # steps reuse freed memory (see backend.py)
    try:
        return COMMANDS[args.command](args)
    except (UsageError, DatasetError, checkpoint.CheckpointError, backend.BackendError,
            RunFolderError) as err:
        print(f"{program_name()} {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:                 # Ctrl-C outside the training loop (e.g. loading data)
        print(f"{program_name()} {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


"""Checkpoints: one .npz file with everything needed to continue a run bit-for-bit.

Contents: every weight, every Adam moment and step counter, the moving average of the encoder's
and decoder's weights when the run keeps one (average/..., see optim.WeightAverage), the step
count, the prior's random generator state, the model and objective configs (as JSON), and any extra JSON-able state the
trainer adds (epoch, data-order generator...). Loaded with allow_pickle=False: a checkpoint is
data, never code. Written atomically — to a temporary file in the same folder, flushed to disk,
then renamed over the old one — so a kill in the middle of a save leaves the previous checkpoint
intact (a rename within one file system is atomic).
"""
import json
import math
import os
import zipfile
import zlib

import numpy as np

from . import backend
from .files import atomic_write
from .model import CDAAE, MAX_WIDTH, ModelConfig
from .objective import Objective, ObjectiveConfig

FORMAT_VERSION = 1
# The ready model shipped with the package: N2 trained on all 78 built-in London people
# (scripts/make_london_model.py re-trains it bit for bit); `run.py generate` uses it by default.
BUILT_IN_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "london_n2.npz")
# The fields that change the network's shapes: a checkpoint with other values cannot be loaded.
ARCHITECTURE_FIELDS = ("skip", "width", "label_dim", "latent_dim", "image_size")
# Bounds on a stored model_config, checked before anything is built from it: a damaged or
# hand-edited checkpoint claiming width 1000 would otherwise try to allocate terabytes.
MAX_LABEL_DIM, MAX_LATENT_DIM, MAX_IMAGE_SIZE = 256, 4096, 256
# What goes wrong reading a damaged file: a truncated or zero-byte zip (BadZipFile, EOFError),
# a flipped byte (BadZipFile "Bad CRC-32", zlib.error, a garbled .npy header: ValueError), a
# missing entry (KeyError), metadata that is not JSON (ValueError) or not text (UnicodeError),
# a garbled shape asking for more memory than there is (MemoryError).
READ_ERRORS = (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, zlib.error,
               MemoryError, UnicodeError)


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or does not fit the model it is loaded into."""


def save(path, objective, extra=None):
    """Write objective (model + optimizers + prior RNG) and `extra` (a JSON-able dict) to path."""
    model = objective.model
    arrays = {f"param/{name}": backend.to_host(p.data) for name, p in model.named_params().items()}
    opt_steps = {}
    for opt_name, opt in objective.optimizers.items():
        for p in opt.params:
            arrays[f"adam/{opt_name}/m/{p.name}"] = backend.to_host(opt.m[p])
            arrays[f"adam/{opt_name}/v/{p.name}"] = backend.to_host(opt.v[p])
        opt_steps[opt_name] = opt.t
    if objective.average is not None:       # the moving average a of E and G's weights (optim.WeightAverage)
        for p in objective.average.params:
            arrays[f"average/{p.name}"] = backend.to_host(objective.average.average[p])
    meta = {"format_version": FORMAT_VERSION, "model_config": model.config_dict(),
            "objective_config": objective.config_dict(), "step": objective.step_count,
            "adam_steps": opt_steps, "prior_rng": objective.rng.bit_generator.state,
            "extra": extra or {}}
    if objective.average is not None:
        meta["average_steps"] = objective.average.t
    arrays["meta_json"] = np.array(json.dumps(meta))
    atomic_write(path, lambda f: np.savez(f, **arrays))


def read(path, arrays=True):
    """(meta dict, {name: array}) from a checkpoint file, with clear errors. arrays=False reads only
    the metadata (options, step, configs) and returns an empty dict (the arrays' checksums are
    still verified). Damaged files and bad metadata raise CheckpointError."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist; give the .npz written by training "
                              f"(e.g. runs/<name>/checkpoint.npz)")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{path!r} is empty (0 bytes): not a checkpoint. A save that was cut "
                              f"off never leaves one (saves are atomic), so the file was damaged elsewhere")
    try:
        with np.load(path, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("a single array, not a .npz archive")
            meta = json.loads(str(data["meta_json"]))
            if arrays:
                arrays = {k: data[k] for k in data.files if k != "meta_json"}
            else:   # the arrays load later (or never): check their CRC-32s now, so that damage
                # is reported here, before data loading or training, not half-way through
                bad = data.zip.testzip()
                if bad is not None:
                    raise zipfile.BadZipFile(f"bad CRC-32 for {bad}")
                arrays = {}
    except READ_ERRORS as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CheckpointError(f"{path!r} is not a readable tinycdaae checkpoint: it is damaged "
                              f"({type(err).__name__}{': ' + reason if reason else ''}); use an intact "
                              f"copy, or train again") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path!r}: its metadata is damaged (not a JSON object)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path!r} has checkpoint format {meta.get('format_version')}, "
                              f"this version reads format {FORMAT_VERSION}")
    check_meta(meta, path)
    return meta, arrays


def check_meta(meta, path):
    """Refuse metadata with missing fields, wrong types or absurd sizes, naming them, before
    anything is built from it (a checkpoint's metadata is JSON anyone can edit)."""
    problems = []
    config = meta.get("model_config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path!r}: its metadata has no model_config table; the file is damaged")
    fields = {f: ModelConfig.__dataclass_fields__[f] for f in ModelConfig.__dataclass_fields__}
    unknown = sorted(set(config) - set(fields))
    if unknown:
        problems.append(f"unknown model_config field(s) {', '.join(unknown)}")

    def number(name, kinds, low, high):
        value = config.get(name, fields[name].default)
        if isinstance(value, bool) or not isinstance(value, kinds):
            problems.append(f"model_config.{name} is {value!r}, not " + ("a whole number" if kinds is int
                                                                         else "a number"))
        elif not (isinstance(value, int) or math.isfinite(value)) or not low <= value <= high:
            problems.append(f"model_config.{name} is {value!r}, outside [{low:g}, {high:g}]")

    number("width", (int, float), 1e-6, MAX_WIDTH)
    number("label_dim", int, 1, MAX_LABEL_DIM)
    number("latent_dim", int, 1, MAX_LATENT_DIM)
    number("image_size", int, 16, MAX_IMAGE_SIZE)
    number("seed", int, 0, 2 ** 64 - 1)
    if config.get("skip", "n2") not in ("n1", "n2", "n3", "none"):
        problems.append(f"model_config.skip is {config.get('skip')!r}, not one of n1, n2, n3, none")
    if config.get("dtype", "float32") not in ("float32", "float64"):
        problems.append(f"model_config.dtype is {config.get('dtype')!r}, not float32 or float64")
    if not isinstance(meta.get("extra", {}), dict):
        problems.append("extra is not a table")
    if meta.get("kind") != "generator":                   # a training checkpoint's own fields
        if not isinstance(meta.get("objective_config"), dict):
            problems.append("objective_config is missing or not a table")
        if isinstance(meta.get("step"), bool) or not isinstance(meta.get("step"), int) or meta["step"] < 0:
            problems.append(f"step is {meta.get('step')!r}, not a count")
        steps = meta.get("adam_steps")
        if not isinstance(steps, dict) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                  for v in steps.values()):
            problems.append("adam_steps is missing or not a table of counts")
        if not isinstance(meta.get("prior_rng"), dict):
            problems.append("prior_rng is missing or not a table")
    if problems:
        raise CheckpointError(f"{path!r}: damaged or hand-edited metadata: " + "; ".join(problems))


def check_compatible(saved_config, model_config, path=""):
    """Refuse a checkpoint whose architecture differs, naming every mismatching field."""
    mismatches = [f"{field}: checkpoint has {saved_config.get(field)!r}, this model has "
                  f"{getattr(model_config, field)!r}"
                  for field in ARCHITECTURE_FIELDS if saved_config.get(field) != getattr(model_config, field)]
    if mismatches:
        raise CheckpointError(f"checkpoint {path} was made for another network — " + "; ".join(mismatches)
                              + ". Use matching options (or start a new run in another directory).")


def restore(path, objective):
    """Load a checkpoint into an existing objective (same architecture). Returns `extra`."""
    return _restore(*read(path), objective, path)


def _restore(meta, arrays, objective, path):
    model = objective.model
    check_compatible(meta["model_config"], model.config, path)
    for name, p in model.named_params().items():
        _assign(p.data, arrays, f"param/{name}", path)
    for opt_name, opt in objective.optimizers.items():
        for p in opt.params:
            _assign(opt.m[p], arrays, f"adam/{opt_name}/m/{p.name}", path)
            _assign(opt.v[p], arrays, f"adam/{opt_name}/v/{p.name}", path)
        if opt_name not in meta["adam_steps"]:
            raise CheckpointError(f"checkpoint {path} has no step count for optimizer {opt_name!r}; "
                                  f"it was damaged or written by another version")
        opt.t = int(meta["adam_steps"][opt_name])
    if objective.average is not None:
        for p in objective.average.params:
            _assign(objective.average.average[p], arrays, f"average/{p.name}", path)
        steps = meta.get("average_steps")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise CheckpointError(f"checkpoint {path} has no step count for its weight average; it was "
                                  f"damaged or written by another version")
        objective.average.t = steps
    try:
        objective.rng.bit_generator.state = meta["prior_rng"]
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path}: its prior_rng state is damaged ({err})") from None
    objective.step_count = int(meta["step"])
    return meta["extra"]


def _build(model_config, objective_config=None, path=""):
    """CDAAE (and Objective) from stored configs; their own checks' errors become CheckpointError."""
    try:
        model = CDAAE(ModelConfig(**model_config))
        return model if objective_config is None else Objective(model, ObjectiveConfig(**objective_config))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path}: its stored configuration is damaged ({err})") from None


def _assign(target, arrays, key, path):
    if key not in arrays:
        raise CheckpointError(f"checkpoint {path} has no array {key!r}; it was damaged or written by "
                              f"another version")
    if not isinstance(arrays[key], np.ndarray) or arrays[key].dtype.kind not in "fiu":
        raise CheckpointError(f"checkpoint {path}: {key} is not a numeric array; the file is damaged")
    if tuple(arrays[key].shape) != tuple(target.shape):
        raise CheckpointError(f"checkpoint {path}: {key} has shape {arrays[key].shape}, expected {target.shape}")
    target[...] = backend.to_device(arrays[key].astype(target.dtype, copy=False))   # keeps memory order


def load(path, dtype=None):
    """Build the model and objective a checkpoint describes and load it. Returns
    (objective, extra). dtype overrides the stored one (e.g. float64 for checks). The model holds
    the training weights θ, to train on from; to draw faces use load_model (the average θ̄)."""
    meta, arrays = read(path)
    model_config = dict(meta["model_config"])
    if dtype is not None:
        model_config["dtype"] = dtype
    objective = _build(model_config, meta["objective_config"], path)
    return objective, _restore(meta, arrays, objective, path)


# ------------------------------------------------------------------ generator-only model files
# What `generate` needs is the encoder and decoder: no discriminators, no Adam moments, no random
# generator states. Stored in float16 (half the size; the weights' rounding, 2^-11 relative, moves
# generated pixels by far less than one grey level, see tests/test_shipped_model.py).
GENERATOR_BLOCKS = ("E1", "E2", "G1", "G2")


def save_generator(path, model, extra=None):
    """Write E1, E2, G1 and G2's weights (float16) and the model config to `path`."""
    arrays = {f"param/{p.name}": backend.to_host(p.data).astype(np.float16)
              for block in GENERATOR_BLOCKS for p in model.blocks[block].params()}
    meta = {"format_version": FORMAT_VERSION, "kind": "generator", "model_config": model.config_dict(),
            "extra": extra or {}}
    arrays["meta_json"] = np.array(json.dumps(meta))
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_model(path):
    """(model, extra) from a training checkpoint or a generator-only file: for generating only
    (a generator file's discriminators keep their initial weights). A training checkpoint with a
    weight average gives the averaged weights θ̄ (the ones that draw faces, see optim.WeightAverage)."""
    meta, arrays = read(path)
    if meta.get("kind") != "generator":
        objective, extra = load(path)
        if objective.average is not None:
            objective.average.copy_into_params()
        return objective.model, extra
    model = _build({**meta["model_config"], "dtype": "float32"}, path=path)
    for block in GENERATOR_BLOCKS:
        for p in model.blocks[block].params():
            _assign(p.data, arrays, f"param/{p.name}", path)
    return model, meta["extra"]


def check_finite(model, path):
    """Refuse a model whose generator weights hold NaN or infinity: every face drawn with it
    would be NaN (written as black pixels), which looks like a bug rather than a damaged file."""
    xp = backend.xp
    bad = [p.name for block in GENERATOR_BLOCKS for p in model.blocks[block].params()
           if not bool(xp.isfinite(p.data).all())]
    if bad:
        raise CheckpointError(f"checkpoint {path}: {len(bad)} weight array(s) hold NaN or infinite "
                              f"values (e.g. {bad[0]}); it cannot draw faces. Use an earlier checkpoint")

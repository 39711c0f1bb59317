"""Checkpoints: one .npz file with everything needed to continue a run bit-for-bit.

Contents: every weight, every Adam moment and step counter, the step count, the prior's random
generator state, the model and objective configs (as JSON), and any extra JSON-able state the
trainer adds (epoch, data-order generator...). Loaded with allow_pickle=False: a checkpoint is
data, never code. Written atomically — to a temporary file in the same folder, flushed to disk,
then renamed over the old one — so a kill in the middle of a save leaves the previous checkpoint
intact (a rename within one file system is atomic).
"""
import json
import os
import tempfile

import numpy as np

from . import backend
from .model import CDAAE, ModelConfig
from .objective import Objective, ObjectiveConfig

FORMAT_VERSION = 1
# The ready model shipped with the package: N2 trained on all 78 built-in London people
# (scripts/make_london_model.py re-trains it bit for bit); `run.py generate` uses it by default.
BUILT_IN_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "london_n2.npz")
# The fields that change the network's shapes: a checkpoint with other values cannot be loaded.
ARCHITECTURE_FIELDS = ("skip", "width", "label_dim", "latent_dim", "image_size")


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
    meta = {"format_version": FORMAT_VERSION, "model_config": model.config_dict(),
            "objective_config": objective.config_dict(), "step": objective.step_count,
            "adam_steps": opt_steps, "prior_rng": objective.rng.bit_generator.state,
            "extra": extra or {}}
    arrays["meta_json"] = np.array(json.dumps(meta))
    atomic_write(path, lambda f: np.savez(f, **arrays))


def atomic_write(path, write):
    """write(file object) into a temporary file beside `path`, flushed to disk, then renamed over
    `path`: a crash or Ctrl-C at any moment leaves either the old file or the new one, never half
    of one, and no temporary file behind. (Also used for the aligned-face caches, prepare.py.)"""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)                     # atomic: the old file stays until this line
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read(path, arrays=True):
    """(meta dict, {name: array}) from a checkpoint file, with clear errors. arrays=False reads only
    the metadata (options, step, configs) and returns an empty dict: the .npz loads lazily."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist; give the .npz written by training "
                              f"(e.g. runs/<name>/checkpoint.npz)")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta_json"]))
            arrays = {k: data[k] for k in data.files if k != "meta_json"} if arrays else {}
    except (OSError, ValueError, KeyError) as err:
        raise CheckpointError(f"{path!r} is not a readable tinycdaae checkpoint ({err})") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path!r} has checkpoint format {meta.get('format_version')}, "
                              f"this version reads format {FORMAT_VERSION}")
    return meta, arrays


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
        opt.t = int(meta["adam_steps"][opt_name])
    objective.rng.bit_generator.state = meta["prior_rng"]
    objective.step_count = int(meta["step"])
    return meta["extra"]


def _assign(target, arrays, key, path):
    if key not in arrays:
        raise CheckpointError(f"checkpoint {path} has no array {key!r}; it was written by another version")
    if tuple(arrays[key].shape) != tuple(target.shape):
        raise CheckpointError(f"checkpoint {path}: {key} has shape {arrays[key].shape}, expected {target.shape}")
    target[...] = backend.to_device(arrays[key].astype(target.dtype, copy=False))   # keeps memory order


def load(path, dtype=None):
    """Build the model and objective a checkpoint describes and load it. Returns
    (objective, extra). dtype overrides the stored one (e.g. float64 for checks)."""
    meta, arrays = read(path)
    model_config = dict(meta["model_config"])
    if dtype is not None:
        model_config["dtype"] = dtype
    objective = Objective(CDAAE(ModelConfig(**model_config)), ObjectiveConfig(**meta["objective_config"]))
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
    (a generator file's discriminators keep their initial weights)."""
    meta, arrays = read(path)
    if meta.get("kind") != "generator":
        objective, extra = load(path)
        return objective.model, extra
    model = CDAAE(ModelConfig(**{**meta["model_config"], "dtype": "float32"}))
    for block in GENERATOR_BLOCKS:
        for p in model.blocks[block].params():
            _assign(p.data, arrays, f"param/{p.name}", path)
    return model, meta["extra"]

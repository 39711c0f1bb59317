"""Small helpers the walkthrough's training chapters share: the London photos split into people to
train on and people held out, one training run with the package's own Trainer, and faces shown
pixel for pixel (nearest neighbour, never shrunk).

Nothing here is part of the package: each function only calls the package's public pieces
(the same ones `run.py` and `scripts/make_london_model.py` use), so a chapter can show a face
change its expression without twenty lines of set-up.
"""
import contextlib
import io
import json
import os
import shutil
import tempfile

import numpy as np

from tinycdaae.model import CDAAE, ModelConfig
from tinycdaae.objective import Objective
from tinycdaae.recipes import DEFAULT_RECIPE, default_epochs, objective_config, recipe_options, train_config
from tinycdaae.training import Trainer
from tinycdaae.data.datasets import load_dataset
from tinycdaae.data.datasets import split_for_training
from tinycdaae.grids import tile

NEUTRAL, HAPPY = np.array([1, 0], np.float32), np.array([0, 1], np.float32)   # London's two labels


def london(fold=0):
    """(faces, train, test): the 78 built-in London people (a neutral and a smiling photo each,
    aligned to 32x32), and fold `fold` of 4: about 58 people to train on, 20 held out."""
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        faces = load_dataset("london", progress=False)      # aligned once, then read from a cache
    train, test = split_for_training(faces, fold=fold)
    return faces, train, test


def seeds(seed):
    """The weight, prior and data-order seeds `run.py --seed seed` derives from one number."""
    return tuple(int(s) for s in np.random.SeedSequence(seed).generate_state(3))


def train_london(train_set, skip="n2", width=1.0, epochs=None, seed=0, recipe=DEFAULT_RECIPE, **changes):
    """Train one CDAAE on `train_set` exactly as `python run.py --dataset london --skip SKIP
    --width W --epochs N --seed S` does (recipe options may be changed, e.g. lr_d_e=1e-4; epochs
    None: the recipe's own for London, as run.py's, 120 for the default recipe).
    Returns (model, steps): the trained network, holding the weights that draw faces (the weight
    average when the recipe keeps one, as `run.py generate` and `evaluate` use), and the per-step
    log records."""
    options = {**recipe_options(recipe, "london"), **changes}
    epochs = epochs or default_epochs(recipe, "london")
    weight_seed, prior_seed, order_seed = seeds(seed)
    model = CDAAE(ModelConfig(skip=skip, width=width, label_dim=2, seed=weight_seed))
    objective = Objective(model, objective_config(options, prior_seed))
    config = train_config(options, epochs=epochs, batch_size=32, seed=order_seed)
    out = tempfile.mkdtemp()
    try:
        os.environ.setdefault("TQDM_DISABLE", "1")
        status = Trainer(objective, train_set, config, out, say=lambda message: None).run()
        with open(os.path.join(out, "log.jsonl")) as f:
            records = [json.loads(line) for line in f]
    finally:
        shutil.rmtree(out)
    assert status == "finished", status
    if objective.average is not None:      # from here on the model only draws: with θ̄, as `run.py generate`
        objective.average.copy_into_params()
    return model, [r for r in records if "event" not in r]


def photos(test_set):
    """The held-out people's photos: (people, neutral (P,3,32,32), happy (P,3,32,32))."""
    people = list(test_set.subject_ids)
    labels = test_set.labels.argmax(1)
    row = {(s, int(k)): i for i, (s, k) in enumerate(zip(test_set.subjects, labels))}
    neutral = np.stack([test_set.images[row[s, 0]] for s in people])
    happy = np.stack([test_set.images[row[s, 1]] for s in people])
    return people, neutral, happy


def both_ways(model, neutral, happy):
    """(neutral photos asked to smile, smiling photos asked to stop), each (P, 3, 32, 32)."""
    n = len(neutral)
    to_happy = model.generate(neutral, np.tile(HAPPY, (n, 1)))["x_hat"]
    to_neutral = model.generate(happy, np.tile(NEUTRAL, (n, 1)))["x_hat"]
    return to_happy, to_neutral


def identity_top1(outputs, gallery):
    """Fraction of outputs whose nearest gallery photo (pixel MSE) is the same person: outputs[i]
    and gallery[i] are person i. Chance is 1 / len(gallery)."""
    d = ((outputs[:, None] - gallery[None]) ** 2).mean(axis=(2, 3, 4))      # (P, P)
    return float(np.mean(d.argmin(axis=1) == np.arange(len(outputs))))


def mse(a, b):
    return float(((np.asarray(a, np.float64) - b) ** 2).mean())


def show(rows, scale=2, title=None):
    """Display (rows, cols, 3, H, W) faces in [-1, 1] enlarged `scale` times by nearest neighbour:
    every pixel a scale x scale block, never smoothed or shrunk. The PNG stored in the notebook holds
    the native pixels (a quarter of the bytes of a 2x PNG) and the page draws it `scale` times larger
    with `image-rendering: pixelated`, which is nearest-neighbour enlargement in the browser."""
    import base64
    from IPython.display import HTML, display
    from PIL import Image as PILImage
    sheet = tile(np.asarray(rows, np.float32), scale=1, gap=1)
    buffer = io.BytesIO()
    PILImage.fromarray(sheet).save(buffer, format="PNG", optimize=True)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    caption = f"<div style='font-family:monospace;font-size:12px'>{title}</div>" if title else ""
    display(HTML(f"{caption}<img src='data:image/png;base64,{data}' width='{sheet.shape[1] * scale}' "
                 f"style='image-rendering:crisp-edges;image-rendering:pixelated' "
                 f"alt='{sheet.shape[1]}x{sheet.shape[0]} px shown at {scale}x, nearest neighbour'>"))


def difference_image(a, b, gain=4.0):
    """(a - b) as a picture: grey is no change, brighter/darker is a change, `gain` times enlarged."""
    return np.clip(gain * (np.asarray(a) - b), -1, 1)

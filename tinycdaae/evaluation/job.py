"""The whole evaluation: every network of every split and the copy baseline, scored and
averaged, written as a report (`tinycdaae evaluate` and `tinycdaae compare`)."""
import os
import time
from dataclasses import dataclass

import numpy as np

from .. import grids
from .evalset import evaluation_set
from .face_identity import unavailable_reason as face_identity_missing
from .reader import ClassifierConfig, ExpressionReader
from .report import write_report
from .scoring import aggregate, reader_ceiling, score

BASELINE = "copy input"      # x̂ = x_s: keeps the person perfectly, never changes the expression
NETWORK_ORDER = ("n1", "n2", "n3", "none")


@dataclass
class Split:
    """One held-out fold and the networks trained with it held out.

    name: e.g. "synthetic-emotion fold 0/4"; train, test: FaceSets (train only feeds the
    expression reader); networks: list of (network name, checkpoint path, load) where load() -> a
    model with .generate(images, labels) (loaded lazily, one at a time)."""
    name: str
    train: object
    test: object
    networks: list


def evaluate_splits(splits, out_dir, reader_config=None, max_pairs=None, title="", say=print):
    """Score every network of every split and the copy baseline; write results.md, results.json
    and the confusion PNGs to out_dir; return the results dict (as written to results.json).

    Per split: the evaluation pairs and one expression reader (trained on that split's training
    people). Networks of the same name across splits (folds) or seeds are averaged: mean ± sample
    standard deviation. Each checkpoint is loaded once: the first split's sample picture is drawn
    while its networks are loaded for scoring."""
    kind, label_names = _common_labels(splits)
    reader_config = reader_config or ClassifierConfig()
    dlib_identity, dlib_missing = _dlib_identity(splits, say)
    runs, ceilings, per_network, people = [], [], {}, set()
    sheet = _SampleSheet(splits[0])
    for i, split in enumerate(splits):
        evalset, reader, ceiling = _prepare_split(split, kind, label_names, reader_config, max_pairs, say)
        people.add(evalset.gallery.shape[1])
        ceilings.append(ceiling)
        for network, path, load in [(BASELINE, None, None)] + list(split.networks):
            model = None if load is None else load()
            summary = _score_network(network, model, evalset, reader, dlib_identity, kind, say)
            if i == 0 and model is not None:
                sheet.add(model)
            per_network.setdefault(network, []).append(summary)
            runs.append({"network": network, "checkpoint": path, "split": split.name, "metrics": summary})
    results = _results(splits, kind, label_names, reader_config, per_network, runs, ceilings, people,
                       dlib_identity, dlib_missing, title)
    _write_samples(sheet, splits[0], out_dir, results)
    write_report(out_dir, results)
    return results


def _common_labels(splits):
    """(kind, label names) shared by every split; a mix is refused."""
    if not splits:
        raise ValueError("nothing to evaluate: no split given")
    kinds = {s.test.kind for s in splits}
    names = {tuple(s.test.label_names) for s in splits}
    if len(kinds) != 1 or len(names) != 1:
        raise ValueError("the checkpoints were trained on different kinds of labels "
                         f"({sorted(kinds)}, {sorted(names)}); evaluate them separately")
    return kinds.pop(), list(names.pop())


def _dlib_identity(splits, say):
    """(measure dlib's identity?, why not): for photographs only (not the rendered faces), and
    only where dlib and its model are installed; otherwise the column is left out and the
    reason said once."""
    photographs = all(s.test.meta.get("source") != "synthetic" for s in splits)
    dlib_missing = face_identity_missing() if photographs else ""
    if dlib_missing:
        say(f"identity (dlib): skipped, {dlib_missing}")
    return photographs and not dlib_missing, dlib_missing


def _expression_key(kind):
    return "expression_accuracy" if kind == "emotion" else "au_mae"


def _prepare_split(split, kind, label_names, reader_config, max_pairs, say):
    """(evaluation set, trained expression reader, the reader's ceiling) for one split."""
    t0 = time.perf_counter()
    evalset = evaluation_set(split.test, max_pairs)
    reader = ExpressionReader(kind, len(label_names), reader_config, image_size=split.train.images.shape[-1])
    reader.fit(split.train.images, split.train.labels)
    ceiling = reader_ceiling(reader, split.test)
    if kind == "au":   # what answering the training mean for every face would score
        train_mean = np.asarray(split.train.labels, np.float64).mean(axis=0)
        ceiling["au_mae_mean_guess"] = float(np.abs(np.asarray(split.test.labels) - train_mean).mean())
    expr_key = _expression_key(kind)
    say(f"{split.name}: {len(evalset)} pairs that change the expression (of {evalset.pairs_total}), "
        f"{evalset.gallery.shape[1]} held-out people; expression reader trained on "
        f"{len(split.train.images)} real training images for {reader_config.epochs_for(len(split.train.images))} "
        f"epochs in {time.perf_counter() - t0:.0f} s, "
        f"{expr_key} on real held-out images {ceiling[expr_key]:.3f}")
    return evalset, reader, ceiling


def _score_network(network, model, evalset, reader, dlib_identity, kind, say):
    """Score one network (model None: the copy baseline) and say its numbers in one line."""
    t0 = time.perf_counter()
    x_hat = evalset.x_source if model is None else model.generate(evalset.x_source,
                                                                  evalset.target_labels)["x_hat"]
    summary, _ = score(x_hat, evalset, reader, dlib_identity)
    say(f"  {network:<10} MSE {summary['mse']:.4f}  PSNR {summary['psnr']:.2f} dB  "
        f"SSIM {summary['ssim']:.3f}  identity {summary['identity_top1']:.3f} (face), "
        f"{summary['identity_top1_whole_image']:.3f} (whole)"
        + (f", {summary['identity_dlib_top1']:.3f} (dlib)" if dlib_identity else "") + "  "
        f"{_expression_key(kind)} {summary[_expression_key(kind)]:.3f}  ({time.perf_counter() - t0:.0f} s)")
    return summary


def _description(splits, kind, dlib_identity):
    """What results.md says was measured."""
    return (
        "Every (source image, target label) pair of the held-out people whose target label "
        "differs from the source's. Fidelity: x̂ against the person's real image with the target "
        + ("label, rendered exactly" if all(s.test.meta.get("source") == "synthetic" for s in splits)
           else "label") +
        " (MSE and PSNR = 10 log10(L²/MSE) with L = 2 for [-1, 1] images; SSIM with an 11×11 "
        "Gaussian window, σ = 1.5, on 32×32 faces, scaled with the face on larger ones: 21×21, σ = 3 "
        "at 64×64). Identity: is the nearest, in pixel space, of the held-out "
        "people's real images with the target label the same person? Compared inside the face "
        "ellipse (the main number), and over the whole image (backdrop included)"
        + ("; and by dlib's face-recognition network: nearest by Euclidean distance between 128-d "
           "face descriptors of the faces upsampled to dlib's 150×150 chip (identity (dlib))"
           if dlib_identity else "") + ". Expression: a small CNN "
        "trained on the real training-fold images reads x̂"
        + (" (accuracy against the target emotion)." if kind == "emotion"
           else " (mean absolute error of the 12 AU intensities in [0, 1]).")
        + " Several runs of a network (folds, seeds): mean ± sample standard deviation.")


def _results(splits, kind, label_names, reader_config, per_network, runs, ceilings, people,
             dlib_identity, dlib_missing, title):
    """The results dict, as written to results.json."""
    size = splits[0].test.images.shape[-1]
    order = [n for n in NETWORK_ORDER if n in per_network] + \
            sorted(n for n in per_network if n not in NETWORK_ORDER and n != BASELINE) + [BASELINE]
    return {
        "title": title or ", ".join(s.name for s in splits), "kind": kind, "label_names": label_names,
        "description": _description(splits, kind, dlib_identity),
        "order": order, "people_per_gallery": min(people),
        # "dlib": the identity_dlib_top1 column is there; "skipped: why"; None: not for this data
        "identity_dlib": "dlib" if dlib_identity else (f"skipped: {dlib_missing}" if dlib_missing else None),
        "ceiling": aggregate(ceilings), "ceiling_images": int(sum(c["images"] for c in ceilings)),
        "reader": {"architecture": f"conv 5x5/2 3-16, conv 5x5/2 16-32, dense {32 * (size // 4) ** 2}-64, "
                                   "dense 64-K, LeakyReLU 0.2",
                   "epochs": [reader_config.epochs_for(len(s.train.images)) for s in splits],
                   "batch_size": reader_config.batch_size,
                   "lr": reader_config.lr, "seed": reader_config.seed},
        "summary": {n: aggregate(per_network[n]) for n in order},
        "runs": runs,
    }


def _write_samples(sheet, split, out_dir, results):
    """samples.png (the first split's picture), and its facts in results."""
    results["sample_people"] = min(3, len(split.test.subject_ids))
    results["sample_networks"] = [name for name, _, _ in split.networks]
    picture = sheet.picture()
    if picture is not None:
        grids.save_png(os.path.join(out_dir, "samples.png"), grids.tile(picture, scale=3))
        results["samples_image"] = "samples.png"


class _SampleSheet:
    """A picture of what the numbers measure: for a few held-out people, a row of their real
    images with every label (under a white cell), then one row per network, each starting with
    the input face and then x̂ for every label. Networks are added as they are loaded for
    scoring, so no checkpoint is read twice. No picture where the data has no real image of a
    person with each label (AU frames)."""

    def __init__(self, split, n_people=3):
        rows = grids.sample_faces(split.test, n_people)
        self.labels = grids.each_label(len(split.test.label_names))
        self.targets = grids.real_targets(split.test, rows, self.labels)
        self.faces = split.test.images[rows]
        self.blocks = []

    def add(self, model):
        if self.targets is not None:
            self.blocks.append(grids.expression_grid(model, self.faces, self.labels))

    def picture(self):
        """(rows, 1 + L, 3, H, W), or None."""
        if self.targets is None:
            return None
        blank = np.ones_like(self.faces[:, None])                          # (R, 1, 3, H, W) white
        blocks = [np.concatenate([blank, self.targets], axis=1)] + self.blocks   # real images first
        return np.stack(blocks, axis=1).reshape(-1, *blocks[0].shape[1:])  # person by person


def comparison_sheet(split, n_people=3):
    """The sample picture of one split on its own (loads each of its networks): (rows, 1 + L, 3,
    H, W), or None where the data has no real image of a person with each label."""
    sheet = _SampleSheet(split, n_people)
    if sheet.targets is None:
        return None
    for _, _, load in split.networks:
        sheet.add(load())
    return sheet.picture()

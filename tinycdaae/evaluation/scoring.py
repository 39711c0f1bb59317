"""Scoring one network's images on an evaluation set, and averaging runs (folds, seeds)."""
import math

import numpy as np

from .metrics import face_mask, identity_hits, mse, psnr, ssim, ssim_window
from .reader import confusion_matrix, per_class_accuracy


def score(x_hat, evalset, reader, dlib_identity=False):
    """Every metric for generated images x_hat (P, 3, S, S) aligned with evalset's pairs (SSIM's
    window scaled with S, see metrics.ssim_window).

    dlib_identity: also the identity retrieval with dlib's face descriptors (identity_dlib_top1;
    needs dlib, see face_identity.unavailable_reason()).
    Returns (summary, per_pair): summary holds the means (JSON-ready); per_pair the arrays
    (mse, psnr, ssim, identity_hit, identity_dlib_hit if asked for, and expression_correct or
    au_abs_error)."""
    x_hat = np.asarray(x_hat, np.float32)
    if x_hat.shape != evalset.x_target.shape:
        raise ValueError(f"x_hat has shape {x_hat.shape}, the evaluation set needs {evalset.x_target.shape}")
    per_pair = {"mse": mse(x_hat, evalset.x_target), "psnr": psnr(x_hat, evalset.x_target),
                "ssim": ssim(x_hat, evalset.x_target, **_window(x_hat)),
                "identity_hit": identity_hits(x_hat, evalset.subjects, evalset.bank, evalset.bank_subjects,
                                              evalset.gallery, mask=face_mask(*x_hat.shape[2:])),
                "identity_hit_whole": identity_hits(x_hat, evalset.subjects, evalset.bank,
                                                    evalset.bank_subjects, evalset.gallery)}
    summary = {"pairs": len(evalset), "mse": float(per_pair["mse"].mean()),
               "psnr": float(per_pair["psnr"].mean()), "ssim": float(per_pair["ssim"].mean()),
               "identity_top1": float(per_pair["identity_hit"].mean()),
               "identity_top1_whole_image": float(per_pair["identity_hit_whole"].mean())}
    if dlib_identity:   # the same gallery, nearest by Euclidean distance between descriptors
        from .face_identity import descriptors
        per_pair["identity_dlib_hit"] = identity_hits(descriptors(x_hat), evalset.subjects,
                                                      evalset.bank_descriptors, evalset.bank_subjects,
                                                      evalset.gallery)
        summary["identity_dlib_top1"] = float(per_pair["identity_dlib_hit"].mean())
    names = list(evalset.label_names)
    per_item, expression_summary = expression_scores(reader, x_hat, evalset.target_labels, evalset.kind, names)
    per_pair["expression_correct" if evalset.kind == "emotion" else "au_abs_error"] = per_item
    summary.update(expression_summary)
    # by target class: identity too (does a variant lose people on some expressions only?)
    target_class = evalset.target_labels.argmax(axis=1)
    summary["per_class_identity_top1"] = {
        name: float(per_pair["identity_hit"][target_class == k].mean()) if (target_class == k).any() else None
        for k, name in enumerate(names)} if evalset.kind == "emotion" else {}
    # by size of the change asked for: terciles of MSE(x_s, x_t), the same edges for every network
    bins = change_bins(evalset.change)
    expr = per_pair.get("expression_correct", per_pair.get("au_abs_error"))
    expr = expr if expr.ndim == 1 else expr.mean(axis=1)
    summary["by_change"] = {name: {"pairs": int(m.sum()), "identity_top1": float(per_pair["identity_hit"][m].mean()),
                                   ("expression_accuracy" if evalset.kind == "emotion" else "au_mae"):
                                       float(expr[m].mean()), "mse": float(per_pair["mse"][m].mean())}
                            for name, m in bins.items() if m.any()}
    return summary, per_pair


def _window(images):
    sigma, radius = ssim_window(images.shape[-1])
    return {"sigma": sigma, "radius": radius}


def change_bins(change):
    """Pairs split into thirds by the size of the change asked for (MSE between the real source
    and target): {"small": mask, "medium": mask, "large": mask}."""
    edges = np.quantile(change, [1 / 3, 2 / 3])
    return {"small": change <= edges[0], "medium": (change > edges[0]) & (change <= edges[1]),
            "large": change > edges[1]}


def expression_scores(reader, images, target_labels, kind, names):
    """The expression reader on `images` against the labels they should show.
    Returns (per image: correct or not (emotions) / absolute error per AU (P, L),
    summary: accuracy, per class and confusion counts / mean absolute error and per AU)."""
    if kind == "emotion":
        truth, predicted = target_labels.argmax(axis=1), reader.predict(images)
        counts = confusion_matrix(truth, predicted, len(names))
        correct = predicted == truth
        return correct, {"expression_accuracy": float(correct.mean()),
                         "per_class_expression_accuracy": dict(zip(names, _floats(per_class_accuracy(counts)))),
                         "confusion": counts.tolist()}
    errors = np.abs(reader.predict(images) - target_labels)                # (P, L)
    return errors, {"au_mae": float(errors.mean()), "per_au_mae": dict(zip(names, _floats(errors.mean(axis=0))))}


def reader_ceiling(reader, test_set):
    """The expression reader on every real held-out image: the best a generated image can hope
    for. Emotions: accuracy, per class, confusion; AUs: mean absolute error, per AU."""
    labels = np.asarray(test_set.labels, np.float32)
    _, summary = expression_scores(reader, test_set.images, labels, test_set.kind, list(test_set.label_names))
    return {"images": len(labels), **summary}


def _floats(values):
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, np.float64)]


# ---------------------------------------------------------------------------------- aggregation
def mean_std(values):
    """(mean, sample standard deviation with N−1, n) of the finite values; std is None for n=1
    (one run says nothing about spread)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None, None, 0
    n = len(finite)
    return float(np.mean(finite)), (float(np.std(finite, ddof=1)) if n > 1 else None), n


def aggregate(summaries):
    """Many runs of one network (folds or seeds) -> {metric: {"mean", "std", "n"}} for every
    scalar metric, and the same for each entry of the per-class / per-AU / by-change dicts."""
    out = {}
    keys = [k for k in summaries[0] if k not in ("confusion",)]
    for key in keys:
        first = summaries[0][key]
        if isinstance(first, dict):
            out[key] = {}
            for sub in first:
                if isinstance(first[sub], dict):
                    out[key][sub] = {m: _stat([s[key][sub][m] for s in summaries if sub in s[key]])
                                     for m in first[sub]}
                else:
                    out[key][sub] = _stat([s[key][sub] for s in summaries])
        elif isinstance(first, (int, float)):
            out[key] = _stat([s[key] for s in summaries])
    if "confusion" in summaries[0]:
        out["confusion"] = np.sum([s["confusion"] for s in summaries], axis=0).tolist()   # counts add up
    return out


def _stat(values):
    mean, std, n = mean_std(values)
    return {"mean": mean, "std": std, "n": n}

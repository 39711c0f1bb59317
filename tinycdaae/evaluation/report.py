"""The report: results.md, results.json and the confusion pictures (a 3×5 pixel font draws the
numbers, so no font library is needed)."""
import json
import os

import numpy as np

from ..grids import save_png

# A 3×5 pixel font for the digits and '%', so the confusion picture carries its own numbers
# without a font library. Each glyph: 5 rows of 3 bits.
_GLYPHS = {"0": "111101101101111", "1": "010110010010111", "2": "111001111100111",
           "3": "111001111001111", "4": "101101111001001", "5": "111100111001111",
           "6": "111100111101111", "7": "111001010010010", "8": "111101111101111",
           "9": "111101111001111", "-": "000000111000000"}


def _draw_text(image, text, top, left, colour, scale):
    """Stamp `text` (digits and '-') into image (H, W, 3) uint8 at (top, left), in place."""
    for i, ch in enumerate(text):
        bits = np.array([int(b) for b in _GLYPHS[ch]], bool).reshape(5, 3)
        glyph = bits.repeat(scale, 0).repeat(scale, 1)                         # (5s, 3s)
        y, x = top, left + i * 4 * scale
        region = image[y:y + glyph.shape[0], x:x + glyph.shape[1]]
        region[glyph[:region.shape[0], :region.shape[1]]] = colour


def confusion_image(counts, cell=36, scale=2):
    """A confusion matrix as an RGB heat-map (H, W, 3) uint8: rows = target label, columns = label
    read by the classifier, both in the label order of results.md, numbered 1..K along the top and
    the left. Each cell's shade is its share of the row (white 0% → dark blue 100%) and it shows
    that share in whole percent."""
    counts = np.asarray(counts, np.float64)
    k = len(counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.nan_to_num(counts / counts.sum(axis=1, keepdims=True))     # (K, K) row shares
    margin = cell
    size = margin + k * cell + 1
    image = np.full((size, size, 3), 255, np.uint8)
    white, blue = np.array([255, 255, 255.0]), np.array([8, 48, 107.0])
    for i in range(k):
        for j in range(k):
            top, left = margin + i * cell, margin + j * cell
            colour = white + share[i, j] * (blue - white)
            image[top:top + cell, left:left + cell] = np.round(colour).astype(np.uint8)
            text = str(int(round(100 * share[i, j])))
            ink = (255, 255, 255) if share[i, j] > 0.5 else (0, 0, 0)
            width = (4 * len(text) - 1) * scale
            _draw_text(image, text, top + (cell - 5 * scale) // 2, left + (cell - width) // 2, ink, scale)
    grid_lines = margin + np.arange(k + 1) * cell
    image[grid_lines.clip(max=size - 1), margin:] = 160                        # horizontal lines
    image[margin:, grid_lines.clip(max=size - 1)] = 160                        # vertical lines
    for i in range(k):   # class numbers 1..K: along the top (predicted) and the left (target)
        text = str(i + 1)
        width = (4 * len(text) - 1) * scale
        centre = margin + i * cell + (cell - width) // 2
        _draw_text(image, text, (margin - 5 * scale) // 2, centre, (0, 0, 0), scale)
        _draw_text(image, text, margin + i * cell + (cell - 5 * scale) // 2, (margin - width) // 2,
                   (0, 0, 0), scale)
    return image


# ---------------------------------------------------------------------------------------- report
def _fmt(stat, digits, percent=False):
    """'0.123 ± 0.004' (or '12.3%') from {"mean", "std", "n"}; '—' when missing."""
    if stat is None or stat.get("mean") is None:
        return "—"
    scale, unit = (100.0, "%") if percent else (1.0, "")
    text = f"{stat['mean'] * scale:.{digits}f}"
    if stat.get("std") is not None:
        text += f" ± {stat['std'] * scale:.{digits}f}"
    return text + unit


def _plain(value, digits, percent=False):
    return _fmt({"mean": value, "std": None}, digits, percent)


# What the report says about the expression, per kind of label: the results key, the column
# heads, and how its numbers are written (emotions: accuracy in percent; AUs: an error, 3 digits).
_EXPRESSION = {
    "emotion": {"key": "expression_accuracy", "head": "expression accuracy ↑", "name": "expression accuracy",
                "short": "expression acc.", "per_key": "per_class_expression_accuracy", "per_column": "target",
                "per_title": "target emotion: expression accuracy", "digits": 1, "percent": True},
    "au": {"key": "au_mae", "head": "AU mean abs. error ↓", "name": "AU mean absolute error",
           "short": "AU MAE", "per_key": "per_au_mae", "per_column": "AU",
           "per_title": "action unit: mean absolute intensity error", "digits": 3, "percent": False},
}


def _expr(stat, e, fmt=_fmt):
    """An expression number written the way its kind is (see _EXPRESSION)."""
    return fmt(stat, e["digits"], e["percent"])


def markdown_report(results):
    """results.json's content -> results.md text."""
    e = _EXPRESSION[results["kind"]]
    lines = [f"# Evaluation on held-out people: {results['title']}", "", f"{results['description']}", ""]
    lines += _main_table(results, e) + _ceiling_lines(results, e) + _by_change(results, e)
    lines += _per_label(results, e, e["per_key"], "## Per " + e["per_title"], e["per_column"], ceiling=True)
    if results["kind"] == "emotion":
        lines += _per_label(results, {"digits": 0, "percent": True}, "per_class_identity_top1",
                            "## Per target emotion: identity top-1 (face)", "target", ceiling=False)
        lines += _confusions(results)
    lines += _samples(results) + _runs(results, e)
    return "\n".join(lines) + "\n"


def _main_table(results, e):
    rows, dlib = results["summary"], results.get("identity_dlib") == "dlib"   # the dlib column, where measured
    lines = ["| network | runs | pairs | MSE ↓ | PSNR (dB) ↑ | SSIM ↑ | identity top-1, face ↑ | "
             "identity top-1, whole image | " + ("identity (dlib) ↑ | " if dlib else "") + f"{e['head']} |",
             "|---|---|---|---|---|---|---|---|---|" + ("---|" if dlib else "")]
    for name in results["order"]:
        s = rows[name]
        lines.append(f"| {name} | {s['mse']['n']} | {int(s['pairs']['mean'])} | {_fmt(s['mse'], 4)} | "
                     f"{_fmt(s['psnr'], 2)} | {_fmt(s['ssim'], 3)} | {_fmt(s['identity_top1'], 1, True)} | "
                     f"{_fmt(s['identity_top1_whole_image'], 1, True)} | "
                     + (f"{_fmt(s.get('identity_dlib_top1'), 1, True)} | " if dlib else "") +
                     f"{_expr(s[e['key']], e)} |")
    if str(results.get("identity_dlib")).startswith("skipped"):
        lines += ["", f"Identity (dlib) {results['identity_dlib']}."]
    return lines


def _ceiling_lines(results, e):
    ceiling, people = results["ceiling"], results["people_per_gallery"]
    mean_guess = (f" (answering the training mean for every face: {_fmt(ceiling['au_mae_mean_guess'], 3)})"
                  if results["kind"] == "au" else "")
    return ["", f"Expression reader on the real held-out images (the ceiling): {_expr(ceiling[e['key']], e)}"
            f" over {results['ceiling_images']} images{mean_guess}. Identity chance level: "
            f"1 in {people} ({100 / people:.0f}%).", ""]


def _by_change(results, e):
    lines = ["## By the size of the change asked for", "",
             "Pairs split into thirds by the MSE between the real source and target images "
             f"(small / medium / large change). Each cell: {e['name']} / identity top-1 (face).", "",
             "| network | small | medium | large |", "|---|---|---|---|"]
    for name in results["order"]:
        cells = []
        for b in ("small", "medium", "large"):
            stat = results["summary"][name]["by_change"].get(b)
            cells.append("—" if stat is None else
                         f"{_expr(stat[e['key']], e)} / {_fmt(stat['identity_top1'], 0, True)}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _per_label(results, e, key, title, column, ceiling):
    """One row per label, one column per network (and the real images' ceiling first)."""
    order, rows = results["order"], results["summary"]
    lines = ["", title, "", f"| {column} | " + ("real (ceiling) | " if ceiling else "") + " | ".join(order) + " |",
             "|---|" + ("---|" if ceiling else "") + "---|" * len(order)]
    for i, label in enumerate(results["label_names"]):
        cells = [_expr(rows[n][key].get(label), e) for n in order]
        if ceiling:
            cells.insert(0, _expr(results["ceiling"][key].get(label), e))
        lines.append(f"| {i + 1}. {label} | " + " | ".join(cells) + " |")
    return lines


def _confusions(results):
    lines = ["", "## Confusion matrices (paper Fig. 6c)", "",
             "Rows: target emotion; columns: emotion read by the classifier; numbers 1..K as in "
             "the tables above; each cell is its share of the row in percent (counts summed "
             "over runs are in results.json).", ""]
    return lines + [f"![{name}]({file})" for name, file in results["confusion_images"].items()]


def _samples(results):
    if not results.get("samples_image"):
        return []
    return ["", "## What the networks draw", "",
            f"For {results['sample_people']} held-out people: their real images with every label "
            "(under a white cell), then one row per network (" + ", ".join(results["sample_networks"]) + "), each "
            "starting with the input face. Labels in the order of the tables above. (First split only.)",
            "", f"![samples]({results['samples_image']})"]


def _runs(results, e):
    lines = ["", "## Runs", "", f"| network | checkpoint | split | {e['short']} | identity top-1, face |",
             "|---|---|---|---|---|"]
    for run in results["runs"]:
        m = run["metrics"]
        lines.append(f"| {run['network']} | {run['checkpoint'] or '(copies the input)'} | {run['split']} | "
                     f"{_expr(m[e['key']], e, _plain)} | {_plain(m['identity_top1'], 1, True)} |")
    return lines


def write_report(out_dir, results):
    """results.json, results.md and confusion_<network>.png (emotions) into out_dir.
    Returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    results["confusion_images"] = {}
    if results["kind"] == "emotion":
        pictures = [("real", results["ceiling"]["confusion"])] + \
                   [(n, results["summary"][n]["confusion"]) for n in results["order"]]
        for name, counts in pictures:
            file = f"confusion_{name.replace(' ', '_')}.png"
            save_png(os.path.join(out_dir, file), confusion_image(counts))
            results["confusion_images"][name] = file
            written.append(os.path.join(out_dir, file))
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(markdown_report(results))
    return [os.path.join(out_dir, "results.md"), os.path.join(out_dir, "results.json")] + written

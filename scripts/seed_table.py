"""Per-seed tables from `run.py evaluate` / `run.py compare` results: every run, then mean ± std
and the worst run, next to the copy-the-input baseline, and which runs pass the bar.

    python scripts/seed_table.py runs/london-stable/results.json [more results.json ...] \
        [--name stable] [--name paper]

Each results.json gives one block of rows (its networks; give --name once per file to label the
blocks, e.g. the recipe). A run passes when its expression accuracy is >= 0.8 overall and >= 0.7
for every target label, its identity top-1 >= 0.9 (dlib's descriptor where the results have it,
else pixels) and its MSE is below the copy baseline's on the same split.
"""
import argparse
import json
import os
import re

import numpy as np

BAR = {"expression": 0.8, "each_label": 0.7, "identity": 0.9}


def run_row(run, copy_mse):
    m = run["metrics"]
    per_label = m.get("per_class_expression_accuracy") or {}
    per_label = {k: v for k, v in per_label.items() if v is not None}
    identity = m.get("identity_dlib_top1", m["identity_top1"])
    row = {"expression": m["expression_accuracy"], "per_label": per_label,
           "worst_label": min(per_label.values()) if per_label else float("nan"),
           "identity": identity, "identity_pixels": m["identity_top1"], "mse": m["mse"],
           "copy_mse": copy_mse, "ssim": m["ssim"], "psnr": m["psnr"]}
    row["passes"] = (row["expression"] >= BAR["expression"] and row["worst_label"] >= BAR["each_label"]
                     and identity >= BAR["identity"] and row["mse"] < copy_mse)
    return row


def describe(checkpoint):
    """'seed S, fold K' from a run directory named like n2-seed3-fold1 (as compare names them)."""
    name = os.path.basename(os.path.dirname(checkpoint)) if checkpoint else "copy"
    found = re.search(r"seed(\d+)-fold(\d+)", name)
    return f"seed {found[1]}, fold {found[2]}" if found else name


def table(results, name):
    label_names = results["label_names"]
    copy = {r["split"]: r["metrics"] for r in results["runs"] if r["network"] == "copy input"}
    has_dlib = any("identity_dlib_top1" in r["metrics"] for r in results["runs"])
    id_name = "identity (dlib)" if has_dlib else "identity (pixels)"
    by_label = label_names if len(label_names) <= 2 else []
    head = (["network", "run", "expression"] + [f"→ {n}" for n in by_label]
            + ([] if by_label else ["worst label"]) + [id_name] + (["identity (pixels)"] if has_dlib else [])
            + ["MSE", "copy MSE", "SSIM", "passes"])
    lines = [f"### {name}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def cells(network, run_name, row, mark=True):
        out = [network, run_name, f"{row['expression']:.2f}"]
        out += [f"{row['per_label'].get(n, float('nan')):.2f}" for n in by_label]
        out += [] if by_label else [f"{row['worst_label']:.2f}"]
        out += [f"{row['identity']:.2f}"] + ([f"{row['identity_pixels']:.2f}"] if has_dlib else [])
        out += [f"{row['mse']:.4f}", f"{row['copy_mse']:.4f}", f"{row['ssim']:.3f}"]
        out += [("yes" if row["passes"] else "**no**") if mark else ""]
        return "| " + " | ".join(out) + " |"

    networks = [n for n in results["order"] if n != "copy input"]
    for network in networks:
        rows = [(describe(r["checkpoint"]), run_row(r, copy[r["split"]]["mse"]))
                for r in results["runs"] if r["network"] == network]
        lines += [cells(network, run_name, row) for run_name, row in rows]
        values = {k: np.array([row[k] for _, row in rows], float)
                  for k in ("expression", "worst_label", "identity", "identity_pixels", "mse", "copy_mse", "ssim")}
        mean = "| {} | **mean ± std** ({} runs) | {:.2f} ± {:.2f} |".format(
            network, len(rows), values["expression"].mean(), values["expression"].std(ddof=1) if len(rows) > 1 else 0)
        lines.append(mean + " " + " | ".join(
            [f"{np.mean([row['per_label'].get(n, np.nan) for _, row in rows]):.2f}" for n in by_label]
            + ([] if by_label else [f"{values['worst_label'].mean():.2f}"])
            + [f"{values['identity'].mean():.2f}"] + ([f"{values['identity_pixels'].mean():.2f}"] if has_dlib else [])
            + [f"{values['mse'].mean():.4f} ± {values['mse'].std(ddof=1) if len(rows) > 1 else 0:.4f}",
               f"{values['copy_mse'].mean():.4f}", f"{values['ssim'].mean():.3f}",
               f"{sum(row['passes'] for _, row in rows)}/{len(rows)} pass"]) + " |")
        worst = {"expression": values["expression"].min(), "worst_label": values["worst_label"].min(),
                 "identity": values["identity"].min(), "identity_pixels": values["identity_pixels"].min(),
                 "mse": values["mse"].max(), "ssim": values["ssim"].min()}
        lines.append(f"| {network} | **worst run** | {worst['expression']:.2f} | " + " | ".join(
            [f"{min(row['per_label'].get(n, np.nan) for _, row in rows):.2f}" for n in by_label]
            + ([] if by_label else [f"{worst['worst_label']:.2f}"])
            + [f"{worst['identity']:.2f}"] + ([f"{worst['identity_pixels']:.2f}"] if has_dlib else [])
            + [f"{worst['mse']:.4f}", "", f"{worst['ssim']:.3f}", ""]) + " |")
    copies = [run_row(r, copy[r["split"]]["mse"]) for r in results["runs"] if r["network"] == "copy input"]
    agg = {k: float(np.mean([c[k] for c in copies])) for k in ("expression", "worst_label", "identity",
                                                                "identity_pixels", "mse", "ssim")}
    lines.append("| copy input | mean over {} split(s) | {:.2f} | ".format(len(copies), agg["expression"]) + " | ".join(
        [f"{np.mean([c['per_label'].get(n, np.nan) for c in copies]):.2f}" for n in by_label]
        + ([] if by_label else [f"{agg['worst_label']:.2f}"])
        + [f"{agg['identity']:.2f}"] + ([f"{agg['identity_pixels']:.2f}"] if has_dlib else [])
        + [f"{agg['mse']:.4f}", f"{agg['mse']:.4f}", f"{agg['ssim']:.3f}", ""]) + " |")
    ceiling = results.get("ceiling", {}).get("expression_accuracy")
    if isinstance(ceiling, dict):
        lines += ["", f"Expression reader on the real held-out images (the ceiling): {ceiling['mean']:.2f}."]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results", nargs="+", help="results.json files written by run.py evaluate/compare")
    p.add_argument("--name", action="append", default=[], help="a title per results file")
    args = p.parse_args(argv)
    names = args.name + [os.path.dirname(r) for r in args.results[len(args.name):]]
    for path, name in zip(args.results, names):
        with open(path) as f:
            print(table(json.load(f), name) + "\n")


if __name__ == "__main__":
    main()

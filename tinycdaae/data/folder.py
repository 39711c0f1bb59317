"""Your own labelled photos: a folder of images and a CSV naming each image's person and label.

    my_faces/
        labels.csv               one row per image; paths are relative to the CSV's folder
        anna_neutral.jpg
        anna_happy.jpg
        ...

labels.csv has a header and columns (names are case-insensitive, order free):

    path,subject,emotion         emotion is one of RaFD's 8 names (labels.EMOTIONS): a one-hot label
                                 over the emotions the file uses, in EMOTIONS order
    path,subject,class           your own class names (sorted alphabetically into the label order)
    path,subject,AU1,AU12,...    action-unit intensities in [0, 1], any subset of labels.AUS

An optional `group` column (e.g. gaze) keeps pairs inside one (subject, group), as RaFD does.
Pairs: with emotions or classes, every image with every image of the same subject and group
(RaFD's rule); with AUs, every image as target with a random image of the same subject (DISFA's).
"""
import csv
import os
import re
import stat

import numpy as np

from ..errors import DatasetError
from .labels import AUS, EMOTIONS, one_hot
from .prepare import check_folds, faceset_from, prepare_and_keep, say

FOLDER_HELP = """\
The 'folder' dataset is your own photos plus a CSV file that labels them. Expected layout:
    DATA_DIR/labels.csv        header: path,subject,emotion   (or class, or AU columns AU1,AU12,...)
    DATA_DIR/<your images>     paths in the CSV are relative to the CSV's folder
emotion values: one of {emotions}; AU columns: any of {aus} with intensities in [0, 1].
Train with: python run.py --dataset folder --data-dir DATA_DIR""".format(
    emotions=", ".join(EMOTIONS), aus=", ".join(AUS))

PATH_COLUMNS, SUBJECT_COLUMNS = ("path", "file", "filename", "image"), ("subject", "person", "id")
SHOW = 8  # how many offending rows an error message lists before "..."


def _listing(rows):
    shown = "; ".join(rows[:SHOW])
    return shown + (f"; ... and {len(rows) - SHOW} more" if len(rows) > SHOW else "")


def check_image_paths(csv_path, body, path_col, paths):
    """Every image path must stay inside the CSV's folder and, where it exists, be a regular file.

    Inside: a labels.csv from elsewhere must not make training read (and cache crops of) files
    anywhere on the machine through ../.. or absolute paths. The test is on the written path
    (normalised, not symlink-resolved): a dataset folder may hold symlinks to its images on
    purpose. Regular: a FIFO or a device named in the CSV would block the reader for ever.
    Missing files are not refused here: preparation skips and counts them.
    """
    root = os.path.dirname(os.path.abspath(csv_path))
    outside, special = [], []
    for n, (r, path) in enumerate(zip(body, paths), 2):
        if os.path.commonpath([root, os.path.normpath(path)]) != root:
            outside.append(f"row {n} {r[path_col]!r}")
            continue
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue
        if not stat.S_ISREG(mode):
            special.append(f"row {n} {r[path_col]!r}")
    problems = []
    if outside:
        problems.append(f"{len(outside)} path(s) lead outside the data folder {root}: {_listing(outside)}; "
                        f"paths must be relative to the CSV's folder and stay inside it")
    if special:
        problems.append(f"{len(special)} path(s) are not regular files (folders, pipes or devices): "
                        f"{_listing(special)}")
    if problems:
        raise DatasetError(f"{csv_path}: " + "; ".join(problems))


def find_csv(data_dir, csv_path=None):
    """The CSV to use: csv_path, else DATA_DIR/labels.csv, else the only .csv in DATA_DIR."""
    if csv_path:
        if not os.path.isfile(csv_path):
            raise DatasetError(f"CSV file {csv_path} does not exist.\n{FOLDER_HELP}")
        return csv_path
    if not os.path.isdir(data_dir):
        raise DatasetError(f"data directory {data_dir} does not exist.\n{FOLDER_HELP}")
    labels = os.path.join(data_dir, "labels.csv")
    if os.path.isfile(labels):
        return labels
    if os.path.lexists(labels):       # a folder, a FIFO, a broken link: open() would fail or hang
        raise DatasetError(f"{labels} is not a regular file (a folder, a pipe or a broken link); "
                           f"it must be the CSV file itself.\n{FOLDER_HELP}")
    found = sorted(f for f in os.listdir(data_dir)
                   if f.lower().endswith(".csv") and os.path.isfile(os.path.join(data_dir, f)))
    if len(found) == 1:
        return os.path.join(data_dir, found[0])
    raise DatasetError(f"{data_dir} has {len(found)} CSV files ({', '.join(found) or 'none'}); "
                       f"name the one to use labels.csv.\n{FOLDER_HELP}")


def read_label_csv(csv_path):
    """CSV -> (paths, subject names, labels (N, L) float32, label_names, kind, groups or None).

    Every problem in the file is collected and raised as one DatasetError with counts.
    """
    rows = _csv_rows(csv_path)
    header = [h.strip().lower() for h in rows[0]]
    body = [[cell.strip() for cell in r] + [""] * (len(header) - len(r)) for r in rows[1:]]
    path_col, subject_col, group_col, au_cols, label_cols = _label_columns(csv_path, rows[0], header)
    blank = [f"row {n}" for n, r in enumerate(body, 2) if not r[path_col] or not r[subject_col]]
    if blank:
        raise DatasetError(f"{csv_path}: {len(blank)} row(s) without a path or subject: {_listing(blank)}")
    paths = [os.path.join(os.path.dirname(os.path.abspath(csv_path)), r[path_col]) for r in body]
    check_image_paths(csv_path, body, path_col, paths)
    subjects = [r[subject_col] for r in body]
    groups = [r[group_col] for r in body] if group_col is not None else None
    if au_cols:
        return (paths, subjects, *_au_labels(csv_path, header, body, au_cols), "au", groups)
    return (paths, subjects, *_class_labels(csv_path, header, body, label_cols[0]), "emotion", groups)


def _csv_rows(csv_path):
    """The CSV's non-empty rows (header first), with clear errors for unreadable files."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:    # utf-8-sig: Excel's BOM
            rows = list(csv.reader(f))
    except UnicodeDecodeError as err:
        raise DatasetError(f"{csv_path} is not UTF-8 text (it holds the byte {err.object[err.start]:#04x}, "
                           f"which UTF-8 does not allow there); save it as UTF-8 (Excel: 'CSV UTF-8')."
                           f"\n{FOLDER_HELP}") from None
    except csv.Error as err:
        raise DatasetError(f"{csv_path} is not a readable CSV file ({err}).\n{FOLDER_HELP}") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise DatasetError(f"{csv_path} has no data rows.\n{FOLDER_HELP}")
    return rows


def _label_columns(csv_path, raw_header, header):
    """(path, subject, group or None, AU columns, emotion/class columns) of the header, checked."""
    def column(names):
        hits = [header.index(n) for n in names if n in header]
        return hits[0] if hits else None

    path_col, subject_col = column(PATH_COLUMNS), column(SUBJECT_COLUMNS)
    group_col = column(("group", "gaze"))
    au_cols = [i for i, h in enumerate(header) if re.fullmatch(r"au\d+", h)]
    label_cols = [c for c in (column(("emotion",)), column(("class", "label"))) if c is not None]
    if path_col is None or subject_col is None:
        raise DatasetError(f"{csv_path}: the header {raw_header} needs a 'path' and a 'subject' column."
                           f"\n{FOLDER_HELP}")
    if len(label_cols) + bool(au_cols) != 1:
        raise DatasetError(f"{csv_path}: the header {raw_header} must have exactly one kind of label: an "
                           f"'emotion' column, a 'class' column, or AU columns.\n{FOLDER_HELP}")
    unknown_aus = [raw_header[i].strip() for i in au_cols if header[i] not in [a.lower() for a in AUS]]
    if unknown_aus:
        raise DatasetError(f"{csv_path}: {len(unknown_aus)} unknown AU column(s): {', '.join(unknown_aus)}; "
                           f"the AUs this project knows are {', '.join(AUS)}")
    return path_col, subject_col, group_col, au_cols, label_cols


def _au_labels(csv_path, header, body, au_cols):
    """(labels (N, L) in [0, 1], AU names in AUS order) from the AU columns."""
    names = tuple(a for a in AUS if a.lower() in [header[i] for i in au_cols])  # AUS order
    order = [header.index(a.lower()) for a in names]
    labels, bad = np.zeros((len(body), len(names)), np.float32), []
    for n, r in enumerate(body):
        for j, c in enumerate(order):
            try:
                labels[n, j] = float(r[c] or 0)
            except ValueError:
                labels[n, j] = np.nan
            if not 0.0 <= labels[n, j] <= 1.0:
                bad.append(f"row {n + 2} {names[j]}={r[c]!r}")
    if bad:
        raise DatasetError(f"{csv_path}: {len(bad)} AU value(s) are not numbers in [0, 1] (divide "
                           f"0-5 intensities by 5): {_listing(bad)}")
    return labels, names


def _class_labels(csv_path, header, body, col):
    """(one-hot labels (N, L), names) from an 'emotion' or a 'class' column."""
    if header[col] == "emotion":
        values = [r[col].lower() for r in body]
        unknown = [f"row {n} {r[col]!r}" for n, r in enumerate(body, 2) if r[col].lower() not in EMOTIONS]
        if unknown:
            raise DatasetError(f"{csv_path}: {len(unknown)} row(s) name an unknown emotion: "
                               f"{_listing(unknown)}. Known emotions: {', '.join(EMOTIONS)} (or call "
                               f"the column 'class' to use your own class names)")
        # The labels of a dataset are the labels it has: a network trained on neutral and happy
        # faces has never seen "sad", so a one-hot slot for it would be a label it cannot draw,
        # a grid column of noise and an expression class the reader cannot learn. The emotions
        # used keep EMOTIONS' fixed order, so the same emotions always give the same label layout.
        names = tuple(e for e in EMOTIONS if e in set(values))
    else:
        values = [r[col] for r in body]
        names = tuple(sorted(set(values)))
        empty = [f"row {n}" for n, r in enumerate(body, 2) if not r[col]]
        if empty:
            raise DatasetError(f"{csv_path}: {len(empty)} row(s) without a class: {_listing(empty)}")
    lookup = {name: i for i, name in enumerate(names)}
    return np.stack([one_hot(lookup[v], len(names)) for v in values]), names


def load_folder(data_dir, cache_dir=None, csv_path=None, folds=4, workers=None, progress=True, seed=0,
                name="folder", size=32):
    """Your own folder + CSV -> FaceSet (images aligned and cached like RaFD's).

    name: the dataset's name in the cache file, the manifest, messages and meta["dataset"]
    ("london" for the built-in photos, which are a folder dataset shipped with the package);
    size: the side of the aligned crops (32, the paper's, or 64)."""
    csv_path = find_csv(data_dir, csv_path)
    paths, subject_names, labels, names, kind, groups = read_label_csv(csv_path)
    prepared, keep = prepare_and_keep(name, [(p, None) for p in paths], cache_dir, workers, progress, size)
    people = sorted(set(subject_names))
    subject_ids = np.array([people.index(subject_names[i]) for i in keep])
    group_ids = None
    if groups is not None:
        group_names = sorted(set(groups))
        group_ids = np.array([group_names.index(groups[i]) for i in keep])
    check_folds(subject_ids, folds, name)
    say(f"{name}: {len(keep)} images of {len(np.unique(subject_ids))} people, {kind} labels {', '.join(names)}")
    return faceset_from(prepared, keep, subject_ids, labels[keep], names, kind, group_ids,
                        "within_groups" if kind == "emotion" else "random_partner", seed,
                        meta={"dataset": name, "csv": csv_path, "subject_names": people})


# The built-in real dataset: 78 people of the Face Research Lab London Set (DeBruine & Jones 2017,
# CC BY 4.0), neutral and smiling, shipped as package data with their attribution in
# assets/london/README.md. Found beside this file, so an installed package finds its own copy.
LONDON_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "london")


def load_london(cache_dir=None, folds=4, workers=None, progress=True, seed=0, size=32):
    """The built-in London photos -> FaceSet: 156 images of 78 people, labels (neutral, happy).
    Aligned once and cached like every dataset; the cache and manifest are named "london"."""
    if not os.path.isfile(os.path.join(LONDON_DIR, "labels.csv")):
        raise DatasetError(f"the built-in London photos are missing from {LONDON_DIR}; reinstall the "
                           f"package (they ship as package data)")
    return load_folder(LONDON_DIR, cache_dir, folds=folds, workers=workers, progress=progress, seed=seed,
                       name="london", size=size)

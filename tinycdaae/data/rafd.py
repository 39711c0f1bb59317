"""RaFD, the Radboud Faces Database: 8 emotions x 3 gazes of each person, frontal camera.

Files are named Rafd{angle}_{subject}_{ethnicity}_{gender}_{emotion}_{gaze}.jpg, e.g.
Rafd090_01_Caucasian_female_angry_frontal.jpg. The paper uses the frontal camera (angle 090),
the 8 emotions of labels.EMOTIONS and the gazes frontal/left/right: 67 people x 24 = 1608 images.
Pairs: each image with the 8 images of the same person and gaze, itself included (64 per
(person, gaze)); folds are subject-independent.
"""
import os
import re

import numpy as np

from ..errors import DatasetError
from .labels import EMOTIONS, GAZES, one_hot
from .prepare import check_folds, faceset_from, prepare_and_keep, say

FRONTAL = "090"
NAME = re.compile(r"Rafd(?P<angle>\d{3})_(?P<subject>\d+)_(?P<ethnicity>[A-Za-z]+)_(?P<gender>[A-Za-z]+)"
                  r"_(?P<emotion>[A-Za-z]+)_(?P<gaze>[A-Za-z]+)\.jpe?g", re.IGNORECASE)

RAFD_HELP = """\
RaFD (the Radboud Faces Database) cannot be shipped: its owners license it for research only.
Request it at https://rafd.nl (Radboud University Nijmegen), unpack it, and point --data-dir at
the folder holding the images (subfolders are searched too). Expected names:
    DATA_DIR/Rafd090_01_Caucasian_female_angry_frontal.jpg
    DATA_DIR/Rafd090_01_Caucasian_female_angry_left.jpg
    ...       Rafd{angle}_{subject}_{ethnicity}_{gender}_{emotion}_{gaze}.jpg
Only the frontal camera (090) is used: 67 people x 8 emotions x 3 gazes = 1608 images.
Train with: python run.py --dataset rafd --data-dir DATA_DIR"""


def parse_rafd_name(filename):
    """'Rafd090_01_Caucasian_female_angry_frontal.jpg' -> dict(angle, subject, emotion, gaze, ...)
    or None when the name does not follow RaFD's pattern, or names an unknown emotion or gaze."""
    match = NAME.fullmatch(filename)
    if not match:
        return None
    fields = match.groupdict()
    fields["emotion"], fields["gaze"] = fields["emotion"].lower(), fields["gaze"].lower()
    if fields["emotion"] not in EMOTIONS or fields["gaze"] not in GAZES:
        return None
    fields["subject"] = int(fields["subject"])
    return fields


def scan_rafd(data_dir):
    """The frontal RaFD files under data_dir -> (list of (path, fields), report dict of skips)."""
    if not os.path.isdir(data_dir):
        raise DatasetError(f"RaFD data directory {data_dir} does not exist.\n{RAFD_HELP}")
    found, unparsed, other_angle, duplicates, seen = [], [], [], [], {}
    for root, dirs, files in os.walk(data_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue                                  # .DS_Store and friends
            path = os.path.join(root, name)
            fields = parse_rafd_name(name)
            if fields is None:
                unparsed.append(path)
            elif fields["angle"] != FRONTAL:
                other_angle.append(path)
            else:
                key = (fields["subject"], fields["emotion"], fields["gaze"])
                if key in seen:
                    duplicates.append(path)
                else:
                    seen[key] = path
                    found.append((path, fields))
    return found, {"unparsed": unparsed, "other_angle": other_angle, "duplicates": duplicates}


def load_rafd(data_dir, cache_dir=None, folds=4, workers=None, progress=True, size=32):
    """RaFD's frontal images -> FaceSet (emotion labels, gaze groups, the paper's pairs)."""
    found, skipped = scan_rafd(data_dir)
    if skipped["unparsed"]:
        shown = ", ".join(os.path.basename(p) for p in skipped["unparsed"][:10])
        say(f"rafd: {len(skipped['unparsed'])} file(s) whose names do not parse as "
            f"Rafd{{angle}}_{{subject}}_{{ethnicity}}_{{gender}}_{{emotion}}_{{gaze}}.jpg were skipped: "
            f"{shown}{', ...' if len(skipped['unparsed']) > 10 else ''}")
    if skipped["other_angle"]:
        say(f"rafd: {len(skipped['other_angle'])} image(s) from non-frontal cameras skipped (the paper uses 090)")
    if skipped["duplicates"]:
        say(f"rafd: {len(skipped['duplicates'])} duplicate(s) of the same person/emotion/gaze skipped, "
            f"e.g. {skipped['duplicates'][0]}")
    if not found:
        raise DatasetError(f"no frontal RaFD images found in {data_dir} ({len(skipped['unparsed'])} "
                           f"file(s) with other names, {len(skipped['other_angle'])} non-frontal).\n{RAFD_HELP}")

    prepared, keep = prepare_and_keep("rafd", [(path, None) for path, _ in found], cache_dir, workers, progress,
                                      size)
    fields = [found[i][1] for i in keep]
    subjects = np.array([f["subject"] for f in fields])
    check_folds(subjects, folds, "rafd")
    incomplete = sum(1 for s in np.unique(subjects) if (subjects == s).sum() != len(EMOTIONS) * len(GAZES))
    say(f"rafd: {len(keep)} images of {len(np.unique(subjects))} people"
        + (f"; {incomplete} of them lack some of the 24 emotion x gaze images" if incomplete else ""))
    labels = np.stack([one_hot(EMOTIONS.index(f["emotion"])) for f in fields])           # (N, 8)
    gazes = np.array([GAZES.index(f["gaze"]) for f in fields])
    return faceset_from(prepared, keep, subjects, labels, EMOTIONS, "emotion", gazes, "within_groups",
                        meta={"dataset": "rafd", "gazes": GAZES, "skipped": skipped})

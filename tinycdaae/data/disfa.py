"""DISFA, the Denver Intensity of Spontaneous Facial Action database: 12 AU intensities per frame.

27 people, one left-camera video each (LeftVideoSN001_comp.avi ..., 4845 frames) and one label
file per AU (SN001_au1.txt ..., lines `frame,intensity`, frames numbered from 1, intensity 0-5,
divided by 5 here). Every labelled frame is aligned once (about 130,000): each video is decoded
once, front to back, by one worker that tracks the face from frame to frame (prepare._align_video).

Pairs are sampled *per training fold* (the paper): for each AU up to 2000 frames where that AU is
non-zero, plus 1000 frames with every AU zero; each target gets a random frame of the same person
as source. `load_disfa` samples over everyone so the set is usable as is; for cross-validation
use datasets.split_for_training, which samples again inside each side of the split.
"""
import dataclasses
import os
import re

import numpy as np

from ..errors import DatasetError, MissingExtraError
from .labels import AUS
from .pairs import random_partner_pairs
from .prepare import check_folds, faceset_from, prepare_and_keep, say

VIDEO = re.compile(r"LeftVideoSN(\d+)_comp\.avi", re.IGNORECASE)
LABEL = re.compile(r"SN(\d+)_au(\d+)\.txt", re.IGNORECASE)
MAX_INTENSITY = 5.0

DISFA_HELP = """\
DISFA (Denver Intensity of Spontaneous Facial Action database) cannot be shipped: it is licensed
for research by its authors (Mavadati, Mahoor et al., University of Denver). Request it at
http://mohammadmahoor.com/disfa/ , unpack it, and point --data-dir at the folder holding:
    DATA_DIR/Videos_LeftCamera/LeftVideoSN001_comp.avi     ... one left-camera video per person
    DATA_DIR/ActionUnit_Labels/SN001/SN001_au1.txt         ... lines 'frame,intensity' (0-5)
(subfolder names do not matter: the files are found by name anywhere below DATA_DIR).
Needed AUs: {aus}. Reading the videos needs ffmpeg: pip install -e ".[data]".
Train with: python run.py --dataset disfa --data-dir DATA_DIR""".format(aus=", ".join(AUS))


def read_au_file(path):
    """'frame,intensity' lines -> {frame number: intensity 0-5}. DatasetError names a bad line."""
    values = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                frame, intensity = (float(v) for v in line.split(","))
            except ValueError:
                raise DatasetError(f"{path} line {number}: expected 'frame,intensity', got {line.strip()!r}") from None
            if not (frame == int(frame) >= 1 and 0 <= intensity <= MAX_INTENSITY):
                raise DatasetError(f"{path} line {number}: frame must be a whole number >= 1 and "
                                   f"intensity in 0-5, got {line.strip()!r}")
            values[int(frame)] = intensity
    return values


def scan_disfa(data_dir):
    """-> ({subject: video path}, {subject: (F, 12) labels in [0,1]}, {subject: (F,) frame numbers},
    list of problems). A subject with a missing or malformed file is left out and named."""
    if not os.path.isdir(data_dir):
        raise DatasetError(f"DISFA data directory {data_dir} does not exist.\n{DISFA_HELP}")
    videos, label_files = {}, {}
    for root, dirs, files in os.walk(data_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if VIDEO.fullmatch(name):
                videos[int(VIDEO.fullmatch(name).group(1))] = os.path.join(root, name)
            elif LABEL.fullmatch(name):
                subject, au = (int(g) for g in LABEL.fullmatch(name).groups())
                label_files.setdefault(subject, {})[f"AU{au}"] = os.path.join(root, name)
    if not videos and not label_files:
        raise DatasetError(f"no DISFA videos or label files found in {data_dir}.\n{DISFA_HELP}")

    problems, labels, frames = [], {}, {}
    for subject in sorted(set(videos) | set(label_files)):
        have = label_files.get(subject, {})
        if subject not in videos:
            problems.append(f"SN{subject:03d}: label files but no video LeftVideoSN{subject:03d}_comp.avi")
            continue
        missing = [au for au in AUS if au not in have]
        if missing:
            problems.append(f"SN{subject:03d}: no label file for {', '.join(missing)}")
            continue
        try:
            per_au = [read_au_file(have[au]) for au in AUS]
        except DatasetError as err:
            problems.append(f"SN{subject:03d}: {err}")
            continue
        common = sorted(set.intersection(*(set(v) for v in per_au)))   # frames labelled for all 12
        if not common:
            problems.append(f"SN{subject:03d}: its 12 label files share no frame numbers")
            continue
        frames[subject] = np.array(common, np.int64)
        labels[subject] = np.array([[v[f] for v in per_au] for f in common], np.float32) / MAX_INTENSITY
    return {s: videos[s] for s in labels}, labels, frames, problems


def load_disfa(data_dir, cache_dir=None, folds=4, workers=None, progress=True, seed=0, size=32):
    """DISFA's left-camera frames -> FaceSet (12 AU intensities; pairs sampled as the paper)."""
    videos, labels, frames, problems = scan_disfa(data_dir)
    try:
        import imageio_ffmpeg
        imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        raise MissingExtraError("reading DISFA's videos needs the ffmpeg binary of the PyPI package "
                                "imageio-ffmpeg; install the data extras: pip install -e \".[data]\"") from None
    for problem in problems:
        say(f"disfa: skipped {problem}")
    if not videos:
        raise DatasetError(f"no usable DISFA subject in {data_dir} ({len(problems)} skipped, see "
                           f"above).\n{DISFA_HELP}")
    subjects = sorted(videos)
    # label frame numbers count from 1; the decoder counts video frames from 0
    items = [(videos[s], f - 1) for s in subjects for f in frames[s]]
    prepared, keep = prepare_and_keep("disfa", items, cache_dir, workers, progress, size)
    all_subjects = np.concatenate([np.full(len(frames[s]), s) for s in subjects])   # (N,)
    all_labels = np.concatenate([labels[s] for s in subjects])                       # (N, 12)
    check_folds(all_subjects[keep], folds, "disfa")
    say(f"disfa: {len(keep)} frames of {len(np.unique(all_subjects[keep]))} people")
    # placeholder pairs (one per frame, cheap) that disfa_sample_pairs replaces; "within_groups"
    # would build every same-person pair first: ~23M per DISFA subject
    faceset = faceset_from(prepared, keep, all_subjects[keep], all_labels[keep], AUS, "au",
                           pairing="random_partner", seed=seed, meta={"dataset": "disfa", "skipped": problems})
    faceset = disfa_sample_pairs(faceset, np.random.default_rng(seed))
    return faceset


def disfa_sample_pairs(faceset, rng, per_au=2000, zeros=1000):
    """The paper's DISFA pairs, drawn from the people in `faceset` (apply it to a training fold).

    For each AU: up to `per_au` frames where it is non-zero, drawn uniformly without replacement,
    so their intensities follow that AU's own distribution; plus up to `zeros` frames where every
    AU is zero. A frame drawn for two AUs is a target twice (the per-AU counts are the paper's).
    Each target gets a random source frame of the same person. Returns a FaceSet with new pairs,
    meta["pairing"] = "disfa_sampled".
    """
    labels = faceset.labels                                           # (N, 12)
    targets = []
    for j in range(labels.shape[1]):
        nonzero = np.flatnonzero(labels[:, j] > 0)
        targets.append(rng.choice(nonzero, min(per_au, len(nonzero)), replace=False))
    all_zero = np.flatnonzero((labels == 0).all(1))
    targets.append(rng.choice(all_zero, min(zeros, len(all_zero)), replace=False))
    targets = np.concatenate(targets).astype(np.int64)                # (T,)
    pairs = random_partner_pairs(faceset.subjects, targets, rng)      # (T, 2)
    return dataclasses.replace(faceset, pairs=pairs, meta={**faceset.meta, "pairing": "disfa_sampled"})

"""Align a dataset once: crops cached on disk with a manifest, spread over the CPU cores.

Every real-data loader (rafd.py, disfa.py, folder.py) lists its pictures as *items*
(source file, frame) -- frame is None for an image file, a 0-based frame number for a video -- and
calls `prepare(name, items, cache_dir)`. The first call aligns every item (tqdm progress bar,
one process per core) and writes

    {cache_dir}/{name}-{key}.npz            crops (N,3,S,S) uint8 (S = 32, or --size), landmarks (N,68,2),
                                            transforms (N,2,3), and the manifest as JSON
                                            (which holds each item's status)
    {cache_dir}/{name}-{key}.manifest.json  the same manifest to read: per item source, frame,
                                            status ("ok", "no_face", "unreadable") and message;
                                            row i of landmarks/transforms belongs to item i

`key` hashes the alignment version, the crop size and every source's path, size and modification
time (so each crop size has its own cache), so a
changed file or a new aligner makes a new cache, and an unchanged dataset loads instantly.
Each file is written to a temporary name and renamed into place: a killed preparation leaves
no half-written cache. Crops are stored as uint8 (DISFA's 130,000 frames: 400 MB, not 1.6 GB
as float32) and converted to float32 in [-1, 1] by `uint8_to_network` on load.

Problems are never fatal for one picture: unreadable files and faces not found are counted,
listed in the manifest and summarised on stderr by `report`.
"""
import functools
import hashlib
import json
import os
import sys
from dataclasses import dataclass

import numpy as np

from ..errors import DatasetError
from ..files import atomic_write
from .align import (
    ALIGN_VERSION,
    CROP,
    TRACK_DETECT_EVERY,
    FaceTracker,
    NoFaceError,
    UnreadableImageError,
    align_face,
    crop_face,
    read_image,
    uint8_to_network,
)
from .pairs import FaceSet, pairs_within_groups, random_partner_pairs

IMAGES_PER_JOB = 32   # images handed to a worker at a time: big enough to hide the pool's overhead
# A video is one job: its worker decodes it once, front to back, and tracks the face from frame
# to frame (see _align_video). Frames never travel between processes (a 1024x768 frame is
# 2.4 MB); DISFA's 27 videos keep up to 27 cores busy.


def say(message):
    """All data-preparation remarks go to stderr through here (stdout stays for results)."""
    print(f"tinycdaae: {message}", file=sys.stderr, flush=True)


@dataclass
class Prepared:
    sources: list          # N source paths (str)
    frames: np.ndarray     # (N,) int64 video frame number, -1 for an image file
    status: np.ndarray     # (N,) str: "ok", "no_face" or "unreadable"
    messages: list         # N strings: why it failed, or a remark such as "2 faces found, ..."
    crops: np.ndarray      # (N, 3, S, S) uint8; zeros where status != "ok"
    landmarks: np.ndarray  # (N, 68, 2) float32 in the source picture; NaN where no face
    transforms: np.ndarray # (N, 2, 3) float32 source -> crop; NaN where no face
    cache_path: str = ""
    manifest_path: str = ""

    @property
    def ok(self):
        return self.status == "ok"


def default_cache_dir():
    """$TINYCDAAE_CACHE, else $XDG_CACHE_HOME/tinycdaae, else ~/.cache/tinycdaae.

    Not inside the data directory: licensed datasets often sit on read-only shares.
    """
    if os.environ.get("TINYCDAAE_CACHE"):
        return os.environ["TINYCDAAE_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tinycdaae")


def cache_key(name, items, size=CROP):
    """Hash of the alignment version, the crop size, the items, and every source's (path, size, mtime)."""
    stats = {}
    for source, _ in items:
        if source not in stats:
            try:
                st = os.stat(source)
                stats[source] = [os.path.abspath(source), st.st_size, st.st_mtime_ns]
            except OSError:
                stats[source] = [os.path.abspath(source), None, None]
    blob = json.dumps([ALIGN_VERSION, size, name, list(stats.values()),
                       [[os.path.abspath(s), f] for s, f in items]])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------- aligning, one job
def _align_picture(rgb_or_error, size=CROP):
    """-> (status, crop (size,size,3) uint8 or None, landmarks, transform, message) for one picture."""
    if isinstance(rgb_or_error, str):
        return "unreadable", None, None, None, rgb_or_error
    try:
        face = align_face(rgb_or_error, size)
    except NoFaceError:
        return "no_face", None, None, None, "no face found"
    return "ok", face.crop, face.landmarks, face.transform, face.message


def _read_or_error(path):
    try:
        return read_image(path)
    except UnreadableImageError as err:
        return str(err)


def _align_video(path, frames, size=CROP, detect_every=TRACK_DETECT_EVERY):
    """Align the given 0-based frames of one video at size x size in a single decoding pass,
    tracking the face.

    Frames stream from ffmpeg one at a time (no frame is decoded twice, none is kept); a run of
    consecutive frames shares a FaceTracker (the detector every `detect_every` frames, 1: every
    frame), a gap starts a new one. Frames are counted as decoded, never sought: ffmpeg's seek is
    not frame-exact on every codec, and a frame off by one would carry the wrong AU label.
    """
    wanted = {}
    for i, f in enumerate(frames):
        wanted.setdefault(f, []).append(i)
    records = [("unreadable", None, None, None, f"{path}: frame {f} is beyond the end of the video")
               for f in frames]
    tracker, last = None, None
    for index, rgb in _video_frames(path, max(frames)):
        if index is None:                                       # the video broke off: rgb says why
            return [r if r[0] != "unreadable" else ("unreadable", None, None, None, rgb) for r in records]
        if index in wanted:
            if last is None or index != last + 1:
                tracker = FaceTracker(detect_every)
            record = _align_tracked(tracker, rgb, size)
            for i in wanted[index]:
                records[i] = record
            last = index
    return records


def _video_frames(path, last):
    """(index, (H, W, 3) uint8) for frames 0 ... last of a video, decoded in order by ffmpeg; on a
    decoding error a final (None, reason)."""
    import imageio_ffmpeg
    try:
        reader = imageio_ffmpeg.read_frames(path)
        meta = next(reader)                                     # first item: size, fps, ...
        width, height = meta["size"]
        for index, buffer in enumerate(reader):
            yield index, np.frombuffer(buffer, np.uint8).reshape(height, width, 3)
            if index >= last:
                break
        reader.close()
    except Exception as err:  # ffmpeg reports corrupt or missing videos as various errors
        yield None, f"cannot read video {path}: {type(err).__name__}: {str(err).strip().splitlines()[0]}"


def _align_tracked(tracker, rgb, size=CROP):
    """_align_picture for a video frame, its landmarks from the tracker."""
    try:
        landmarks, message = tracker.landmarks(rgb)
    except NoFaceError:
        return "no_face", None, None, None, "no face found"
    face = crop_face(rgb, landmarks, message, size=size)
    return "ok", face.crop, face.landmarks, face.transform, face.message


def _align_job(job, size=CROP):
    """job = (source, frames): frames None -> `source` is a list of image paths; else a video."""
    source, frames = job
    if frames is None:
        return [_align_picture(_read_or_error(path), size) for path in source]
    return _align_video(source, frames, size)


def _jobs(items):
    """Consecutive items -> jobs: runs of image files, or runs of frames of the same video."""
    jobs, i = [], 0
    while i < len(items):
        source, frame = items[i]
        j = i + 1
        if frame is None:
            while j < len(items) and items[j][1] is None and j - i < IMAGES_PER_JOB:
                j += 1
            jobs.append(([s for s, _ in items[i:j]], None))
        else:
            while j < len(items) and items[j][0] == source and items[j][1] is not None:
                j += 1
            jobs.append((source, [f for _, f in items[i:j]]))
        i = j
    return jobs


# ------------------------------------------------------------------------------ the cache
def prepare(name, items, cache_dir=None, workers=None, progress=True, size=CROP):
    """Aligned size x size crops of `items` [(source path, frame or None), ...], from the cache if
    current. workers: processes to use (None: every core; 1: in this process). Returns Prepared.
    """
    items = [(str(s), None if f is None else int(f)) for s, f in items]
    cache_dir = cache_dir or default_cache_dir()
    key = cache_key(name, items, size)
    cache_path = os.path.join(cache_dir, f"{name}-{key}.npz")
    manifest_path = os.path.join(cache_dir, f"{name}-{key}.manifest.json")
    if os.path.exists(cache_path):
        try:
            return _load(cache_path, manifest_path)
        except Exception as err:  # a damaged cache file is remade, not trusted
            say(f"cache {cache_path} is damaged ({type(err).__name__}); preparing again")

    from tqdm import tqdm
    jobs, align_job = _jobs(items), functools.partial(_align_job, size=size)
    workers = min(workers or os.cpu_count() or 1, len(jobs)) or 1
    records = []
    with tqdm(total=len(items), desc=f"aligning {name}", unit="face", disable=not progress,
              file=sys.stderr) as bar:
        if workers == 1:
            results = map(align_job, jobs)
        else:
            import multiprocessing
            pool = multiprocessing.get_context().Pool(workers)  # each process loads its own dlib
            results = pool.imap(align_job, jobs)               # in order: reproducible manifest
        try:
            for result in results:
                records.extend(result)
                bar.update(len(result))
        finally:
            if workers > 1:
                pool.terminate()

    n = len(items)
    crops = np.zeros((n, 3, size, size), np.uint8)
    landmarks = np.full((n, 68, 2), np.nan, np.float32)
    transforms = np.full((n, 2, 3), np.nan, np.float32)
    for i, (status, crop, marks, M, _) in enumerate(records):
        if status == "ok":
            crops[i] = crop.transpose(2, 0, 1)                  # (S, S, 3) -> (3, S, S)
            landmarks[i], transforms[i] = marks, M
    prepared = Prepared([s for s, _ in items], np.array([-1 if f is None else f for _, f in items], np.int64),
                        np.array([r[0] for r in records], dtype="<U10"), [r[4] for r in records],
                        crops, landmarks, transforms, cache_path, manifest_path)
    _save(prepared, name, key)
    return prepared


def _manifest(prepared, name, key):
    return {"dataset": name, "key": key, "align_version": ALIGN_VERSION,
            "counts": {s: int((prepared.status == s).sum()) for s in ("ok", "no_face", "unreadable")},
            "note": "row i of landmarks (68 x (x, y), source pixels) and transforms (2x3, source -> "
                    f"{prepared.crops.shape[-1]}x{prepared.crops.shape[-1]} crop) in the .npz beside this file belongs to item i",
            "items": [{"source": s, "frame": None if f < 0 else int(f), "status": st, "message": m}
                      for s, f, st, m in zip(prepared.sources, prepared.frames, prepared.status,
                                             prepared.messages)]}


def _save(prepared, name, key):
    manifest = _manifest(prepared, name, key)
    text = json.dumps(manifest, indent=1)
    atomic_write(prepared.manifest_path, lambda f: f.write(text.encode()))
    atomic_write(prepared.cache_path, lambda f: np.savez(
        f, crops=prepared.crops, landmarks=prepared.landmarks, transforms=prepared.transforms,
        manifest=np.array(text)))


def _load(cache_path, manifest_path):
    with np.load(cache_path, allow_pickle=False) as data:
        manifest = json.loads(str(data["manifest"]))
        items = manifest["items"]
        return Prepared([it["source"] for it in items],
                        np.array([-1 if it["frame"] is None else it["frame"] for it in items], np.int64),
                        np.array([it["status"] for it in items], dtype="<U10"),
                        [it["message"] for it in items], data["crops"], data["landmarks"],
                        data["transforms"], cache_path, manifest_path)


# ----------------------------------------------------------------------- reporting, FaceSet
def _where(prepared, i):
    frame = prepared.frames[i]
    return prepared.sources[i] + (f" frame {frame}" if frame >= 0 else "")


def prepare_and_keep(name, items, cache_dir=None, workers=None, progress=True, size=CROP):
    """prepare + report, as every real-data loader needs them: (prepared, indices of the items
    that gave a face). A DatasetError when none did."""
    prepared = prepare(name, items, cache_dir, workers, progress, size)
    report(prepared, name)
    keep = np.flatnonzero(prepared.ok)
    if not len(keep):
        raise DatasetError(f"{name}: no face could be aligned in any of the {len(items)} pictures "
                           f"(see {prepared.manifest_path})")
    return prepared, keep


def report(prepared, name, show=10):
    """Print counts of aligned / no-face / unreadable pictures and a few examples of each."""
    n, ok = len(prepared.status), int(prepared.ok.sum())
    say(f"{name}: {ok} of {n} pictures aligned (cache {prepared.cache_path})")
    for status, what in (("no_face", "no face found"), ("unreadable", "unreadable, skipped")):
        bad = np.flatnonzero(prepared.status == status)
        if len(bad):
            say(f"{name}: {len(bad)} {what} (all listed in {prepared.manifest_path}), e.g.:")
            for i in bad[:show]:
                say(f"    {_where(prepared, i)}: {prepared.messages[i]}")
    several = [i for i in np.flatnonzero(prepared.ok) if prepared.messages[i]]
    if several:
        say(f"{name}: {len(several)} pictures had several faces; the largest was used, e.g. "
            f"{_where(prepared, several[0])}: {prepared.messages[several[0]]}")


def check_folds(subjects, folds, name):
    """A DatasetError unless there are at least `folds` people (subject-independent folds)."""
    n = len(np.unique(subjects))
    if folds and n < folds:
        raise DatasetError(f"{name}: only {n} subject(s) with aligned faces, too few for {folds} "
                           f"subject-independent folds; add people or ask for fewer folds (at least 2)")


def faceset_from(prepared, keep, subjects, labels, label_names, kind, groups=None,
                 pairing="within_groups", seed=0, meta=None):
    """Build a FaceSet from the aligned items `keep` (indices into prepared) and their labels.

    subjects/labels/groups are per kept item. pairing "within_groups": every pair inside a
    (subject, group) -- RaFD's rule; "random_partner": each image as target with a random image of
    the same person as source -- DISFA's rule without its per-AU sampling.
    """
    keep = np.asarray(keep, np.int64)
    subjects = np.asarray(subjects, np.int64)
    groups = np.zeros(len(keep), np.int64) if groups is None else np.asarray(groups, np.int64)
    if pairing == "within_groups":
        pairs = pairs_within_groups(subjects, groups)
    else:
        pairs = random_partner_pairs(subjects, np.arange(len(keep)), np.random.default_rng(seed))
    meta = dict(meta or {})
    meta.update(sources=[prepared.sources[i] for i in keep], frames=prepared.frames[keep],
                landmarks=prepared.landmarks[keep], transforms=prepared.transforms[keep],
                manifest=prepared.manifest_path, pairing=pairing)
    return FaceSet(uint8_to_network(prepared.crops[keep]), subjects,
                   np.asarray(labels, np.float32).reshape(len(keep), -1), tuple(label_names), kind,
                   pairs, groups, meta)

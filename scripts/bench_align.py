"""Speed of face alignment: python scripts/bench_align.py [--repeats 5] [--frames 60]

Prints faces/s for the 450x450 test photos, the same photos enlarged to 1350x1350 (the London
originals' size; they are not shipped at full size, so the 450 px photos are enlarged 3x,
Lanczos) and 1024x768 video frames (a London photo drifting and breathing in scale, as a face in
DISFA's videos does), each on the full-size path (`downscale=None`, detector on the whole photo,
crop sampled from it) and the fast path (face searched on a reduced copy, landmarks fitted at full
resolution), interleaved photo by photo so a changing machine load hits both alike; medians over
the repeats. Then video: the detector on every frame against tracking, through a real encoded
video decoded once by ffmpeg, and the projected time to align DISFA's ~130,000 labelled frames
on this machine's cores (CPU seconds per frame, ffmpeg's own included, / cores).
"""
import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
LONDON = ROOT / "tests" / "data" / "london"
DISFA_FRAMES = 130_000


def enlarged(rgb, side):
    from PIL import Image
    return np.asarray(Image.fromarray(rgb).resize((side, side), Image.Resampling.LANCZOS))


def animated(rgb, n, size=(1024, 768)):
    """The same frames as tests/test_align_speed.py's `animated`."""
    from PIL import Image
    image = Image.fromarray(rgb)
    for t in range(n):
        s = 1.6 + 0.05 * np.sin(2 * np.pi * t / 80)
        x, y = 150 + 40 * np.sin(2 * np.pi * t / 60), 20 + 10 * np.sin(2 * np.pi * t / 45)
        yield np.asarray(image.transform(size, Image.Transform.AFFINE, (1 / s, 0, -x / s, 0, 1 / s, -y / s),
                                         Image.Resampling.BILINEAR, fillcolor=(128, 128, 128)))


def photo_files(folder, side):
    """The 12 test photos written as JPEG files (quality 95) at side x side; -> paths."""
    from PIL import Image

    from tinycdaae.data import align
    paths = []
    for photo in sorted(LONDON.glob("*.jpg")):
        if side == 450:
            paths.append(photo)
            continue
        path = Path(folder) / f"{photo.stem}_{side}.jpg"
        Image.fromarray(enlarged(align.read_image(photo), side)).save(path, quality=95)
        paths.append(path)
    return paths


def interleaved(paths, repeats, calls):
    """{name: median over repeats of the seconds per face} for align calls run in turn per photo."""
    totals = {name: [] for name in calls}
    for _ in range(repeats):
        spent = dict.fromkeys(calls, 0.0)
        for path in paths:
            for name, call in calls.items():
                start = time.perf_counter()
                call(path)
                spent[name] += time.perf_counter() - start
        for name in calls:
            totals[name].append(spent[name] / len(paths))
    return {name: float(np.median(v)) for name, v in totals.items()}


def photos(repeats):
    from tinycdaae.data import align
    calls = {"full-size path": lambda p: align.align_file(p, downscale=None),
             "fast path": lambda p: align.align_file(p)}
    with tempfile.TemporaryDirectory() as folder:
        for side in (450, 1350):
            paths = photo_files(folder, side)
            align.align_file(paths[0])                                   # load dlib's models
            t = interleaved(paths, repeats, calls)
            old, new = t["full-size path"], t["fast path"]
            print(f"{side}x{side} photos (align_file: read + detect + landmarks + crop), 12 photos x "
                  f"{repeats}: full-size path {1 / old:6.1f} faces/s ({old * 1e3:.1f} ms), fast path "
                  f"{1 / new:6.1f} faces/s ({new * 1e3:.1f} ms): {old / new:.2f}x")


def frames_in_memory(n, repeats):
    """Per-frame seconds on 1024x768 frames: full-size path, fast detection every frame, tracking."""
    from tinycdaae.data import align
    rgb = align.read_image(LONDON / "025_happy.jpg")
    frames = list(animated(rgb, n))
    runs = {"full-size path, every frame": [], "detector every frame": [], "tracking": []}
    for _ in range(repeats):
        for name, run in (("full-size path, every frame", lambda f: align.align_face(f, downscale=None)),
                          ("detector every frame", _tracked(align.FaceTracker(detect_every=1))),
                          ("tracking", _tracked(align.FaceTracker()))):
            start = time.perf_counter()
            for frame in frames:
                run(frame)
            runs[name].append((time.perf_counter() - start) / n)
    t = {name: float(np.median(v)) for name, v in runs.items()}
    base = t["full-size path, every frame"]
    for name, s in t.items():
        print(f"1024x768 frames in memory, {name:28s} {1 / s:6.1f} faces/s ({s * 1e3:5.1f} ms, "
              f"{base / s:.2f}x the full-size path)")
    return t


def _tracked(tracker):
    from tinycdaae.data import align
    return lambda frame: align.crop_face(frame, *tracker.landmarks(frame))


def write_video(path, n):
    import imageio_ffmpeg

    from tinycdaae.data import align
    writer = imageio_ffmpeg.write_frames(str(path), (1024, 768), codec="mpeg4", quality=None,
                                         output_params=["-q:v", "2"], macro_block_size=16)
    writer.send(None)
    for frame in animated(align.read_image(LONDON / "025_happy.jpg"), n):
        writer.send(np.ascontiguousarray(frame))
    writer.close()


def cpu_seconds():
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def video(n, repeats, cores):
    """Decode + align through prepare._align_video: per-frame detection vs tracking; DISFA projection."""
    from tinycdaae.data import prepare
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "moving.avi"
        write_video(path, n)
        results = {}
        for _ in range(repeats):
            for name, every in (("detector every frame", 1), ("tracking", None)):
                kwargs = {} if every is None else {"detect_every": every}
                wall, cpu = time.perf_counter(), cpu_seconds()
                records = prepare._align_video(str(path), list(range(n)), **kwargs)
                wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
                assert all(r[0] == "ok" for r in records)
                results.setdefault(name, []).append((wall / n, cpu / n))
    for name, v in results.items():
        wall, cpu = np.median(v, 0)
        projected = DISFA_FRAMES * cpu / cores
        print(f"1024x768 video, decoded once, {name:21s} {1 / wall:6.1f} frames/s wall, {cpu * 1e3:5.1f} "
              f"CPU ms a frame (ffmpeg included): DISFA's {DISFA_FRAMES:,} frames on {cores} cores "
              f"~ {projected / 60:.1f} min")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cores} cores, load average {os.getloadavg()[0]:.1f} at the start", file=sys.stderr)
    photos(args.repeats)
    frames_in_memory(args.frames, args.repeats)
    video(args.frames, args.repeats, cores)
    print(f"load average {os.getloadavg()[0]:.1f} at the end", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Time the synthetic face renderer on one CPU core: python scripts/bench_synthetic.py [N]

The target (issue 4): 10,000 faces in under 30 s. Thread counts are pinned to 1 *before* NumPy is
imported, so the figure is for one core whatever BLAS NumPy was built with (the renderer itself
is element-wise and never calls BLAS, so this mostly keeps the measurement honest).
"""
import os
import sys

for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[name] = "1"

import time  # noqa: E402

import numpy as np  # noqa: E402

from tinycdaae.data import synthetic  # noqa: E402


def main(n_faces=10_000):
    if hasattr(os, "sched_setaffinity"):             # Linux: really stay on one core
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    start = time.perf_counter()
    people = synthetic.sample_identities(n_faces, seed=0)
    sample_s = time.perf_counter() - start
    rng = np.random.default_rng(0)
    aus = synthetic.random_au_frames(rng, n_faces)   # DISFA-like sparse AU intensities
    gaze = rng.integers(0, 3, n_faces)
    start = time.perf_counter()
    faces = synthetic.render_faces(people, aus, gaze)
    render_s = time.perf_counter() - start
    assert faces.shape == (n_faces, 3, 32, 32)
    print(f"sampled {n_faces} identities in {sample_s:.2f} s")
    print(f"rendered {n_faces} faces (32x32, 4x supersampled) in {render_s:.2f} s "
          f"= {n_faces / render_s:.0f} faces/s on one core (target: 10,000 in < 30 s)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)

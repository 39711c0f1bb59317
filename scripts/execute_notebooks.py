"""Execute walkthrough chapters in place, as they are committed, and print each one's wall time.

    python scripts/execute_notebooks.py                 # every chapter, full mode
    python scripts/execute_notebooks.py 07 08 10        # the chapters whose names start so
    python scripts/execute_notebooks.py --fast 07       # fast mode (TINYCDAAE_FAST=1, as the tests)

Each chapter runs top to bottom in a fresh kernel with one BLAS thread (the chapters' networks
are small; on a shared machine more threads only compete). The saved file keeps no execution
metadata (tests/test_notebooks.py checks that), so a re-run changes only what the cells print.
"""
import argparse
import glob
import os
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WALKTHROUGH = os.path.join(ROOT, "walkthrough")


def chapters(prefixes):
    paths = sorted(glob.glob(os.path.join(WALKTHROUGH, "*.ipynb")))
    if not prefixes:
        return paths
    chosen = [p for p in paths if os.path.basename(p).startswith(tuple(prefixes))]
    if not chosen:
        raise SystemExit(f"no chapter starts with {', '.join(prefixes)}; the chapters are: "
                         + ", ".join(os.path.basename(p) for p in paths))
    return chosen


def strip_metadata(nb):
    """Only kernelspec and language_info at the top, nothing per cell (timings, ids of runs)."""
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in ("kernelspec", "language_info")}
    for cell in nb.cells:
        cell.metadata = {}


def execute(path, fast):
    import nbclient
    import nbformat
    env_names = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    os.environ.update({name: "1" for name in env_names}, MPLBACKEND="Agg")
    if fast:
        os.environ["TINYCDAAE_FAST"] = "1"
    else:
        os.environ.pop("TINYCDAAE_FAST", None)
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=3600, kernel_name="python3", record_timing=False,
                                     resources={"metadata": {"path": WALKTHROUGH}})
    started = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - started
    strip_metadata(nb)
    nbformat.write(nb, path)
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prefixes", nargs="*", help="chapter name prefixes (default: every chapter)")
    parser.add_argument("--fast", action="store_true", help="fast mode (TINYCDAAE_FAST=1)")
    args = parser.parse_args()
    mode = "fast" if args.fast else "full"
    for path in chapters(args.prefixes):
        seconds = execute(path, args.fast)
        print(f"{os.path.basename(path)}: {seconds:.0f} s ({mode} mode, one BLAS thread)", flush=True)


if __name__ == "__main__":
    main()

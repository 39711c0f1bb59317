"""The one place that decides between NumPy (CPU) and CuPy (GPU).

Every layer reads ``backend.xp`` at call time (never ``from tinycdaae.backend import xp``, which
would freeze the choice at import) and never branches on which module it got. CuPy mirrors the
NumPy API, so the same lines run on either.

    use("cpu")    # NumPy, the default
    use("gpu")    # CuPy; a clear error if CuPy or a GPU is missing
    use("auto")   # CuPy when it imports and sees a GPU, else NumPy
"""
import numpy as np

xp = np                 # the active array module; read it at call time, not at import time
_name = "cpu"


class BackendError(RuntimeError):
    """The requested device cannot be used (CuPy missing, no GPU visible...)."""


def _import_cupy():
    try:
        import cupy
    except ImportError as err:  # CuPy is an optional extra
        raise BackendError(
            "device 'gpu' needs CuPy, which is not installed. Install the wheel that matches "
            "your CUDA toolkit, e.g. `pip install cupy-cuda12x` (or `pip install -e .[gpu]`), "
            f"or use the CPU with device 'cpu'. (import error: {err})") from None
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # driver missing or broken
        raise BackendError(f"CuPy is installed but cannot reach a GPU ({err}); use device 'cpu'.") from None
    if n == 0:
        raise BackendError("CuPy is installed but no GPU is visible; use device 'cpu'.")
    return cupy


def use(device="cpu"):
    """Select the array module for everything that follows. Returns it."""
    global xp, _name
    if device == "cpu":
        xp, _name = np, "cpu"
    elif device == "gpu":
        xp, _name = _import_cupy(), "gpu"
    elif device == "auto":
        try:
            xp, _name = _import_cupy(), "gpu"
        except BackendError:
            xp, _name = np, "cpu"
    else:
        raise ValueError(f"unknown device {device!r}: choose 'cpu', 'gpu' or 'auto'")
    return xp


def use_module(module, name):
    """Install an array module that mirrors NumPy's API (for tests: a stand-in for CuPy that
    catches device-discipline mistakes on a machine without a GPU)."""
    global xp, _name
    xp, _name = module, name
    return xp


def elementwise_chunk():
    """How many elements a long elementwise sequence (Adam's update) should work on at a time.

    On a CPU, running Adam's ~12 passes over one 64k-element block (256 kB per float32 array) keeps
    the block in cache, ~1.5x faster than streaming each pass over the whole parameter (measured on
    the 9M-parameter autoencoder). On a GPU, one kernel per pass over everything is best: None."""
    return 65536 if xp is np else None


def keep_freed_memory():
    """Ask the C allocator (glibc) to keep freed memory for reuse instead of returning it to the OS.

    Every training step allocates the same large temporaries again (im2col columns of up to 13 MB,
    GEMM results, gradients). By default glibc hands blocks above a moving threshold to the kernel
    on free (munmap, or a trim of the heap top), so the next step's allocation of the same size
    page-faults in freshly zeroed pages — on this project's 2-core machine that made the reference
    step 181-210 ms instead of 143-157 ms, depending on when in a process's life the threshold
    moved. Fixing the mmap threshold at its maximum (32 MiB) and never trimming the heap makes the
    step's temporaries reuse the same memory. The peak is unchanged (275 MB resident after 20
    reference steps either way); the memory is just not given back between steps. The same as
    running with MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824.

    Process-wide, so run.py and the benchmark call it, not the library on import. Returns True if
    applied, False where the C library is not glibc (macOS, Windows, musl): nothing changes there."""
    import ctypes
    import sys
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3                      # from glibc's <malloc.h>
    return bool(mallopt(m_mmap_threshold, 32 * 2 ** 20) and mallopt(m_trim_threshold, 2 ** 30))


def device_name():
    return _name


def to_host(a):
    """Any array (NumPy or CuPy) -> a NumPy array on the host. Scalars pass through."""
    if hasattr(a, "get"):          # cupy.ndarray.get() copies device -> host explicitly
        return a.get()
    return np.asarray(a)


def to_device(a, dtype=None):
    """A host array -> an array of the active module (a copy on the GPU, a view on the CPU)."""
    return xp.asarray(a, dtype=dtype)


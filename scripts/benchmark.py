"""Speed of the hand-written convolutions against this machine's own matrix-multiply rate.

    python scripts/benchmark.py [--batch 32] [--repeats 10] [--device cpu|gpu]

Prints, for float32 at the reference width (3→64→128→256→512, 5×5 stride 2 on 32×32):
the GEMM rate measured here, then forward+backward of the encoder conv stack and of the decoder
deconv stack: ms, GFLOP/s and the fraction of the GEMM rate. A FLOP is one multiply or one add;
a conv's forward costs 2·N·H'·W'·F·C·HH·WW, its backward twice that (dx and dw).
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tinycdaae import backend, layers  # noqa: E402


def synchronize():
    if backend.xp is not np:
        backend.xp.cuda.Stream.null.synchronize()


def best_time(fn, repeats):
    fn()                                   # warm-up: allocations, BLAS thread start, GPU kernels
    synchronize()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        synchronize()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times))


def gemm_rate(repeats, size=2048):
    """float32 GEMM rate in GFLOP/s for a square (size × size) product: 2·size³ FLOPs."""
    xp = backend.xp
    rng = np.random.default_rng(0)
    a = backend.to_device(rng.standard_normal((size, size)).astype(np.float32))
    b = backend.to_device(rng.standard_normal((size, size)).astype(np.float32))
    best, _ = best_time(lambda: a @ b, repeats)
    return 2 * size ** 3 / best / 1e9


def conv_flops(layer, x_shape, y_shape):
    """Forward FLOPs of a conv or transposed conv: 2 multiply-adds per weight per position."""
    n = x_shape[0]
    k = layer.kernel
    if isinstance(layer, layers.Conv2d):          # per output pixel: F·C·k² MACs
        f, c = layer.w.data.shape[:2]
        return 2 * n * y_shape[2] * y_shape[3] * f * c * k * k
    c, f = layer.w.data.shape[:2]                 # transposed: per input pixel C·F·k² MACs
    return 2 * n * x_shape[2] * x_shape[3] * c * f * k * k


def stack_benchmark(name, stack, x, repeats, gemm):
    def step():
        stack.zero_grad()
        y, caches = stack.forward(x)
        stack.backward(y, caches)                 # any upstream gradient of y's shape will do

    flops, shape = 0, x.shape
    for layer in stack.layers:
        y, _ = layer.forward(backend.xp.zeros(shape, np.float32))
        if isinstance(layer, (layers.Conv2d, layers.ConvTranspose2d)):
            flops += conv_flops(layer, shape, y.shape)
        shape = y.shape
    flops *= 3                                    # forward + backward (dx and dw)
    best, median = best_time(step, repeats)
    rate = flops / best / 1e9
    print(f"{name:<34} {best * 1e3:8.1f} ms (median {median * 1e3:.1f})  {flops / 1e9:6.2f} GFLOP  "
          f"{rate:7.1f} GFLOP/s  {rate / gemm:6.1%} of GEMM", flush=True)
    return best, rate


def per_layer(stack, x, repeats, gemm):
    shape = x.shape
    for layer in stack.layers:
        if not isinstance(layer, (layers.Conv2d, layers.ConvTranspose2d)):
            continue
        xin = backend.to_device(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
        y, cache = layer.forward(xin)
        flops = conv_flops(layer, shape, y.shape)
        fwd, _ = best_time(lambda: layer.forward(xin), repeats)
        bwd, _ = best_time(lambda: layer.backward(y, cache), repeats)
        print(f"  {type(layer).__name__:<16} {str(tuple(shape)):>18} -> {str(tuple(y.shape)):<18} "
              f"fwd {fwd * 1e3:6.2f} ms ({flops / fwd / 1e9:6.1f} GFLOP/s)  "
              f"bwd {bwd * 1e3:6.2f} ms ({2 * flops / bwd / 1e9:6.1f} GFLOP/s)", flush=True)
        shape = y.shape


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32, help="batch size (default 32, the paper's)")
    parser.add_argument("--repeats", type=int, default=10, help="timed repetitions; the best is reported")
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"], help="NumPy or CuPy")
    args = parser.parse_args()
    backend.use(args.device)
    rng = np.random.default_rng(0)
    print(f"device {backend.device_name()}, numpy {np.__version__}, {os.cpu_count()} CPU cores, batch {args.batch}")
    gemm = gemm_rate(args.repeats)
    print(f"float32 GEMM rate (2048×2048): {gemm:.1f} GFLOP/s\n")
    encoder = layers.Sequential(*[m for c_in, c_out in [(3, 64), (64, 128), (128, 256), (256, 512)]
                                  for m in (layers.Conv2d(c_in, c_out, 5, 2, 2, rng=rng), layers.LeakyReLU(0.2))])
    decoder = layers.Sequential(*[m for c_in, c_out in [(512, 256), (256, 128), (128, 64), (64, 3)]
                                  for m in (layers.ConvTranspose2d(c_in, c_out, 5, 2, 2, 1, rng=rng), layers.LeakyReLU(0.2))])
    x_img = backend.to_device(rng.standard_normal((args.batch, 3, 32, 32)).astype(np.float32))
    x_code = backend.to_device(rng.standard_normal((args.batch, 512, 2, 2)).astype(np.float32))
    stack_benchmark("encoder convs fwd+bwd", encoder, x_img, args.repeats, gemm)
    per_layer(encoder, x_img, args.repeats, gemm)
    stack_benchmark("decoder deconvs fwd+bwd", decoder, x_code, args.repeats, gemm)
    per_layer(decoder, x_code, args.repeats, gemm)


if __name__ == "__main__":
    main()

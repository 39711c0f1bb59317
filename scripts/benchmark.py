"""Speed of the hand-written network against this machine's own matrix-multiply rate.

    python scripts/benchmark.py [--batch 32] [--width 1] [--repeats 10] [--device cpu|gpu] [--no-torch]

Measures, in one run, float32 at the reference width unless told otherwise:
  1. this machine's float32 GEMM rate (a 2048×2048 product);
  2. the encoder conv stack and the decoder deconv stack, forward + backward;
  3. the full CDAAE training step (D step + AE step, Adam included), N2;
  4. generation of one batch of faces;
  5. per-layer forward/backward times of the step's convolutions;
  6. when PyTorch happens to be installed, the same network and step in PyTorch on the same data
     and threads (never a dependency).
It prints ms, GFLOP/s, the fraction of the GEMM rate, and the projected time of the paper's RaFD
schedule (9600 pairs × 40 epochs at batch 32 = 12,000 steps).

FLOPs are counted, not estimated: one instrumented step records every conv, deconv and dense
call (a multiply and an add are 2 FLOPs: 2·M·K·N per M×K by K×N product; a backward costs one
product for the weight gradient and one more when the input gradient is needed). Elementwise work,
Adam and im2col copies are not counted: they are the overhead the fraction exposes.
"""
import argparse
import contextlib
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tinycdaae import backend, layers  # noqa: E402
from tinycdaae.model import CDAAE, ModelConfig  # noqa: E402
from tinycdaae.objective import Objective  # noqa: E402

RAFD_STEPS = 9600 * 40 // 32


def synchronize():
    if backend.xp is not np:
        backend.xp.cuda.Stream.null.synchronize()


def best_time(fn, repeats, warmup=1):
    """(best, median) seconds of fn() over `repeats` runs after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
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
    rng = np.random.default_rng(0)
    a = backend.to_device(rng.standard_normal((size, size)).astype(np.float32))
    b = backend.to_device(rng.standard_normal((size, size)).astype(np.float32))
    best, _ = best_time(lambda: a @ b, repeats)
    return 2 * size ** 3 / best / 1e9


# ---- FLOP counting -------------------------------------------------------------------------------

def _gemm_flops(layer, x_shape, y_shape):
    """FLOPs of one forward of a conv/deconv/dense layer as the single GEMM it is."""
    if isinstance(layer, layers.Dense):
        return 2 * x_shape[0] * layer.w.data.shape[0] * layer.w.data.shape[1]
    k = layer.kernel
    if isinstance(layer, layers.Conv2d):             # per output pixel F·C·k² multiply-adds
        f, c = layer.w.data.shape[:2]
        return 2 * y_shape[0] * y_shape[2] * y_shape[3] * f * c * k * k
    c, f = layer.w.data.shape[:2]                    # transposed: per input pixel C·F·k²
    return 2 * x_shape[0] * x_shape[2] * x_shape[3] * c * f * k * k


@contextlib.contextmanager
def count_flops(records):
    """Patch the GEMM layers so each forward/backward appends (layer, phase, shape, FLOPs)."""
    originals = {}
    for cls in (layers.Conv2d, layers.ConvTranspose2d, layers.Dense):
        originals[cls] = (cls.forward, cls.backward)

        def forward(self, x, _orig=cls.forward):
            y, cache = _orig(self, x)
            self._bench_flops = _gemm_flops(self, x.shape, y.shape)
            records.append((self, "fwd", tuple(x.shape), self._bench_flops))
            return y, cache

        def backward(self, dout, cache, need_dx=True, _orig=cls.backward):
            records.append((self, "bwd", tuple(dout.shape), self._bench_flops * (2 if need_dx else 1)))
            return _orig(self, dout, cache, need_dx=need_dx)

        cls.forward, cls.backward = forward, backward
    try:
        yield records
    finally:
        for cls, (fwd, bwd) in originals.items():
            cls.forward, cls.backward = fwd, bwd


def report(name, seconds, flops, gemm, median=None):
    rate = flops / seconds / 1e9
    extra = f" (median {median * 1e3:.1f})" if median is not None else ""
    print(f"{name:<34} {seconds * 1e3:8.1f} ms{extra:<16} {flops / 1e9:6.2f} GFLOP  {rate:7.1f} GFLOP/s  "
          f"{rate / gemm:6.1%} of GEMM", flush=True)
    return rate


# ---- our network ---------------------------------------------------------------------------------

def batch(n, label_dim, seed=0):
    rng = np.random.default_rng(seed)
    x_s = rng.uniform(-1, 1, (n, 3, 32, 32)).astype(np.float32)
    x_t = rng.uniform(-1, 1, (n, 3, 32, 32)).astype(np.float32)
    labels = np.eye(label_dim, dtype=np.float32)[rng.integers(0, label_dim, n)]
    return tuple(backend.to_device(a) for a in (x_s, x_t, labels))


def stack_benchmark(name, stack, x, repeats, gemm):
    def step():
        stack.zero_grad()
        y, caches = stack.forward(x)
        stack.backward(y, caches, need_dx=False)     # the input is data: no gradient needed
    records = []
    with count_flops(records):
        step()
    best, median = best_time(step, repeats)
    return report(name, best, sum(r[3] for r in records), gemm, median)


def step_benchmark(args, gemm):
    objective = Objective(CDAAE(ModelConfig(skip="n2", width=args.width)))
    x_s, x_t, labels = batch(args.batch, 8)
    records = []
    with count_flops(records):
        objective.step(x_s, x_t, labels)
    flops = sum(r[3] for r in records)
    best, median = best_time(lambda: objective.step(x_s, x_t, labels), args.repeats, warmup=2)
    rate = report(f"training step N2 (batch {args.batch})", best, flops, gemm, median)
    print(f"  projected RaFD schedule (12,000 steps): {RAFD_STEPS * median / 60:.1f} min at the median step")
    model = objective.model
    gen_best, _ = best_time(lambda: model.autoencode(x_s, labels), args.repeats)
    gen_records = []
    with count_flops(gen_records):
        model.autoencode(x_s, labels)
    report(f"generate {args.batch} faces", gen_best, sum(r[3] for r in gen_records), gemm)
    return objective, records, median, flops, rate


def per_layer(objective, records, repeats):
    """Time each distinct conv/deconv layer of the step, forward and backward, on its real shape."""
    print("\nper layer (shapes as in the step; backward includes the input gradient):")
    seen = set()
    for layer, phase, shape, flops in records:
        if phase != "fwd" or id(layer) in seen or isinstance(layer, layers.Dense):
            continue
        seen.add(id(layer))
        x = backend.to_device(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
        y, cache = layer.forward(x)
        fwd, _ = best_time(lambda: layer.forward(x), repeats)
        bwd, _ = best_time(lambda: layer.backward(y, cache), repeats)
        print(f"  {layer.w.name[:-2]:<14} {str(shape):>18} -> {str(tuple(y.shape)):<18} "
              f"fwd {fwd * 1e3:6.2f} ms {flops / fwd / 1e9:6.1f} GFLOP/s   "
              f"bwd {bwd * 1e3:6.2f} ms {2 * flops / bwd / 1e9:6.1f} GFLOP/s", flush=True)


# ---- the same network in PyTorch (optional second opinion) -----------------------------------------

def torch_step_fn(args):
    """The same network and step in PyTorch, as a callable; None when PyTorch is not installed."""
    try:
        import torch
        from torch import nn
    except ImportError:
        print("\nPyTorch not installed: no side-by-side reference (optional; `pip install torch`).")
        return None, None
    torch.manual_seed(0)
    w = lambda c: max(1, int(round(c * args.width)))
    lrelu = lambda: nn.LeakyReLU(0.2, inplace=True)
    conv = lambda i, o: nn.Conv2d(i, o, 5, 2, 2)
    deconv = lambda i, o: nn.ConvTranspose2d(i, o, 5, 2, 2, output_padding=1)
    enc = [3, w(64), w(128), w(256), w(512)]
    e1 = nn.Sequential(conv(enc[0], enc[1]), lrelu(), conv(enc[1], enc[2]), lrelu())
    e2 = nn.Sequential(conv(enc[2], enc[3]), lrelu(), conv(enc[3], enc[4]), lrelu(), nn.Flatten(),
                       nn.Linear(enc[4] * 4, 100))
    g1 = nn.Sequential(nn.Linear(108, enc[4] * 4), lrelu(), nn.Unflatten(1, (enc[4], 2, 2)),
                       deconv(enc[4], enc[3]), lrelu(), deconv(enc[3], enc[2]), nn.Tanh())
    g2 = nn.Sequential(deconv(enc[2], enc[1]), lrelu(), deconv(enc[1], 3), nn.Tanh())
    d_e = nn.Sequential(nn.Linear(100, 64), lrelu(), nn.Linear(64, 32), lrelu(), nn.Linear(32, 16), lrelu(),
                        nn.Linear(16, 1))
    dg = [3, w(16), w(32), w(64), w(128)]
    d_g = nn.Sequential(*[m for i in range(4) for m in (conv(dg[i], dg[i + 1]), lrelu())], nn.Flatten(),
                        nn.Linear(dg[4] * 4, w(1024)), lrelu(), nn.Linear(w(1024), 1))
    ae_params = [p for m in (e1, e2, g1, g2) for p in m.parameters()]
    opt_ae = torch.optim.Adam(ae_params, lr=1e-3)
    opt_de, opt_dg = torch.optim.Adam(d_e.parameters(), lr=1e-4), torch.optim.Adam(d_g.parameters(), lr=1e-4)
    bce = nn.BCEWithLogitsLoss()
    x_s, x_t, labels = (torch.from_numpy(backend.to_host(a)) for a in batch(args.batch, 8))

    def step():   # the same order as objective.Objective.step: one E/G forward, D step, AE step
        h = e1(x_s)
        z = e2(h)
        x_hat = g2(h + g1(torch.cat([z, labels], 1)))
        opt_de.zero_grad(); opt_dg.zero_grad()
        z_prior = torch.randn_like(z)
        d_loss = (bce(d_e(z_prior), torch.ones(len(z), 1)) + bce(d_e(z.detach()), torch.zeros(len(z), 1))
                  + bce(d_g(x_s), torch.ones(len(z), 1)) + bce(d_g(x_hat.detach()), torch.zeros(len(z), 1)))
        d_loss.backward()
        opt_de.step(); opt_dg.step()
        opt_ae.zero_grad()
        loss = (((x_hat - x_t) ** 2).mean() + 1e-2 * bce(d_e(z), torch.ones(len(z), 1))
                + 1e-3 * bce(d_g(x_hat), torch.ones(len(z), 1)))
        loss.backward()
        opt_ae.step()

    return step, f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads)"


def interleaved(fns, repeats, warmup=2):
    """Time several functions in turn, round after round, so that a machine whose load changes
    affects all of them alike. Returns [(best, median)] in the order given."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            synchronize()
            times[i].append(time.perf_counter() - t0)
    return [(min(t), float(np.median(t))) for t in times]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32, help="batch size (default 32, the paper's)")
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier (default 1: reference)")
    parser.add_argument("--repeats", type=int, default=10, help="timed repetitions; best and median reported")
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"], help="NumPy or CuPy")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    parser.add_argument("--skip-layers", action="store_true", help="skip the per-layer table")
    args = parser.parse_args()
    backend.use(args.device)
    print(f"device {backend.device_name()}, numpy {np.__version__}, {os.cpu_count()} CPU cores, "
          f"batch {args.batch}, width {args.width}, float32")
    gemm = gemm_rate(args.repeats)
    print(f"float32 GEMM rate (2048×2048): {gemm:.1f} GFLOP/s\n")

    rng = np.random.default_rng(0)
    w = lambda c: max(1, int(round(c * args.width)))
    chans = [3, w(64), w(128), w(256), w(512)]
    encoder = layers.Sequential(*[m for i in range(4) for m in (
        layers.Conv2d(chans[i], chans[i + 1], 5, 2, 2, rng=rng), layers.LeakyReLU(0.2, inplace=True))])
    decoder = layers.Sequential(*[m for i in range(3, -1, -1) for m in (
        layers.ConvTranspose2d(chans[i + 1], chans[i], 5, 2, 2, 1, rng=rng), layers.LeakyReLU(0.2, inplace=True))])
    x_img = backend.to_device(rng.standard_normal((args.batch, 3, 32, 32)).astype(np.float32))
    x_code = backend.to_device(rng.standard_normal((args.batch, chans[4], 2, 2)).astype(np.float32))
    stack_benchmark("encoder conv stack fwd+bwd", encoder, x_img, args.repeats, gemm)
    stack_benchmark("decoder deconv stack fwd+bwd", decoder, x_code, args.repeats, gemm)
    objective, records, median, flops, rate = step_benchmark(args, gemm)
    if not args.skip_layers:
        per_layer(objective, records, args.repeats)
    if not args.no_torch and backend.device_name() == "cpu":
        torch_step, torch_name = torch_step_fn(args)
        if torch_step is not None:
            x_s, x_t, labels = batch(args.batch, 8)
            ours = lambda: objective.step(x_s, x_t, labels)
            (o_best, o_median), (t_best, t_median) = interleaved([ours, torch_step], args.repeats)
            print(f"\nSide by side, interleaved step by step ({torch_name}; same network, step and FLOPs):")
            report("tinycdaae training step", o_best, flops, gemm, o_median)
            report("PyTorch training step", t_best, flops, gemm, t_median)
            print(f"  projected RaFD schedule (12,000 steps): tinycdaae {RAFD_STEPS * o_median / 60:.1f} min, "
                  f"PyTorch {RAFD_STEPS * t_median / 60:.1f} min (median steps)")
            print(f"  tinycdaae speed / PyTorch speed: {t_best / o_best:.2f} (best steps), "
                  f"{t_median / o_median:.2f} (median steps)")

if __name__ == "__main__":
    main()

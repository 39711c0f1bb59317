"""Speed of the hand-written network against this machine's own matrix-multiply rate.

    python scripts/benchmark.py [--batch 32] [--width 1] [--size 32|64] [--repeats 10] [--device cpu|gpu] [--no-torch]

Measures, in one run, float32 at the reference width and 32×32 faces unless told otherwise
(--size 64: the same network on 64×64 faces, its convs ending at 4×4; see docs/size64.md):
  1. this machine's float32 GEMM rate (a 2048×2048 product);
  2. the encoder conv stack and the decoder deconv stack, forward + backward;
  3. the full CDAAE training step (D step + AE step, Adam included), N2;
  4. generation of one batch of faces;
  5. where the step's time goes: the step's own GEMMs alone (the same 115 products on fresh
     matrices), its Adam updates alone, and the rest; the machine's copy bandwidth, Adam's
     memory-traffic floor, and so the best fraction of the GEMM rate this step could reach here;
  6. per-layer forward/backward times of the step's convolutions;
  7. when PyTorch happens to be installed, the same network and step in PyTorch on the same data
     and threads, or on the same GPU with --device gpu (never a dependency).
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
import time

import numpy as np

from tinycdaae import backend, layers
from tinycdaae.im2col import out_size
from tinycdaae.model import CDAAE, ModelConfig
from tinycdaae.objective import Objective

RAFD_STEPS = 9600 * 40 // 32
LONDON_STEPS = 120 * 8    # 58 training people x 4 pairs = 232 pairs: 8 steps of 32, the default's 120 epochs


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

def gemm_products(layer, phase, x_shape, need_dx=True):
    """The (M, K, N) products (M×K @ K×N) that one forward or backward of a layer runs, for the
    forward input shape x_shape (as in layers.py)."""
    n = x_shape[0]
    if isinstance(layer, layers.Dense):                  # y = x Wᵀ;  dW = dyᵀ x;  dx = dy W
        out_f, in_f = layer.w.data.shape
        return [(n, in_f, out_f)] if phase == "fwd" else [(out_f, n, in_f)] + [(n, out_f, in_f)] * need_dx
    k2 = layer.kernel ** 2
    if isinstance(layer, layers.Conv2d):                 # rows = output pixels: y = cols Wᵀ
        f, c = layer.w.data.shape[:2]
        rows = n * out_size(x_shape[2], layer.kernel, layer.stride, layer.pad) \
                 * out_size(x_shape[3], layer.kernel, layer.stride, layer.pad)
        return [(rows, c * k2, f)] if phase == "fwd" else [(f, rows, c * k2)] + [(rows, f, c * k2)] * need_dx
    c, f = layer.w.data.shape[:2]                        # transposed: rows = input pixels, cols = x W
    rows = n * x_shape[2] * x_shape[3]
    return [(rows, c, k2 * f)] if phase == "fwd" else [(c, rows, k2 * f)] + [(rows, k2 * f, c)] * need_dx


def flops_of(products):
    return sum(2 * m * k * n for m, k, n in products)


@contextlib.contextmanager
def record_gemms(records):
    """Patch the GEMM layers so each forward/backward appends (layer, phase, forward input shape,
    its GEMM products)."""
    originals = {}
    for cls in (layers.Conv2d, layers.ConvTranspose2d, layers.Dense):
        originals[cls] = (cls.forward, cls.backward)

        def forward(self, x, _orig=cls.forward):
            self._bench_x_shape = tuple(x.shape)
            records.append((self, "fwd", self._bench_x_shape, gemm_products(self, "fwd", x.shape)))
            return _orig(self, x)

        def backward(self, dout, cache, need_dx=True, _orig=cls.backward):
            records.append((self, "bwd", self._bench_x_shape,
                            gemm_products(self, "bwd", self._bench_x_shape, need_dx)))
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


# ---- our network ---------------------------------------------------------------------------------

def batch(n, label_dim, seed=0, size=32):
    rng = np.random.default_rng(seed)
    x_s = rng.uniform(-1, 1, (n, 3, size, size)).astype(np.float32)
    x_t = rng.uniform(-1, 1, (n, 3, size, size)).astype(np.float32)
    labels = np.eye(label_dim, dtype=np.float32)[rng.integers(0, label_dim, n)]
    return tuple(backend.to_device(a) for a in (x_s, x_t, labels))


def stack_benchmark(name, stack, x, repeats, gemm):
    def step():
        stack.zero_grad()
        y, caches = stack.forward(x)
        stack.backward(y, caches, need_dx=False)     # the input is data: no gradient needed
    records = []
    with record_gemms(records):
        step()
    best, median = best_time(step, repeats)
    report(name, best, flops_of(p for r in records for p in r[3]), gemm, median)


def step_benchmark(args, gemm):
    objective = Objective(CDAAE(ModelConfig(skip="n2", width=args.width, image_size=args.size)))
    x_s, x_t, labels = batch(args.batch, 8, size=args.size)
    records = []
    with record_gemms(records):
        objective.step(x_s, x_t, labels)
    flops = flops_of(p for r in records for p in r[3])
    best, median = best_time(lambda: objective.step(x_s, x_t, labels), args.repeats, warmup=2)
    report(f"training step N2 (batch {args.batch})", best, flops, gemm, median)
    print(f"  projected RaFD schedule (12,000 steps): {RAFD_STEPS * median / 60:.1f} min at the median step")
    print(f"  projected London run (120 epochs, {LONDON_STEPS} steps): {LONDON_STEPS * median / 60:.1f} min "
          f"at the median step (training only: data, sample grids and checkpoints come on top)")
    model = objective.model
    gen_best, _ = best_time(lambda: model.autoencode(x_s, labels), args.repeats)
    gen_records = []
    with record_gemms(gen_records):
        model.autoencode(x_s, labels)
    report(f"generate {args.batch} faces", gen_best, flops_of(p for r in gen_records for p in r[3]), gemm)
    return objective, records, best, median, flops


def per_layer(objective, records, repeats):
    """Time each distinct conv/deconv layer of the step, forward and backward, on its real shape."""
    print("\nper layer (shapes as in the step; backward includes the input gradient):")
    seen = set()
    for layer, phase, shape, _ in records:
        if phase != "fwd" or id(layer) in seen or isinstance(layer, layers.Dense):
            continue
        seen.add(id(layer))
        x = backend.to_device(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
        y, cache = layer.forward(x)
        fwd, _ = best_time(lambda: layer.forward(x), repeats)
        bwd, _ = best_time(lambda: layer.backward(y, cache), repeats)
        print(f"  {layer.w.name[:-2]:<14} {str(shape):>18} -> {str(tuple(y.shape)):<18} "
              f"fwd {fwd * 1e3:6.2f} ms {flops_of(gemm_products(layer, 'fwd', shape)) / fwd / 1e9:6.1f} GFLOP/s   "
              f"bwd {bwd * 1e3:6.2f} ms {flops_of(gemm_products(layer, 'bwd', shape)) / bwd / 1e9:6.1f} GFLOP/s",
              flush=True)


def memory_bandwidth(repeats, mib=256):
    """Copy rate of a large float32 array in GB/s, counting the bytes read and written."""
    src = backend.xp.ones(mib * 2 ** 20 // 4, dtype=np.float32)
    dst = backend.xp.empty_like(src)
    best, _ = best_time(lambda: backend.xp.copyto(dst, src), repeats)
    return 2 * src.nbytes / best / 1e9


def breakdown(objective, records, flops, batch_size, repeats, size=2048):
    """Where the step's time goes: its GEMMs alone (the same products on fresh matrices), its three
    Adam updates alone, and the rest (im2col/col2im copies, activations, losses). Adam reads θ, g, m,
    v and writes θ, m, v: 28 bytes per float32 parameter, so memory bandwidth bounds it from below.
    The step, its parts and the square GEMM are timed in the same rounds (see interleaved): this
    VM's timings drift between runs (by 5-10% even with keep_freed_memory), and a breakdown must
    not mix two speeds."""
    rng = np.random.default_rng(0)
    products = [p for r in records for p in r[3]]
    operands = {}
    for m, k, n in set(products) | {(size, size, size)}:
        operands[m, k, n] = (backend.to_device(rng.standard_normal((m, k)).astype(np.float32)),
                             backend.to_device(rng.standard_normal((k, n)).astype(np.float32)))
    x_s, x_t, labels = batch(batch_size, objective.model.config.label_dim, size=objective.model.config.image_size)
    (step, _), (gemms, _), (adam, _), (square, _) = interleaved([
        lambda: objective.step(x_s, x_t, labels),
        lambda: [operands[mkn][0] @ operands[mkn][1] for mkn in products],
        lambda: [opt.step() for opt in objective.optimizers.values()],
        lambda: operands[size, size, size][0] @ operands[size, size, size][1]], repeats)
    gemm = 2 * size ** 3 / square / 1e9
    params = sum(p.data.size for p in objective.model.params())
    bandwidth = memory_bandwidth(repeats)
    adam_floor = params * 28 / bandwidth / 1e9
    print(f"\nwhere the step's time goes ({len(products)} GEMMs, {params / 1e6:.2f}M parameters; best of "
          f"{repeats} rounds, each timing the step, its parts and a {size}² GEMM ({gemm:.1f} GFLOP/s) in turn):")
    for name, seconds in (("the whole step", step), ("its GEMMs alone", gemms), ("its Adam updates alone (3 optimizers)", adam),
                          ("the rest: im2col/col2im, activations, losses", step - gemms - adam)):
        print(f"  {name:<46} {seconds * 1e3:7.1f} ms  {seconds / step:6.1%} of the step")
    print(f"  copy bandwidth {bandwidth:.1f} GB/s: Adam's memory-traffic floor {params * 28 / 1e6:.0f} MB / "
          f"{bandwidth:.1f} GB/s = {adam_floor * 1e3:.1f} ms")
    print(f"  the whole step: {flops / step / 1e9 / gemm:.1%} of GEMM; its GEMMs alone: {flops / gemms / 1e9:.1f} "
          f"GFLOP/s = {flops / gemms / 1e9 / gemm:.1%} of GEMM; with Adam at its floor and nothing else: "
          f"{flops / (gemms + adam_floor) / 1e9 / gemm:.1%} of GEMM at best on this machine", flush=True)


# ---- the same network in PyTorch (optional second opinion) -----------------------------------------

def torch_step_fn(args):
    """The same network and step in PyTorch, as a callable, on the CPU or (when our backend is the
    GPU) on CUDA; (None, None) when PyTorch (with CUDA, for the GPU) is not installed."""
    try:
        import torch
        from torch import nn
    except ImportError:
        print("\nPyTorch not installed: no side-by-side reference (optional; `pip install torch`).")
        return None, None
    device = "cuda" if backend.device_name() == "gpu" else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        print(f"\nPyTorch {torch.__version__} has no CUDA here: no side-by-side reference on the GPU.")
        return None, None
    torch.manual_seed(0)
    w = lambda c: max(1, int(round(c * args.width)))
    lrelu = lambda: nn.LeakyReLU(0.2, inplace=True)
    conv = lambda i, o: nn.Conv2d(i, o, 5, 2, 2)
    deconv = lambda i, o: nn.ConvTranspose2d(i, o, 5, 2, 2, output_padding=1)
    enc, side = [3, w(64), w(128), w(256), w(512)], args.size // 16
    e1 = nn.Sequential(conv(enc[0], enc[1]), lrelu(), conv(enc[1], enc[2]), lrelu())
    e2 = nn.Sequential(conv(enc[2], enc[3]), lrelu(), conv(enc[3], enc[4]), lrelu(), nn.Flatten(),
                       nn.Linear(enc[4] * side * side, 100))
    g1 = nn.Sequential(nn.Linear(108, enc[4] * side * side), lrelu(), nn.Unflatten(1, (enc[4], side, side)),
                       deconv(enc[4], enc[3]), lrelu(), deconv(enc[3], enc[2]), nn.Tanh())
    g2 = nn.Sequential(deconv(enc[2], enc[1]), lrelu(), deconv(enc[1], 3), nn.Tanh())
    d_e = nn.Sequential(nn.Linear(100, 64), lrelu(), nn.Linear(64, 32), lrelu(), nn.Linear(32, 16), lrelu(),
                        nn.Linear(16, 1))
    dg = [3, w(16), w(32), w(64), w(128)]
    d_g = nn.Sequential(*[m for i in range(4) for m in (conv(dg[i], dg[i + 1]), lrelu())], nn.Flatten(),
                        nn.Linear(dg[4] * side * side, w(1024)), lrelu(), nn.Linear(w(1024), 1))
    for m in (e1, e2, g1, g2, d_e, d_g):
        m.to(device)
    ae_params = [p for m in (e1, e2, g1, g2) for p in m.parameters()]
    opt_ae = torch.optim.Adam(ae_params, lr=1e-3)
    opt_de, opt_dg = torch.optim.Adam(d_e.parameters(), lr=1e-4), torch.optim.Adam(d_g.parameters(), lr=1e-4)
    bce = nn.BCEWithLogitsLoss()
    x_s, x_t, labels = (torch.from_numpy(backend.to_host(a)).to(device) for a in batch(args.batch, 8, size=args.size))
    ones, zeros = torch.ones(args.batch, 1, device=device), torch.zeros(args.batch, 1, device=device)

    def step():   # the same order as objective.Objective.step: one E/G forward, D step, AE step
        h = e1(x_s)
        z = e2(h)
        x_hat = g2(h + g1(torch.cat([z, labels], 1)))
        opt_de.zero_grad()
        opt_dg.zero_grad()
        z_prior = torch.randn_like(z)
        d_loss = (bce(d_e(z_prior), ones) + bce(d_e(z.detach()), zeros)
                  + bce(d_g(x_s), ones) + bce(d_g(x_hat.detach()), zeros))
        d_loss.backward()
        opt_de.step()
        opt_dg.step()
        opt_ae.zero_grad()
        loss = (((x_hat - x_t) ** 2).mean() + 1e-2 * bce(d_e(z), ones) + 1e-3 * bce(d_g(x_hat), ones))
        loss.backward()
        opt_ae.step()
        if device == "cuda":
            torch.cuda.synchronize()            # time the work, not the kernel launches

    where = torch.cuda.get_device_name() if device == "cuda" else f"{torch.get_num_threads()} threads"
    return step, f"PyTorch {torch.__version__} ({where})"


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
    parser.add_argument("--size", type=int, default=32, choices=[32, 64], help="side of the faces (default 32, the paper's)")
    parser.add_argument("--repeats", type=int, default=10, help="timed repetitions; best and median reported")
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"], help="NumPy or CuPy")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    parser.add_argument("--skip-layers", action="store_true", help="skip the per-layer table")
    parser.add_argument("--return-freed-memory", action="store_true",
                        help="leave glibc's default (freed blocks go back to the OS) to see what "
                             "backend.keep_freed_memory() saves")
    args = parser.parse_args()
    backend.use(args.device)
    kept = backend.keep_freed_memory() if not args.return_freed_memory else False
    print(f"device {backend.device_name()}, numpy {np.__version__}, {os.cpu_count()} CPU cores, "
          f"batch {args.batch}, width {args.width}, {args.size}x{args.size} faces, float32, freed memory "
          f"{'kept for reuse' if kept else 'returned to the OS (glibc default)'}")
    gemm = gemm_rate(args.repeats)
    print(f"float32 GEMM rate (2048×2048): {gemm:.1f} GFLOP/s\n")

    rng = np.random.default_rng(0)
    w = lambda c: max(1, int(round(c * args.width)))
    chans = [3, w(64), w(128), w(256), w(512)]
    encoder = layers.Sequential(*[m for i in range(4) for m in (
        layers.Conv2d(chans[i], chans[i + 1], 5, 2, 2, rng=rng), layers.LeakyReLU(0.2, inplace=True))])
    decoder = layers.Sequential(*[m for i in range(3, -1, -1) for m in (
        layers.ConvTranspose2d(chans[i + 1], chans[i], 5, 2, 2, 1, rng=rng), layers.LeakyReLU(0.2, inplace=True))])
    x_img = backend.to_device(rng.standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32))
    x_code = backend.to_device(rng.standard_normal((args.batch, chans[4], args.size // 16, args.size // 16)).astype(np.float32))
    stack_benchmark("encoder conv stack fwd+bwd", encoder, x_img, args.repeats, gemm)
    stack_benchmark("decoder deconv stack fwd+bwd", decoder, x_code, args.repeats, gemm)
    objective, records, best, median, flops = step_benchmark(args, gemm)
    breakdown(objective, records, flops, args.batch, args.repeats)
    if not args.skip_layers:
        per_layer(objective, records, args.repeats)
    if not args.no_torch:
        torch_step, torch_name = torch_step_fn(args)
        if torch_step is not None:
            x_s, x_t, labels = batch(args.batch, 8, size=args.size)
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

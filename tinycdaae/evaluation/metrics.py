"""The metrics: target fidelity (MSE, PSNR, SSIM) and identity retrieval (nearest in a gallery).

Images live in [-1, 1], so the data range is L = 2. Pure NumPy, on the host.
"""
import numpy as np

DATA_RANGE = 2.0        # images live in [-1, 1]: the largest possible pixel difference is 2
SSIM_SIGMA = 1.5        # Wang et al. 2004: Gaussian window, σ = 1.5 ...
SSIM_RADIUS = 5         # ... 11×11 (radius 5), as in their code and scikit-image's gaussian_weights
SSIM_K1, SSIM_K2 = 0.01, 0.03   # C1 = (K1·L)², C2 = (K2·L)², L = DATA_RANGE


# ------------------------------------------------------------------------------ target fidelity
def _as_images(a, name):
    a = np.asarray(a, np.float64)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4:
        raise ValueError(f"{name} must be images (N, C, H, W) or (C, H, W), got shape {a.shape}")
    return a


def mse(a, b):
    """Mean squared error per image: (1/CHW) Σ (a − b)². a, b (N, C, H, W) -> (N,)."""
    a, b = _as_images(a, "a"), _as_images(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"image batches differ in shape: {a.shape} and {b.shape}")
    return ((a - b) ** 2).mean(axis=(1, 2, 3))


def psnr(a, b, data_range=DATA_RANGE):
    """Peak signal-to-noise ratio per image, in dB: PSNR = 10 log10(L² / MSE), L = data range
    (2 for our [-1, 1] images; a [0, 255] image would use 255 — same number for the same picture).

    Identical images have MSE 0 and PSNR +inf, returned as such (not capped): a cap would be an
    arbitrary number that moves averages. The evaluation never averages one: it leaves out the
    pairs that ask for no change, the only ones where a generated image can match exactly."""
    err = mse(a, b)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range ** 2 / err)


def _gaussian_window(sigma=SSIM_SIGMA, radius=SSIM_RADIUS):
    """1-D Gaussian weights w_i ∝ exp(−i² / 2σ²), i = −r..r, summing to 1; the 2-D window is
    their outer product (separable)."""
    i = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-i * i / (2 * sigma * sigma))
    return w / w.sum()


def _window_matrix(size, weights):
    """(size − 2r, size) matrix M with the window in each row, shifted one column per row, so that
    M @ v is the weighted mean of v over every *full* window position ("valid" filtering)."""
    taps = len(weights)
    m = np.zeros((size - taps + 1, size))
    for i in range(size - taps + 1):
        m[i, i:i + taps] = weights
    return m


def ssim_window(size):
    """(σ, radius) of SSIM's window for size×size faces: Wang's 1.5 and 5 at 32×32, scaled with
    the face (3 and 10 at 64×64), so the window covers the same part of the face at every size."""
    if size == 32:
        return SSIM_SIGMA, SSIM_RADIUS
    return SSIM_SIGMA * size / 32, int(round(SSIM_RADIUS * size / 32))


def ssim(a, b, data_range=DATA_RANGE, sigma=SSIM_SIGMA, radius=SSIM_RADIUS):
    """Structural similarity per image (Wang, Bovik, Sheikh & Simoncelli 2004), mean over the
    SSIM map and the channels. With local Gaussian-weighted means μ, variances σ² and covariance
    σ_ab (window 11×11, σ = 1.5):

        SSIM = (2 μ_a μ_b + C1)(2 σ_ab + C2) / ((μ_a² + μ_b² + C1)(σ_a² + σ_b² + C2)),
        C1 = (0.01 L)², C2 = (0.03 L)², L = 2.

    Only windows that lie wholly inside the image count (as in Wang's code and scikit-image):
    22×22 positions on a 32×32 face. Statistics are weighted population moments (no N/(N−1)),
    as in the paper. Identical images give 1 up to rounding; 1 is the best.
    a, b (N, C, H, W) -> (N,).
    """
    a, b = _as_images(a, "a"), _as_images(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"image batches differ in shape: {a.shape} and {b.shape}")
    if min(a.shape[2:]) <= 2 * radius:
        raise ValueError(f"SSIM's {2 * radius + 1}x{2 * radius + 1} window does not fit {a.shape[2:]} images")
    w = _gaussian_window(sigma, radius)
    rows, cols = _window_matrix(a.shape[2], w), _window_matrix(a.shape[3], w)   # (H', H), (W', W)

    def local_mean(x):   # the separable Gaussian as two large matrix products
        n, c, h, w_ = x.shape
        along_w = (x.reshape(-1, w_) @ cols.T).reshape(n, c, h, -1)     # (N, C, H, W')
        along_h = np.tensordot(rows, along_w, axes=([1], [2]))          # (H', N, C, W')
        return along_h.transpose(1, 2, 0, 3)                            # (N, C, H', W')

    mu_a, mu_b = local_mean(a), local_mean(b)
    var_a = local_mean(a * a) - mu_a * mu_a
    var_b = local_mean(b * b) - mu_b * mu_b
    cov = local_mean(a * b) - mu_a * mu_b
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return ssim_map.mean(axis=(1, 2, 3))


# ------------------------------------------------------------------------------------- identity
# The face region of an aligned face: an ellipse (centre row 16.5, column 15.5; semi-axes 12 rows
# and 9 columns on a 32×32 image, scaled for other sizes). Alignment puts every face there
# (align.py's template; the renderer draws them there). Identity is judged inside it: outside lie
# the backdrop and clothes, and in the synthetic set each person has a backdrop colour of their
# own — a cue that survives even when a network draws somebody else's face (measured: the
# no-connection control keeps 89% whole-image hits but 39% face hits; docs/evaluation.md).
FACE_ELLIPSE = (16.5 / 32, 15.5 / 32, 12 / 32, 9 / 32)


def face_mask(height=32, width=32):
    """(H, W) bool: True inside FACE_ELLIPSE."""
    cy, cx, ry, rx = FACE_ELLIPSE
    yy, xx = np.mgrid[0:height, 0:width]
    return ((yy - cy * height) / (ry * height)) ** 2 + ((xx - cx * width) / (rx * width)) ** 2 <= 1


def nearest_in_gallery(queries, bank, gallery, chunk=128):
    """For each query, the bank image nearest in pixel space (Euclidean) among its own gallery.

    queries (P, C, H, W); bank (B, C, H, W); gallery (P, G) int rows of `bank` that query p may
    match (e.g. one image per held-out person, all with p's target label).
    Returns (P,) bank rows. Ties go to the first gallery entry."""
    queries = np.asarray(queries, np.float64)                      # (P, ...) any image layout
    bank = np.asarray(bank, np.float64)
    gallery = np.asarray(gallery, np.int64)
    if gallery.ndim != 2 or len(gallery) != len(queries):
        raise ValueError(f"gallery must be (P, G) with P = {len(queries)} queries, got {gallery.shape}")
    flat_q = queries.reshape(len(queries), -1)                     # (P, D)
    flat_b = bank.reshape(len(bank), -1)                           # (B, D)
    best = np.empty(len(queries), np.int64)
    for start in range(0, len(queries), chunk):
        rows = gallery[start:start + chunk]                        # (p, G)
        diff = flat_b[rows] - flat_q[start:start + chunk, None]    # (p, G, D)
        dist = (diff * diff).sum(axis=2)                           # (p, G) squared distances
        best[start:start + chunk] = rows[np.arange(len(rows)), dist.argmin(axis=1)]
    return best


def identity_hits(queries, query_subjects, bank, bank_subjects, gallery, mask=None):
    """(P,) bool: is the nearest gallery image (see nearest_in_gallery) of the query's person?
    mask (H, W) bool: compare only those pixels (e.g. face_mask()); None: the whole image.
    queries and bank may also be feature vectors (P, D), (B, D), e.g. dlib descriptors."""
    if mask is not None:
        keep = np.asarray(mask, bool)
        queries, bank = np.asarray(queries)[..., keep], np.asarray(bank)[..., keep]   # (P, C, M), (B, C, M)
    nearest = nearest_in_gallery(queries, bank, gallery)
    return np.asarray(bank_subjects)[nearest] == np.asarray(query_subjects)

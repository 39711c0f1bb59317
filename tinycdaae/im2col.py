"""im2col / col2im: turning a convolution into one large matrix multiply.

A convolution with kernel HH×WW and stride s reads, for every output pixel, one window
x[n, s*i : s*i+HH, s*j : s*j+WW, :] of the (padded) input. Copy every window into one row of a
matrix ("im2col") and the whole layer becomes a single GEMM:

    cols (N*H'*W', HH*WW*C)  @  W_mat (HH*WW*C, F)  ->  out (N*H'*W', F)

col2im is the adjoint (transpose) of im2col: it adds each row of a column matrix back onto the
window it came from. Windows overlap when the kernel is larger than the stride, so it must *add*.

Memory order. Both functions work on channels-last (N, H, W, C) arrays. In that order a window's
innermost run (C values) is contiguous, so the copies below move long contiguous blocks, and the
GEMM's result (N*H'*W', F) is already an (N, H', W', F) array: no transposes anywhere. The layers
expose NCHW *shapes* (like PyTorch) as transposed views of this storage (see layers.py).

col2im loops over the HH*WW kernel offsets, not over pixels: 25 vectorised adds for a 5×5 kernel.

Few channels. When the result has only a few channels (a decoder's RGB output, the input gradient
of a discriminator's first conv) each of those adds moves runs of C = 3 values: most of the time
goes into loop overhead. col2im_of_product then computes the GEMM the other way round, so the
columns come out channels-first, and adds whole image rows instead (see col2im_few_channels).
"""
from . import backend


def out_size(size, kernel, stride, pad):
    """Output length of a convolution: floor((size + 2*pad - kernel) / stride) + 1."""
    return (size + 2 * pad - kernel) // stride + 1


def im2col(x_padded, kernel_h, kernel_w, stride, out_h, out_w):
    """x_padded (N, Hp, Wp, C) -> cols (N, H', W', HH, WW, C) (a fresh array).

    cols[n, i, j, a, b, c] = x_padded[n, stride*i + a, stride*j + b, c]
    Reshape the result to (N*H'*W', HH*WW*C) for the GEMM (free: it is contiguous).

    The right-hand side is a *strided view* of x_padded: stepping i moves `stride` rows, stepping
    a moves one row, so both use the row stride (times stride for i). as_strided builds that
    6-D view without copying, and one copy materialises it (a loop of HH*WW slice copies computes
    the same but is 2-5x slower: 25 small copies instead of one long one).
    """
    xp = backend.xp
    n, _, _, c = x_padded.shape
    s_n, s_h, s_w, s_c = x_padded.strides
    windows = xp.lib.stride_tricks.as_strided(
        x_padded, shape=(n, out_h, out_w, kernel_h, kernel_w, c),
        strides=(s_n, stride * s_h, stride * s_w, s_h, s_w, s_c))       # (N, H', W', HH, WW, C) view
    return xp.ascontiguousarray(windows)


def col2im(cols, padded_h, padded_w, stride):
    """cols (N, H', W', HH, WW, C) -> (N, Hp, Wp, C): the adjoint of im2col.

    out[n, stride*i + a, stride*j + b, c] += cols[n, i, j, a, b, c]   (overlaps accumulate)
    """
    xp = backend.xp
    n, out_h, out_w, kernel_h, kernel_w, c = cols.shape
    out = xp.zeros((n, padded_h, padded_w, c), dtype=cols.dtype)
    for a in range(kernel_h):
        for b in range(kernel_w):
            out[:, a:a + stride * out_h:stride, b:b + stride * out_w:stride, :] += cols[:, :, :, a, b, :]
    return out


# At or below this many channels the channels-first, phase-split col2im is faster (measured for a
# 5×5 stride-2 layer at batch 32: 3.0 -> 1.0 ms for 3 channels, 11.5 -> 9.2 ms for 32; slower for 64).
FEW_CHANNELS = 32


def col2im_of_product(a_mat, b_mat, shape, padded_h, padded_w, stride):
    """col2im((a_mat @ b_mat).reshape(shape)), computed the fastest way for the channel count.

    a_mat (N*H'*W', K), b_mat (K, HH*WW*C), shape = (N, H', W', HH, WW, C) -> (N, Hp, Wp, C).
    With many channels: the plain GEMM then col2im. With few: the transposed product
    (a_mat @ b_mat)ᵀ = b_matᵀ @ a_matᵀ (same FLOPs, no copies: BLAS reads the transposes in place),
    whose rows are (HH, WW, C) and columns (N, H', W'), then col2im_few_channels.
    """
    n, out_h, out_w, kernel_h, kernel_w, c = shape
    if c > FEW_CHANNELS:
        return col2im((a_mat @ b_mat).reshape(shape), padded_h, padded_w, stride)
    cols_t = (b_mat.T @ a_mat.T).reshape(kernel_h, kernel_w, c, n, out_h, out_w)
    return col2im_few_channels(cols_t, padded_h, padded_w, stride)


def col2im_few_channels(cols_t, padded_h, padded_w, stride):
    """cols_t (HH, WW, C, N, H', W') -> (N, Hp, Wp, C): col2im of the channels-first columns.

    Output pixel (s·i + a, s·j + b) has row phase p = a mod s and column phase q = b mod s, and sits
    at (i + a//s, j + b//s) of the phase-(p, q) plane. So the output splits into s·s planes
    planes[p, q] (C, N, Hp/s, Wp/s) in which every kernel offset (a, b) adds one *contiguous* block
    of rows of length W' — long runs instead of runs of C:

        planes[a%s, b%s][:, :, a//s : a//s + H', b//s : b//s + W'] += cols_t[a, b]

    and one strided copy interleaves the planes: out[n, s·I + p, s·J + q, c] = planes[p, q, c, n, I, J].
    """
    xp = backend.xp
    kernel_h, kernel_w, c, n, out_h, out_w = cols_t.shape
    s = stride
    plane_h = max(-(-padded_h // s), (kernel_h - 1) // s + out_h)     # ceil(Hp/s), and room for all
    plane_w = max(-(-padded_w // s), (kernel_w - 1) // s + out_w)
    planes = xp.zeros((s, s, c, n, plane_h, plane_w), dtype=cols_t.dtype)
    for a in range(kernel_h):
        for b in range(kernel_w):
            planes[a % s, b % s, :, :, a // s:a // s + out_h, b // s:b // s + out_w] += cols_t[a, b]
    out = xp.empty((n, plane_h * s, plane_w * s, c), dtype=cols_t.dtype)
    out.reshape(n, plane_h, s, plane_w, s, c)[...] = planes.transpose(3, 4, 0, 5, 1, 2)
    return out[:, :padded_h, :padded_w, :]                              # (N, Hp, Wp, C) view

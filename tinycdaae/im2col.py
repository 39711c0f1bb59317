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

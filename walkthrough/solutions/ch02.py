"""Chapter 2, exercise conv_transpose_forward: every input pixel stamps its weighted kernel."""
import numpy as np


def conv_transpose_forward(x, w, stride, pad, output_pad):
    n, c, h, wd = x.shape
    _, f, hh, ww = w.shape                       # (C_in, C_out, HH, WW)
    full_h, full_w = (h - 1) * stride + hh + output_pad, (wd - 1) * stride + ww + output_pad
    canvas = np.zeros((n, f, full_h, full_w))
    for i in range(h):
        for j in range(wd):
            # x[:, :, i, j] (N, C) times w (C, F, HH, WW), summed over C -> (N, F, HH, WW)
            canvas[:, :, stride * i:stride * i + hh, stride * j:stride * j + ww] += np.einsum(
                "nc,cfab->nfab", x[:, :, i, j], w)
    oh, ow = full_h - 2 * pad, full_w - 2 * pad
    return canvas[:, :, pad:pad + oh, pad:pad + ow]

"""Chapter 1, exercise conv_backward_im2col: a convolution's three gradients via im2col."""
import numpy as np

from tinycdaae.im2col import col2im, im2col, out_size


def conv_backward_im2col(x, w, dout, stride, pad):
    n, c, h, wd = x.shape
    f, _, hh, ww = w.shape
    oh, ow = out_size(h, hh, stride, pad), out_size(wd, ww, stride, pad)
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))).transpose(0, 2, 3, 1).copy()  # (N, Hp, Wp, C)
    cols = im2col(x_pad, hh, ww, stride, oh, ow).reshape(n * oh * ow, hh * ww * c)   # (N H' W', HH WW C)
    w_mat = w.transpose(0, 2, 3, 1).reshape(f, -1)                                   # (F, HH WW C)
    g_mat = dout.transpose(0, 2, 3, 1).reshape(-1, f)                                # (N H' W', F)
    dw = (g_mat.T @ cols).reshape(f, hh, ww, c).transpose(0, 3, 1, 2)                # (F, C, HH, WW)
    db = g_mat.sum(axis=0)
    dx_pad = col2im((g_mat @ w_mat).reshape(n, oh, ow, hh, ww, c), h + 2 * pad, wd + 2 * pad, stride)
    dx = dx_pad[:, pad:pad + h, pad:pad + wd, :].transpose(0, 3, 1, 2)
    return dx, dw, db

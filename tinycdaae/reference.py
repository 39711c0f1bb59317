"""Readable loop versions of the convolutions: the oracles the fast kernels are tested against.

Slow on purpose — one multiply-add per line of the definition — and kept in the package so that
tests and the first walkthrough chapter run them. NumPy only, NCHW, the same weight layouts as
layers.py: Conv2d w (F, C, HH, WW), ConvTranspose2d w (C, F, HH, WW).
"""
import numpy as np


def conv2d_loop(x, w, b, stride=1, pad=0):
    """y[n,f,i,j] = b[f] + Σ_{c,a,e} w[f,c,a,e] · x_pad[n, c, stride·i + a, stride·j + e]"""
    n, c, h, wd = x.shape
    f, _, hh, ww = w.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - hh) // stride + 1, (wd + 2 * pad - ww) // stride + 1
    y = np.zeros((n, f, oh, ow), dtype=np.result_type(x, w))
    for i_n in range(n):
        for i_f in range(f):
            for i in range(oh):
                for j in range(ow):
                    window = x_pad[i_n, :, stride * i:stride * i + hh, stride * j:stride * j + ww]
                    y[i_n, i_f, i, j] = np.sum(window * w[i_f]) + b[i_f]
    return y


def conv2d_loop_backward(dout, x, w, stride=1, pad=0):
    """The gradients of conv2d_loop, by the chain rule on each multiply-add:
    ∂y[n,f,i,j]/∂w[f,c,a,e] = x_pad[n,c,s·i+a,s·j+e]  and  ∂y[n,f,i,j]/∂x_pad[n,c,s·i+a,s·j+e] = w[f,c,a,e].
    Returns (dx, dw, db)."""
    n, c, h, wd = x.shape
    f, _, hh, ww = w.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dx_pad, dw = np.zeros_like(x_pad), np.zeros_like(w)
    db = dout.sum(axis=(0, 2, 3))
    for i_n in range(n):
        for i_f in range(f):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    rows = slice(stride * i, stride * i + hh)
                    cols = slice(stride * j, stride * j + ww)
                    dw[i_f] += dout[i_n, i_f, i, j] * x_pad[i_n, :, rows, cols]
                    dx_pad[i_n, :, rows, cols] += dout[i_n, i_f, i, j] * w[i_f]
    dx = dx_pad[:, :, pad:pad + h, pad:pad + wd]
    return dx, dw, db


def conv_transpose2d_loop(x, w, b, stride=1, pad=0, output_pad=0):
    """Every input pixel stamps its weighted kernel onto the output canvas ("scatter"):
    canvas[n, f, s·i + a, s·j + e] += x[n,c,i,j] · w[c,f,a,e], then crop `pad` from each side.
    H' = (H − 1)·stride − 2·pad + HH + output_pad."""
    n, c, h, wd = x.shape
    _, f, hh, ww = w.shape
    oh = (h - 1) * stride - 2 * pad + hh + output_pad
    ow = (wd - 1) * stride - 2 * pad + ww + output_pad
    canvas = np.zeros((n, f, (h - 1) * stride + hh + output_pad, (wd - 1) * stride + ww + output_pad),
                      dtype=np.result_type(x, w))
    for i_n in range(n):
        for i_c in range(c):
            for i in range(h):
                for j in range(wd):
                    canvas[i_n, :, stride * i:stride * i + hh, stride * j:stride * j + ww] += \
                        x[i_n, i_c, i, j] * w[i_c]
    return canvas[:, :, pad:pad + oh, pad:pad + ow] + b[None, :, None, None]

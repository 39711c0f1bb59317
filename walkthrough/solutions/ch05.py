"""Chapter 5, exercise centred_gradient."""
import numpy as np


def centred_gradient(f, x, h):
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + h
        f_plus = f()
        x[idx] = old - h
        f_minus = f()
        x[idx] = old                     # put it back exactly
        grad[idx] = (f_plus - f_minus) / (2 * h)
    return grad

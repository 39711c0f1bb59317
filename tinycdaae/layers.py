"""Hand-written layers: forward(x) -> (y, cache), backward(dout, cache) -> dx.

Conventions (CS231n names, PyTorch shapes):
- images are NCHW: x (N, C, H, W); a convolution's weight is w (F, C, HH, WW); a transposed
  convolution's is w (C, F, HH, WW) — exactly PyTorch's Conv2d / ConvTranspose2d layouts;
- the cache is returned to the caller, never stored on the layer, so one layer can run several
  times in one step (a discriminator sees a real and a fake batch) and backprop each call;
- parameter gradients are ADDED into ``param.grad`` (``param.accumulate(g)``: grad += g): two calls
  of one layer contribute both gradients. Clear them explicitly with ``zero_grad()`` before each step.

Memory order (a speed detail only — results never depend on it). The convolutions run as one GEMM
on channels-last data (see im2col.py). So arrays of NCHW *shape* produced here are transposed views
of (N, H, W, C) storage, and conv weights of shape (F, C, HH, WW) are views of (F, HH, WW, C)
storage. ``x.transpose(0, 2, 3, 1)`` of such a view is then contiguous and free. Any other memory
order (e.g. a plain NCHW array from a user) gives the same numbers, at the cost of one copy.
"""
import numpy as np

from . import backend
from .im2col import col2im_of_product, im2col, out_size


class Param:
    """A trainable array and the gradient accumulated into it. Optimizers key their state by the
    Param object itself (not by a name), so two layers can never share moments by accident.

    zero_grad() is lazy: it only marks the gradient as zero, and the next accumulate() writes
    g instead of adding it. That skips a pass over every gradient per step (9.8M floats for the
    reference net: zeroing them took 5.4 ms of a ~155 ms CPU step). Reading .grad in between
    gives the zeros."""

    def __init__(self, data, name=""):
        self.data = data
        self._grad = backend.xp.zeros_like(data)   # same shape *and* memory order as data
        self._grad_is_zero = False                 # True: _grad's contents are stale, read as 0
        self.name = name

    @property
    def shape(self):
        return self.data.shape

    @property
    def grad(self):
        if self._grad_is_zero:
            self._grad[...] = 0
            self._grad_is_zero = False
        return self._grad

    @grad.setter
    def grad(self, value):      # `p.grad += g` adds in place, then assigns the same array back
        if value is not self._grad:
            self.grad[...] = value

    def zero_grad(self):
        self._grad_is_zero = True

    def accumulate(self, g):
        """grad ← grad + g  (grad ← g right after zero_grad)."""
        if self._grad_is_zero:
            self._grad[...] = g
            self._grad_is_zero = False
        else:
            self._grad += g

    def __repr__(self):
        return f"Param({self.name or '?'}, shape={tuple(self.data.shape)}, dtype={self.data.dtype})"


class Layer:
    """Base class: a layer owns Params and knows nothing about optimizers."""

    def params(self):
        """All Params of this layer (and of sub-layers), in a fixed order."""
        out = []
        for value in self.__dict__.values():
            if isinstance(value, Param):
                out.append(value)
            elif isinstance(value, Layer):
                out.extend(value.params())
            elif isinstance(value, (list, tuple)):
                out.extend(p for item in value if isinstance(item, Layer) for p in item.params())
        return out

    def zero_grad(self):
        for p in self.params():
            p.zero_grad()


def _uniform(rng, shape, fan_in, dtype):
    """PyTorch's default init for conv/dense: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn on the host
    from an explicit Generator (reproducible bit-for-bit), then moved to the active device."""
    bound = 1.0 / np.sqrt(fan_in)
    return backend.to_device(rng.uniform(-bound, bound, size=shape).astype(dtype))


def _channels_last_weight(rng, logical_shape, fan_in, dtype):
    """A weight of shape (A, B, HH, WW) stored as contiguous (A, HH, WW, B); returns the view."""
    a, b, hh, ww = logical_shape
    storage = _uniform(rng, (a, hh, ww, b), fan_in, dtype)     # (A, HH, WW, B) contiguous
    return storage.transpose(0, 3, 1, 2)                        # (A, B, HH, WW) view


def _to_channels_last_padded(x, pad):
    """x (N, C, H, W) -> zero-padded (N, H+2·pad, W+2·pad, C), one copy."""
    n, c, h, w = x.shape
    out = backend.xp.zeros((n, h + 2 * pad, w + 2 * pad, c), dtype=x.dtype)
    out[:, pad:pad + h, pad:pad + w, :] = x.transpose(0, 2, 3, 1)
    return out


class Conv2d(Layer):
    """2-D convolution (cross-correlation, as in every DL framework).

    forward:   y[n,f,i,j] = b[f] + Σ_{c,a,b'} w[f,c,a,b'] · x_pad[n,c, s·i+a, s·j+b']
    backward:  dw = Σ_{n,i,j} dy[n,f,i,j] · window ;  db = Σ_{n,i,j} dy ;  dx = col2im(dy · W)
    shapes:    (N, C, H, W) -> (N, F, H', W'),  H' = floor((H + 2·pad − HH) / stride) + 1
    "Same" for the reference net: 5×5, stride 2, pad 2 -> H' = H/2.
    """

    def __init__(self, in_channels, out_channels, kernel=5, stride=2, pad=2, rng=None,
                 dtype=np.float32, name="conv"):
        rng = rng if rng is not None else np.random.default_rng(0)
        self.stride, self.pad, self.kernel = stride, pad, kernel
        fan_in = in_channels * kernel * kernel
        self.w = Param(_channels_last_weight(rng, (out_channels, in_channels, kernel, kernel),
                                             fan_in, dtype), name + ".w")
        self.b = Param(_uniform(rng, (out_channels,), fan_in, dtype), name + ".b")

    def _weight_matrix(self):
        f = self.w.data.shape[0]
        return self.w.data.transpose(0, 2, 3, 1).reshape(f, -1)      # (F, HH*WW*C), a view

    def forward(self, x):
        n, c, h, w = x.shape
        f, c_w, hh, ww = self.w.data.shape
        assert c == c_w, f"Conv2d expects {c_w} input channels, got x of shape {x.shape}"
        oh, ow = out_size(h, hh, self.stride, self.pad), out_size(w, ww, self.stride, self.pad)
        assert oh > 0 and ow > 0, f"input {h}x{w} is smaller than the {hh}x{ww} kernel after padding"
        x_pad = _to_channels_last_padded(x, self.pad)                 # (N, Hp, Wp, C)
        cols = im2col(x_pad, hh, ww, self.stride, oh, ow)             # (N, H', W', HH, WW, C)
        cols = cols.reshape(n * oh * ow, -1)                          # (N*H'*W', HH*WW*C)
        out = cols @ self._weight_matrix().T                          # (N*H'*W', F)
        out += self.b.data
        y = out.reshape(n, oh, ow, f).transpose(0, 3, 1, 2)           # (N, F, H', W') view
        return y, (x.shape, cols)

    def backward(self, dout, cache, need_dx=True):
        """need_dx=False skips the input gradient (the first layer, whose input is data)."""
        (n, c, h, w), cols = cache
        f, _, hh, ww = self.w.data.shape
        oh, ow = dout.shape[2], dout.shape[3]
        dout_mat = dout.transpose(0, 2, 3, 1).reshape(n * oh * ow, f)  # (N*H'*W', F)
        self.b.accumulate(dout_mat.sum(axis=0))
        dw_mat = dout_mat.T @ cols                                     # (F, HH*WW*C)
        self.w.accumulate(dw_mat.reshape(f, hh, ww, c).transpose(0, 3, 1, 2))
        if not need_dx:
            return None
        # dx_pad = col2im(dout_mat @ W_mat), dout_mat @ W_mat: (N*H'*W', HH*WW*C)
        dx_pad = col2im_of_product(dout_mat, self._weight_matrix(), (n, oh, ow, hh, ww, c),
                                   h + 2 * self.pad, w + 2 * self.pad, self.stride)  # (N, Hp, Wp, C)
        dx = dx_pad[:, self.pad:self.pad + h, self.pad:self.pad + w, :]          # (N, H, W, C)
        return dx.transpose(0, 3, 1, 2)                                          # (N, C, H, W)


class ConvTranspose2d(Layer):
    """Transposed convolution: the adjoint of Conv2d with the same kernel, stride and padding.

    Its forward is Conv2d's backward-to-the-input and its backward-to-the-input is Conv2d's forward:
        y = col2im(x · W)[crop pad] ;  dx = im2col(pad(dy)) · Wᵀ ;  dw = xᵀ · im2col(pad(dy))
    shapes: (N, C, H, W) -> (N, F, H', W'),  H' = (H − 1)·stride − 2·pad + HH + output_pad
    Weight (C, F, HH, WW) as in PyTorch. "Same" (doubling) for 5×5/2: pad 2, output_pad 1.
    """

    def __init__(self, in_channels, out_channels, kernel=5, stride=2, pad=2, output_pad=1,
                 rng=None, dtype=np.float32, name="deconv"):
        rng = rng if rng is not None else np.random.default_rng(0)
        assert output_pad < stride or output_pad == 0, \
            f"output_pad must be smaller than the stride ({stride}), got {output_pad}"
        self.stride, self.pad, self.output_pad, self.kernel = stride, pad, output_pad, kernel
        fan_in = out_channels * kernel * kernel      # PyTorch computes fan_in from w.shape[1]
        self.w = Param(_channels_last_weight(rng, (in_channels, out_channels, kernel, kernel),
                                             fan_in, dtype), name + ".w")
        self.b = Param(_uniform(rng, (out_channels,), fan_in, dtype), name + ".b")

    def _weight_matrix(self):
        c = self.w.data.shape[0]
        return self.w.data.transpose(0, 2, 3, 1).reshape(c, -1)      # (C, HH*WW*F), a view

    def _sizes(self, h, w):
        hh, ww = self.w.data.shape[2:]
        oh = (h - 1) * self.stride - 2 * self.pad + hh + self.output_pad
        ow = (w - 1) * self.stride - 2 * self.pad + ww + self.output_pad
        # the un-cropped canvas every window lands on, plus room for output_pad
        full_h = (h - 1) * self.stride + hh + self.output_pad
        full_w = (w - 1) * self.stride + ww + self.output_pad
        return oh, ow, full_h, full_w

    def forward(self, x):
        n, c, h, w = x.shape
        c_w, f, hh, ww = self.w.data.shape
        assert c == c_w, f"ConvTranspose2d expects {c_w} input channels, got x of shape {x.shape}"
        oh, ow, full_h, full_w = self._sizes(h, w)
        assert oh > 0 and ow > 0, f"output would be {oh}x{ow}: padding {self.pad} too large"
        x_mat = x.transpose(0, 2, 3, 1).reshape(n * h * w, c)          # (N*H*W, C)
        # canvas = col2im(x_mat @ W_mat), x_mat @ W_mat: (N*H*W, HH*WW*F)
        canvas = col2im_of_product(x_mat, self._weight_matrix(), (n, h, w, hh, ww, f),
                                   full_h, full_w, self.stride)         # (N, H_full, W_full, F)
        out = canvas[:, self.pad:self.pad + oh, self.pad:self.pad + ow, :]  # (N, H', W', F)
        out += self.b.data
        return out.transpose(0, 3, 1, 2), (x_mat, x.shape)              # (N, F, H', W') view

    def backward(self, dout, cache, need_dx=True):
        x_mat, (n, c, h, w) = cache
        _, f, hh, ww = self.w.data.shape
        self.b.accumulate(dout.sum(axis=(0, 2, 3)))
        # place dy back on the un-cropped canvas (zeros where the crop cut), then read windows;
        # the canvas is dy padded by `pad` on every side: H_full = H' + 2·pad
        canvas = _to_channels_last_padded(dout, self.pad)               # (N, H_full, W_full, F)
        dcols = im2col(canvas, hh, ww, self.stride, h, w).reshape(n * h * w, -1)  # (N*H*W, HH*WW*F)
        dw_mat = x_mat.T @ dcols                                        # (C, HH*WW*F)
        self.w.accumulate(dw_mat.reshape(c, hh, ww, f).transpose(0, 3, 1, 2))
        if not need_dx:
            return None
        dx_mat = dcols @ self._weight_matrix().T                        # (N*H*W, C)
        return dx_mat.reshape(n, h, w, c).transpose(0, 3, 1, 2)         # (N, C, H, W)


class Dense(Layer):
    """Fully connected: y = x Wᵀ + b, W (out, in) as in PyTorch.
    backward: dx = dy W ;  dW = dyᵀ x ;  db = Σ_n dy.   shapes: (N, in) -> (N, out)."""

    def __init__(self, in_features, out_features, rng=None, dtype=np.float32, name="dense"):
        rng = rng if rng is not None else np.random.default_rng(0)
        self.w = Param(_uniform(rng, (out_features, in_features), in_features, dtype), name + ".w")
        self.b = Param(_uniform(rng, (out_features,), in_features, dtype), name + ".b")

    def forward(self, x):
        assert x.ndim == 2 and x.shape[1] == self.w.data.shape[1], \
            f"Dense expects (N, {self.w.data.shape[1]}) input, got {x.shape}"
        y = x @ self.w.data.T                                           # (N, out)
        y += self.b.data
        return y, x

    def backward(self, dout, x, need_dx=True):
        self.w.accumulate(dout.T @ x)                                   # (out, in)
        self.b.accumulate(dout.sum(axis=0))
        return dout @ self.w.data if need_dx else None                  # (N, in)


class LeakyReLU(Layer):
    """y = x if x > 0 else slope·x = max(x, slope·x) for 0 < slope < 1 ;  dy/dx = 1 or slope.
    (slope 0.2 as in the paper's family). The cache is y: y > 0 exactly where x > 0.

    inplace=True overwrites x with y (saves a pass over memory and an allocation). Only safe when
    nothing else reads x afterwards — e.g. straight after a conv, whose backward keeps its input,
    not its output (the same contract as PyTorch's inplace=True)."""

    def __init__(self, slope=0.2, inplace=False):
        assert 0 < slope < 1, f"LeakyReLU slope must be in (0, 1), got {slope}"
        self.slope, self.inplace = slope, inplace

    def forward(self, x):
        slope = x.dtype.type(self.slope)
        y = backend.xp.maximum(x, x * slope, out=x if self.inplace else None)
        return y, y

    def backward(self, dout, y):
        # dx = dout · (slope + (1 − slope)·[y > 0]): a multiply by a 0/1 mask is several times
        # faster than xp.where on these layouts, and gives the same numbers.
        dtype = dout.dtype.type
        return dout * ((y > 0) * dtype(1 - self.slope) + dtype(self.slope))


class Tanh(Layer):
    """y = tanh(x) ;  dy/dx = 1 − y²  (the cache is y itself)."""

    def forward(self, x):
        y = backend.xp.tanh(x)
        return y, y

    def backward(self, dout, y):
        return dout * (1 - y * y)


def sigmoid(x):
    """σ(x) = 1 / (1 + e^{−x}), computed without overflow: e^{−|x|} ≤ 1 always.
    x ≥ 0: 1 / (1 + e^{−x});   x < 0: e^{x} / (1 + e^{x})."""
    xp = backend.xp
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


class Sigmoid(Layer):
    """y = σ(x) ;  dy/dx = y (1 − y).  (Training uses losses.bce_with_logits instead, which fuses
    σ into the loss for stability; this layer is for reading probabilities.)"""

    def forward(self, x):
        y = sigmoid(x)
        return y, y

    def backward(self, dout, y):
        return dout * y * (1 - y)


class Flatten(Layer):
    """(N, C, H, W) -> (N, C·H·W), in NCHW order like torch.flatten (so dense weights match).
    backward reshapes back."""

    def forward(self, x):
        return x.reshape(x.shape[0], -1), x.shape

    def backward(self, dout, shape):
        return dout.reshape(shape)


class Reshape(Layer):
    """(N, C·H·W) -> (N, C, H, W), the inverse of Flatten."""

    def __init__(self, *shape):
        self.shape = shape

    def forward(self, x):
        return x.reshape((x.shape[0],) + self.shape), x.shape

    def backward(self, dout, shape):
        return dout.reshape(shape)


def concat(a, b):
    """(N, A) and (N, B) -> (N, A+B), e.g. the latent z and the label l entering the decoder.
    Its backward is a split: see split_grad."""
    return backend.xp.concatenate([a, b], axis=1)


def split_grad(dout, width_a):
    """Backward of concat: d(N, A+B) -> (d(N, A), d(N, B))."""
    return dout[:, :width_a], dout[:, width_a:]


class Sequential(Layer):
    """Layers applied in order; forward returns the list of their caches, backward walks it back."""

    def __init__(self, *layers):
        self.layers = list(layers)

    def forward(self, x):
        caches = []
        for layer in self.layers:
            x, cache = layer.forward(x)
            caches.append(cache)
        return x, caches

    def backward(self, dout, caches, need_dx=True):
        """need_dx=False: the first layer (a Conv2d/ConvTranspose2d/Dense) skips its input
        gradient, e.g. when the input is a batch of images that nothing upstream learns from."""
        for i in range(len(self.layers) - 1, -1, -1):
            if i == 0 and not need_dx:
                return self.layers[0].backward(dout, caches[0], need_dx=False)
            dout = self.layers[i].backward(dout, caches[i])
        return dout

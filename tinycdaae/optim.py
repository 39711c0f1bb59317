"""Adam (Kingma & Ba 2015, Algorithm 1), one optimizer per network; and WeightAverage, the moving
average of the encoder and decoder weights that draws the faces.

State (first and second moments) is keyed by the Param object itself, so two layers can never mix
their moments the way a name-keyed dict can ("W" of one layer overwriting "W" of another).
"""
import contextlib

from . import backend


def _flat_in_memory_order(a):
    """A 1-D *view* of `a` whose order is the order of its elements in memory, or None when `a`
    is not one contiguous block. (Conv weights are NCHW-shaped views of channels-last storage:
    a.reshape(-1) would copy them, and updating a copy would update nothing.)"""
    axes = sorted(range(a.ndim), key=lambda i: -abs(a.strides[i]))   # outermost axis first
    in_order = a.transpose(axes)
    return in_order.reshape(-1) if in_order.flags.c_contiguous else None


class Adam:
    """For each parameter θ with gradient g, at step t = 1, 2, ...:
        m ← β1 m + (1 − β1) g            v ← β2 v + (1 − β2) g²
        m̂ = m / (1 − β1ᵗ)                v̂ = v / (1 − β2ᵗ)          (bias correction)
        θ ← θ − lr · m̂ / (√v̂ + ε)
    Defaults β1 = 0.9, β2 = 0.999, ε = 1e-8 as in the paper. Updates are in place.
    """

    def __init__(self, params, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.params = list(params)
        if len(set(map(id, self.params))) != len(self.params):
            raise ValueError("a parameter was given twice to one Adam optimizer")
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.t = 0
        xp = backend.xp
        self.m = {p: xp.zeros_like(p.data) for p in self.params}
        self.v = {p: xp.zeros_like(p.data) for p in self.params}
        self._tmp = {}

    def zero_grad(self):
        for p in self.params:
            p.zero_grad()

    def step(self):
        self.t += 1
        correction1 = 1 - self.beta1 ** self.t
        correction2 = 1 - self.beta2 ** self.t
        # m̂ / (√v̂ + ε) = (√c2 / c1) · m / (√v + ε√c2): the bias corrections become two scalars
        step_size = self.lr * correction2 ** 0.5 / correction1
        eps_hat = self.eps * correction2 ** 0.5
        chunk = backend.elementwise_chunk()
        for p in self.params:
            arrays = (p.data, p.grad, self.m[p], self.v[p])
            flats = [_flat_in_memory_order(a) for a in arrays] if chunk else [None]
            if any(f is None for f in flats) or len({a.strides for a in arrays}) != 1:
                self._update(*arrays, self._scratch(p.data), step_size, eps_hat)   # whole arrays
                continue
            scratch = self._scratch_block(chunk, p.data.dtype)
            for start in range(0, flats[0].size, chunk):            # cache-sized blocks, in place
                block = [f[start:start + chunk] for f in flats]
                self._update(*block, scratch[:len(block[0])], step_size, eps_hat)

    def _update(self, theta, g, m, v, tmp, step_size, eps_hat):
        """The update on one array (or block), in place: no temporaries, ~12 passes over memory."""
        xp = backend.xp
        m *= self.beta1                                         # m ← β1 m + (1 − β1) g
        xp.multiply(g, 1 - self.beta1, out=tmp)
        m += tmp
        v *= self.beta2                                         # v ← β2 v + (1 − β2) g²
        xp.multiply(g, g, out=tmp)
        tmp *= 1 - self.beta2
        v += tmp
        xp.sqrt(v, out=tmp)                                     # θ ← θ − step · m / (√v + ε̂)
        tmp += eps_hat
        xp.divide(m, tmp, out=tmp)
        tmp *= step_size
        theta -= tmp

    def _scratch(self, data):
        """A work array shaped like `data` (for the unblocked path), allocated once."""
        key = (tuple(data.shape), data.strides, data.dtype.str)
        if key not in self._tmp:
            self._tmp[key] = backend.xp.empty_like(data)
        return self._tmp[key]

    def _scratch_block(self, size, dtype):
        key = (size, backend.xp.dtype(dtype).str)
        if key not in self._tmp:
            self._tmp[key] = backend.xp.empty(size, dtype=dtype)
        return self._tmp[key]


class WeightAverage:
    """An exponential moving average of parameters (Polyak averaging), kept beside training:

        a ← δ a + (1 − δ) θ   after every update, from a = 0        θ̄ = a / (1 − δᵗ)

    θ̄ weighs the update at step t − k by (1 − δ) δᵏ / (1 − δᵗ): the last ~1/(1 − δ) steps count,
    and dividing by 1 − δᵗ (as Adam corrects m̂) makes the weights sum to 1 from step 1 on, so the
    random initial weights never leak in. Training never reads θ̄: it is the network used to draw
    faces. Adversarial training makes θ circle around a good point rather than settle on it; θ̄
    sits nearer the centre, so it draws smoother faces with less of the last steps' noise.
    """

    def __init__(self, params, decay):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.params, self.decay = list(params), decay
        self.t = 0
        self.average = {p: backend.xp.zeros_like(p.data) for p in self.params}   # a, one per θ

    def update(self):
        self.t += 1
        for p in self.params:
            a = self.average[p]
            a *= self.decay
            a += (1 - self.decay) * p.data

    def averaged(self, p):
        """θ̄ of parameter p (a new array)."""
        if self.t == 0:
            return p.data.copy()        # nothing averaged yet: the weights themselves
        return self.average[p] / (1 - self.decay ** self.t)

    def copy_into_params(self):
        """Put θ̄ into the parameters for good: for a model that will only draw from now on."""
        for p in self.params:
            p.data[...] = self.averaged(p)

    @contextlib.contextmanager
    def swapped_in(self):
        """Inside the block the parameters hold θ̄ (to draw with them); θ is put back after."""
        kept = [p.data.copy() for p in self.params]
        try:
            self.copy_into_params()
            yield
        finally:
            for p, data in zip(self.params, kept):
                p.data[...] = data

"""Adam (Kingma & Ba 2015, Algorithm 1), one optimizer per network.

State (first and second moments) is keyed by the Param object itself, so two layers can never mix
their moments the way a name-keyed dict can ("W" of one layer overwriting "W" of another).
"""
from . import backend


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
        xp = backend.xp
        correction1 = 1 - self.beta1 ** self.t
        correction2 = 1 - self.beta2 ** self.t
        # m̂ / (√v̂ + ε) = (√c2 / c1) · m / (√v + ε√c2): the bias corrections become two scalars
        step_size = self.lr * correction2 ** 0.5 / correction1
        eps_hat = self.eps * correction2 ** 0.5
        for p in self.params:
            m, v, g, tmp = self.m[p], self.v[p], p.grad, self._scratch(p)
            # Every line updates in place: no temporary arrays, ~9 passes over memory per parameter.
            m *= self.beta1                                     # m ← β1 m + (1 − β1) g
            xp.multiply(g, 1 - self.beta1, out=tmp)
            m += tmp
            v *= self.beta2                                     # v ← β2 v + (1 − β2) g²
            xp.multiply(g, g, out=tmp)
            tmp *= 1 - self.beta2
            v += tmp
            xp.sqrt(v, out=tmp)                                 # θ ← θ − step · m / (√v + ε̂)
            tmp += eps_hat
            xp.divide(m, tmp, out=tmp)
            tmp *= step_size
            p.data -= tmp

    def _scratch(self, p):
        """One work array per parameter (same shape and memory order), allocated once."""
        if p not in self._tmp:
            self._tmp[p] = backend.xp.empty_like(p.data)
        return self._tmp[p]

    def state_arrays(self):
        """The moments as a list (in parameter order) for checkpoints: [m0, v0, m1, v1, ...]."""
        out = []
        for p in self.params:
            out += [self.m[p], self.v[p]]
        return out

    def load_state_arrays(self, arrays, t):
        if len(arrays) != 2 * len(self.params):
            raise ValueError(f"optimizer state has {len(arrays)} arrays, expected {2 * len(self.params)}")
        for i, p in enumerate(self.params):
            for store, a in ((self.m, arrays[2 * i]), (self.v, arrays[2 * i + 1])):
                if tuple(a.shape) != tuple(p.data.shape):
                    raise ValueError(f"optimizer moment for {p.name} has shape {a.shape}, expected {p.data.shape}")
                store[p][...] = backend.to_device(a)
        self.t = int(t)

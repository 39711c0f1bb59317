"""Losses, each returning (value, gradient with respect to its first argument).

Both are means over every element, so their gradients carry the 1/N factor.
"""
from . import backend


def mse(pred, target):
    """L = mean((pred − target)²) ;  ∂L/∂pred = 2 (pred − target) / N   (N = pred.size)."""
    diff = pred - target
    return (diff * diff).mean(), diff * (2.0 / diff.size)


def bce_with_logits(logits, target):
    """Binary cross-entropy of σ(z) against labels y ∈ [0, 1], computed from the logits z.

    Naively, −[y log σ(z) + (1 − y) log(1 − σ(z))] takes log(0) = −inf once |z| > 16.6 in float32
    (σ rounds to exactly 0 or 1 when e^{−|z|} < 2⁻²⁴). Rewriting with log σ(z) = −log(1 + e^{−z}) gives
        L = max(z, 0) − z·y + log(1 + e^{−|z|})
    where e^{−|z|} ≤ 1 never overflows (log1p keeps precision when it is tiny). Its gradient is
        ∂L/∂z = σ(z) − y,
    with σ computed stably as well. Mean over elements.
    """
    xp = backend.xp
    abs_z = xp.abs(logits)
    loss = xp.maximum(logits, 0) - logits * target + xp.log1p(xp.exp(-abs_z))
    e = xp.exp(-abs_z)
    sig = xp.where(logits >= 0, 1 / (1 + e), e / (1 + e))
    return loss.mean(), (sig - target) / logits.size

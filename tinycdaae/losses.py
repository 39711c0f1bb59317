"""Losses, each returning (value, gradient with respect to its first argument).

Each is a mean (over every element, or over the samples for cross-entropy), so its gradient
carries the matching 1/N factor.
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


def softmax_cross_entropy(logits, target):
    """Cross-entropy of softmax(z) against class probabilities y (rows of one-hot labels, or any
    rows summing to 1), from the logits z (N, K). Mean over the N samples.

    log softmax(z)_k = z_k − log Σ_j e^{z_j}. Taken literally, e^{z_j} overflows in float32 once
    z ≳ 88; subtracting the row maximum m first leaves the result unchanged
        log softmax(z)_k = (z_k − m) − log Σ_j e^{z_j − m}
    and every exponent is ≤ 0, so the sum lies in [1, K]. Then
        L = −(1/N) Σ_n Σ_k y_nk · log softmax(z_n)_k ;   ∂L/∂z = (softmax(z) − y) / N.
    """
    xp = backend.xp
    shifted = logits - logits.max(axis=1, keepdims=True)              # (N, K), every entry ≤ 0
    log_sum = xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))      # (N, 1), in [0, log K]
    log_probs = shifted - log_sum                                     # (N, K)
    n = logits.shape[0]
    loss = -(target * log_probs).sum() / n
    return loss, (xp.exp(log_probs) - target) / n

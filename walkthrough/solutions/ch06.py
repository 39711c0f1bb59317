"""Chapter 6, exercise autoencoder_loss: the loss E and G minimise (non-saturating terms)."""
import numpy as np


def autoencoder_loss(x_hat, x_t, logit_z, logit_x, alpha, beta1, beta2):
    L_R = np.mean((x_hat - x_t) ** 2)
    L_E_ns = np.mean(np.logaddexp(0, -logit_z))      # BCE(D_E(z), 1) = -log σ(a) = log(1 + e^{-a})
    L_G_ns = np.mean(np.logaddexp(0, -logit_x))      # BCE(D_G(x̂), 1)
    return alpha * L_R + beta1 * L_E_ns + beta2 * L_G_ns

"""tinycdaae: the Conditional Difference Adversarial Autoencoder (Zhou & Shi 2017) by hand.

Kept light on purpose: importing the package imports NumPy and nothing else (no plotting, no
image or video readers, no CuPy). Import the submodules you need, e.g.
``from tinycdaae import layers``.
"""
__version__ = "0.1.0"

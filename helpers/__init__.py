"""Shared helpers for the generative-model notebooks.

Modules: ``config`` (paths, fast mode, seeds), ``mnist`` (MNIST loader and
binarisation), ``builders`` (encoder/decoder builders), ``models`` (VAE and
autoencoder), ``likelihood`` (losses and importance-sampled log-likelihood),
``training`` (fit-or-load weight cache), ``plotting`` and ``metrics``
(headline-number recorder), and study modules (``scurve``, ``galaxies``, ``rbm``,
``ising``, ``checkerboard``, ``heatmaps``, ``gan``, ``digits``). Importing the package
has no side effects.
"""

__version__ = "0.1.0"

"""Measuring trained models: log-likelihoods by importance sampling and the independent-pixel
baseline (``likelihood``), an RBM's partition function (``partition``), distances between
outputs and references (``distances``), k-nearest-neighbour probes of a latent space
(``probes``) and the classifier that judges generated images (``judge``)."""

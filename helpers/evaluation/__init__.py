"""Measuring trained models: log-likelihoods by importance sampling and the independent-pixel
baseline (``likelihood``), an RBM's partition function (``partition``), distances between
outputs and references (``distances``) and the classifier that judges generated images
(``judge``)."""

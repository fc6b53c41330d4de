"""Probes of a latent space: how much of a known property can be read back from the codes by
a k-nearest-neighbour model on standardised codes, k chosen by cross-validation. Used by the
covariance-heatmap notebook (a classifier for the heavy tails) and the rotation-curve
notebook (a regressor per physical parameter)."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from helpers.infra.checks import as_finite_array, check_positive_int

KINDS = {"classifier": KNeighborsClassifier, "regressor": KNeighborsRegressor}


def knn_probe(z_train, y_train, kind: str, n_neighbors=(3, 5, 10, 20, 40),
              cv: int = 5) -> GridSearchCV:
    """A k-nearest-neighbour ``kind`` ("classifier" or "regressor") on standardised codes,
    fitted to (``z_train``, ``y_train``) with k chosen from ``n_neighbors`` by ``cv``-fold
    cross-validation. Score it on held-out codes with ``.score`` or ``.predict``."""
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(f"kind must be one of {tuple(KINDS)}, got {kind!r}")
    z_train = as_finite_array(z_train, "z_train", ndim=2)
    y_train = np.asarray(y_train)
    if y_train.shape != (len(z_train),):
        raise ValueError(f"y_train must hold one value per code, shape ({len(z_train)},), "
                         f"got {y_train.shape}")
    if kind == "regressor":
        y_train = as_finite_array(y_train, "y_train", dtype=np.float64)
    cv = check_positive_int(cv, "cv", minimum=2)
    if cv > len(z_train):
        raise ValueError(f"cv must be at most the number of codes, {len(z_train)}, got {cv}")
    ks = [check_positive_int(k, "n_neighbors") for k in np.atleast_1d(n_neighbors).tolist()]
    fitted_on = len(z_train) - -(-len(z_train) // cv)  # codes in the smallest training fold
    if not ks or max(ks) > fitted_on:
        raise ValueError(f"n_neighbors must hold at least one k, each at most the {fitted_on} "
                         f"codes a {cv}-fold split trains on, got {n_neighbors!r}")
    name = KINDS[kind].__name__.lower()
    search = GridSearchCV(make_pipeline(StandardScaler(), KINDS[kind]()),
                          {f"{name}__n_neighbors": ks}, cv=cv)
    return search.fit(z_train, y_train)

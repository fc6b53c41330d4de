"""Distances that score what a model produced against a reference: the Frobenius error of
reconstructed images (covariance heatmaps), the Chamfer distance between point sets
(S-curve), and, for GAN samples in the judge classifier's features, the Frechet distance
between Gaussians fitted to two feature sets and the k-nearest-neighbour precision and
recall that tell the quality of samples from their coverage."""

from __future__ import annotations

import numpy as np
from scipy import linalg
from scipy.spatial import cKDTree
from sklearn.metrics import pairwise_distances_chunked
from sklearn.neighbors import NearestNeighbors

from helpers.infra.checks import as_finite_array, check_positive_int


def frobenius_error(x, x_hat) -> np.ndarray:
    """Per-image Frobenius norm ||x - x_hat||_F for stacks of images of the same shape."""
    x = as_finite_array(x, "x", dtype=np.float64)
    x_hat = as_finite_array(x_hat, "x_hat", dtype=np.float64)
    if x.shape != x_hat.shape:
        raise ValueError(f"x and x_hat must have the same shape, got {x.shape} and {x_hat.shape}")
    if x.ndim == 0:
        raise ValueError("x and x_hat must be stacks of images (n, ...), got single numbers")
    return np.sqrt(((x - x_hat) ** 2).reshape(len(x), -1).sum(axis=1))


def chamfer_distance(a, b) -> float:
    """Symmetric Chamfer distance: the mean of (mean distance from each point of ``a`` to
    its nearest point of ``b``) and the same from ``b`` to ``a``, in the points' units."""
    a = as_finite_array(a, "a", ndim=2, dtype=np.float64)
    b = as_finite_array(b, "b", ndim=2, dtype=np.float64)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same number of columns, got {a.shape} "
                         f"and {b.shape}")
    a_to_b = cKDTree(b).query(a)[0].mean()
    b_to_a = cKDTree(a).query(b)[0].mean()
    return float(0.5 * (a_to_b + b_to_a))


def frechet_distance(features_a, features_b) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (n, d):
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)). The trace of the matrix square
    root is the sum of the square roots of the eigenvalues of S_a S_b, which are real and
    non-negative for covariance matrices (tiny negative round-off is clipped)."""
    a = as_finite_array(features_a, "features_a", ndim=2, dtype=np.float64)
    b = as_finite_array(features_b, "features_b", ndim=2, dtype=np.float64)
    if a.shape[1] != b.shape[1]:
        raise ValueError("features_a and features_b must have the same width, got "
                         f"{a.shape[1]} and {b.shape[1]}")
    if min(len(a), len(b)) < 2:
        raise ValueError("each feature set needs at least 2 rows to estimate a covariance")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    eig = linalg.eigvals(cov_a @ cov_b).real
    trace_sqrt = np.sqrt(np.clip(eig, 0.0, None)).sum()
    value = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt
    return float(max(value, 0.0))


def precision_recall(real_features, generated_features, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of two feature sets (n, d).
    Each set stands for a manifold: the union of balls around its points, each ball reaching
    the point's ``k``-th nearest other point of the same set. Precision is the fraction of
    generated points inside the real manifold (are the samples realistic?), recall the
    fraction of real points inside the generated one (does the model cover the data?)."""
    real = as_finite_array(real_features, "real_features", ndim=2, dtype=np.float64)
    generated = as_finite_array(generated_features, "generated_features", ndim=2,
                                dtype=np.float64)
    k = check_positive_int(k, "k")
    if real.shape[1] != generated.shape[1]:
        raise ValueError("real_features and generated_features must have the same width, got "
                         f"{real.shape[1]} and {generated.shape[1]}")
    for name, rows in (("real_features", real), ("generated_features", generated)):
        if len(rows) <= k:
            raise ValueError(f"{name} needs more than k = {k} rows, got {len(rows)}")
    return _fraction_inside(generated, real, k), _fraction_inside(real, generated, k)


def _fraction_inside(queries: np.ndarray, reference: np.ndarray, k: int) -> float:
    # radius of each reference point: the distance to its k-th nearest other point
    radii = NearestNeighbors(n_neighbors=k).fit(reference).kneighbors()[0][:, -1]
    inside = pairwise_distances_chunked(
        queries, reference, reduce_func=lambda block, start: (block <= radii).any(axis=1))
    return float(np.concatenate(list(inside)).mean())

"""Covariance heatmaps: max-normalised densities of zero-mean bivariate normal and t
distributions on a square grid, the full parameter grid of the covariance-heatmap study,
its train/test split, the heavy-tail rule of its t extension and the moments of an image.
Used by the covariance-heatmap notebook (its backbones are in ``models.backbones``).

Pixel (i, j) of a heatmap is the density at (x, y) = (grid[i], grid[j]): rows follow x,
columns follow y. So swapping the two variances transposes the image.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import gammaln
from sklearn.model_selection import train_test_split

from helpers.infra.checks import (
    as_finite_array,
    check_broadcastable,
    check_finite,
    check_positive,
    check_positive_array,
    check_positive_int,
    check_seed,
)

VARIANCES = np.round(np.arange(0.1, 5.0, 0.2), 2)  # 0.1, 0.3, ..., 4.9 (25 values)
CORRELATIONS = np.round(np.arange(-0.95, 0.9, 0.1), 2)  # -0.95, -0.85, ..., 0.85 (19 values)
GRID_START, GRID_STEP, GRID_SIZE = -3.0, 0.17, 36  # -3, -2.83, ..., 2.95
LABELS = ("var_x", "var_y", "rho")
T_LABELS = ("var_x", "var_y", "rho", "df")
HEAVY_DF, LIGHT_DF = 2.0, 200.0  # the two degrees of freedom of the t extension


class HeatmapData(NamedTuple):
    """Images (n, size, size, 1) float32 in [0, 1], labels (n, k) float64, label names."""

    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    columns: tuple[str, ...]


# ---------------------------------------------------------------- grid and parameters
def grid_points(size: int = GRID_SIZE, start: float = GRID_START,
                step: float = GRID_STEP) -> np.ndarray:
    """``size`` evenly spaced coordinates ``start + step * k`` (default -3, -2.83, ..., 2.95)."""
    size = check_positive_int(size, "size", minimum=2)
    start, step = check_finite(start, "start"), check_positive(step, "step")
    return start + step * np.arange(size)


def parameter_grid() -> np.ndarray:
    """All 25 x 25 x 19 = 11,875 combinations (var_x, var_y, rho) of the study, shape (n, 3)."""
    mesh = np.meshgrid(VARIANCES, VARIANCES, CORRELATIONS, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def _check_parameters(var_x, var_y, rho, df=None):
    arrays = [check_positive_array(var_x, "var_x", ndim=(0, 1)),
              check_positive_array(var_y, "var_y", ndim=(0, 1)),
              as_finite_array(rho, "rho", ndim=(0, 1), dtype=np.float64)]
    if df is not None:
        arrays.append(check_positive_array(df, "df", ndim=(0, 1)))
    arrays = [np.atleast_1d(a) for a in arrays]
    check_broadcastable(dict(zip(T_LABELS, arrays, strict=False)))
    arrays = np.broadcast_arrays(*arrays)
    if np.any(np.abs(arrays[2]) >= 1):
        raise ValueError(f"rho must lie strictly between -1 and 1, got values up to "
                         f"|rho| = {np.abs(arrays[2]).max():.4g}")
    return arrays


def _check_grid(grid):
    if grid is None:
        return grid_points()
    grid = as_finite_array(grid, "grid", ndim=1, dtype=np.float64)
    if grid.size < 2:
        raise ValueError(f"grid must hold at least 2 points, got {grid.size}")
    return grid


def _quadratic_form(var_x, var_y, rho, grid):
    """Mahalanobis distance squared, (n, size, size), of every grid point."""
    x = grid[None, :, None]
    y = grid[None, None, :]
    sx, sy = (np.sqrt(a)[:, None, None] for a in (var_x, var_y))
    r = rho[:, None, None]
    u, v = x / sx, y / sy  # standardised, so that tiny variances do not underflow to 0 / 0
    with np.errstate(over="ignore", invalid="ignore"):
        q = (u * u - 2 * r * u * v + v * v) / (1 - r * r)
    if not np.all(np.isfinite(q)):
        raise ValueError("var_x and var_y are too small for the grid: the density overflows "
                         f"(smallest variance {min(var_x.min(), var_y.min()):.3g})")
    return q


# ---------------------------------------------------------------- densities
def normal_density(var_x, var_y, rho, grid=None) -> np.ndarray:
    """Bivariate normal density N(0, [[vx, r sx sy], [r sx sy, vy]]) on grid x grid,
    shape (n, size, size) for n parameter sets (scalars or 1-D arrays, broadcast)."""
    var_x, var_y, rho = _check_parameters(var_x, var_y, rho)
    grid = _check_grid(grid)
    q = _quadratic_form(var_x, var_y, rho, grid)
    det = (var_x * var_y * (1 - rho**2))[:, None, None]
    return np.exp(-0.5 * q) / (2 * np.pi * np.sqrt(det))


def t_density(var_x, var_y, rho, df, grid=None) -> np.ndarray:
    """Bivariate Student t density with scale matrix [[vx, r sx sy], [r sx sy, vy]] and
    ``df`` degrees of freedom on grid x grid, shape (n, size, size)."""
    var_x, var_y, rho, df = _check_parameters(var_x, var_y, rho, df)
    grid = _check_grid(grid)
    q = _quadratic_form(var_x, var_y, rho, grid)
    nu = df[:, None, None]
    det = (var_x * var_y * (1 - rho**2))[:, None, None]
    log_norm = gammaln((nu + 2) / 2) - gammaln(nu / 2) - np.log(nu * np.pi) - 0.5 * np.log(det)
    return np.exp(log_norm - (nu + 2) / 2 * np.log1p(q / nu))


def _max_normalise(log_kernel):
    """exp(log_kernel - its maximum over each image), float32: each image peaks at 1."""
    peak = log_kernel.max(axis=(1, 2), keepdims=True)
    return np.exp(log_kernel - peak).astype(np.float32)


def normal_heatmaps(var_x, var_y, rho, grid=None) -> np.ndarray:
    """Max-normalised normal densities (n, size, size), float32, each with maximum 1."""
    var_x, var_y, rho = _check_parameters(var_x, var_y, rho)
    return _max_normalise(-0.5 * _quadratic_form(var_x, var_y, rho, _check_grid(grid)))


def t_heatmaps(var_x, var_y, rho, df, grid=None) -> np.ndarray:
    """Max-normalised bivariate t densities (n, size, size), float32, each with maximum 1."""
    var_x, var_y, rho, df = _check_parameters(var_x, var_y, rho, df)
    nu = df[:, None, None]
    q = _quadratic_form(var_x, var_y, rho, _check_grid(grid))
    return _max_normalise(-(nu + 2) / 2 * np.log1p(q / nu))


# ---------------------------------------------------------------- data sets
def heavy_tail_rule(var_x, var_y, seed=0) -> np.ndarray:
    """The study's stochastic rule for the t extension: df = 2 where
    (var_x + var_y)^2 - u > 20 with u ~ U(0, 10), else df = 200."""
    var_x, var_y, _ = _check_parameters(var_x, var_y, 0.0)
    u = np.random.default_rng(check_seed(seed)).uniform(0.0, 10.0, var_x.shape)
    return np.where((var_x + var_y) ** 2 - u > 20.0, HEAVY_DF, LIGHT_DF)


def heavy_tail_probability(var_x, var_y) -> np.ndarray:
    """P(df = 2 | var_x, var_y) under ``heavy_tail_rule``: clip(((vx + vy)^2 - 20) / 10, 0, 1)."""
    var_x, var_y, _ = _check_parameters(var_x, var_y, 0.0)
    return np.clip(((var_x + var_y) ** 2 - 20.0) / 10.0, 0.0, 1.0)


def _check_test_fraction(test_fraction) -> float:
    fraction = check_finite(test_fraction, "test_fraction")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    return fraction


def _split(images, labels, columns, test_fraction, seed):
    x_train, x_test, y_train, y_test = train_test_split(
        images[..., None], labels, test_size=test_fraction, random_state=seed)
    return HeatmapData(x_train, x_test, y_train, y_test, columns)


def load_heatmaps(test_fraction: float = 0.2, seed: int = 19) -> HeatmapData:
    """The 11,875 normal heatmaps, labels (var_x, var_y, rho), split at random (``seed``)."""
    test_fraction = _check_test_fraction(test_fraction)
    seed = check_seed(seed, allow_none=False)
    params = parameter_grid()
    return _split(normal_heatmaps(*params.T), params, LABELS, test_fraction, seed)


def load_t_heatmaps(test_fraction: float = 0.2, seed: int = 19, df_seed: int = 25) -> HeatmapData:
    """The same grid as t densities, df from ``heavy_tail_rule`` (seeded by ``df_seed``);
    labels (var_x, var_y, rho, df)."""
    test_fraction = _check_test_fraction(test_fraction)
    seed = check_seed(seed, allow_none=False)
    df_seed = check_seed(df_seed, "df_seed", allow_none=False)
    params = parameter_grid()
    df = heavy_tail_rule(params[:, 0], params[:, 1], seed=df_seed)
    images = t_heatmaps(*params.T, df)
    return _split(images, np.column_stack([params, df]), T_LABELS, test_fraction, seed)


# ---------------------------------------------------------------- image statistics


def image_moments(images, grid=None) -> np.ndarray:
    """Treat each non-negative image as weights on grid x grid and return its weighted
    (var_x, var_y, rho) about the origin, shape (n, 3). The grid truncates the tails, so
    wide densities read smaller than their true variances; use it to compare images."""
    images = as_finite_array(images, "images", ndim=(3, 4), dtype=np.float64)
    grid = _check_grid(grid)
    if images.shape[1:3] != (grid.size, grid.size) or images.shape[3:] not in ((), (1,)):
        raise ValueError(f"images must be (n, {grid.size}, {grid.size}) or (n, {grid.size}, "
                         f"{grid.size}, 1) for this grid, got {images.shape}")
    images = images.reshape(images.shape[:3])
    w = np.clip(images, 0.0, None)
    total = w.sum(axis=(1, 2))
    if np.any(total <= 0):
        raise ValueError("images must each have some positive pixel")
    x, y = grid[None, :, None], grid[None, None, :]
    sxx = (w * x * x).sum(axis=(1, 2)) / total
    syy = (w * y * y).sum(axis=(1, 2)) / total
    sxy = (w * x * y).sum(axis=(1, 2)) / total
    return np.column_stack([sxx, syy, sxy / np.sqrt(sxx * syy)])


# ---------------------------------------------------------------- backbones


__all__ = [
    "CORRELATIONS", "GRID_SIZE", "GRID_START", "GRID_STEP", "HEAVY_DF", "LABELS", "LIGHT_DF",
    "T_LABELS", "VARIANCES", "HeatmapData", "grid_points",
    "heavy_tail_probability", "heavy_tail_rule", "image_moments",
    "load_heatmaps", "load_t_heatmaps", "normal_density", "normal_heatmaps", "parameter_grid",
    "t_density", "t_heatmaps",
]

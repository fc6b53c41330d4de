"""The S-curve toy problem: a 1-D variable embedded as an S in the unit square, sampled with
optional noise, and a dense reference curve. Used by the S-curve notebook (scored with
``evaluation.distances.chamfer_distance``)."""

from __future__ import annotations

import numpy as np

from helpers.infra.checks import as_finite_array, check_finite, check_positive_int, check_seed


def embed_s_curve(t) -> np.ndarray:
    """Map t in [0, 1] to points (n, 2) on an S-shaped curve inside the unit square.

    With u = 3 pi (t - 1/2): x_1 = (1 + sin u) / 2, x_2 = (sign(u) (cos u - 1) + 2) / 4, so
    t = 0 maps to (1, 3/4), t = 1/2 to the centre and t = 1 to (0, 1/4).
    """
    t = as_finite_array(t, "t", ndim=1, dtype=np.float64)
    if t.min() < 0 or t.max() > 1:
        raise ValueError(f"t must lie in [0, 1], got values in [{t.min():.3g}, {t.max():.3g}]")
    u = 3.0 * np.pi * (t - 0.5)
    return np.column_stack([(1.0 + np.sin(u)) / 2.0, (np.sign(u) * (np.cos(u) - 1.0) + 2.0) / 4.0])


def s_curve(n: int = 300, noise: float = 0.0, seed: int | None = None):
    """Draw t ~ U(0, 1) and return ``(t, points)``, points float32 (n, 2) on the S-curve
    plus optional isotropic Gaussian noise of standard deviation ``noise``."""
    n = check_positive_int(n, "n")
    noise = check_finite(noise, "noise")
    if noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    rng = np.random.default_rng(check_seed(seed))
    t = rng.random(n)
    points = embed_s_curve(t) + noise * rng.standard_normal((n, 2))
    return t.astype(np.float32), points.astype(np.float32)


def reference_curve(n: int = 2000) -> np.ndarray:
    """``n`` points evenly spaced in t along the noise-free curve, to score models against."""
    return embed_s_curve(np.linspace(0.0, 1.0, check_positive_int(n, "n", minimum=2)))



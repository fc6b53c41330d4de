"""Per-example loss terms in nats, written with ``keras.ops``: reconstruction terms
(Bernoulli and Gaussian negative log-likelihoods), the closed-form Gaussian KL divergences
(diagonal and full covariance) and the Gaussian log-density. Used by the autoencoders and
by the importance-sampled likelihood in ``evaluation.likelihood``."""

from __future__ import annotations

import math

from keras import ops

LOG_2PI = math.log(2.0 * math.pi)

BCE_EPSILON = 1e-7  # probabilities are clipped to [eps, 1 - eps], as Keras does

def _feature_sum(values):
    """Sum over every axis but the first (the batch axis)."""
    return ops.sum(ops.reshape(values, (ops.shape(values)[0], -1)), axis=1)

def bernoulli_nll(x, probs):
    """-log p(x | probs) for independent Bernoulli features: binary cross-entropy summed."""
    p = ops.clip(probs, BCE_EPSILON, 1.0 - BCE_EPSILON)
    return _feature_sum(-(x * ops.log(p) + (1.0 - x) * ops.log(1.0 - p)))

def gaussian_nll(x, mean, log_sigma):
    """-log N(x | mean, sigma^2 I) summed over features, ``log_sigma`` a scalar or per feature."""
    sigma_term = (x - mean) * ops.exp(-log_sigma)
    return _feature_sum(0.5 * ops.square(sigma_term) + log_sigma + 0.5 * LOG_2PI)

def gaussian_kl(z_mean, z_log_var):
    """KL(N(z_mean, diag exp(z_log_var)) || N(0, I)) per example, in closed form."""
    return 0.5 * ops.sum(ops.exp(z_log_var) + ops.square(z_mean) - 1.0 - z_log_var, axis=-1)

def cholesky_factor(raw):
    """Lower-triangular factor L with a positive diagonal from an unconstrained (..., d, d)
    array A: L = D (I + M), with D = diag(exp(A_ii)) and M the strict lower triangle of A,
    so L_ii = exp(A_ii) and L_ij = exp(A_ii) A_ij below the diagonal: A_ij is L_ij in units
    of L_ii, and one raw number, A_ii, narrows a whole row, as a log-variance narrows a
    coordinate of a diagonal posterior. Every Cholesky factor is reached (A_ij = L_ij / L_ii)."""
    d = raw.shape[-1]
    eye = ops.eye(d, dtype=raw.dtype)
    scale = ops.exp(ops.diagonal(raw, axis1=-2, axis2=-1))
    return ops.expand_dims(scale, -1) * (ops.tril(raw, -1) + eye)

def gaussian_kl_full(z_mean, chol):
    """KL(N(z_mean, L L^T) || N(0, I)) per example for a Cholesky factor ``chol`` = L:
    (tr(L L^T) + |mu|^2 - d - log det(L L^T)) / 2, with log det = 2 sum log diag(L)."""
    d = z_mean.shape[-1]
    trace = ops.sum(ops.square(chol), axis=(-2, -1))
    log_det = 2.0 * ops.sum(ops.log(ops.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    return 0.5 * (trace + ops.sum(ops.square(z_mean), axis=-1) - d - log_det)

def log_normal_diag(z, mean, log_var):
    """log N(z | mean, diag exp(log_var)) summed over the last axis."""
    return -0.5 * ops.sum(LOG_2PI + log_var + ops.square(z - mean) * ops.exp(-log_var), axis=-1)

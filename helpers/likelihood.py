"""Per-example reconstruction terms, the Gaussian KL, and importance-sampled log p(x)."""

from __future__ import annotations

import math

import numpy as np
from keras import ops

from helpers.checks import as_finite_array, check_positive, check_positive_int

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
    """Lower-triangular factor with a positive diagonal from an unconstrained (..., d, d)
    array: the strict lower triangle is kept, the diagonal exponentiated."""
    d = raw.shape[-1]
    eye = ops.eye(d, dtype=raw.dtype)
    diagonal = ops.diagonal(raw, axis1=-2, axis2=-1)
    return ops.tril(raw, -1) + eye * ops.expand_dims(ops.exp(diagonal), -1)


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


def importance_log_likelihood(vae, x, n_samples: int = 1000, batch_size: int = 10,
                              seed: int = 0, chunk: int = 1000) -> np.ndarray:
    """Estimate log p(x) per example by importance sampling with the encoder as proposal.

    log p(x) ~ logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K, z_k ~ q(z|x)
    (Burda et al. 2015). A lower bound in expectation that tightens as ``n_samples`` grows.
    """
    import keras

    from helpers.models import VAE, FullCovVAE

    if not isinstance(vae, VAE) or isinstance(vae, FullCovVAE):
        raise TypeError("vae must be a models.VAE with a diagonal Gaussian posterior (the "
                        f"proposal), got {type(vae).__name__}")
    n_samples = check_positive_int(n_samples, "n_samples")
    batch_size = check_positive_int(batch_size, "batch_size")
    chunk = check_positive_int(chunk, "chunk")
    x = vae.check_data(x, "x")
    generator = keras.random.SeedGenerator(seed)
    out = np.empty(len(x), dtype=np.float64)
    for start in range(0, len(x), batch_size):
        xb = ops.convert_to_tensor(x[start:start + batch_size])
        z_mean, z_log_var = vae.encoder(xb, training=False)
        n, d = int(z_mean.shape[0]), int(z_mean.shape[1])
        log_w = []
        for k0 in range(0, n_samples, chunk):  # K samples per example, in chunks of ``chunk``
            k = min(chunk, n_samples - k0)
            eps = keras.random.normal((k, n, d), seed=generator)
            z = z_mean[None] + ops.exp(0.5 * z_log_var)[None] * eps  # (k, n, d)
            flat_z = ops.reshape(z, (k * n, d))
            x_rep = ops.reshape(ops.broadcast_to(xb[None], (k, *xb.shape)), (k * n, *xb.shape[1:]))
            log_px_z = -vae.reconstruction_loss(x_rep, vae.decoder(flat_z, training=False))
            log_pz = log_normal_diag(flat_z, ops.zeros_like(flat_z), ops.zeros_like(flat_z))
            log_qz = log_normal_diag(z, z_mean[None], z_log_var[None])
            log_w.append(ops.reshape(log_px_z + log_pz, (k, n)) - log_qz)
        log_w = ops.concatenate(log_w, axis=0)
        out[start:start + n] = ops.convert_to_numpy(
            ops.logsumexp(ops.cast(log_w, "float64"), axis=0)) - math.log(n_samples)
    if not np.all(np.isfinite(out)):
        bad = int(np.flatnonzero(~np.isfinite(out))[0])
        raise ValueError(f"log p(x) is not finite for example {bad} of x: the model's "
                         "likelihood or posterior overflowed; check that x is scaled as in "
                         "training and that the model's loss is finite")
    return out


def base_rate_bias(x, pseudocount: float = 1.0) -> np.ndarray:
    """Visible biases of the independent-pixel model fitted to binary ``x``, smoothed:
    p_i = (count_i + pseudocount) / (n + 2 pseudocount), bias = log(p / (1 - p))."""
    x = as_finite_array(x, "x", ndim=2, dtype=np.float64)
    pseudocount = check_positive(pseudocount, "pseudocount")  # 0 gives -inf for unseen pixels
    p = (x.sum(axis=0) + pseudocount) / (len(x) + 2.0 * pseudocount)
    return np.log(p) - np.log1p(-p)


def independent_log_likelihood(x_train, x_test, pseudocount: float = 1.0) -> float:
    """Mean test log-likelihood of independent Bernoulli pixels fitted to ``x_train``."""
    bias = base_rate_bias(x_train, pseudocount)
    x = as_finite_array(x_test, "x_test", ndim=2, dtype=np.float64)
    if x.shape[1] != len(bias):
        raise ValueError(f"x_test must have {len(bias)} columns like x_train, got shape {x.shape}")
    return float(np.mean(x @ bias - np.logaddexp(0.0, bias).sum()))

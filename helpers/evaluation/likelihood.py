"""Log-likelihoods of test data: the importance-sampled log p(x) of a VAE (Burda et al.
2015) and the exact log-likelihood of the independent-pixel model every generative model of
binary images must beat. Used by the MNIST VAE and RBM notebooks."""

from __future__ import annotations

import math

import numpy as np
from keras import ops

from helpers.infra.checks import as_finite_array, check_positive, check_positive_int
from helpers.models.losses import log_normal_diag


def importance_log_likelihood(vae, x, n_samples: int = 1000, batch_size: int = 10,
                              seed: int = 0, chunk: int = 1000) -> np.ndarray:
    """Estimate log p(x) per example by importance sampling with the encoder as proposal.

    log p(x) ~ logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K, z_k ~ q(z|x)
    (Burda et al. 2015). A lower bound in expectation that tightens as ``n_samples`` grows.
    """
    import keras

    from helpers.models.autoencoders import VAE, FullCovVAE

    if not isinstance(vae, VAE) or isinstance(vae, FullCovVAE):
        raise TypeError("vae must be an autoencoders.VAE with a diagonal Gaussian posterior (the "
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


def _binary(x, name: str) -> np.ndarray:
    """``x`` as a float64 (n, d) array of 0s and 1s; anything else raises, naming ``name``."""
    x = as_finite_array(x, name, ndim=2, dtype=np.float64)
    if not np.isin(x, (0.0, 1.0)).all():
        raise ValueError(f"{name} must be binary (0/1) for independent Bernoulli pixels; "
                         f"binarise it first (mnist.binarize), got values in "
                         f"[{x.min():.4g}, {x.max():.4g}]")
    return x


def base_rate_bias(x, pseudocount: float = 1.0, name: str = "x") -> np.ndarray:
    """Visible biases of the independent-pixel model fitted to binary ``x``, smoothed:
    p_i = (count_i + pseudocount) / (n + 2 pseudocount), bias = log(p / (1 - p)).
    ``name`` is the argument's name in error messages."""
    x = _binary(x, name)
    if isinstance(pseudocount, (bool, np.bool_)):
        raise TypeError(f"pseudocount must be a positive number, got {pseudocount!r}")
    pseudocount = check_positive(pseudocount, "pseudocount")  # 0 gives -inf for unseen pixels
    p = (x.sum(axis=0) + pseudocount) / (len(x) + 2.0 * pseudocount)
    return np.log(p) - np.log1p(-p)


def independent_log_likelihood(x_train, x_test, pseudocount: float = 1.0) -> float:
    """Mean test log-likelihood of independent Bernoulli pixels fitted to ``x_train``; both
    must be binary."""
    bias = base_rate_bias(x_train, pseudocount, name="x_train")
    x = _binary(x_test, "x_test")
    if x.shape[1] != len(bias):
        raise ValueError(f"x_test must have {len(bias)} columns like x_train, got shape {x.shape}")
    return float(np.mean(x @ bias - np.logaddexp(0.0, bias).sum()))

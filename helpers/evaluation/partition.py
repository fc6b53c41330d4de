"""The partition function of a Bernoulli RBM, and with it the log-likelihood: log Z exactly
by enumerating the hidden states (tiny models, for tests), or estimated by annealed
importance sampling (Salakhutdinov & Murray 2008); a floor log Z can never be under; the
average log-likelihood of data. Used by the RBM notebook."""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from helpers.infra.checks import as_finite_array, check_finite, check_positive_int, check_seed
from helpers.infra.config import require_tensorflow_backend
from helpers.models.rbm import RBM

require_tensorflow_backend(__name__)


def _check_rbm(rbm) -> RBM:
    if not isinstance(rbm, RBM):
        raise TypeError(f"rbm must be a models.rbm.RBM, got {type(rbm).__name__}")
    return rbm


def _weights64(rbm):
    return (np.asarray(rbm.W.numpy(), np.float64), np.asarray(rbm.b.numpy(), np.float64),
            np.asarray(rbm.c.numpy(), np.float64))

def exact_log_partition(rbm, max_hidden: int = 22) -> float:
    """log Z by summing over all 2^n_hidden hidden states (visible units summed out
    analytically): log Z = logsumexp_h [c.h + sum_i softplus(b_i + (W h)_i)]."""
    rbm = _check_rbm(rbm)
    max_hidden = check_positive_int(max_hidden, "max_hidden")
    if rbm.n_hidden > max_hidden:
        raise ValueError(f"exact log Z enumerates 2^n_hidden states; n_hidden = {rbm.n_hidden} "
                         f"exceeds max_hidden = {max_hidden}")
    W, b, c = _weights64(rbm)
    total, chunk = [], 1 << 14
    for start in range(0, 1 << rbm.n_hidden, chunk):
        codes = np.arange(start, min(start + chunk, 1 << rbm.n_hidden))
        h = ((codes[:, None] >> np.arange(rbm.n_hidden)) & 1).astype(np.float64)
        terms = h @ c + np.logaddexp(0.0, h @ W.T + b).sum(axis=1)
        total.append(np.logaddexp.reduce(terms))
    return float(np.logaddexp.reduce(total))

def ais_schedule(n_betas: int = 14_500) -> np.ndarray:
    """Inverse temperatures from 0 to 1, denser near 1, in the proportions of Salakhutdinov &
    Murray (2008): 500 steps to 0.5, 4,000 to 0.9 and 10,000 to 1 out of 14,500."""
    n_betas = check_positive_int(n_betas, "n_betas", minimum=3)
    n1 = max(1, round(n_betas * 500 / 14_500))
    n2 = max(1, round(n_betas * 4_000 / 14_500))
    n3 = max(1, n_betas - n1 - n2)
    return np.concatenate([np.linspace(0.0, 0.5, n1, endpoint=False),
                           np.linspace(0.5, 0.9, n2, endpoint=False), np.linspace(0.9, 1.0, n3)])

@tf.function
def _ais_weights(W, b, c, b_a, betas, v, seed_generator):
    """Log importance weights of AIS runs started at ``v``, annealing through ``betas``."""
    log_w = tf.zeros(tf.shape(v)[0], tf.float64)
    vb_a, vb = ops.matmul(v, b_a[:, None])[:, 0], ops.matmul(v, b[:, None])[:, 0]
    pre = ops.matmul(v, W) + c
    for k in tf.range(1, tf.shape(betas)[0]):
        beta_old, beta = betas[k - 1], betas[k]
        # log p*_beta(v) - log p*_beta_old(v), where
        # log p*_beta(v) = (1 - beta) b_A.v + beta b.v + sum_j softplus(beta (c_j + v.W_j))
        step = (beta - beta_old) * (vb - vb_a) + ops.sum(
            ops.softplus(beta * pre) - ops.softplus(beta_old * pre), axis=-1)
        log_w += tf.cast(step, tf.float64)
        # one Gibbs sweep that leaves p_beta invariant
        u_h = keras.random.uniform(ops.shape(pre), seed=seed_generator)
        h = ops.cast(u_h < ops.sigmoid(beta * pre), v.dtype)
        logits = (1.0 - beta) * b_a + beta * (ops.matmul(h, ops.transpose(W)) + b)
        u_v = keras.random.uniform(ops.shape(v), seed=seed_generator)
        v = ops.cast(u_v < ops.sigmoid(logits), v.dtype)
        vb_a, vb = ops.matmul(v, b_a[:, None])[:, 0], ops.matmul(v, b[:, None])[:, 0]
        pre = ops.matmul(v, W) + c
    return log_w

def ais_log_partition(rbm, base_bias, n_runs: int = 100, n_betas: int = 14_500,
                      seed: int = 0) -> tuple[float, float]:
    """Estimate log Z of ``rbm`` by annealed importance sampling from an independent-pixel
    base model with visible biases ``base_bias`` (see ``likelihood.base_rate_bias``).

    Returns ``(log_z, log_z_std)``: the estimate log(mean w) and the standard error of
    log Z from the spread of the importance weights (delta method).
    """
    rbm = _check_rbm(rbm)
    n_runs = check_positive_int(n_runs, "n_runs")
    seed = check_seed(seed, allow_none=False)
    base_bias = as_finite_array(base_bias, "base_bias", ndim=1, dtype=np.float64)
    if base_bias.shape != (rbm.n_visible,):
        raise ValueError(f"base_bias must have shape ({rbm.n_visible},), got {base_bias.shape}")
    generator = keras.random.SeedGenerator(seed)
    rng = np.random.default_rng(seed)
    p_a = 1.0 / (1.0 + np.exp(-base_bias))
    v0 = (rng.random((n_runs, rbm.n_visible)) < p_a).astype(np.float32)
    log_w = _ais_weights(rbm.W, rbm.b, rbm.c, tf.constant(base_bias, tf.float32),
                         tf.constant(ais_schedule(n_betas), tf.float32), tf.constant(v0),
                         generator).numpy()
    log_z_base = rbm.n_hidden * math.log(2.0) + float(np.logaddexp(0.0, base_bias).sum())
    shift = log_w.max()
    w = np.exp(log_w - shift)
    log_z = log_z_base + shift + math.log(w.mean())
    log_z_std = float(w.std(ddof=1) / (math.sqrt(n_runs) * w.mean())) if n_runs > 1 else math.inf
    return float(log_z), log_z_std

def log_partition_lower_bound(rbm, states=None) -> float:
    """A bound that log Z can never be below: Z >= prod_i (1 + exp(b_i)) (the h = 0 terms of
    the sum) and Z >= exp(-F(v)) for every state v in ``states`` (binary, e.g. fantasy
    particles). An AIS estimate below it has missed probability mass and must be rejected."""
    bound = float(np.logaddexp(0.0, np.asarray(_check_rbm(rbm).b.numpy(), np.float64)).sum())
    if states is not None:
        states = rbm.check_binary(states, "states")
        bound = max(bound, float(np.max(-ops.convert_to_numpy(rbm.free_energy(states)))))
    return bound

def average_log_likelihood(rbm, x, log_z: float) -> float:
    """Mean log p(x) = mean(-F(x)) - log Z over binary examples ``x``, in nats."""
    x = _check_rbm(rbm).check_binary(x)
    if isinstance(log_z, (bool, np.bool_)):
        raise TypeError(f"log_z must be a finite number, got {log_z!r}")
    log_z = check_finite(log_z, "log_z")
    return float(-np.mean(ops.convert_to_numpy(rbm.free_energy(x)), dtype=np.float64) - log_z)

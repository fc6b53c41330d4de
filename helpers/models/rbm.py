"""Bernoulli-Bernoulli restricted Boltzmann machine: Gibbs sampling, free energy, training
by CD-k or persistent CD, and the pseudo-log-likelihood. Used by the RBM notebook; its
partition function and log-likelihood are in ``evaluation.partition``.

Energy: E(v, h) = -b.v - c.h - v^T W h; free energy F(v) = -b.v - sum_j softplus(c_j + v.W_j).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from helpers.data.mnist import binarize as sample_binarization
from helpers.infra.checks import (
    as_finite_array,
    check_bool,
    check_finite,
    check_positive_int,
    check_seed,
)
from helpers.infra.config import require_tensorflow_backend

require_tensorflow_backend(__name__)


def _first_examples(data, n_batches: int) -> np.ndarray:
    """The examples of the first ``n_batches`` batches of a tf.data or Keras data set."""
    batches = data.take(n_batches) if isinstance(data, tf.data.Dataset) else (
        data[i] for i in range(min(len(data), n_batches)))
    return np.concatenate([np.asarray(keras.utils.unpack_x_y_sample_weight(batch)[0])
                           for batch in batches])


@keras.saving.register_keras_serializable(package="helpers")
class RBM(keras.Model):
    """RBM trained on the free-energy gap F(data) - F(model sample), whose gradient is the
    contrastive-divergence estimate of the negative log-likelihood gradient. ``k`` Gibbs
    steps start at the data (CD-k) or, with ``persistent=True``, at ``n_chains`` chains
    kept between updates (PCD). ``weight_decay`` adds an L2 penalty on W."""

    def __init__(self, n_visible=784, n_hidden=500, k=1, persistent=False, n_chains=100,
                 weight_decay=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.n_visible = check_positive_int(n_visible, "n_visible")
        self.n_hidden = check_positive_int(n_hidden, "n_hidden")
        self.k = check_positive_int(k, "k")
        self.n_chains = check_positive_int(n_chains, "n_chains")
        self.persistent = check_bool(persistent, "persistent")
        if isinstance(weight_decay, (bool, np.bool_)):
            raise TypeError(f"weight_decay must be a number >= 0, got {weight_decay!r}")
        if check_finite(weight_decay, "weight_decay") < 0:
            raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
        self.weight_decay, self.seed = float(weight_decay), check_seed(seed)
        self.W = self.add_weight(shape=(n_visible, n_hidden), name="W",
                                 initializer=keras.initializers.RandomNormal(0.0, 0.01, seed))
        self.b = self.add_weight(shape=(n_visible,), name="visible_bias", initializer="zeros")
        self.c = self.add_weight(shape=(n_hidden,), name="hidden_bias", initializer="zeros")
        self.chains = self.add_weight(shape=(self.n_chains, n_visible), name="chains",
                                      initializer="zeros", trainable=False)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.gap_tracker = keras.metrics.Mean(name="free_energy_gap")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_error")
        self.pll_tracker = keras.metrics.Mean(name="pseudo_loglik")
        self.built = True

    @property
    def metrics(self):
        return [self.gap_tracker, self.reconstruction_tracker, self.pll_tracker]

    # ---- conditionals, sampling, free energy ----
    def hidden_probs(self, v):
        """p(h_j = 1 | v) = sigmoid(c_j + v.W_j)."""
        return ops.sigmoid(ops.matmul(v, self.W) + self.c)

    def visible_probs(self, h):
        """p(v_i = 1 | h) = sigmoid(b_i + W_i.h)."""
        return ops.sigmoid(ops.matmul(h, ops.transpose(self.W)) + self.b)

    def _bernoulli(self, p):
        u = keras.random.uniform(ops.shape(p), seed=self.seed_generator)
        return ops.cast(u < p, p.dtype)

    def gibbs_step(self, v, p_h=None):
        """One v -> h -> v sweep; returns the new visible sample and its probabilities.
        ``p_h``: p(h | v), when already computed."""
        p_h = self.hidden_probs(v) if p_h is None else p_h
        p_v = self.visible_probs(self._bernoulli(p_h))
        return self._bernoulli(p_v), p_v

    def free_energy(self, v):
        """F(v) = -b.v - sum_j softplus(c_j + v.W_j), so p(v) = exp(-F(v)) / Z."""
        v = ops.convert_to_tensor(v, dtype=self.W.dtype)  # NumPy * variable would be constant
        if v.shape[-1] is not None and v.shape[-1] != self.n_visible:
            raise ValueError(f"v must have shape (n, {self.n_visible}), got {tuple(v.shape)}")
        return self._free_energy(v, ops.matmul(v, self.W) + self.c)

    def _free_energy(self, v, pre):
        """F(v) from the hidden units' inputs ``pre`` = c + v.W."""
        return -ops.sum(v * self.b, axis=-1) - ops.sum(ops.softplus(pre), axis=-1)

    def call(self, v, training=False):
        """Mean-field reconstruction p(v | h = p(h | v))."""
        return self.visible_probs(self.hidden_probs(v))

    # ---- training ----
    def _batch(self, data):
        """The visible batch, checked to be binary inside the step, for every input type."""
        v, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        v = ops.cast(v, self.W.dtype)
        binary = ops.all(ops.equal(v * (1.0 - v), 0.0))
        tf.debugging.Assert(binary, ["RBM: x must be binary (0/1) for a Bernoulli RBM; "
                                     "binarise it first (mnist.binarize or "
                                     "mnist.DynamicBinarization); got values in",
                                     ops.min(v), ops.max(v)])
        return v

    def train_step(self, data):
        v0 = self._batch(data)
        # n log p(v_i | v_-i) for one pixel per example, with the weights the step starts from;
        # the pixels come from their own stateless stream, so the training draws are unchanged
        step_seed = ops.stack([ops.convert_to_tensor(self.seed or 0, "int64"),
                               ops.cast(self.optimizer.iterations, "int64")])
        pixels = tf.random.stateless_uniform(ops.shape(v0)[:1], step_seed, minval=0,
                                             maxval=self.n_visible, dtype="int32")
        with tf.GradientTape() as tape:
            # the hidden inputs of the data, computed once: the loss, the first Gibbs sweep of
            # CD-k and both reported metrics use them
            pre0 = ops.matmul(v0, self.W) + self.c
            p_h0 = ops.sigmoid(pre0)
            vk, p_h = (self.chains, None) if self.persistent else (v0, p_h0)
            for _ in range(self.k):
                vk, _ = self.gibbs_step(vk, p_h)
                p_h = None
            vk = ops.stop_gradient(vk)
            f0 = self._free_energy(v0, pre0)
            gap = ops.mean(f0) - ops.mean(self.free_energy(vk))
            loss = gap + 0.5 * self.weight_decay * ops.sum(ops.square(self.W))
        # both metrics with the weights the step starts from, read before the update
        pll = self._pseudo_log_likelihood(v0, pixels, pre0)
        reconstruction = ops.sum(ops.square(v0 - self.visible_probs(p_h0)), axis=-1)
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply(grads, self.trainable_weights)
        if self.persistent:
            self.chains.assign(vk)
        self.gap_tracker.update_state(gap)
        self.pll_tracker.update_state(pll)
        self.reconstruction_tracker.update_state(reconstruction)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        v = self._batch(data)
        self.reconstruction_tracker.update_state(ops.sum(ops.square(v - self(v)), axis=-1))
        pixels = keras.random.randint(ops.shape(v)[:1], 0, self.n_visible,
                                      seed=self.seed_generator)
        self.pll_tracker.update_state(self._pseudo_log_likelihood(v, pixels))
        return {m.name: m.result() for m in self.metrics[1:]}

    def _pseudo_log_likelihood(self, v, pixels, pre=None):
        # flipping pixel i by s = 1 - 2 v_i moves the hidden inputs by s W_i and -b.v by
        # -s b_i, so F(v') - F(v) needs no second product with W
        pre = ops.matmul(v, self.W) + self.c if pre is None else pre
        sign = 1.0 - 2.0 * ops.take_along_axis(v, pixels[:, None], axis=1)
        shifted = pre + sign * ops.take(self.W, pixels, axis=0)
        gap = (-sign[:, 0] * ops.take(self.b, pixels)
               - ops.sum(ops.softplus(shifted) - ops.softplus(pre), axis=-1))
        return self.n_visible * ops.log_sigmoid(gap)

    def check_binary(self, x, name="x", binarize=False, seed=None) -> np.ndarray:
        """Return ``x`` as float32 0/1 data of the right width; non-binary values raise
        unless ``binarize`` asks for a stochastic binarisation of values in [0, 1]."""
        binarize = check_bool(binarize, "binarize")
        arr = as_finite_array(x, name, ndim=2)
        if arr.shape[1] != self.n_visible:
            raise ValueError(f"{name} must have shape (n, {self.n_visible}), got {arr.shape}")
        if not np.isin(arr, (0.0, 1.0)).all():
            if not binarize:
                raise ValueError(f"{name} must be binary (0/1) for a Bernoulli RBM; pass "
                                 "binarize=True to sample a binarisation of values in [0, 1]")
            arr = sample_binarization(arr, seed=seed)
        return arr

    def fit(self, x=None, y=None, binarize=False, **kwargs):
        """``keras.Model.fit`` after checking (or, with ``binarize=True``, binarising) arrays;
        persistent chains start at random training examples."""
        binarize = check_bool(binarize, "binarize")
        if isinstance(x, (np.ndarray, list)) or tf.is_tensor(x):
            x = self.check_binary(x, binarize=binarize, seed=self.seed)
        if self.persistent and float(ops.max(ops.abs(self.chains))) == 0.0:
            start = x if isinstance(x, np.ndarray) else _first_examples(x, 1 + self.n_chains // 10)
            rows = np.random.default_rng(self.seed).choice(len(start), self.n_chains)
            self.chains.assign(np.asarray(start[rows], dtype="float32"))
        return super().fit(x, y, **kwargs)

    def sample(self, n_steps, start=None, n=100):
        """Run Gibbs chains for ``n_steps`` sweeps from ``start`` (default: uniform noise) and
        return the final visible probabilities as a NumPy array."""
        n_steps = check_positive_int(n_steps, "n_steps")
        if start is None:
            n = check_positive_int(n, "n")
            start = np.random.default_rng(self.seed).integers(0, 2, (n, self.n_visible))
        v = ops.convert_to_tensor(self.check_binary(start, "start"))
        return ops.convert_to_numpy(self._chain(v, tf.constant(n_steps)))

    @tf.function
    def _chain(self, v, n_steps):
        p_v = self.visible_probs(self.hidden_probs(v))
        for _ in tf.range(n_steps):
            v, p_v = self.gibbs_step(v)
        return p_v

    def pseudo_log_likelihood(self, v, seed=0, indices=None) -> np.ndarray:
        """Stochastic pseudo-log-likelihood per example: n_visible * log p(v_i | v_-i) for one
        random pixel i per example (``indices`` fixes them), = n log sigmoid(F(v') - F(v))
        with v' the example with pixel i flipped."""
        v = self.check_binary(v, "v")
        if indices is None:
            indices = np.random.default_rng(check_seed(seed, allow_none=False)).integers(
                0, self.n_visible, len(v))
        indices = np.asarray(indices)
        if indices.shape != (len(v),) or not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(f"indices must hold one integer pixel index per example, shape "
                             f"({len(v)},), got {indices.dtype} array of shape {indices.shape}")
        if indices.min() < 0 or indices.max() >= self.n_visible:
            raise ValueError(f"indices must lie in [0, {self.n_visible}), got values in "
                             f"[{indices.min()}, {indices.max()}]")
        return ops.convert_to_numpy(self._pseudo_log_likelihood(
            ops.convert_to_tensor(v), ops.convert_to_tensor(np.asarray(indices, np.int32))))

    def get_config(self):
        return {"name": self.name, "n_visible": self.n_visible, "n_hidden": self.n_hidden,
                "k": self.k, "persistent": self.persistent, "n_chains": self.n_chains,
                "weight_decay": self.weight_decay, "seed": self.seed}



"""Autoencoder model classes in Keras 3: a VAE with Bernoulli or Gaussian likelihood, a VAE
with a full-covariance posterior, and a plain autoencoder. Used by every VAE notebook (the
Ising notebook's checkerboard VAE subclasses ``VAE``)."""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from helpers.infra.checks import (
    as_finite_array,
    check_positive,
    check_positive_int,
    check_seed,
    check_unit_interval,
)
from helpers.infra.config import require_tensorflow_backend
from helpers.models.builders import SubmodelsConfig
from helpers.models.losses import (
    bernoulli_nll,
    cholesky_factor,
    gaussian_kl,
    gaussian_kl_full,
    gaussian_nll,
)

require_tensorflow_backend(__name__)

LIKELIHOODS = ("bernoulli", "gaussian")


class _ReconstructionModel(SubmodelsConfig, keras.Model):
    """Shared machinery: likelihood, trackers, train/test steps and input checks."""

    _parts = ("encoder", "decoder")

    def __init__(self, encoder, decoder, likelihood="bernoulli", sigma=1.0, learn_sigma=False,
                 **kwargs):
        super().__init__(**kwargs)
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        self.encoder, self.decoder = encoder, decoder
        self.likelihood = likelihood
        self.sigma = check_positive(sigma, "sigma")
        self.learn_sigma = bool(learn_sigma)
        if likelihood == "gaussian":  # decoder scale; trainable when learn_sigma
            self.log_sigma = self.add_weight(
                shape=(), name="log_sigma", trainable=self.learn_sigma,
                initializer=keras.initializers.Constant(math.log(self.sigma)))
        self._check_parts(encoder, decoder)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.built = encoder.built and decoder.built  # nothing else to build

    @staticmethod
    def _check_parts(encoder, decoder) -> None:
        """The decoder must take the encoder's code and return the encoder's input shape."""
        for part, name in ((encoder, "encoder"), (decoder, "decoder")):
            if not isinstance(part, keras.Model):
                raise TypeError(f"{name} must be a keras.Model, got {type(part).__name__}")
        try:  # functional models know their shapes; custom layers are checked when called
            x_shape, out_shape = tuple(encoder.input_shape[1:]), tuple(decoder.output_shape[1:])
            code_dim, z_dim = encoder.outputs[0].shape[-1], decoder.input_shape[-1]
        except (AttributeError, ValueError, TypeError):
            return
        if code_dim != z_dim:
            raise ValueError(f"decoder takes latent vectors of size {z_dim}, but the encoder's "
                             f"code has size {code_dim}; build both with the same latent_dim")
        if x_shape != out_shape:
            raise ValueError(f"decoder outputs shape {out_shape}, but the encoder takes inputs of "
                             f"shape {x_shape}; they must match to reconstruct the input")

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker]

    def reconstruction_loss(self, target, output):
        """-log p(target | decoder output) per example, in nats."""
        if self.likelihood == "bernoulli":
            return bernoulli_nll(target, output)
        return gaussian_nll(target, output, self.log_sigma)

    def compute_terms(self, x, target, training=False):
        """Per-example loss terms as a dict with at least ``loss`` and ``reconstruction``."""
        raise NotImplementedError

    def _step_results(self, terms):
        for tracker in self.metrics:
            tracker.update_state(terms[tracker.name])
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        x, target = self._unpack(data)
        with tf.GradientTape() as tape:
            terms = self.compute_terms(x, target, training=True)
            loss = ops.mean(terms["loss"])
        tf.debugging.assert_all_finite(
            loss, f"{type(self).__name__}: the loss became NaN or inf; check that the data are "
            "scaled (e.g. to [0, 1]) and finite, or lower the learning rate")
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply(grads, self.trainable_weights)
        return self._step_results(terms)

    def test_step(self, data):
        x, target = self._unpack(data)
        return self._step_results(self.compute_terms(x, target, training=False))

    def _unpack(self, data):
        """(x, target) of a batch, checked inside the step so that every input type
        (arrays, PyDataset, tf.data) gets the checks that ``check_data`` gives arrays."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported by this model")
        x = ops.cast(x, "float32")
        target = x if y is None else ops.cast(y, "float32")
        name = type(self).__name__
        tf.debugging.assert_all_finite(x, f"{name}: x contains NaN or inf values")
        tf.debugging.assert_all_finite(target, f"{name}: the target contains NaN or inf values")
        if self.likelihood == "bernoulli":
            in_range = ops.logical_and(ops.min(target) >= 0.0, ops.max(target) <= 1.0)
            tf.debugging.Assert(in_range, [f"{name}: x (the target) must lie in [0, 1] for a "
                                           "Bernoulli likelihood; got values in", ops.min(target),
                                           ops.max(target)])
        return x, target

    # ---- input checks: clear errors before Keras sees the data ----
    def check_data(self, x, name="x") -> np.ndarray:
        """Return ``x`` as float32 after checking shape, finiteness and the likelihood's range."""
        arr = as_finite_array(x, name)
        expected = tuple(self.encoder.input_shape[1:])
        if arr.ndim < 2 or tuple(arr.shape[1:]) != expected:
            raise ValueError(f"{name} must have shape (n, {', '.join(map(str, expected))}), "
                             f"got {arr.shape}")
        if self.likelihood == "bernoulli":
            check_unit_interval(arr, name)
        return arr

    def _checked(self, x, y, name):
        if isinstance(x, (np.ndarray, list)) or tf.is_tensor(x):
            x = self.check_data(x, name)
            if y is not None:
                y = self.check_data(y, f"{name} target")
        return x, y

    def fit(self, x=None, y=None, validation_data=None, **kwargs):
        if kwargs.get("sample_weight") is not None or kwargs.get("class_weight") is not None:
            raise ValueError("sample_weight and class_weight are not supported by this model")
        x, y = self._checked(x, y, "x")
        if isinstance(validation_data, (tuple, list)):
            vx, vy = self._checked(validation_data[0],
                                   validation_data[1] if len(validation_data) > 1 else None,
                                   "validation_data")
            validation_data = (vx,) if vy is None else (vx, vy)
        elif isinstance(validation_data, np.ndarray):
            validation_data = (self._checked(validation_data, None, "validation_data")[0],)
        return super().fit(x, y, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, **kwargs):
        x, y = self._checked(x, y, "x")
        return super().evaluate(x, y, **kwargs)

    def encode(self, x, batch_size=256) -> np.ndarray:
        """The code of each example of ``x``, one array (n, latent_dim): an autoencoder's code,
        a VAE's posterior mean (``VAE.posterior`` gives the whole posterior)."""
        outputs = self.encoder.predict(self.check_data(x), batch_size=batch_size, verbose=0)
        return outputs[0] if isinstance(outputs, (list, tuple)) else outputs

    def decode(self, z, batch_size=256):
        """Decoder output (probabilities or means) for latent points ``z``."""
        z = as_finite_array(z, "z", ndim=2)
        if z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (n, {self.latent_dim}), got {z.shape}")
        return self.decoder.predict(z, batch_size=batch_size, verbose=0)

    # ---- saving ----
    def get_config(self):
        return {
            "name": self.name,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "likelihood": self.likelihood,
            "sigma": self.sigma,
            "learn_sigma": self.learn_sigma,
        }


@keras.saving.register_keras_serializable(package="helpers")
class VAE(_ReconstructionModel):
    """Variational autoencoder: encoder -> (z_mean, z_log_var), reparameterised z, decoder.

    The loss per example is -log p(x|z) + beta * KL(q(z|x) || N(0, I)); with
    ``likelihood="bernoulli"`` the decoder outputs probabilities, with ``"gaussian"`` means
    (scale ``sigma``, learned if ``learn_sigma``). Sampling draws from a SeedGenerator
    seeded by ``seed``; a model reloaded from a ``.keras`` file restarts that stream.
    """

    def __init__(self, encoder, decoder, likelihood="bernoulli", beta=1.0, sigma=1.0,
                 learn_sigma=False, seed=None, **kwargs):
        super().__init__(encoder, decoder, likelihood, sigma, learn_sigma, **kwargs)
        if len(encoder.outputs) != 2:
            raise ValueError("encoder must output two tensors (z_mean, z_log_var), "
                             f"got {len(encoder.outputs)}")
        self.seed = seed
        # a variable, so that changing beta during training (KL annealing) takes effect
        # inside the compiled train_step
        self._beta = self.add_weight(shape=(), name="beta", trainable=False,
                                     initializer=keras.initializers.Constant(
                                         self._checked_beta(beta)))
        self.latent_dim = int(encoder.outputs[0].shape[-1])
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.kl_tracker = keras.metrics.Mean(name="kl")

    @staticmethod
    def _checked_beta(beta) -> float:
        try:
            value = float(beta)
        except (TypeError, ValueError):
            raise ValueError(f"beta must be a finite number >= 0, got {beta!r}") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
        return value

    @property
    def beta(self) -> float:
        """Weight of the KL term; assignable at any time, also between epochs."""
        return float(ops.convert_to_numpy(self._beta))

    @beta.setter
    def beta(self, value) -> None:
        self._beta.assign(self._checked_beta(value))

    @property
    def metrics(self):
        return [*super().metrics, self.kl_tracker]

    def sample_latent(self, z_mean, z_log_var):
        """z = z_mean + exp(z_log_var / 2) * eps, eps ~ N(0, I) (the reparameterisation)."""
        eps = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * eps

    def call(self, x, training=False):
        z_mean, z_log_var = self.encoder(x, training=training)
        return self.decoder(self.sample_latent(z_mean, z_log_var), training=training)

    def kl_divergence(self, z_mean, z_log_var):
        """KL(q(z|x) || N(0, I)) per example, in closed form."""
        return gaussian_kl(z_mean, z_log_var)

    def reconstruction_term(self, z, target, training=False):
        """-log p(target | z) per example: the decoder's output for ``z`` scored by the
        likelihood. Models with another kind of decoder override this one method."""
        return self.reconstruction_loss(target, self.decoder(z, training=training))

    def compute_terms(self, x, target, training=False):
        z_mean, z_log_var = self.encoder(x, training=training)
        reconstruction = self.reconstruction_term(self.sample_latent(z_mean, z_log_var), target,
                                                  training=training)
        kl = self.kl_divergence(z_mean, z_log_var)
        return {"loss": reconstruction + self._beta * kl, "reconstruction": reconstruction,
                "kl": kl}

    def posterior(self, x, batch_size=256):
        """The posterior q(z|x) of each example as NumPy arrays: (z_mean, z_log_var)."""
        z_mean, z_log_var = self.encoder.predict(self.check_data(x), batch_size=batch_size,
                                                 verbose=0)
        return z_mean, z_log_var

    @staticmethod
    def _noise(z_mean, seed, n_draws):
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        shape = z_mean.shape if n_draws is None else (len(z_mean), n_draws, z_mean.shape[1])
        return rng.standard_normal(shape)

    def posterior_draws(self, z_mean, z_log_var, seed=0, n_draws=None) -> np.ndarray:
        """Draws from the posteriors, z = z_mean + exp(z_log_var / 2) eps, in NumPy for
        analysis (``sample_latent`` is the same step inside training): one per example,
        shape (n, d), or ``n_draws`` each, shape (n, n_draws, d). ``seed`` is an integer or a
        ``np.random.Generator``, whose stream the draws continue."""
        z_mean = as_finite_array(z_mean, "z_mean", ndim=2)
        z_log_var = as_finite_array(z_log_var, "z_log_var", ndim=2)
        eps = self._noise(z_mean, seed, n_draws)
        scale = np.exp(0.5 * z_log_var)
        if n_draws is not None:
            z_mean, scale = z_mean[:, None, :], scale[:, None, :]
        return (z_mean + scale * eps).astype(np.float32)

    def generate(self, n, seed=0):
        """Decode ``n`` draws from the prior N(0, I)."""
        n = check_positive_int(n, "n")
        rng = np.random.default_rng(check_seed(seed))
        return self.decode(rng.standard_normal((n, self.latent_dim)).astype(np.float32))

    def get_config(self):
        return {**super().get_config(), "beta": self.beta, "seed": self.seed}


@keras.saving.register_keras_serializable(package="helpers")
class FullCovVAE(VAE):
    """VAE whose posterior has a full covariance L L^T: the encoder outputs the mean and a
    (d, d) matrix whose strict lower triangle and exponentiated diagonal form the Cholesky
    factor L (build it with ``builders.mlp_encoder(..., covariance="full")``);
    z = mean + L eps, and the KL is the closed form for a full covariance."""

    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(encoder, decoder, **kwargs)
        shape = tuple(encoder.outputs[1].shape[1:])
        if shape != (self.latent_dim, self.latent_dim):
            raise ValueError("encoder's second output must have shape (latent_dim, latent_dim) "
                             f"= ({self.latent_dim}, {self.latent_dim}), got {shape}; build it "
                             "with covariance='full'")

    def sample_latent(self, z_mean, z_chol_raw):
        """z = z_mean + L eps with L the Cholesky factor, eps ~ N(0, I)."""
        eps = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.squeeze(ops.matmul(cholesky_factor(z_chol_raw),
                                               ops.expand_dims(eps, -1)), -1)

    def kl_divergence(self, z_mean, z_chol_raw):
        return gaussian_kl_full(z_mean, cholesky_factor(z_chol_raw))

    def posterior(self, x, batch_size=256):
        """Posterior means (n, d) and Cholesky factors (n, d, d) as NumPy arrays."""
        z_mean, raw = self.encoder.predict(self.check_data(x), batch_size=batch_size,
                                           verbose=0)
        return z_mean, ops.convert_to_numpy(cholesky_factor(ops.convert_to_tensor(raw)))

    def posterior_draws(self, z_mean, chol, seed=0, n_draws=None) -> np.ndarray:
        """Draws z = z_mean + L eps from the posteriors (see ``VAE.posterior_draws``), with
        ``chol`` the Cholesky factors L (n, d, d) that ``posterior`` returns."""
        z_mean = as_finite_array(z_mean, "z_mean", ndim=2)
        chol = as_finite_array(chol, "chol", ndim=3)
        eps = self._noise(z_mean, seed, n_draws)
        if n_draws is None:
            return (z_mean + np.einsum("nij,nj->ni", chol, eps)).astype(np.float32)
        return (z_mean[:, None, :] + np.einsum("nij,nkj->nki", chol, eps)).astype(np.float32)


@keras.saving.register_keras_serializable(package="helpers")
class Autoencoder(_ReconstructionModel):
    """Plain (deterministic) autoencoder trained on the reconstruction term alone."""

    def __init__(self, encoder, decoder, likelihood="bernoulli", sigma=1.0, learn_sigma=False,
                 **kwargs):
        super().__init__(encoder, decoder, likelihood, sigma, learn_sigma, **kwargs)
        if len(encoder.outputs) != 1:
            raise ValueError("encoder must output one tensor (the code z); build it with "
                             f"variational=False, got {len(encoder.outputs)} outputs")
        self.latent_dim = int(encoder.outputs[0].shape[-1])

    def call(self, x, training=False):
        return self.decoder(self.encoder(x, training=training), training=training)

    def compute_terms(self, x, target, training=False):
        reconstruction = self.reconstruction_loss(target, self(x, training=training))
        return {"loss": reconstruction, "reconstruction": reconstruction}


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


def _optional_positive_int(value, name):
    """``None`` (Keras's default) or an integer >= 1."""
    return None if value is None else check_positive_int(value, name)


def _is_stream(x) -> bool:
    """A data source that yields batches (tf.data, PyDataset, a generator), not an array."""
    return (isinstance(x, (tf.data.Dataset, keras.utils.PyDataset))
            or (hasattr(x, "__next__") and not hasattr(x, "__len__")))


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
        if self.learn_sigma and likelihood != "gaussian":
            raise ValueError("learn_sigma=True needs likelihood='gaussian': a Bernoulli "
                             f"likelihood has no scale to learn (got likelihood={likelihood!r})")
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
        expected = tuple(self.encoder.input_shape[1:])
        shape_text = f"(n, {', '.join(map(str, expected))})"
        if isinstance(x, (str, bytes, dict)) or _is_stream(x):
            raise TypeError(f"{name} must be an array of shape {shape_text} or a list of "
                            f"examples, got {type(x).__name__}")
        try:
            x = np.asarray(x)
        except ValueError:  # a ragged nested list
            raise ValueError(f"{name} must be an array of shape {shape_text}; got a nested "
                             "sequence whose rows differ in length") from None
        arr = as_finite_array(x, name)
        if arr.ndim < 2 or tuple(arr.shape[1:]) != expected:
            raise ValueError(f"{name} must have shape {shape_text}, got {arr.shape}")
        if self.likelihood == "bernoulli":
            check_unit_interval(arr, name)
        return arr

    def _check_stream(self, dataset, name) -> None:
        """The element shapes of a ``tf.data`` pipeline, before any batch is drawn: batches
        (batch, *input shape) of x and of the optional target, and no sample weights."""
        spec = dataset.element_spec
        parts = tuple(spec) if isinstance(spec, (tuple, list)) else (spec,)
        if len(parts) == 3 and parts[2] is not None:
            raise ValueError(f"{name} yields (x, y, sample_weight); sample weights are not "
                             "supported by this model")
        expected = tuple(self.encoder.input_shape[1:])
        for part, label in zip(parts[:2], (name, f"{name} target"), strict=False):
            if not isinstance(part, tf.TensorSpec) or part.shape.rank is None:
                continue  # nested or unknown structures are checked inside the step
            shape = tuple(part.shape)
            if len(shape) != len(expected) + 1 or any(
                    have is not None and have != want
                    for have, want in zip(shape[1:], expected, strict=True)):
                hint = (" (the dataset is not batched: call .batch(batch_size))"
                        if shape == expected else "")
                raise ValueError(f"{label} must yield batches of shape (batch, "
                                 f"{', '.join(map(str, expected))}), got elements of shape "
                                 f"{shape}{hint}")

    def _checked(self, x, y, name):
        if x is None:
            raise ValueError(f"{name} is required: an array of examples or a tf.data.Dataset")
        if isinstance(x, (str, bytes)):
            raise TypeError(f"{name} must be an array of examples or a tf.data.Dataset, got "
                            f"{type(x).__name__}")
        if isinstance(x, tf.data.Dataset):
            self._check_stream(x, name)
        elif isinstance(x, (np.ndarray, list)) or tf.is_tensor(x):
            x = self.check_data(x, name)
            if y is not None:
                y = self.check_data(y, f"{name} target")
                if len(y) != len(x):
                    raise ValueError(f"{name} target must have one row per example of {name}: "
                                     f"{len(x)} examples, {len(y)} targets")
        return x, y

    def _checked_validation(self, validation_data):
        """``validation_data`` as ``(x,)`` or ``(x, y)`` after the checks that ``x`` gets."""
        if validation_data is None or isinstance(validation_data, tf.data.Dataset):
            if validation_data is not None:
                self._check_stream(validation_data, "validation_data")
            return validation_data
        if isinstance(validation_data, np.ndarray) or tf.is_tensor(validation_data):
            return (self._checked(validation_data, None, "validation_data")[0],)
        if isinstance(validation_data, (tuple, list)):
            if not 1 <= len(validation_data) <= 3:
                raise ValueError("validation_data must be x, (x,) or (x, y) with x an array of "
                                 f"examples; got a {type(validation_data).__name__} of "
                                 f"{len(validation_data)} items")
            if len(validation_data) == 3 and validation_data[2] is not None:
                raise ValueError("validation_data holds sample weights (x, y, sample_weight); "
                                 "they are not supported by this model")
            vx, vy = self._checked(validation_data[0],
                                   validation_data[1] if len(validation_data) > 1 else None,
                                   "validation_data")
            return (vx,) if vy is None else (vx, vy)
        if isinstance(validation_data, (str, bytes, dict, int, float)):
            raise TypeError("validation_data must be an array, (x,), (x, y) or a "
                            f"tf.data.Dataset, got {type(validation_data).__name__}")
        return validation_data  # another Keras data source (PyDataset, generator)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, **kwargs):
        if kwargs.get("sample_weight") is not None or kwargs.get("class_weight") is not None:
            raise ValueError("sample_weight and class_weight are not supported by this model")
        batch_size = _optional_positive_int(batch_size, "batch_size")
        epochs = check_positive_int(epochs, "epochs", minimum=0)
        split = kwargs.get("validation_split", 0.0)
        if not (isinstance(split, (int, float)) and 0.0 <= split < 1.0):
            raise ValueError(f"validation_split must be a fraction in [0, 1), got {split!r}")
        x, y = self._checked(x, y, "x")
        kwargs["validation_data"] = self._checked_validation(kwargs.get("validation_data"))
        return super().fit(x, y, batch_size=batch_size, epochs=epochs, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, **kwargs):
        batch_size = _optional_positive_int(batch_size, "batch_size")
        x, y = self._checked(x, y, "x")
        return super().evaluate(x, y, batch_size=batch_size, **kwargs)

    def predict(self, x, batch_size=None, **kwargs):
        batch_size = _optional_positive_int(batch_size, "batch_size")
        x, _ = self._checked(x, None, "x")
        return super().predict(x, batch_size=batch_size, **kwargs)

    def encode(self, x, batch_size=256) -> np.ndarray:
        """The code of each example of ``x``, one array (n, latent_dim): an autoencoder's code,
        a VAE's posterior mean (``VAE.posterior`` gives the whole posterior)."""
        outputs = self.encoder.predict(self.check_data(x),
                                       batch_size=check_positive_int(batch_size, "batch_size"),
                                       verbose=0)
        return outputs[0] if isinstance(outputs, (list, tuple)) else outputs

    def decode(self, z, batch_size=256):
        """Decoder output (probabilities or means) for latent points ``z``."""
        z = as_finite_array(z, "z", ndim=2)
        if z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (n, {self.latent_dim}), got {z.shape}")
        return self.decoder.predict(z, batch_size=check_positive_int(batch_size, "batch_size"),
                                    verbose=0)

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
        self.seed = check_seed(seed)
        # a variable, so that changing beta during training (KL annealing) takes effect
        # inside the compiled train_step
        self._beta = self.add_weight(shape=(), name="beta", trainable=False,
                                     initializer=keras.initializers.Constant(
                                         self._checked_beta(beta)))
        self.latent_dim = int(encoder.outputs[0].shape[-1])
        self._check_posterior_output(tuple(encoder.outputs[1].shape[1:]))
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.kl_tracker = keras.metrics.Mean(name="kl")

    def _check_posterior_output(self, shape) -> None:
        """The encoder's second output: one log-variance per latent coordinate."""
        if shape != (self.latent_dim,):
            raise ValueError(f"encoder's second output (z_log_var) must have shape "
                             f"(latent_dim,) = ({self.latent_dim},), got {shape}; an encoder "
                             "built with covariance='full' goes with FullCovVAE")

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
        z_mean, z_log_var = self.encoder.predict(
            self.check_data(x), batch_size=check_positive_int(batch_size, "batch_size"),
            verbose=0)
        return z_mean, z_log_var

    def _checked_mean(self, z_mean) -> np.ndarray:
        z_mean = as_finite_array(z_mean, "z_mean", ndim=2)
        if z_mean.shape[1] != self.latent_dim:
            raise ValueError(f"z_mean must have shape (n, {self.latent_dim}), got "
                             f"{z_mean.shape}")
        return z_mean

    @staticmethod
    def _noise(z_mean, seed, n_draws):
        if not isinstance(seed, np.random.Generator):
            try:
                seed = check_seed(seed)
            except ValueError:
                raise ValueError("seed must be an integer >= 0, None or a "
                                 f"np.random.Generator, got {seed!r}") from None
        if n_draws is not None:
            n_draws = check_positive_int(n_draws, "n_draws")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        shape = z_mean.shape if n_draws is None else (len(z_mean), n_draws, z_mean.shape[1])
        return rng.standard_normal(shape)

    def posterior_draws(self, z_mean, z_log_var, seed=0, n_draws=None) -> np.ndarray:
        """Draws from the posteriors, z = z_mean + exp(z_log_var / 2) eps, in NumPy for
        analysis (``sample_latent`` is the same step inside training): one per example,
        shape (n, d), or ``n_draws`` each, shape (n, n_draws, d). ``seed`` is an integer or a
        ``np.random.Generator``, whose stream the draws continue."""
        z_mean = self._checked_mean(z_mean)
        z_log_var = as_finite_array(z_log_var, "z_log_var", ndim=2)
        if z_log_var.shape != z_mean.shape:
            raise ValueError(f"z_log_var must have the shape of z_mean {z_mean.shape}, got "
                             f"{z_log_var.shape}")
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
    (d, d) matrix A that ``losses.cholesky_factor`` turns into the Cholesky factor L, with
    L_ii = exp(A_ii) and, below the diagonal, L_ij = L_ii A_ij (build the encoder with
    ``builders.mlp_encoder(..., covariance="full")``); z = mean + L eps, and the KL is the
    closed form for a full covariance. Each row of L scales with its diagonal, so that one
    number narrows a posterior coordinate, as the diagonal VAE's log-variance does; with the
    off-diagonal entries in absolute units, notebook 04's full-covariance ELBO fell below the
    diagonal VAE's."""

    def _check_posterior_output(self, shape) -> None:
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
        z_mean, raw = self.encoder.predict(
            self.check_data(x), batch_size=check_positive_int(batch_size, "batch_size"),
            verbose=0)
        return z_mean, ops.convert_to_numpy(cholesky_factor(ops.convert_to_tensor(raw)))

    def posterior_draws(self, z_mean, chol, seed=0, n_draws=None) -> np.ndarray:
        """Draws z = z_mean + L eps from the posteriors (see ``VAE.posterior_draws``), with
        ``chol`` the Cholesky factors L (n, d, d) that ``posterior`` returns."""
        z_mean = self._checked_mean(z_mean)
        chol = as_finite_array(chol, "chol", ndim=3)
        n, d = z_mean.shape
        if chol.shape != (n, d, d):
            raise ValueError(f"chol must hold one (latent_dim, latent_dim) factor per row of "
                             f"z_mean, shape ({n}, {d}, {d}), got {chol.shape}")
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


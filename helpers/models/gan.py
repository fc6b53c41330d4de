"""A DCGAN for 28 x 28 images (the TensorFlow DCGAN tutorial's generator and discriminator)
as a Keras 3 model with two optimizers, and its non-saturating losses. Used by the GAN
notebook; its checkpoints are in ``training``."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from helpers.infra.checks import check_positive_int, check_seed
from helpers.infra.config import require_tensorflow_backend
from helpers.models.builders import SubmodelsConfig

require_tensorflow_backend(__name__)


def build_generator(latent_dim: int = 100, width: int = 256) -> keras.Model:
    """Noise (latent_dim,) -> Dense 7*7*width -> BN -> LeakyReLU -> (7, 7, width) ->
    ConvT width/2 (5x5, stride 1) -> ConvT width/4 (stride 2) -> ConvT 1 (stride 2, tanh):
    (28, 28, 1) in [-1, 1]. Batch normalisation and LeakyReLU after every layer but the last.
    ``width=256`` is the TensorFlow DCGAN tutorial's generator; the cost of an update grows
    about as ``width**2``."""
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    width = check_positive_int(width, "width")
    if width % 4:
        raise ValueError(f"build_generator: width must be a multiple of 4, got {width}")
    z = keras.Input(shape=(latent_dim,))
    h = layers.Dense(7 * 7 * width, use_bias=False)(z)
    h = layers.LeakyReLU(0.3)(layers.BatchNormalization()(h))
    h = layers.Reshape((7, 7, width))(h)
    for channels, stride in ((width // 2, 1), (width // 4, 2)):
        h = layers.Conv2DTranspose(channels, 5, strides=stride, padding="same",
                                   use_bias=False)(h)
        h = layers.LeakyReLU(0.3)(layers.BatchNormalization()(h))
    outputs = layers.Conv2DTranspose(1, 5, strides=2, padding="same", use_bias=False,
                                     activation="tanh")(h)
    return keras.Model(z, outputs, name="generator")


def build_discriminator(width: int = 64) -> keras.Model:
    """(28, 28, 1) in [-1, 1] -> Conv width and Conv 2*width (5x5, stride 2), each followed
    by LeakyReLU and Dropout 0.3 -> Dense 1: a logit, positive for 'real'. ``width=64`` is
    the TensorFlow DCGAN tutorial's discriminator."""
    width = check_positive_int(width, "width")
    x = keras.Input(shape=(28, 28, 1))
    h = x
    for channels in (width, 2 * width):
        h = layers.Conv2D(channels, 5, strides=2, padding="same")(h)
        h = layers.Dropout(0.3)(layers.LeakyReLU(0.3)(h))
    outputs = layers.Dense(1)(layers.Flatten()(h))
    return keras.Model(x, outputs, name="discriminator")


def _logits(x, name):
    """``x`` as a floating-point tensor (lists and integer arrays are converted); an empty
    batch, whose mean would be NaN, raises."""
    x = ops.convert_to_tensor(x)
    if "float" not in keras.backend.standardize_dtype(x.dtype):
        x = ops.cast(x, keras.config.floatx())
    if 0 in tuple(x.shape):
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    return x


def discriminator_loss(real_logits, fake_logits):
    """Binary cross-entropy with real labelled 1 and fake 0, from logits, summed over the two
    halves and averaged over the batch: mean(softplus(-real)) + mean(softplus(fake))."""
    real_logits = _logits(real_logits, "real_logits")
    fake_logits = _logits(fake_logits, "fake_logits")
    return ops.mean(ops.softplus(-real_logits)) + ops.mean(ops.softplus(fake_logits))


def generator_loss(fake_logits):
    """The non-saturating generator loss: cross-entropy of the fakes labelled real,
    mean(softplus(-fake)) = -mean(log sigmoid(fake))."""
    return ops.mean(ops.softplus(-_logits(fake_logits, "fake_logits")))


@keras.saving.register_keras_serializable(package="helpers")
class GAN(SubmodelsConfig, keras.Model):
    """Generator and discriminator trained together, one update of each per batch.

    ``compile(d_optimizer, g_optimizer)``; ``fit`` on images scaled to [-1, 1] reports
    ``d_loss``, ``g_loss`` and the discriminator's mean probability of 'real' on real
    (``real_score``) and generated (``fake_score``) images.
    """

    _parts = ("generator", "discriminator")

    def __init__(self, generator, discriminator, seed=None, **kwargs):
        for name, part in (("generator", generator), ("discriminator", discriminator)):
            if not isinstance(part, keras.Model) or len(getattr(part, "inputs", None) or []) != 1:
                raise TypeError(f"{name} must be a keras.Model with one input (e.g. "
                                f"gan.build_{name}()), got {type(part).__name__}")
        images = tuple(discriminator.inputs[0].shape[1:])
        noise_in, images_out = generator.inputs[0].shape, generator.outputs[0].shape
        if len(noise_in) != 2 or tuple(images_out[1:]) != images:
            raise ValueError(f"generator must map noise (n, latent_dim) to the discriminator's "
                             f"images (n, {', '.join(map(str, images))}), got "
                             f"{tuple(noise_in)} -> {tuple(images_out)}")
        seed = check_seed(seed)
        super().__init__(**kwargs)
        self.generator, self.discriminator = generator, discriminator
        self.latent_dim = int(noise_in[-1])
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers = [keras.metrics.Mean(name=n)
                         for n in ("d_loss", "g_loss", "real_score", "fake_score")]
        self.built = generator.built and discriminator.built  # nothing else to build

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        optimizers = []
        for name, value in (("d_optimizer", d_optimizer), ("g_optimizer", g_optimizer)):
            try:
                optimizer = keras.optimizers.get(value)
            except ValueError:
                optimizer = None
            if not isinstance(optimizer, keras.optimizers.Optimizer):
                raise TypeError(f"{name} must be a Keras optimizer or its name (e.g. "
                                f"keras.optimizers.Adam(2e-4) or 'adam'), got {value!r}")
            optimizers.append(optimizer)
        if optimizers[0] is optimizers[1]:
            raise ValueError("d_optimizer and g_optimizer must be two optimizers, one per "
                             "network: each keeps the state of its own network's weights")
        super().compile(**kwargs)
        self.d_optimizer, self.g_optimizer = optimizers

    @property
    def metrics(self):
        return self.trackers

    def call(self, z, training=False):
        return self.generator(z, training=training)

    def train_step(self, data):
        real = data[0] if isinstance(data, (tuple, list)) else data
        # every input type (arrays, PyDataset, tf.data) passes this check inside the step
        tf.debugging.assert_all_finite(real, "GAN.fit: the images contain NaN or inf")
        tf.debugging.assert_less_equal(
            ops.max(ops.abs(real)), ops.cast(1.0, real.dtype),
            message="GAN.fit: the images must be scaled to [-1, 1] (the generator's tanh range)")
        z = keras.random.normal((ops.shape(real)[0], self.latent_dim), seed=self.seed_generator)
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = self.generator(z, training=True)
            real_logits = self.discriminator(real, training=True)
            fake_logits = self.discriminator(fake, training=True)
            d_loss = discriminator_loss(real_logits, fake_logits)
            g_loss = generator_loss(fake_logits)
        d_weights = self.discriminator.trainable_weights
        g_weights = self.generator.trainable_weights
        self.d_optimizer.apply(d_tape.gradient(d_loss, d_weights), d_weights)
        self.g_optimizer.apply(g_tape.gradient(g_loss, g_weights), g_weights)
        values = (d_loss, g_loss, ops.mean(ops.sigmoid(real_logits)),
                  ops.mean(ops.sigmoid(fake_logits)))
        for tracker, value in zip(self.trackers, values, strict=True):
            tracker.update_state(value)
        return {m.name: m.result() for m in self.trackers}

    def generate(self, n: int, seed: int = 0, batch_size: int = 500) -> np.ndarray:
        """``n`` images from standard-normal noise drawn with NumPy ``seed``, in [-1, 1]."""
        z = np.random.default_rng(check_seed(seed, allow_none=False)).standard_normal(
            (check_positive_int(n, "n"), self.latent_dim)).astype(np.float32)
        return self.generator.predict(z, batch_size=check_positive_int(batch_size, "batch_size"),
                                      verbose=0)

    def get_config(self):
        return {"name": self.name, "seed": self.seed,
                "generator": keras.saving.serialize_keras_object(self.generator),
                "discriminator": keras.saving.serialize_keras_object(self.discriminator)}


def averaged_generator(model: GAN, noise: int = 4096, seed: int = 0) -> keras.Model:
    """A copy of ``model``'s generator whose trainable weights are the exponential moving
    average that its generator optimizer keeps (``use_ema=True``: after each update
    ``average = ema_momentum * average + (1 - ema_momentum) * weights``; before the first
    update, the weights themselves), with its batch normalisation statistics measured anew on
    ``noise`` standard-normal vectors (NumPy ``seed``): the training's running statistics
    belong to the raw weights, not to their average. ``model`` itself is left as it is."""
    optimizer = getattr(model, "g_optimizer", None)
    if not isinstance(model, GAN) or optimizer is None or not optimizer.use_ema:
        raise ValueError("averaged_generator: model must be a GAN compiled with a g_optimizer "
                         "built with use_ema=True (e.g. keras.optimizers.Adam(..., use_ema=True))")
    noise = check_positive_int(noise, "noise")
    seed = check_seed(seed, allow_none=False)
    averaged = keras.models.clone_model(model.generator)
    averaged.set_weights(model.generator.get_weights())
    # Keras creates the average as zeros when the optimizer is built (by the first update, or
    # before it by training.save_checkpoint) and sets it to the weights at the first update:
    # until then there is no average to read, and the weights are their own average
    if optimizer.built and int(optimizer.iterations) > 0:
        optimizer.finalize_variable_values(averaged.trainable_variables)  # weights <- average
    # one pass in training mode with momentum 0 sets each layer's moving mean and variance
    # to the statistics of its input over the whole batch of noise
    norms = [layer for layer in averaged.layers if isinstance(layer, layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    z = np.random.default_rng(seed).standard_normal((noise, model.latent_dim)).astype(np.float32)
    try:
        for layer in norms:
            layer.momentum = 0.0
        averaged(z, training=True)
    finally:
        for layer, momentum in zip(norms, momenta, strict=True):
            layer.momentum = momentum
    return averaged


__all__ = ["GAN", "averaged_generator", "build_discriminator", "build_generator",
           "discriminator_loss", "generator_loss"]

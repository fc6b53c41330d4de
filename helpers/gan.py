"""A DCGAN for 28 x 28 digits (the TensorFlow DCGAN tutorial's generator and discriminator)
as a Keras 3 model with two optimizers, its non-saturating losses, and checkpoints that
resume training from the latest saved epoch."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from helpers.checks import check_positive_int
from helpers.metrics import replace_atomic

_CHECKPOINT = re.compile(r"^epoch-(\d+)\.weights\.h5$")


def build_generator(latent_dim: int = 100) -> keras.Model:
    """Noise (latent_dim,) -> Dense 7*7*256 -> BN -> LeakyReLU -> (7, 7, 256) ->
    ConvT 128 (5x5, stride 1) -> ConvT 64 (stride 2) -> ConvT 1 (stride 2, tanh): (28, 28, 1)
    in [-1, 1]. Batch normalisation and LeakyReLU after every layer but the last."""
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    z = keras.Input(shape=(latent_dim,))
    h = layers.Dense(7 * 7 * 256, use_bias=False)(z)
    h = layers.LeakyReLU(0.3)(layers.BatchNormalization()(h))
    h = layers.Reshape((7, 7, 256))(h)
    for width, stride in ((128, 1), (64, 2)):
        h = layers.Conv2DTranspose(width, 5, strides=stride, padding="same", use_bias=False)(h)
        h = layers.LeakyReLU(0.3)(layers.BatchNormalization()(h))
    outputs = layers.Conv2DTranspose(1, 5, strides=2, padding="same", use_bias=False,
                                     activation="tanh")(h)
    return keras.Model(z, outputs, name="generator")


def build_discriminator() -> keras.Model:
    """(28, 28, 1) in [-1, 1] -> Conv 64 and Conv 128 (5x5, stride 2), each followed by
    LeakyReLU and Dropout 0.3 -> Dense 1: a logit, positive for 'real'."""
    x = keras.Input(shape=(28, 28, 1))
    h = x
    for width in (64, 128):
        h = layers.Conv2D(width, 5, strides=2, padding="same")(h)
        h = layers.Dropout(0.3)(layers.LeakyReLU(0.3)(h))
    outputs = layers.Dense(1)(layers.Flatten()(h))
    return keras.Model(x, outputs, name="discriminator")


def discriminator_loss(real_logits, fake_logits):
    """Binary cross-entropy with real labelled 1 and fake 0, from logits, summed over the two
    halves and averaged over the batch: mean(softplus(-real)) + mean(softplus(fake))."""
    return ops.mean(ops.softplus(-real_logits)) + ops.mean(ops.softplus(fake_logits))


def generator_loss(fake_logits):
    """The non-saturating generator loss: cross-entropy of the fakes labelled real,
    mean(softplus(-fake)) = -mean(log sigmoid(fake))."""
    return ops.mean(ops.softplus(-fake_logits))


@keras.saving.register_keras_serializable(package="helpers")
class GAN(keras.Model):
    """Generator and discriminator trained together, one update of each per batch.

    ``compile(d_optimizer, g_optimizer)``; ``fit`` on images scaled to [-1, 1] reports
    ``d_loss``, ``g_loss`` and the discriminator's mean probability of 'real' on real
    (``real_score``) and generated (``fake_score``) images.
    """

    def __init__(self, generator, discriminator, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.generator, self.discriminator = generator, discriminator
        self.latent_dim = int(generator.inputs[0].shape[-1])
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers = [keras.metrics.Mean(name=n)
                         for n in ("d_loss", "g_loss", "real_score", "fake_score")]
        self.built = generator.built and discriminator.built  # nothing else to build

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        super().compile(**kwargs)
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer

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
        z = np.random.default_rng(seed).standard_normal(
            (check_positive_int(n, "n"), self.latent_dim)).astype(np.float32)
        return self.generator.predict(z, batch_size=batch_size, verbose=0)

    def get_config(self):
        return {"name": self.name, "seed": self.seed,
                "generator": keras.saving.serialize_keras_object(self.generator),
                "discriminator": keras.saving.serialize_keras_object(self.discriminator)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for part in ("generator", "discriminator"):
            config[part] = keras.saving.deserialize_keras_object(config[part])
        return cls(**config)


# ---------------------------------------------------------------- checkpoints
def _build_for_saving(gan: GAN) -> None:
    """Create every variable a checkpoint holds (networks and both optimizers' slots)."""
    if not gan.generator.built or not gan.discriminator.built:
        raise ValueError("the generator and discriminator must be built")
    for optimizer, model in ((gan.d_optimizer, gan.discriminator),
                             (gan.g_optimizer, gan.generator)):
        if not optimizer.built:
            optimizer.build(model.trainable_weights)


def save_checkpoint(gan: GAN, directory, epoch: int) -> Path:
    """Write the networks and both optimizers' states after ``epoch`` (1-based) to
    ``directory/epoch-NNNN.weights.h5``, atomically; return the path."""
    epoch = check_positive_int(epoch, "epoch")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _build_for_saving(gan)
    path = directory / f"epoch-{epoch:04d}.weights.h5"
    replace_atomic(path, lambda tmp: gan.save_weights(tmp, overwrite=True),
                   suffix=".tmp.weights.h5")  # Keras wants the suffix
    return path


def checkpoints(directory) -> list[tuple[int, Path]]:
    """(epoch, path) of every checkpoint in ``directory``, oldest first (by epoch number,
    so that epoch 10,000 comes after 9,999)."""
    directory = Path(directory)
    return sorted((int(m.group(1)), p) for p in directory.glob("epoch-*.weights.h5")
                  if (m := _CHECKPOINT.match(p.name)))


def latest_checkpoint(directory) -> tuple[int, Path] | None:
    """(epoch, path) of the newest checkpoint in ``directory``, or None if there is none."""
    found = checkpoints(directory)
    return found[-1] if found else None


def restore_latest(gan: GAN, directory) -> int:
    """Load the newest checkpoint into ``gan`` (compiled, networks built) and return its
    epoch; return 0 and leave ``gan`` untouched when ``directory`` holds none. A checkpoint
    that does not load raises, naming the file."""
    latest = latest_checkpoint(directory)
    if latest is None:
        return 0
    epoch, path = latest
    _build_for_saving(gan)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gan.load_weights(path)
    except Exception as exc:
        raise ValueError(f"checkpoint {path} could not be loaded ({exc}); delete it to "
                         "resume from the one before") from exc
    skipped = [str(w.message) for w in caught if "load" in str(w.message).lower()]
    if skipped:  # Keras skips mismatched variables (such as an optimizer's) with a warning
        raise ValueError(f"checkpoint {path} was only partly loaded ({skipped[0]}); it does not "
                         "match this model and its optimizers")
    for w in caught:  # anything else is passed on
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return epoch


class CheckpointEvery(keras.callbacks.Callback):
    """Save a checkpoint every ``every`` epochs and after the last, keeping the newest
    ``keep``. Epoch numbers continue across ``fit(..., initial_epoch=...)`` calls."""

    def __init__(self, directory, every: int = 5, keep: int = 2):
        super().__init__()
        self.directory = Path(directory)
        self.every = check_positive_int(every, "every")
        self.keep = check_positive_int(keep, "keep")

    def on_train_begin(self, logs=None):
        self.last_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        self.last_epoch = epoch + 1
        if self.last_epoch % self.every == 0:
            self._save(self.last_epoch)

    def on_train_end(self, logs=None):
        if self.last_epoch is not None and self.last_epoch % self.every:
            self._save(self.last_epoch)

    def _save(self, epoch):
        save_checkpoint(self.model, self.directory, epoch)
        for _, old in checkpoints(self.directory)[:-self.keep]:
            old.unlink(missing_ok=True)


__all__ = ["GAN", "CheckpointEvery", "build_discriminator", "build_generator", "checkpoints",
           "discriminator_loss", "generator_loss", "latest_checkpoint", "restore_latest",
           "save_checkpoint"]

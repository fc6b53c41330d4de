"""Builders for MLP and convolutional encoders and decoders (functional ``keras.Model``s).

Encoders built with ``variational=True`` output ``[z_mean, z_log_var]`` for
``autoencoders.VAE``; with ``variational=False`` they output one code ``z`` for
``autoencoders.Autoencoder``. Used by the MNIST VAE, S-curve, rotation-curve, Ising and GAN
notebooks, and by ``models.backbones``.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers

from helpers.infra.checks import check_finite, check_positive_int


def _check_shape(shape, name):
    if isinstance(shape, (bool, np.bool_, str, bytes)) or (
            not isinstance(shape, (int, np.integer)) and not hasattr(shape, "__iter__")):
        raise ValueError(f"{name} must be an integer or a tuple of integers, got {shape!r}")
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if not shape:
        raise ValueError(f"{name} must be a non-empty shape, got {shape!r}")
    return tuple(check_positive_int(dim, name) for dim in shape)


def _check_widths(widths, name, allow_empty=True):
    if isinstance(widths, (str, bytes)) or not hasattr(widths, "__iter__"):
        raise ValueError(f"{name} must be a sequence of layer widths such as (256,), "
                         f"got {widths!r}")
    widths = tuple(widths)
    if not widths and not allow_empty:
        raise ValueError(f"{name} must hold at least one layer width, got {widths!r}")
    return tuple(check_positive_int(w, f"each entry of {name}") for w in widths)


def _check_dropout(dropout):
    if isinstance(dropout, (bool, np.bool_)):
        raise TypeError(f"dropout must be a rate in [0, 1), got {dropout!r}")
    dropout = check_finite(dropout, "dropout")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
    return float(dropout)


def _check_activation(activation, name):
    try:
        keras.activations.get(activation)
    except (ValueError, TypeError):
        raise ValueError(f"{name} must be a Keras activation (a name such as 'relu' or a "
                         f"function), got {activation!r}") from None
    return activation


def _check_kernel_size(kernel_size):
    if isinstance(kernel_size, (int, np.integer, bool, np.bool_)):
        return check_positive_int(kernel_size, "kernel_size")
    if not isinstance(kernel_size, (tuple, list)) or len(kernel_size) != 2:
        raise ValueError(f"kernel_size must be an integer or a pair of integers, "
                         f"got {kernel_size!r}")
    return tuple(check_positive_int(k, "kernel_size") for k in kernel_size)


def _check_variational(variational):
    if not isinstance(variational, (bool, np.bool_)):
        raise TypeError(f"variational must be True or False, got {variational!r}")
    return bool(variational)


class SubmodelsConfig:
    """Mixin for a model made of sub-models passed to its ``__init__`` (encoder and decoder,
    generator and discriminator): ``from_config`` rebuilds the parts named in ``_parts`` from
    their serialised configs, so that the model reloads from a ``.keras`` file."""

    _parts: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for part in cls._parts:
            config[part] = keras.saving.deserialize_keras_object(config[part])
        return cls(**config)


COVARIANCES = ("diagonal", "full")


def latent_head(h, latent_dim, variational, covariance="diagonal"):
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    variational = _check_variational(variational)
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")
    if not variational:
        if covariance != "diagonal":
            raise ValueError(f"covariance={covariance!r} needs variational=True: a plain "
                             "autoencoder's code has no posterior covariance")
        return layers.Dense(latent_dim, name="z")(h)
    z_mean = layers.Dense(latent_dim, name="z_mean")(h)
    if covariance == "diagonal":
        return [z_mean, layers.Dense(latent_dim, name="z_log_var")(h)]
    # a d x d unconstrained matrix; models.FullCovVAE keeps its lower triangle
    raw = layers.Dense(latent_dim * latent_dim, name="z_chol_raw")(h)
    return [z_mean, layers.Reshape((latent_dim, latent_dim), name="z_chol")(raw)]


def mlp_encoder(input_shape, latent_dim, hidden=(256,), activation="relu", dropout=0.0,
                variational=True, covariance="diagonal", name="encoder") -> keras.Model:
    """Flatten -> Dense(hidden...) -> latent head. With ``covariance="full"`` the second
    output is a (latent_dim, latent_dim) matrix for ``models.FullCovVAE``."""
    input_shape = _check_shape(input_shape, "input_shape")
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    hidden, dropout = _check_widths(hidden, "hidden"), _check_dropout(dropout)
    activation = _check_activation(activation, "activation")
    inputs = keras.Input(shape=input_shape)
    h = layers.Flatten()(inputs) if len(input_shape) > 1 else inputs
    for width in hidden:
        h = layers.Dense(width, activation=activation)(h)
        if dropout:
            h = layers.Dropout(dropout)(h)
    return keras.Model(inputs, latent_head(h, latent_dim, variational, covariance), name=name)


def mlp_decoder(latent_dim, output_shape, hidden=(256,), activation="relu", dropout=0.0,
                output_activation="sigmoid", name="decoder") -> keras.Model:
    """Dense(hidden in reverse order...) -> Dense(prod(output_shape)) -> reshape.

    ``hidden`` is given in encoder order, so the same tuple builds a mirrored pair.
    """
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    output_shape = _check_shape(output_shape, "output_shape")
    hidden, dropout = _check_widths(hidden, "hidden"), _check_dropout(dropout)
    activation = _check_activation(activation, "activation")
    output_activation = _check_activation(output_activation, "output_activation")
    inputs = keras.Input(shape=(latent_dim,))
    h = inputs
    for width in reversed(hidden):
        h = layers.Dense(width, activation=activation)(h)
        if dropout:
            h = layers.Dropout(dropout)(h)
    outputs = layers.Dense(math.prod(output_shape), activation=output_activation)(h)
    if len(output_shape) > 1:
        outputs = layers.Reshape(output_shape)(outputs)
    return keras.Model(inputs, outputs, name=name)


def conv_encoder(input_shape, latent_dim, filters=(32, 64), kernel_size=3, dense=128,
                 activation="relu", variational=True, name="encoder") -> keras.Model:
    """Stride-2 Conv2D per entry of ``filters`` -> Flatten -> Dense(dense) -> latent head."""
    input_shape = _check_shape(input_shape, "input_shape")
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {input_shape}")
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    filters, kernel_size = _check_widths(filters, "filters"), _check_kernel_size(kernel_size)
    activation = _check_activation(activation, "activation")
    variational = _check_variational(variational)
    inputs = keras.Input(shape=input_shape)
    h = inputs
    for f in filters:
        h = layers.Conv2D(f, kernel_size, strides=2, padding="same", activation=activation)(h)
    h = layers.Flatten()(h)
    if dense:
        h = layers.Dense(check_positive_int(dense, "dense"), activation=activation)(h)
    return keras.Model(inputs, latent_head(h, latent_dim, variational), name=name)


def conv_decoder(latent_dim, output_shape, filters=(64, 32), kernel_size=3, dense=128,
                 activation="relu", output_activation="sigmoid", name="decoder") -> keras.Model:
    """Dense -> reshape to (H / 2^k, W / 2^k, filters[0]) -> k stride-2 Conv2DTranspose ->
    Conv2D to the output channels. H and W must be divisible by 2^k, k = len(filters)."""
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    output_shape = _check_shape(output_shape, "output_shape")
    if len(output_shape) != 3:
        raise ValueError(f"output_shape must be (height, width, channels), got {output_shape}")
    filters = _check_widths(filters, "filters", allow_empty=False)
    kernel_size = _check_kernel_size(kernel_size)
    activation = _check_activation(activation, "activation")
    output_activation = _check_activation(output_activation, "output_activation")
    scale = 2 ** len(filters)
    height, width, channels = output_shape
    if height % scale or width % scale:
        raise ValueError(f"output_shape height and width must be divisible by {scale} "
                         f"(2 ** len(filters)), got {output_shape}")
    inputs = keras.Input(shape=(latent_dim,))
    h = inputs
    if dense:
        h = layers.Dense(check_positive_int(dense, "dense"), activation=activation)(h)
    h = layers.Dense((height // scale) * (width // scale) * filters[0], activation=activation)(h)
    h = layers.Reshape((height // scale, width // scale, filters[0]))(h)
    for f in filters:
        h = layers.Conv2DTranspose(f, kernel_size, strides=2, padding="same",
                                   activation=activation)(h)
    outputs = layers.Conv2D(channels, kernel_size, padding="same", activation=output_activation)(h)
    return keras.Model(inputs, outputs, name=name)

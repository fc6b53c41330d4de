"""Encoder/decoder pairs for 36 x 36 covariance heatmaps: a light backbone built for speed
(sub-pixel decoder, Shi et al. 2016) and the original study's layout, kept for timing
comparisons (``benchmarks/bench_heatmap_backbone.py``). Used by the covariance-heatmap
notebook."""

from __future__ import annotations

import keras
from keras import layers

from helpers.infra.checks import check_positive_int
from helpers.models.builders import latent_head


def _shape_checks(latent_dim, size):
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    size = check_positive_int(size, "size", minimum=4)
    return latent_dim, size

def light_backbone(latent_dim: int = 3, variational: bool = True, size: int = 36):
    """(encoder, decoder) for size x size heatmaps, built for speed: no convolution runs at
    full resolution. Encoder: three stride-2 3x3 convolutions (16, 32, 64 channels), then
    Dense 64. Decoder: Dense 256, Dense to a (size/2)^2 x 16 map, a 3x3 convolution with
    16 channels, one with 4, and a sub-pixel shuffle (Shi et al. 2016) that turns the 4
    channels of each half-resolution pixel into a 2x2 block of the output; then a sigmoid.
    ``size`` must be even."""
    latent_dim, size = _shape_checks(latent_dim, size)
    if size % 2:
        raise ValueError(f"size must be even, got {size}")
    inputs = keras.Input(shape=(size, size, 1))
    h = inputs
    for width in (16, 32, 64):
        h = layers.Conv2D(width, 3, strides=2, padding="same", activation="relu")(h)
    h = layers.Dense(64, activation="relu")(layers.Flatten()(h))
    encoder = keras.Model(inputs, latent_head(h, latent_dim, variational), name="encoder")

    half = size // 2
    z = keras.Input(shape=(latent_dim,))
    h = layers.Dense(256, activation="relu")(z)
    h = layers.Reshape((half, half, 16))(layers.Dense(half * half * 16, activation="relu")(h))
    h = layers.Conv2D(16, 3, padding="same", activation="relu")(h)
    h = layers.Conv2D(4, 3, padding="same")(h)
    # channel 2a + b of half-pixel (i, j) becomes output pixel (2i + a, 2j + b)
    h = layers.Permute((1, 3, 2, 4))(layers.Reshape((half, half, 2, 2))(h))
    h = layers.Reshape((size, size, 1))(h)
    outputs = layers.Activation("sigmoid")(h)
    return encoder, keras.Model(z, outputs, name="decoder")

def source_backbone(latent_dim: int = 3, variational: bool = True, size: int = 36):
    """(encoder, decoder) with the original study's layout, for timing comparisons:
    Conv 32 and Conv 64 at full resolution, then Conv 128 and Conv 64, each convolution
    but the first followed by 2x2 max pooling; Dense 64. The decoder grows 4x4x64 by
    transposed convolutions with strides 1, 3 and 3 to 36 x 36. Only ``size=36`` fits."""
    latent_dim, size = _shape_checks(latent_dim, size)
    if size != 36:
        raise ValueError(f"size must be 36 for the original layout, got {size}")
    inputs = keras.Input(shape=(size, size, 1))
    h = layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    for width in (64, 128, 64):
        h = layers.Conv2D(width, 3, padding="same", activation="relu")(h)
        h = layers.MaxPooling2D(2)(h)
    h = layers.Dense(64, activation="relu")(layers.Flatten()(h))
    encoder = keras.Model(inputs, latent_head(h, latent_dim, variational), name="encoder")

    z = keras.Input(shape=(latent_dim,))
    h = layers.Reshape((4, 4, 64))(layers.Dense(4 * 4 * 64, activation="relu")(z))
    for width, stride in ((64, 1), (64, 3), (32, 3)):
        h = layers.Conv2DTranspose(width, 3, strides=stride, padding="same",
                                   activation="relu")(h)
    outputs = layers.Conv2DTranspose(1, 3, padding="same", activation="sigmoid")(h)
    return encoder, keras.Model(z, outputs, name="decoder")

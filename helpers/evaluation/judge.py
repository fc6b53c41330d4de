"""Judging generated images with a classifier: a small CNN trained once and cached, the
class histogram and confidence of generated images, and its penultimate-layer features (the
Frechet distance in ``evaluation.distances`` compares them). Used by the GAN notebook, on
MNIST or Fashion-MNIST."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from helpers.infra.checks import (
    as_finite_array,
    check_positive_int,
    check_seed,
    check_unit_interval,
)
from helpers.training import STEPS_PER_EXECUTION, fit_or_load, update_budget

FEATURE_LAYER = "features"


def build_classifier() -> keras.Model:
    """(28, 28, 1) in [0, 1] -> Conv 32 -> pool -> Conv 64 -> pool -> Dropout 0.3 ->
    Dense 128 ('features', the layer the Frechet distance reads) -> Dropout 0.3 -> softmax."""
    x = keras.Input(shape=(28, 28, 1))
    h = layers.MaxPooling2D()(layers.Conv2D(32, 3, activation="relu")(x))
    h = layers.MaxPooling2D()(layers.Conv2D(64, 3, activation="relu")(h))
    h = layers.Dropout(0.3)(layers.Flatten()(h))
    h = layers.Dense(128, activation="relu", name=FEATURE_LAYER)(h)
    outputs = layers.Dense(10, activation="softmax")(layers.Dropout(0.3)(h))
    return keras.Model(x, outputs, name="digit_classifier")


def _images(x, name="x") -> np.ndarray:
    arr = as_finite_array(x, name)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.shape[1:] != (28, 28, 1):
        raise ValueError(f"{name} must have shape (n, 28, 28) or (n, 28, 28, 1), got {arr.shape}")
    check_unit_interval(arr, name)
    return arr


def _labels(y, n: int) -> np.ndarray:
    """``y`` as int64 class labels 0..9, one per image; a label that is not a whole number
    (1.7, NaN, a string) raises rather than being truncated."""
    arr = np.asarray(y)
    if arr.dtype == bool or arr.dtype.kind not in "iuf":
        raise TypeError(f"y_train must hold integer class labels 0..9, got dtype {arr.dtype}")
    if arr.shape != (n,):
        raise ValueError(f"y_train must hold one label per image, shape ({n},), got {arr.shape}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
        bad = arr[~(np.isfinite(arr) & (arr == np.round(arr)))][0]
        raise ValueError(f"y_train must hold whole-number class labels 0..9, got {bad!r}")
    if arr.min() < 0 or arr.max() > 9:
        raise ValueError(f"y_train must hold labels 0..9, got values in "
                         f"[{arr.min():g}, {arr.max():g}]")
    return arr.astype(np.int64)


def _classifier(classifier):
    if not isinstance(classifier, keras.Model):
        raise TypeError(f"classifier must be a keras.Model (from train_classifier), got "
                        f"{type(classifier).__name__}")
    return classifier


def train_classifier(x_train, y_train, *, updates: int = 6_000, seed: int = 0,
                     source: str = "unknown", retrain: bool = False) -> tuple[keras.Model, dict]:
    """Train ``build_classifier`` for ``updates`` gradient updates (batches of 64) on images
    in [0, 1] with small random shifts, or reload it from the weight cache (always on: the
    classifier is a measuring instrument, so every notebook and mode uses the same one; keep
    the default ``seed`` so that it does not change with a notebook's own seed).
    Returns (model, history)."""
    x_train = _images(x_train, "x_train")
    y_train = _labels(y_train, len(x_train))
    seed = check_seed(seed, allow_none=False)
    if not isinstance(source, str):
        raise TypeError(f"source must be a string naming the data, got {source!r}")
    if not isinstance(retrain, (bool, np.bool_)):
        raise TypeError(f"retrain must be True or False, got {retrain!r}")
    keras.utils.set_random_seed(seed)
    augment = keras.Sequential([layers.RandomTranslation(0.08, 0.08, fill_mode="constant",
                                                         seed=seed)])
    model = build_classifier()
    inputs = keras.Input(shape=(28, 28, 1))
    trainer = keras.Model(inputs, model(augment(inputs)))
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3),
                    loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                    steps_per_execution=STEPS_PER_EXECUTION)
    history = fit_or_load(trainer, x_train, y_train, name="digit_classifier", cache=True,
                          retrain=retrain,
                          settings={"seed": seed, "data": source},
                          **update_budget(updates, len(x_train), 64), batch_size=64, verbose=0)
    return model, history


def predict_probabilities(classifier, x, batch_size: int = 500) -> np.ndarray:
    """Class probabilities (n, 10) of images in [0, 1]."""
    return _classifier(classifier).predict(
        _images(x), batch_size=check_positive_int(batch_size, "batch_size"), verbose=0)


def features(classifier, x, batch_size: int = 500) -> np.ndarray:
    """The classifier's penultimate-layer activations (n, 128) for images in [0, 1]."""
    classifier = _classifier(classifier)
    extractor = keras.Model(classifier.inputs, classifier.get_layer(FEATURE_LAYER).output)
    return extractor.predict(_images(x), batch_size=check_positive_int(batch_size, "batch_size"),
                             verbose=0).astype(np.float64)


def class_fractions(probabilities) -> np.ndarray:
    """Fraction of images assigned to each of the 10 classes (argmax of the probabilities)."""
    probs = as_finite_array(probabilities, "probabilities", ndim=2)
    if probs.shape[1] != 10:
        raise ValueError(f"probabilities must have 10 columns, got {probs.shape}")
    if probs.min() < 0 or probs.max() > 1:
        raise ValueError(f"probabilities must lie in [0, 1], got values in "
                         f"[{probs.min():.4g}, {probs.max():.4g}]")
    return np.bincount(probs.argmax(axis=1), minlength=10) / len(probs)


__all__ = ["FEATURE_LAYER", "build_classifier", "class_fractions", "features",
           "predict_probabilities", "train_classifier"]

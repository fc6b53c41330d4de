import socket

import keras
import numpy as np
import pytest

from helpers.data import mnist


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Block every outgoing connection and hide any Keras cache."""
    def refuse(*args, **kwargs):
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))


def _check_subset(data):
    assert data.source == mnist.SUBSET_SOURCE
    assert data.x_train.shape == (4000, 28, 28) and data.x_test.shape == (1000, 28, 28)
    assert data.x_train.dtype == data.y_train.dtype == np.uint8  # as keras.datasets gives
    np.testing.assert_array_equal(np.bincount(data.y_train), np.full(10, 400))
    np.testing.assert_array_equal(np.bincount(data.y_test), np.full(10, 100))


def test_falls_back_to_the_bundled_digits_when_the_network_is_blocked(no_network):
    with pytest.warns(UserWarning, match="not reachable.*5,000 real MNIST digits"):
        data = mnist.load_mnist()
    _check_subset(data)


def test_offline_variable_skips_the_network(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the network must not be tried when MNIST_OFFLINE=1")

    monkeypatch.setattr(mnist, "_reachable", fail)
    monkeypatch.setattr(mnist, "_load_keras", fail)
    monkeypatch.setenv("MNIST_OFFLINE", "1")
    with pytest.warns(UserWarning, match="MNIST_OFFLINE"):
        _check_subset(mnist.load_mnist())


def test_a_failing_download_falls_back(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(mnist, "_reachable", lambda *a, **k: True)

    def broken():
        raise TimeoutError("stalled")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", broken)
    with pytest.warns(UserWarning, match="TimeoutError"):
        assert mnist.load_mnist().source == mnist.SUBSET_SOURCE


def test_download_runs_under_a_socket_timeout(monkeypatch):
    seen = {}
    images = np.zeros((2, 28, 28), np.uint8)
    labels = np.zeros(2, np.uint8)

    def fake_load():
        seen["timeout"] = socket.getdefaulttimeout()
        return (images, labels), (images, labels)

    monkeypatch.setattr(keras.datasets.mnist, "load_data", fake_load)
    data = mnist._load_keras(timeout=12.5)
    assert seen["timeout"] == 12.5 and socket.getdefaulttimeout() is None
    assert data.source == mnist.KERAS_SOURCE


def test_unreachable_host_is_detected_quickly(no_network):
    assert mnist._reachable("example.invalid", timeout=1.0) is False


def test_bundled_digits_look_like_mnist():
    with pytest.warns(UserWarning, match="offline=True"):
        data = mnist.load_mnist(offline=True)
    x = mnist.to_unit_interval(np.concatenate([data.x_train, data.x_test]))
    # the full training set's mean pixel is 0.1307 and its std 0.3081 (the usual
    # normalisation constants); noise or a wrong scaling would miss both
    assert x.mean() == pytest.approx(0.1307, abs=0.005)
    assert x.std() == pytest.approx(0.3081, abs=0.005)
    # digits are centred: the border rows are blank
    assert data.x_train[:, 0, :].max() == 0


def test_to_unit_interval():
    x = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    np.testing.assert_allclose(mnist.to_unit_interval(x), [[0.0, 1.0, 0.2, 0.4]])
    assert mnist.to_unit_interval(x, flatten=False).shape == (1, 2, 2)
    with pytest.raises(ValueError, match="pixel values"):
        mnist.to_unit_interval(np.full((1, 2, 2), 300))


def test_binarize_is_bernoulli_and_reproducible():
    x = np.full((200, 500), 0.3, dtype=np.float32)
    b = mnist.binarize(x, seed=1)
    assert set(np.unique(b)) == {0.0, 1.0}
    se = np.sqrt(0.3 * 0.7 / b.size)
    assert abs(b.mean() - 0.3) < 4 * se
    np.testing.assert_array_equal(b, mnist.binarize(x, seed=1))
    assert not np.array_equal(b, mnist.binarize(x, seed=2))
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\]"):
        mnist.binarize(x + 1)


def test_dynamic_binarization_redraws_every_epoch():
    x = np.full((10, 6), 0.5, dtype=np.float32)
    ds = mnist.DynamicBinarization(x, batch_size=4, seed=0)
    assert len(ds) == 3 and ds[0].shape == (4, 6) and ds[2].shape == (2, 6)
    first = np.concatenate([ds[i] for i in range(len(ds))])
    np.testing.assert_array_equal(ds[1], ds[1])  # stable within an epoch
    ds.on_epoch_end()
    second = np.concatenate([ds[i] for i in range(len(ds))])
    assert not np.array_equal(first, second)
    again = mnist.DynamicBinarization(x, batch_size=4, seed=0)
    np.testing.assert_array_equal(first, np.concatenate([again[i] for i in range(3)]))
    with pytest.raises(ValueError, match="batch_size"):
        mnist.DynamicBinarization(x, batch_size=0)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"timeout": "30"}, TypeError, "timeout"),
    ({"timeout": -1}, ValueError, "timeout"),
    ({"timeout": float("nan")}, ValueError, "timeout"),
    ({"timeout": True}, TypeError, "timeout"),
    ({"offline": "no"}, TypeError, "offline"),
    ({"offline": 0}, TypeError, "offline")])
def test_bad_arguments_raise_instead_of_falling_back(no_network, kwargs, error, match):
    with pytest.raises(error, match=match):
        mnist.load_mnist(**kwargs)
    with pytest.raises(error, match=match):
        mnist.load_fashion_mnist(**kwargs)


def test_to_unit_interval_refuses_images_already_scaled():
    with pytest.raises(ValueError, match="scaled already"):
        mnist.to_unit_interval(np.array([[[0.0, 0.5], [1.0, 0.25]]], dtype=np.float32))
    # integer-valued floats are pixel values
    np.testing.assert_allclose(mnist.to_unit_interval(np.array([[[0.0, 51.0]]])), [[0.0, 0.2]])


def _write_idx(folder, rng, n_train=30, n_test=10):
    import gzip

    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        with gzip.open(folder / f"{split}-images-idx3-ubyte.gz", "wb") as fh:
            fh.write((2051).to_bytes(4, "big") + n.to_bytes(4, "big")
                     + (28).to_bytes(4, "big") + (28).to_bytes(4, "big") + images.tobytes())
        with gzip.open(folder / f"{split}-labels-idx1-ubyte.gz", "wb") as fh:
            fh.write((2049).to_bytes(4, "big") + n.to_bytes(4, "big") + labels.tobytes())
        arrays[split] = (images, labels)
    return arrays


def test_fashion_mnist_reads_the_idx_files_of_a_local_folder(no_network, monkeypatch, tmp_path):
    arrays = _write_idx(tmp_path / "fashion", np.random.default_rng(0))
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path / "fashion"))
    data = mnist.load_dataset("fashion_mnist")
    assert data.source == mnist.FASHION_SOURCE
    np.testing.assert_array_equal(data.x_train, arrays["train"][0])
    np.testing.assert_array_equal(data.y_test, arrays["t10k"][1])
    # a corrupt file is reported, not silently replaced
    (tmp_path / "fashion" / "t10k-labels-idx1-ubyte.gz").write_bytes(
        __import__("gzip").compress(b"\x00\x00\x08\x03" + bytes(20)))
    with pytest.raises(ValueError, match="not an IDX file"):
        mnist.load_fashion_mnist()


def test_fashion_mnist_without_files_or_network_says_how_to_get_it(no_network, monkeypatch,
                                                                    tmp_path):
    monkeypatch.setattr(mnist, "FASHION_SYSTEM_DIR", tmp_path / "nowhere")
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        mnist.load_fashion_mnist()
    with pytest.raises(ValueError, match="name"):
        mnist.load_dataset("cifar10")


@pytest.mark.skipif(not (mnist.FASHION_SYSTEM_DIR / "t10k-labels-idx1-ubyte.gz").exists(),
                    reason="Fashion-MNIST files not installed "
                           "(Debian package dataset-fashion-mnist)")
def test_the_real_fashion_mnist_files(no_network):
    data = mnist.load_fashion_mnist()
    assert data.x_train.shape == (60_000, 28, 28) and data.x_test.shape == (10_000, 28, 28)
    assert data.x_train.dtype == np.uint8 and data.x_train.max() == 255
    # the published split: exactly 6,000 training and 1,000 test images per class
    assert np.all(np.bincount(data.y_train) == 6000) and np.all(np.bincount(data.y_test) == 1000)


def _fashion_folder(tmp_path, monkeypatch):
    folder = tmp_path / "fashion"
    arrays = _write_idx(folder, np.random.default_rng(1), n_train=10, n_test=4)
    monkeypatch.setenv("FASHION_MNIST_DIR", str(folder))
    return folder, arrays


def _write_gz(path, payload):
    import gzip

    with gzip.open(path, "wb") as fh:
        fh.write(payload)


def test_fashion_mnist_with_mismatched_counts_names_the_files(no_network, monkeypatch, tmp_path):
    folder, _ = _fashion_folder(tmp_path, monkeypatch)
    labels = np.zeros(7, np.uint8)  # 10 training images, 7 labels
    _write_gz(folder / "train-labels-idx1-ubyte.gz",
              (2049).to_bytes(4, "big") + (7).to_bytes(4, "big") + labels.tobytes())
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz holds 10 images.*"
                                         r"train-labels-idx1-ubyte\.gz holds 7 labels"):
        mnist.load_fashion_mnist()


def test_a_corrupt_fashion_mnist_gz_names_the_file(no_network, monkeypatch, tmp_path):
    folder, _ = _fashion_folder(tmp_path, monkeypatch)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzipped at all")
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz is not a readable gzip"):
        mnist.load_fashion_mnist()


def test_fashion_mnist_images_must_be_28_by_28(no_network, monkeypatch, tmp_path):
    # one 56 x 14 image has 784 pixels, like one 28 x 28 image: it used to load scrambled
    folder, _ = _fashion_folder(tmp_path, monkeypatch)
    header = b"".join(v.to_bytes(4, "big") for v in (2051, 1, 56, 14))
    _write_gz(folder / "t10k-images-idx3-ubyte.gz", header + bytes(784))
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz holds 56 x 14 images"):
        mnist.load_fashion_mnist()


def test_fashion_mnist_labels_must_be_classes_0_to_9(no_network, monkeypatch, tmp_path):
    folder, _ = _fashion_folder(tmp_path, monkeypatch)
    labels = np.array([0, 1, 12, 3], np.uint8)
    _write_gz(folder / "t10k-labels-idx1-ubyte.gz",
              (2049).to_bytes(4, "big") + (4).to_bytes(4, "big") + labels.tobytes())
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz holds labels up to 12"):
        mnist.load_fashion_mnist()


def test_dynamic_binarization_refuses_a_batch_past_the_end():
    ds = mnist.DynamicBinarization(np.full((10, 6), 0.5, dtype=np.float32), batch_size=4)
    assert ds[2].shape == (2, 6)
    with pytest.raises(IndexError, match="index must be in 0..2"):
        ds[3]  # used to be an empty batch
    with pytest.raises(IndexError, match="index"):
        ds[-1]


@pytest.mark.parametrize("call, match", [
    (lambda: mnist.binarize(np.zeros((2, 3)), seed=-1), "seed must be >= 0"),
    (lambda: mnist.DynamicBinarization(np.zeros((2, 3)), seed=-2), "seed must be >= 0"),
    (lambda: mnist.DynamicBinarization(np.zeros((2, 3)), shuffle="no"), "shuffle"),
])
def test_negative_seeds_and_non_boolean_flags_are_named(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_a_truncated_fashion_mnist_gz_names_the_file(no_network, monkeypatch, tmp_path):
    folder, _ = _fashion_folder(tmp_path, monkeypatch)
    path = folder / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])  # cut inside the deflate stream or the trailer
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz is not a readable gzip"):
        mnist.load_fashion_mnist()

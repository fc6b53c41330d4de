"""Shared fixtures: TensorFlow backend, quiet logs, and private data/build folders."""

import os

os.environ["KERAS_BACKEND"] = "tensorflow"  # the helpers need it, whatever the shell says
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """Point data/ and build/ at temporary folders so tests never touch real caches."""
    monkeypatch.setenv("GENERATIVE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GENERATIVE_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.delenv("NOTEBOOK_FAST", raising=False)
    monkeypatch.delenv("RETRAIN", raising=False)
    monkeypatch.delenv("MNIST_OFFLINE", raising=False)
    return tmp_path

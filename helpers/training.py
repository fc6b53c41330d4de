"""Fit-or-load: cache trained weights under data/models/, keyed by configuration."""

from __future__ import annotations

import hashlib
import json
import os
import warnings

import numpy as np

from helpers.config import data_dir, fast_mode
from helpers.metrics import write_json_atomic

_UNHASHED_FIT_ARGS = {"verbose", "callbacks"}


def _primitive(value):
    return isinstance(value, (str, int, float, bool, type(None)))


def model_signature(layer) -> dict:
    """A description of a model's architecture that ignores auto-generated layer names."""
    config = layer.get_config()
    if hasattr(layer, "layers"):  # a model: its own settings plus its layers, in order
        own = {k: v for k, v in config.items() if k != "name" and _primitive(v)}
        return {"class": type(layer).__name__, "config": own,
                "layers": [model_signature(sub) for sub in layer.layers]}
    return {"class": type(layer).__name__,
            "config": {k: v for k, v in config.items() if k != "name"}}


_STREAM_SETTINGS = ("batch_size", "seed", "shuffle")


def _fingerprint(obj):
    """JSON-able identity of training inputs: arrays by content hash, data streams that
    hold an array ``x`` (such as ``mnist.DynamicBinarization``) by that array and their
    settings, containers element by element."""
    if isinstance(obj, np.ndarray):
        digest = hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest()[:16]
        return {"shape": list(obj.shape), "dtype": str(obj.dtype), "sha256": digest}
    if isinstance(obj, (tuple, list)):
        return [_fingerprint(item) for item in obj]
    if isinstance(obj, dict):
        return {str(k): _fingerprint(v) for k, v in obj.items()}
    if isinstance(getattr(obj, "x", None), np.ndarray):
        return {"type": type(obj).__name__, "x": _fingerprint(obj.x),
                **{k: getattr(obj, k) for k in _STREAM_SETTINGS if hasattr(obj, k)}}
    return obj if _primitive(obj) else repr(obj)


def cache_key(model, settings=None, x=None, y=None, fit_kwargs=None) -> str:
    """Hash of architecture, optimizer, data fingerprint, ``settings`` and fit arguments."""
    optimizer = model.optimizer.get_config() if getattr(model, "optimizer", None) else None
    if optimizer:
        optimizer = {k: v for k, v in optimizer.items() if k != "name"}
    fit_kwargs = {k: _fingerprint(v) for k, v in (fit_kwargs or {}).items()
                  if k not in _UNHASHED_FIT_ARGS}
    payload = {"model": model_signature(model), "optimizer": optimizer,
               "x": _fingerprint(x), "y": _fingerprint(y), "settings": settings or {},
               "fit": fit_kwargs}
    text = json.dumps(payload, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _first_batch(x):
    batch = x[:2] if isinstance(x, np.ndarray) else x[0]
    while isinstance(batch, (tuple, list)):
        batch = batch[0]
    return batch


def fit_or_load(model, x=None, y=None, *, name: str, settings: dict | None = None,
                retrain: bool | None = None, cache: bool | None = None, **fit_kwargs) -> dict:
    """Train ``model`` with ``model.fit(x, y, **fit_kwargs)`` or reload cached weights.

    Weights go to ``data/models/<name>-<key>.weights.h5`` with the training history beside
    them; the key hashes the architecture, optimizer, array data, ``settings`` (put the
    seed and data source here) and fit arguments. ``retrain=True`` (or ``RETRAIN=1``)
    forces training; the cache is off in fast mode. Returns the history as a dict.
    """
    if not isinstance(name, str) or not name or os.sep in name:
        raise ValueError(f"name must be a non-empty file-name stem, got {name!r}")
    if cache is None:
        cache = not fast_mode()
    if retrain is None:
        retrain = os.environ.get("RETRAIN", "").strip().lower() in {"1", "true", "yes", "on"}
    key = cache_key(model, settings, x, y, fit_kwargs)
    weights = data_dir("models") / f"{name}-{key}.weights.h5"
    history_file = weights.with_name(f"{name}-{key}.history.json")

    if cache and not retrain and weights.exists() and history_file.exists():
        try:
            model(_first_batch(x), training=False)  # build the variables before loading
            if getattr(model, "optimizer", None) is not None and not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)  # its state is saved too
            model.load_weights(weights)
            history = json.loads(history_file.read_text())
            print(f"Loaded cached weights {weights.name} (set RETRAIN=1 to train again)")
            return history
        except Exception as exc:  # corrupt or stale cache: train again
            warnings.warn(f"Cached weights {weights.name} unusable ({exc}); retraining.",
                          stacklevel=2)
    history = model.fit(x, y, **fit_kwargs).history
    history = {k: [float(v) for v in values] for k, values in history.items()}
    if cache:
        # Keras wants the .weights.h5 suffix on the temporary name too
        tmp = weights.with_name(f".{weights.stem}.{os.getpid()}.tmp.weights.h5")
        try:
            model.save_weights(tmp, overwrite=True)
            os.replace(tmp, weights)
        finally:
            tmp.unlink(missing_ok=True)
        write_json_atomic(history_file, history)
    return history


__all__ = ["cache_key", "fit_or_load", "model_signature"]

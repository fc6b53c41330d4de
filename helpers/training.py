"""Training infrastructure shared by the notebooks: update budgets, the fit-or-load weight
cache under data/models/ (keyed by configuration), and checkpoints that let a long GAN
training resume from its latest epoch."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np

from helpers.infra.checks import check_positive_int
from helpers.infra.config import data_dir, fast_mode, retrain_requested
from helpers.infra.files import replace_atomic, write_json_atomic
from helpers.infra.progress import progress
from helpers.infra.weights import KEY_SUFFIX, RUN_KEY, module_fingerprints

if TYPE_CHECKING:
    from helpers.models.gan import GAN

_UNHASHED_FIT_ARGS = {"verbose", "callbacks"}

# Gradient updates per call into TensorFlow, for ``compile(steps_per_execution=...)``: the
# same updates in the same order, bit for bit (tested), with Keras's per-step Python work paid
# once per 32 updates. On two CPU cores this makes a small model train 1.2 to 1.6 times as
# fast (benchmarks/bench_training.py); callbacks that act per batch see every 32nd one.
STEPS_PER_EXECUTION = 32


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


def _is_tf_dataset(obj) -> bool:
    import tensorflow as tf

    return isinstance(obj, tf.data.Dataset)


def _dataset_fingerprint(dataset) -> dict:
    """A ``tf.data.Dataset`` by its element structure and the hash of one pass over its
    elements, in order (a pipeline shuffled without a fixed seed hashes differently on
    every pass, so it is retrained rather than confused with other data)."""
    import tensorflow as tf

    digest = hashlib.sha256()
    for element in dataset:
        for tensor in tf.nest.flatten(element):
            array = np.ascontiguousarray(tensor.numpy())
            digest.update(f"{array.dtype}{array.shape}".encode())
            digest.update(array.tobytes())
    return {"type": "tf.data.Dataset", "element_spec": repr(dataset.element_spec),
            "sha256": digest.hexdigest()[:16]}


def _py_dataset_fingerprint(dataset, name: str) -> dict:
    """A ``keras.utils.PyDataset`` by its class and the hash of its batches, in order."""
    try:
        n_batches = len(dataset)
    except TypeError:
        n_batches = None
    if not isinstance(n_batches, int):
        raise ValueError(f"{name} is a PyDataset of unknown length ({type(dataset).__name__}); "
                         "the weight cache needs a finite one to fingerprint its content")
    digest = hashlib.sha256()
    for index in range(n_batches):
        for item in _flatten(dataset[index]):
            array = np.ascontiguousarray(np.asarray(item))
            digest.update(f"{array.dtype}{array.shape}".encode())
            digest.update(array.tobytes())
    return {"type": type(dataset).__name__, "batches": n_batches,
            "sha256": digest.hexdigest()[:16]}


def _flatten(item) -> list:
    if isinstance(item, (tuple, list)):
        return [leaf for sub in item for leaf in _flatten(sub)]
    if isinstance(item, dict):
        return [leaf for key in sorted(item) for leaf in _flatten(item[key])]
    return [item]


def _fingerprint(obj, name: str = "value"):
    """JSON-able identity of training inputs: arrays by content hash, ``tf.data`` pipelines
    and ``PyDataset`` objects by the content of one pass, data streams that hold an array
    ``x`` (such as ``mnist.DynamicBinarization``) by that array and their settings, Keras
    objects with a configuration (optimizers, schedules) by it, containers element by
    element. An object known only by its memory address would never hit the cache twice, so
    it is refused, naming ``name``."""
    if _is_tf_dataset(obj):
        return _dataset_fingerprint(obj)
    if isinstance(obj, np.ndarray):
        digest = hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest()[:16]
        return {"shape": list(obj.shape), "dtype": str(obj.dtype), "sha256": digest}
    if isinstance(obj, (tuple, list)):
        return [_fingerprint(item, f"{name}[{i}]") for i, item in enumerate(obj)]
    if isinstance(obj, dict):
        return {str(k): _fingerprint(v, f"{name}[{k!r}]") for k, v in obj.items()}
    if isinstance(getattr(obj, "x", None), np.ndarray):
        return {"type": type(obj).__name__, "x": _fingerprint(obj.x, f"{name}.x"),
                **{k: getattr(obj, k) for k in _STREAM_SETTINGS if hasattr(obj, k)}}
    if isinstance(obj, keras.utils.PyDataset):
        return _py_dataset_fingerprint(obj, name)
    if _primitive(obj) or isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item() if isinstance(obj, np.generic) else obj
    if callable(getattr(obj, "get_config", None)):
        config = {k: v for k, v in obj.get_config().items() if k != "name"}
        return {"type": type(obj).__name__, "config": _fingerprint(config, name)}
    text = repr(obj)
    if re.search(r" at 0x[0-9a-fA-F]+", text):
        raise TypeError(f"{name} ({type(obj).__name__}) cannot be told apart from other "
                        "objects by the weight cache (its description holds a memory "
                        "address): pass numbers, strings, arrays or their containers")
    return text


# ---------------------------------------------------------------- code fingerprints
# the modules whose code decides what a training produces: the model classes with their
# train_step, the builders and losses they use, and this module's training loop
_TRAINING_CODE = ("helpers.models.", "helpers.training")


def _is_training_module(name: str) -> bool:
    return name == "helpers.training" or name.startswith(_TRAINING_CODE[0])


def _source_text(obj) -> str:
    """The source of a function or class, or its compiled code where the source cannot be
    read (such as a class typed into an interactive session)."""
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        return repr((code.co_code, code.co_consts, code.co_names)) if code else repr(obj)


def _class_code(cls) -> str:
    """The code of a class defined outside the helpers (in a notebook, say): its methods'
    sources, since a class typed into a notebook cell has no file to read."""
    parts = []
    for name, member in sorted(vars(cls).items()):
        function = getattr(member, "__func__", member)  # staticmethod, classmethod
        if isinstance(member, property):
            function = member.fget
        if inspect.isfunction(function):
            parts.append(f"{name}:{_source_text(function)}")
    return "\n".join(parts)


def _training_modules(start: set[str]) -> set[str]:
    """``start`` and, transitively, every training-code module they refer to."""
    seen, todo = set(), list(start)
    while todo:
        name = todo.pop()
        if name in seen or name not in sys.modules:
            continue
        seen.add(name)
        for value in vars(sys.modules[name]).values():
            ref = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None)
            if isinstance(ref, str) and _is_training_module(ref) and ref not in seen:
                todo.append(ref)
    return seen


def code_parts(model) -> dict:
    """What :func:`code_fingerprint` hashes, by name: ``{"modules": {name: digest},
    "classes": {name: digest}}``, the digest (16 hex digits of SHA-256) of the source of every
    training-code module behind ``model`` and of every class of it defined elsewhere."""
    classes = {type(model)}
    if hasattr(model, "_flatten_layers"):
        classes.update(type(layer) for layer in model._flatten_layers(include_self=False))
    modules, outside = {"helpers.training"}, {}
    for cls in classes:
        for base in cls.__mro__:
            module = base.__module__ or ""
            if _is_training_module(module):
                modules.add(module)
            elif not module.startswith(("keras", "tensorflow", "builtins", "abc", "typing")):
                code = _class_code(base).encode()
                outside[f"{module}.{base.__qualname__}"] = hashlib.sha256(code).hexdigest()[:16]
    return {"modules": module_fingerprints(_training_modules(modules)), "classes": outside}


def code_fingerprint(model) -> str:
    """Hash of the code that determines what training ``model`` produces: the source of every
    helpers module that defines its class or one of its layers (``helpers.models.*``) with the
    training-code modules they use, this module's training loop, and the methods of any
    class defined elsewhere (a notebook's own model or layer). Keras's own classes are left
    out: their code comes with the installed version. Part of every cache key, so that
    weights trained by older code are never reloaded after the code changes."""
    text = json.dumps(code_parts(model), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def key_record(name: str, key: str, model) -> dict:
    """What the weight cache writes beside a model (``<name>-<key>.key.json``) so that an
    archive of the cache can be checked against the code that unpacks it
    (:mod:`helpers.infra.weights`)."""
    parts = code_parts(model)
    return {"name": name, "key": key, "code": parts["modules"], "classes": parts["classes"]}


def cache_key(model, settings=None, x=None, y=None, fit_kwargs=None) -> str:
    """Hash of architecture, the code that trains it (:func:`code_fingerprint`), optimizer,
    data fingerprint, ``settings`` and fit arguments."""
    optimizer = model.optimizer.get_config() if getattr(model, "optimizer", None) else None
    if optimizer:
        optimizer = {k: v for k, v in optimizer.items() if k != "name"}
    fit_kwargs = {k: _fingerprint(v, f"fit argument {k}") for k, v in (fit_kwargs or {}).items()
                  if k not in _UNHASHED_FIT_ARGS}
    payload = {"model": model_signature(model), "code": code_fingerprint(model),
               "optimizer": optimizer, "x": _fingerprint(x, "x"), "y": _fingerprint(y, "y"),
               "settings": _fingerprint(settings or {}, "settings"), "fit": fit_kwargs}
    text = json.dumps(payload, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def update_budget(updates: int, n_examples: int, batch_size: int, min_epochs: int = 1) -> dict:
    """``fit`` arguments that run ``updates`` gradient updates on ``n_examples`` in batches of
    ``batch_size``, whatever the data size: whole epochs when the budget holds at least
    ``min_epochs`` of them (the last may overshoot it by less than one epoch), otherwise
    ``min_epochs`` epochs cut to ``updates / min_epochs`` batches each, so that per-epoch
    curves have points. Returns ``{"epochs": ..., "steps_per_epoch": ...}``."""
    updates = check_positive_int(updates, "updates")
    n_examples = check_positive_int(n_examples, "n_examples")
    batch_size = check_positive_int(batch_size, "batch_size")
    min_epochs = check_positive_int(min_epochs, "min_epochs")
    steps = min(-(-n_examples // batch_size), max(1, updates // min_epochs))
    return {"epochs": -(-updates // steps), "steps_per_epoch": steps}


def split_passes(passes: int, at_most: int) -> tuple[int, int]:
    """Split ``passes`` passes over a small data set into Keras epochs of equal length, each
    at most ``at_most`` passes: returns ``(passes_per_epoch, epochs)`` whose product is
    exactly ``passes`` (the largest divisor of ``passes`` not above ``at_most``), so that
    grouping passes to save Keras's per-epoch overhead never changes how often the data are
    seen. Fed as the data tiled ``passes_per_epoch`` times, an epoch makes
    ceil(passes_per_epoch * n / batch_size) updates, fewer than ``passes_per_epoch`` times
    ceil(n / batch_size) when the batch size does not divide n (the batches run across the
    tiles instead of ending each pass with a short one)."""
    passes = check_positive_int(passes, "passes")
    at_most = check_positive_int(at_most, "at_most")
    per_epoch = max(d for d in range(1, min(passes, at_most) + 1) if passes % d == 0)
    return per_epoch, passes // per_epoch


def _first_batch(x):
    if _is_tf_dataset(x):
        batch = next(iter(x.take(1)))
    else:
        batch = x[:2] if isinstance(x, np.ndarray) else x[0]
    while isinstance(batch, (tuple, list)):
        batch = batch[0]
    return batch


def _read_history(path) -> dict:
    try:
        history = json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} does not hold a training history: it is not valid JSON "
                         f"({exc}); it may have been cut off") from exc
    if not isinstance(history, dict) or not all(
            isinstance(v, list) and all(isinstance(e, (int, float)) for e in v)
            for v in history.values()):
        raise ValueError(f"{path} does not hold a training history")
    return history


def _load_cached(model, x, weights, history_file) -> dict:
    """Load cached weights and history into ``model``; on any failure put every variable
    (the model's and its optimizer's) back as it was, so training starts afresh, and
    re-raise."""
    existing = {id(v): v.numpy() for v in model.variables}  # before the call draws noise
    if not model.built:  # build the variables before loading (a model built when made may
        model(_first_batch(x), training=False)  # not accept its fit input, e.g. dummies)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)  # its state is saved too
    variables = [*model.variables, *(optimizer.variables if optimizer is not None else [])]
    initial = [existing.get(id(v), v.numpy()) for v in variables]
    try:
        history = _read_history(history_file)
        model.load_weights(weights)
    except Exception:
        for variable, value in zip(variables, initial, strict=True):
            variable.assign(value)
        raise
    return history


def _save_pair(model, history: dict, weights: Path, history_file: Path,
               record: dict | None = None) -> None:
    replace_atomic(weights, lambda tmp: model.save_weights(tmp, overwrite=True),
                   suffix=".tmp.weights.h5")  # Keras wants the .weights.h5 suffix
    write_json_atomic(history_file, history)
    if record is not None:
        write_json_atomic(weights.with_name(weights.name.removesuffix(".weights.h5")
                                            + KEY_SUFFIX), record)


def _write_cache(model, history: dict, folder, stem: str,
                 record: dict | None = None) -> Path | None:
    """Save weights and history atomically to ``folder``; return the weights' path. When the
    cache cannot be written (a read-only data folder, a full disk), both go to a new
    temporary folder instead, named in a warning, so that a finished training is never lost;
    returns None only if that fails too (the model in memory is still trained)."""
    weights = history_file = None
    try:
        folder = Path(folder() if callable(folder) else folder)
        weights = folder / f"{stem}.weights.h5"
        history_file = folder / f"{stem}.history.json"
        _save_pair(model, history, weights, history_file, record)
        return weights
    except OSError as exc:
        if weights is not None:
            try:  # never leave weights without their history
                weights.unlink(missing_ok=True)
                weights.with_name(f"{stem}{KEY_SUFFIX}").unlink(missing_ok=True)
            except OSError:
                pass  # the folder cannot be changed at all: nothing was left there
        reason = exc
    try:
        spare = Path(tempfile.mkdtemp(prefix="generative-weights-"))
        _save_pair(model, history, spare / f"{stem}.weights.h5",
                   spare / f"{stem}.history.json", record)
    except OSError as exc:
        warnings.warn(f"Could not write the weight cache {stem} ({reason}) nor a temporary "
                      f"copy ({exc}); the trained model is kept in memory only.", stacklevel=3)
        return None
    warnings.warn(f"Could not write the weight cache {stem} ({reason}); the trained weights "
                  f"and history were saved to {spare} instead (copy them into data/models/ "
                  "to reuse them).", stacklevel=3)
    return spare / f"{stem}.weights.h5"


def restart_random_draws(model) -> None:
    """Put every seeded ``keras.random.SeedGenerator`` of ``model`` (and of its layers) back
    at its first draw. :func:`fit_or_load` calls it after training and after loading, so
    that what the model draws next (a VAE's sampled loss, a generator's noise) does not
    depend on whether its weights were just trained or reloaded from the cache. Generators
    made without a seed are left alone: their draws are not reproducible anyway."""
    layers = model._flatten_layers(include_self=True) if hasattr(model, "_flatten_layers") \
        else [model]
    for layer in layers:
        for generator in getattr(layer, "_seed_generators", []):
            seed = getattr(generator, "_initial_seed", None)
            if isinstance(seed, int):
                start = keras.ops.convert_to_tensor([seed, 0], dtype=generator.state.dtype)
                generator.state.assign(start)


class _FirstBatches(keras.utils.PyDataset):
    """The first ``steps`` batches of each epoch of ``stream`` (a ``PyDataset``), as an epoch
    of its own; the end of an epoch is passed on, so the stream draws its next epoch."""

    def __init__(self, stream, steps: int):
        super().__init__(workers=stream.workers, use_multiprocessing=stream.use_multiprocessing,
                         max_queue_size=stream.max_queue_size)
        self.stream, self.steps = stream, steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index):
        if not 0 <= index < self.steps:
            raise IndexError(f"index must be in 0..{self.steps - 1}, got {index}")
        return self.stream[index]

    def on_epoch_begin(self) -> None:
        self.stream.on_epoch_begin()

    def on_epoch_end(self) -> None:
        self.stream.on_epoch_end()


def _batches_per_epoch(x, fit_kwargs) -> int | None:
    if isinstance(x, keras.utils.PyDataset):
        return len(x)
    if isinstance(x, np.ndarray) and x.ndim:
        return -(-len(x) // int(fit_kwargs.get("batch_size") or 32))
    return None


def _whole_budget(x, fit_kwargs):
    """Keras runs epochs cut short (``steps_per_epoch`` below the data's batches) as one pass
    through the data that goes on across epochs, and stops with "ran out of data" once it is
    spent, before the budget: a ``PyDataset`` is then fed as its first ``steps_per_epoch``
    batches per epoch; arrays are refused."""
    steps, epochs = fit_kwargs.get("steps_per_epoch"), fit_kwargs.get("epochs", 1)
    per_epoch = _batches_per_epoch(x, fit_kwargs)
    if steps is None or per_epoch is None or steps >= per_epoch or epochs - fit_kwargs.get(
            "initial_epoch", 0) <= 1:
        return x
    if isinstance(x, keras.utils.PyDataset):
        return _FirstBatches(x, steps)
    raise ValueError(f"steps_per_epoch ({steps}) is below the {per_epoch} batches of an epoch "
                     f"of the arrays over {epochs} epochs: Keras would stop before the budget; "
                     f"feed a keras.utils.PyDataset, or train whole epochs")


def fit_or_load(model, x=None, y=None, *, name: str, settings: dict | None = None,
                retrain: bool = False, cache: bool | None = None, quiet: bool = False,
                **fit_kwargs) -> dict:
    """Train ``model`` with ``model.fit(x, y, **fit_kwargs)`` or reload cached weights.

    Weights go to ``data/models/<name>-<key>.weights.h5`` with the training history beside
    them; the key hashes the architecture, the code that trains it (:func:`code_fingerprint`:
    edit a model's ``train_step`` and it trains again), the optimizer, data (arrays, array
    streams, ``PyDataset`` and ``tf.data`` pipelines by content), ``settings`` (put the seed
    and data source here) and fit arguments. ``retrain=True`` or ``RETRAIN=1`` in the
    environment forces training; the cache is off in fast mode, and ``cache=False`` touches
    no folder. A silent training (``verbose=0``) shows one progress bar over its epochs
    (:class:`EpochProgress`). A corrupt cache is retrained from the model's initial state; a
    cache that cannot be written sends the weights to a temporary folder named in a warning.
    ``quiet=True`` (for many small models) shows no progress bar and no "Loaded" message.
    Either way the model's random draws then start again from its seed
    (:func:`restart_random_draws`). Returns the history as a dict.
    """
    if not isinstance(name, str) or not name or os.sep in name:
        raise ValueError(f"name must be a non-empty file-name stem, got {name!r}")
    if not isinstance(quiet, bool):
        raise TypeError(f"quiet must be True or False, got {quiet!r}")
    if cache is None:
        cache = not fast_mode()
    retrain = retrain_requested(retrain)
    fed = _whole_budget(x, fit_kwargs)
    if fed is not x:  # cut epochs were fed differently before: not the same training
        settings = {**(settings or {}), "cut_epochs": "first batches of each epoch"}
    key = cache_key(model, settings, x, y, fit_kwargs)
    stem = f"{name}-{key}"
    weights = history_file = None
    if cache:
        try:  # a data folder that cannot be made holds no cache to read
            folder = data_dir("models")
            weights = folder / f"{stem}.weights.h5"
            history_file = folder / f"{stem}.history.json"
        except OSError:
            pass

    if (cache and not retrain and weights is not None and weights.exists()
            and history_file.exists()):
        try:
            history = _load_cached(model, x, weights, history_file)
            restart_random_draws(model)
            if not quiet:
                print(f"Loaded cached weights {weights.name} (set RETRAIN=1 to train again)")
            return history
        except Exception as exc:  # corrupt or stale cache: train again, from the start
            warnings.warn(f"Cached weights {weights.name} unusable ({exc}); retraining.",
                          stacklevel=2)
    if fit_kwargs.get("verbose", "auto") == 0 and not quiet:  # one progress bar instead
        fit_kwargs = {**fit_kwargs, "callbacks": [*(fit_kwargs.get("callbacks") or []),
                                                  EpochProgress(name)]}
    history = model.fit(fed, y, **fit_kwargs).history
    history = {k: [float(v) for v in values] for k, values in history.items()}
    restart_random_draws(model)
    if cache:
        _write_cache(model, history, lambda: data_dir("models"), stem,
                     key_record(name, key, model))
    return history


# ---------------------------------------------------------------- runs that save as they go
HISTORY_FILE = "history.json"


def run_directory(name: str, settings: dict, retrain: bool = False, model=None):
    """The folder ``data/runs/<name>-<key>/`` of a training that saves as it goes
    (checkpoints, its history, pictures), the key hashing ``settings`` (seed, data source,
    optimizer settings: whatever makes a different run) as the weight cache does, and, when
    ``model`` is given, its architecture and the code that trains it
    (:func:`code_fingerprint`), so that checkpoints of older code are never resumed; fast
    mode gets a folder of its own. ``retrain=True``, ``RETRAIN=1`` and fast mode (which never
    reuses a run) empty it first: it holds only files that a run wrote, so a sub-folder
    (not the run's own) is refused before anything is deleted."""
    if not isinstance(name, str) or not name or os.sep in name:
        raise ValueError(f"name must be a non-empty file-name stem, got {name!r}")
    if not isinstance(settings, dict):
        raise TypeError(f"settings must be a dict, got {type(settings).__name__}")
    payload = _fingerprint(settings, "settings")
    if model is not None:
        if not isinstance(model, keras.Model):
            raise TypeError(f"model must be a Keras model, got {type(model).__name__}")
        payload = {"settings": payload, "model": model_signature(model),
                   "code": code_fingerprint(model)}
    text = json.dumps(payload, sort_keys=True, default=repr)
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    folder = data_dir("runs", f"{name}-{key}" + ("-fast" if fast_mode() else ""))
    if retrain_requested(retrain) or fast_mode():
        entries = list(folder.iterdir())
        foreign = [p.name for p in entries if p.is_dir() and not p.is_symlink()]
        if foreign:
            raise ValueError(f"run folder {folder} holds the sub-folder(s) "
                             f"{', '.join(sorted(foreign))}, which a run never writes; move "
                             "them elsewhere before training again")
        for old in entries:
            old.unlink()
    if model is not None:  # what an archive of the cache is checked against
        write_json_atomic(folder / RUN_KEY, key_record(name, key, model))
    return folder


def read_epoch_history(directory) -> dict:
    """The history an :class:`EpochHistory` wrote in ``directory`` ({} if none yet)."""
    path = Path(directory) / HISTORY_FILE
    return _read_history(path) if path.exists() else {}


class EpochProgress(keras.callbacks.Callback):
    """A progress bar over a training's epochs showing the latest losses: live in JupyterLab
    and a terminal, one final line in an executed notebook. ``fit_or_load`` adds one to a
    silent (``verbose=0``) training; add it to ``callbacks`` of any other ``fit``."""

    def __init__(self, desc: str = "training"):
        super().__init__()
        self.desc = desc
        self.bar = None

    def on_train_begin(self, logs=None):
        self.bar = progress(desc=self.desc, unit="epoch", total=self.params.get("epochs"))

    def on_epoch_end(self, epoch, logs=None):
        losses = {k: f"{float(v):.4g}" for k, v in (logs or {}).items() if "loss" in k}
        self.bar.set_postfix(dict(list(losses.items())[:3]), refresh=False)
        self.bar.update(epoch + 1 - self.bar.n)  # resumed trainings start past epoch 0

    def on_train_end(self, logs=None):
        if self.bar is not None:
            self.bar.close()


class EpochHistory(keras.callbacks.Callback):
    """Record each epoch's logs, with its 1-based number under ``epoch``, in
    ``directory/history.json``, rewritten atomically after every epoch. A training resumed
    from a checkpoint continues the same history: epochs trained again replace their old
    entries."""

    def __init__(self, directory):
        super().__init__()
        self.directory = Path(directory)

    def on_epoch_end(self, epoch, logs=None):
        history = read_epoch_history(self.directory)
        keep = [i for i, e in enumerate(history.get("epoch", [])) if e <= epoch]
        history = {k: [v[i] for i in keep] for k, v in history.items()}
        for k, v in {"epoch": epoch + 1, **(logs or {})}.items():
            history.setdefault(k, []).append(int(v) if k == "epoch" else float(v))
        write_json_atomic(self.directory / HISTORY_FILE, history)


# ---------------------------------------------------------------- checkpoints
_CHECKPOINT = re.compile(r"^epoch-(\d+)\.weights\.h5$")

def _build_for_saving(gan: GAN) -> None:
    """Create every variable a checkpoint holds (networks and both optimizers' slots)."""
    if not all(hasattr(gan, name) for name in ("generator", "discriminator")):
        raise TypeError(f"gan must be a GAN with a generator and a discriminator, got "
                        f"{type(gan).__name__}")
    if getattr(gan, "d_optimizer", None) is None or getattr(gan, "g_optimizer", None) is None:
        raise ValueError("gan must be compiled (gan.compile(d_optimizer=..., g_optimizer=...)) "
                         "before a checkpoint is saved or restored: it holds the optimizers' "
                         "state")
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

def restore_latest(gan: GAN, directory, max_epoch: int | None = None) -> int:
    """Load the newest checkpoint into ``gan`` (compiled, networks built) and return its
    epoch; return 0 and leave ``gan`` untouched when ``directory`` holds none. With
    ``max_epoch`` (the epochs the run is asked for) only checkpoints up to that epoch count:
    a folder that holds only later ones, a longer training than asked for, raises rather than
    report the longer training. A checkpoint that does not load, or loads only in part,
    raises, naming the file. Whenever it raises, every variable of ``gan`` and its optimizers
    is left exactly as it was."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"directory must be the folder that holds the checkpoints, got the "
                         f"file {directory}")
    found = checkpoints(directory)
    if max_epoch is not None:
        max_epoch = check_positive_int(max_epoch, "max_epoch")
        within = [item for item in found if item[0] <= max_epoch]
        if found and not within:
            raise ValueError(
                f"{directory} holds checkpoints from epoch {found[0][0]} on, later than the "
                f"max_epoch={max_epoch} asked for: a longer training of the same settings. "
                "Ask for at least that many epochs, or retrain (RETRAIN = True), which "
                "replaces the longer training")
        found = within
    if not found:
        return 0
    epoch, path = found[-1]
    _build_for_saving(gan)
    variables = [*gan.variables, *gan.d_optimizer.variables, *gan.g_optimizer.variables]
    before = [v.numpy() for v in variables]  # a refused checkpoint leaves gan as it was

    def roll_back():
        for variable, value in zip(variables, before, strict=True):
            variable.assign(value)

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gan.load_weights(path)
    except Exception as exc:
        roll_back()
        raise ValueError(f"checkpoint {path} could not be loaded ({exc}); delete it to "
                         "resume from the one before") from exc
    skipped = [str(w.message) for w in caught if "load" in str(w.message).lower()]
    if skipped:  # Keras skips mismatched variables (such as an optimizer's) with a warning
        roll_back()
        raise ValueError(f"checkpoint {path} was only partly loaded ({skipped[0]}); it does not "
                         "match this model and its optimizers, which were left as they were")
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


__all__ = ["CheckpointEvery", "EpochHistory", "cache_key", "checkpoints", "code_fingerprint",
           "fit_or_load", "latest_checkpoint", "model_signature", "read_epoch_history",
           "restart_random_draws", "restore_latest", "run_directory", "save_checkpoint",
           "split_passes", "update_budget"]

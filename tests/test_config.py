import numpy as np
import pytest

from helpers.infra import config


@pytest.mark.parametrize("value, expected", [
    ("1", True), ("true", True), ("YES", True), ("on", True),
    ("0", False), ("", False), ("false", False), ("no", False), ("off", False)])
def test_fast_mode_reads_the_variable(monkeypatch, value, expected):
    monkeypatch.setenv("NOTEBOOK_FAST", value)
    assert config.fast_mode() is expected


def test_fast_mode_off_when_unset(monkeypatch):
    monkeypatch.delenv("NOTEBOOK_FAST", raising=False)
    assert config.fast_mode() is False


def test_dirs_follow_overrides_and_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("GENERATIVE_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("GENERATIVE_BUILD_DIR", str(tmp_path / "b"))
    assert config.data_dir("models") == tmp_path / "d" / "models"
    assert (tmp_path / "d" / "models").is_dir()
    assert config.build_dir("metrics") == tmp_path / "b" / "metrics"


def test_default_dirs_are_inside_the_repository(monkeypatch):
    monkeypatch.delenv("GENERATIVE_DATA_DIR")
    assert config.data_dir() == config.REPO_ROOT / "data"
    assert (config.REPO_ROOT / "pyproject.toml").exists()


def test_same_seed_gives_same_numbers():
    import keras

    def draw():
        config.set_seed(123)
        layer = keras.layers.Dense(3)
        layer.build((None, 4))
        # set_seed also seeds NumPy's legacy global generator, used by older code
        return (np.random.rand(3), keras.random.normal((3,)).numpy(),  # noqa: NPY002
                layer.kernel.numpy())

    first, second = draw(), draw()
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    config.set_seed(124)
    assert not np.array_equal(np.random.rand(3), first[0])  # noqa: NPY002


@pytest.mark.parametrize("seed", [-1, 1.5, "7", True, None, 2**32])
def test_set_seed_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed must be an integer from 0 to 2"):
        config.set_seed(seed)


def test_the_largest_seed_is_accepted():
    config.set_seed(2**32 - 1)


@pytest.mark.parametrize("raw, expected", [
    (None, False), ("", False), ("0", False), ("false", False), ("No", False), ("off", False),
    ("1", True), ("true", True), (" YES ", True), ("on", True)])
def test_env_flag_reads_the_usual_spellings(monkeypatch, raw, expected):
    if raw is None:
        monkeypatch.delenv("SOME_FLAG", raising=False)
    else:
        monkeypatch.setenv("SOME_FLAG", raw)
    assert config.env_flag("SOME_FLAG") is expected


def test_env_flag_rejects_anything_else_naming_the_variable(monkeypatch):
    monkeypatch.setenv("NOTEBOOK_FAST", "2")
    with pytest.raises(ValueError, match="NOTEBOOK_FAST"):
        config.fast_mode()


def test_retrain_requested(monkeypatch):
    assert not config.retrain_requested(False) and config.retrain_requested(True)
    monkeypatch.setenv("RETRAIN", "1")
    assert config.retrain_requested(False)
    with pytest.raises(TypeError, match="retrain"):
        config.retrain_requested("no")


def test_models_refuse_another_keras_backend(monkeypatch):
    import importlib

    import keras

    import helpers.models.autoencoders as autoencoders

    config.require_tensorflow_backend("helpers.models.autoencoders")  # passes here
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(ImportError, match="autoencoders needs the TensorFlow backend.*'jax'"):
        importlib.reload(autoencoders)


def test_set_seed_stops_grappler_from_summing_gradients_in_arrival_order():
    """TensorFlow's memory optimiser may turn a large sum of gradient contributions into a
    temporary variable that each contribution is added to when it is ready, so the rounding
    follows thread timing (the Ising notebook's VAE trained to different weights from one
    seed). Grappler itself, run on the graph of a gradient step whose activation feeds three
    ops, shows the rewrite: with TensorFlow's default settings it is made, with the settings
    that set_seed leaves in the eager context it must not be."""
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2, meta_graph_pb2
    from tensorflow.python.eager import context
    from tensorflow.python.framework import meta_graph
    from tensorflow.python.grappler import tf_optimizer

    weights = tf.Variable(tf.ones((4096, 4096)))

    @tf.function
    def gradient_step(x):
        with tf.GradientTape() as tape:
            a = tf.matmul(x, weights)  # 64 MB; its gradient sums three of that size
            loss = tf.reduce_sum(tf.sin(a)) + tf.reduce_sum(tf.cos(a)) + tf.reduce_sum(
                tf.tanh(a))
        return tape.gradient(loss, weights)

    graph = gradient_step.get_concrete_function(tf.TensorSpec((4096, 4096))).graph
    item = meta_graph.create_meta_graph_def(graph=graph)
    fetch = meta_graph_pb2.CollectionDef()
    fetch.node_list.value.extend(t.op.name for t in graph.outputs)
    item.collection_def["train_op"].CopyFrom(fetch)

    def temporaries(config_proto):
        optimized = tf_optimizer.OptimizeGraph(config_proto, item)
        return [node.name for node in optimized.node if node.op == "TemporaryVariable"]

    assert temporaries(config_pb2.ConfigProto()), "the graph no longer triggers the rewrite"
    config.set_seed(0)
    assert temporaries(context.context().config) == []
    # the function-call options that compiled functions run with carry the setting too
    options = config_pb2.ConfigProto.FromString(
        context.context().function_call_options.config_proto_serialized)
    assert temporaries(options) == []


@pytest.mark.parametrize("enabled", ["no", 0, None])
def test_set_memory_optimizer_names_its_argument(enabled):
    with pytest.raises(TypeError, match="enabled"):
        config.set_memory_optimizer(enabled)


BLAS_PROBE = """
import json, os, sys
import numpy
from threadpoolctl import threadpool_info
from helpers.infra import config
config.set_seed(0)
import scipy.linalg  # its own OpenBLAS, loaded after set_seed
print(json.dumps(sorted({(i["filepath"], i["num_threads"]) for i in threadpool_info()
                         if i["user_api"] == "blas"})))
"""


def _blas_threads(env_update):
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    env.update(env_update, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", BLAS_PROBE], env=env, capture_output=True,
                         text=True, check=True, cwd=config.REPO_ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_set_seed_runs_numpy_and_scipy_blas_on_one_thread():
    libraries = _blas_threads({})
    assert len(libraries) >= 1 and all(threads == 1 for _, threads in libraries), libraries
    # a thread count the user chose stays (threadpoolctl reads what the library uses)
    chosen = _blas_threads({"OPENBLAS_NUM_THREADS": "2"})
    assert all(threads == 2 for _, threads in chosen), chosen

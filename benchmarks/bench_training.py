"""Gradient updates per second of every main model of the course: the project's training path
(compiled and fitted as its notebook does, with ``PROJECT_SETTINGS``) against the same
architecture and ``train_step`` trained the plain way (``compile(optimizer=...)`` with Keras's
defaults, ``fit`` on NumPy arrays, as the keras.io examples do), timed in the same run, the two
paths interleaved, median of ``--repeats``. Also the floating-point operations of one update,
counted by TensorFlow's profiler on the traced ``train_step``, and the throughput they make as
a fraction of this machine's float32 matmul peak, measured with TensorFlow on the same cores.

The two paths differ where the notebooks do: the notebooks run
``training.STEPS_PER_EXECUTION`` updates per call into TensorFlow (the RBMs one), call
``config.set_seed`` (op determinism, no memory-optimising rewrite), and the RBMs read
``mnist.DynamicBinarization`` batches; the plain path uses Keras's defaults. Each
timed fit runs whole epochs over at most the notebook's training set (so epoch starts cost
what they cost there) and is timed from the start of training to its end: the set-up of the
``fit`` call, paid once per training, is left out, as are validation and the notebooks'
callbacks. The data are random arrays of each model's shape (binary where the model wants
binary) from a fixed NumPy seed; nothing is loaded, and every folder the helpers might write
to is a temporary one. Nothing is written unless ``--json`` asks. Usage::

    python benchmarks/bench_training.py [--quick] [--models mnist_vae,dcgan] [--json FILE]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
from helpers.infra import config  # noqa: E402

config.quiet_tensorflow()
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.framework.config import disable_op_determinism  # noqa: E402
from tensorflow.python.profiler import model_analyzer  # noqa: E402
from tensorflow.python.profiler.option_builder import ProfileOptionBuilder  # noqa: E402

from helpers.data import mnist  # noqa: E402
from helpers.evaluation import judge  # noqa: E402
from helpers.models import (  # noqa: E402
    autoencoders,
    backbones,
    builders,
    checkerboard,
    diffusion,
    gan,
    rbm,
)
from helpers.training import STEPS_PER_EXECUTION  # noqa: E402

SEED = 0

# How the notebooks train each model, beyond what the model is: compile options and whether
# config.set_seed(SEED) makes TensorFlow deterministic. A speed change is made here first,
# measured, then mirrored in the notebook's compile call (and set_seed). The notebooks compile
# with steps_per_execution=training.STEPS_PER_EXECUTION, except the RBMs (whose updates are
# dominated by their sampling, so that it gains them nothing); every one calls set_seed.
NOTEBOOK_DEFAULTS = {"jit_compile": "auto", "steps_per_execution": STEPS_PER_EXECUTION,
                     "deterministic": True}
PROJECT_SETTINGS = {
    "mnist_vae": dict(NOTEBOOK_DEFAULTS),
    "heatmap_vae": dict(NOTEBOOK_DEFAULTS),
    "heatmap_ae": dict(NOTEBOOK_DEFAULTS),
    "rotation_vae": dict(NOTEBOOK_DEFAULTS),
    "ising_dense_vae": dict(NOTEBOOK_DEFAULTS),
    "ising_checkerboard_vae": dict(NOTEBOOK_DEFAULTS),
    "rbm_cd1": dict(NOTEBOOK_DEFAULTS, steps_per_execution=1),
    "rbm_pcd": dict(NOTEBOOK_DEFAULTS, steps_per_execution=1),
    "dcgan": dict(NOTEBOOK_DEFAULTS),
    "judge": dict(NOTEBOOK_DEFAULTS),
    "diffusion_unet": dict(NOTEBOOK_DEFAULTS),
}

# ops whose FLOPs are multiply-adds of a matrix product or a convolution
MATMUL_CONV_OPS = frozenset({"MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3",
                             "Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter",
                             "Conv3D", "DepthwiseConv2dNative"})


# ------------------------------------------------------------------------ the model registry
@dataclass
class Workload:
    """One model as its notebook trains it (full mode)."""

    notebook: str
    build: Callable[[], keras.Model]  # the uncompiled model
    compile_args: Callable[[], dict]  # the notebook's compile arguments (fresh optimizers)
    batch_size: int
    n_train: int  # training examples per epoch in the notebook's full mode
    data: Callable[[np.random.Generator, int], tuple]  # n examples: (x,) or (x, y)
    # the notebook's own input (a PyDataset) made from ``data``; None: the arrays themselves
    stream: Callable[[tuple], object] | None = None
    fit_args: dict = field(default_factory=dict)  # other fit arguments of the notebook


def uniform(*shape, low=0.0, high=1.0):
    """Grey levels: float32 uniform in [low, high)."""
    return lambda rng, n: (rng.uniform(low, high, (n, *shape)).astype(np.float32),)


def binary(*shape):
    """0/1 float32, each value a fair coin."""
    return lambda rng, n: ((rng.random((n, *shape)) < 0.5).astype(np.float32),)


def mnist_vae():
    # 01_mnist_vae.ipynb, make_vae(LATENT_DIM=2, HIDDEN=(256,)): the Keras example's VAE
    def build():
        return autoencoders.VAE(builders.mlp_encoder(784, 2, hidden=(256,)),
                                builders.mlp_decoder(2, 784, hidden=(256,)),
                                likelihood="bernoulli", seed=SEED)
    return Workload("01", build, lambda: {"optimizer": keras.optimizers.Adam(1e-3)},
                    batch_size=100, n_train=60_000, data=uniform(784))


def heatmap_schedule():
    # 03: ExponentialDecay(2e-3) over EPOCHS=40 of 9,500 images in batches of 64, to 5%
    return keras.optimizers.schedules.ExponentialDecay(2e-3, decay_steps=149 * 40,
                                                       decay_rate=0.05)


def heatmap_vae():
    # 03_covariance_heatmaps_vae_vs_ae.ipynb, make_model("vae"): light backbone, 3-D latent
    def build():
        return autoencoders.VAE(*backbones.light_backbone(3, variational=True), seed=SEED)
    return Workload("03", build, lambda: {"optimizer": keras.optimizers.Adam(heatmap_schedule())},
                    batch_size=64, n_train=9_500, data=uniform(36, 36, 1))


def heatmap_ae():
    # 03_covariance_heatmaps_vae_vs_ae.ipynb, make_model("ae"): the same backbone, no sampling
    def build():
        return autoencoders.Autoencoder(*backbones.light_backbone(3, variational=False))
    return Workload("03", build, lambda: {"optimizer": keras.optimizers.Adam(heatmap_schedule())},
                    batch_size=64, n_train=9_500, data=uniform(36, 36, 1))


def rotation_vae():
    # 04_rotation_curves_vae.ipynb, make_vae(): Gaussian likelihood with a learned scale on
    # 50 standardised velocities; 80% of 2,000 galaxies
    def build():
        return autoencoders.VAE(builders.mlp_encoder(50, 4, hidden=(128, 64)),
                                builders.mlp_decoder(4, 50, hidden=(128, 64),
                                                     output_activation=None),
                                likelihood="gaussian", sigma=0.1, learn_sigma=True, seed=SEED)

    def data(rng, n):
        return (rng.standard_normal((n, 50)).astype(np.float32),)
    return Workload("04", build, lambda: {"optimizer": keras.optimizers.Adam(1e-3)},
                    batch_size=64, n_train=1_600, data=data)


def ising_dense_vae():
    # 05_ising_vae.ipynb, make_dense_vae(): 40 x 40 spins as 0/1, 16 x 2,000 training ones
    def build():
        return autoencoders.VAE(builders.mlp_encoder((40, 40, 1), 2, hidden=(256,)),
                                builders.mlp_decoder(2, (40, 40, 1), hidden=(256,)),
                                likelihood="bernoulli", seed=SEED)
    return Workload("05", build, lambda: {"optimizer": keras.optimizers.Adam(1e-3)},
                    batch_size=100, n_train=32_000, data=binary(40, 40, 1))


def ising_checkerboard_vae():
    # 05_ising_vae.ipynb, make_conv_vae(): conv encoder, autoregressive checkerboard decoder,
    # 1e-3 for EPOCHS_CONV=12 epochs of 320 batches, then a tenth of it
    def build():
        encoder = builders.conv_encoder((40, 40, 1), 2, filters=(16, 32), dense=64)
        decoder = checkerboard.CheckerboardDecoder(40, 2, base_stride=8, channels=16,
                                                   split_centres=True)
        return checkerboard.CheckerboardVAE(encoder, decoder, beta=0.05, seed=SEED)

    def compile_args():
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay([12 * 320], [1e-3, 1e-4])
        return {"optimizer": keras.optimizers.Adam(schedule)}
    return Workload("05", build, compile_args, batch_size=100, n_train=32_000,
                    data=binary(40, 40, 1))


def rbm_workload(persistent):
    # 07_rbm_mnist.ipynb, make_rbm(): 500 hidden units, SGD(0.02, momentum 0.5), trained on
    # mnist.DynamicBinarization of the grey training digits (a new binarisation every epoch)
    def build():
        return rbm.RBM(n_visible=784, n_hidden=500, k=1, persistent=persistent, n_chains=100,
                       weight_decay=1e-4, seed=SEED)

    def data(rng, n):  # the plain way: one fixed binarisation as an array
        return (mnist.binarize(rng.uniform(0, 1, (n, 784)).astype(np.float32), seed=SEED),)

    def stream(arrays):  # the notebook's way: grey levels, binarised batch by batch
        grey = np.random.default_rng(SEED).uniform(0, 1, arrays[0].shape).astype(np.float32)
        return mnist.DynamicBinarization(grey, batch_size=100, seed=SEED)
    return Workload("07", build, lambda: {"optimizer": keras.optimizers.SGD(0.02, momentum=0.5)},
                    batch_size=100, n_train=60_000, data=data, stream=stream)


def rbm_cd1():
    # 07_rbm_mnist.ipynb, variants["CD-1"]
    return rbm_workload(persistent=False)


def rbm_pcd():
    # 07_rbm_mnist.ipynb, variants["PCD"]: 100 persistent chains
    return rbm_workload(persistent=True)


def dcgan():
    # 08_gan_mnist.ipynb, make_gan(): GENERATOR_WIDTH=128, DISCRIMINATOR_WIDTH=32, Adam(1e-4,
    # beta_1=0.5) for both, the generator's with a moving average (EMA_MOMENTUM=0.999)
    def build():
        return gan.GAN(gan.build_generator(100, 128), gan.build_discriminator(32), seed=SEED)

    def compile_args():
        return {"d_optimizer": keras.optimizers.Adam(1e-4, beta_1=0.5),
                "g_optimizer": keras.optimizers.Adam(1e-4, beta_1=0.5, use_ema=True,
                                                     ema_momentum=0.999)}
    return Workload("08", build, compile_args, batch_size=64, n_train=60_000,
                    data=uniform(28, 28, 1, low=-1.0), fit_args={"shuffle": True})


def judge_classifier():
    # helpers.evaluation.judge.train_classifier (08, reused by 09): the CNN behind random
    # shifts, Adam(1e-3), sparse categorical cross-entropy and accuracy, batches of 64
    def build():
        inputs = keras.Input(shape=(28, 28, 1))
        augment = keras.Sequential([keras.layers.RandomTranslation(
            0.08, 0.08, fill_mode="constant", seed=SEED)])
        return keras.Model(inputs, judge.build_classifier()(augment(inputs)))

    def compile_args():
        return {"optimizer": keras.optimizers.Adam(1e-3),
                "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}

    def data(rng, n):
        return (rng.uniform(0, 1, (n, 28, 28, 1)).astype(np.float32),
                rng.integers(0, 10, n))
    return Workload("08", build, compile_args, batch_size=64, n_train=60_000, data=data)


def diffusion_unet():
    # 09_diffusion_mnist.ipynb, make_model(...): the U-Net (BASE_CHANNELS=16, levels x1, x2,
    # x4) on T=250 linear steps, Min-SNR loss (gamma 5), Adam(1e-3) with a moving average of
    # the weights (EMA_MOMENTUM=0.995); the helper's train_step, which the notebook's repeats
    def build():
        return diffusion.DiffusionModel(
            diffusion.build_unet(base=16, multipliers=(1, 2, 4)),
            diffusion.linear_schedule(250, beta_1=1e-4, beta_T=20 / 250), seed=SEED,
            min_snr_gamma=5.0)

    def compile_args():
        return {"optimizer": keras.optimizers.Adam(1e-3, use_ema=True, ema_momentum=0.995)}
    return Workload("09", build, compile_args, batch_size=64, n_train=60_000,
                    data=uniform(28, 28, 1, low=-1.0))


MODELS = {
    "mnist_vae": mnist_vae,
    "heatmap_vae": heatmap_vae,
    "heatmap_ae": heatmap_ae,
    "rotation_vae": rotation_vae,
    "ising_dense_vae": ising_dense_vae,
    "ising_checkerboard_vae": ising_checkerboard_vae,
    "rbm_cd1": rbm_cd1,
    "rbm_pcd": rbm_pcd,
    "dcgan": dcgan,
    "judge": judge_classifier,
    "diffusion_unet": diffusion_unet,
}


# ------------------------------------------------------------------------------ FLOP counting
def _live_ops(graph) -> set[str]:
    """Names of the ops that run when the function runs: those its outputs and its stateful
    ops (variable updates) depend on. Grappler prunes the rest, such as the gradient with
    respect to the input images that the tape builds but nobody reads."""
    stack = [t.op for t in graph.outputs] + list(graph.control_outputs)
    live = set()
    while stack:
        op = stack.pop()
        if op.name not in live:
            live.add(op.name)
            stack.extend(t.op for t in op.inputs)
            stack.extend(op.control_inputs)
    return live


def _conv_backprop_flops(op) -> int | None:
    """FLOPs of a convolution's backward op (or of a transposed convolution, which is one):
    2 per multiply-add of the output gradient (n, h, w, c_out) with the k_h x k_w x c_in
    filter, the forward convolution's count. The profiler's own formula takes the spatial
    size of the input divided by the strides, exact for 'same' padding only: it counts 'valid'
    convolutions high and odd sizes at stride 2 low. None where the op is not NHWC."""
    if op.get_attr("data_format") != b"NHWC" or any(d != 1 for d in op.get_attr("dilations")):
        return None
    out_grad = op.inputs[2].shape
    kernel = op.outputs[0].shape if op.type == "Conv2DBackpropFilter" else op.inputs[1].shape
    if not (out_grad.is_fully_defined() and kernel.is_fully_defined()):
        return None
    return 2 * out_grad.num_elements() * kernel[0] * kernel[1] * kernel[2]


def graph_flops(graph) -> dict:
    """Floating-point operations of a function graph by TensorFlow's profiler
    (``float_operation``: static shapes, 2 per multiply-add), with convolution backprops
    recounted (:func:`_conv_backprop_flops`), summed over the ops that run. Returns ``total``,
    ``matmul_conv`` (matrix products and convolutions, forward and backward), ``profiler``
    (the profiler's own sum over the same ops), ``pruned`` (ops the profiler counts that never
    run), ``by_type`` and ``nested_calls`` (calls of other functions, whose ops are not
    counted)."""
    options = (ProfileOptionBuilder(ProfileOptionBuilder.float_operation())
               .with_empty_output().build())
    report = model_analyzer.profile(graph, cmd="scope", options=options)
    per_op, stack = {}, [report]
    while stack:
        node = stack.pop()
        per_op[node.name] = node.float_ops
        stack.extend(node.children)
    live = _live_ops(graph)
    result = {"total": 0, "matmul_conv": 0, "profiler": 0, "pruned": 0, "by_type": {},
              "nested_calls": 0}
    for op in graph.get_operations():
        counted = per_op.get(op.name, 0)
        if op.type in ("Conv2DBackpropInput", "Conv2DBackpropFilter"):
            recounted = _conv_backprop_flops(op)
            flops = counted if recounted is None else recounted
        else:
            flops = counted
        result["nested_calls"] += op.type in ("PartitionedCall", "StatefulPartitionedCall")
        if not flops:
            continue
        if op.name not in live:
            result["pruned"] += counted
            continue
        result["total"] += flops
        result["profiler"] += counted
        result["by_type"][op.type] = result["by_type"].get(op.type, 0) + flops
        if op.type in MATMUL_CONV_OPS:
            result["matmul_conv"] += flops
    return result


def train_step_flops(model, batch) -> dict:
    """:func:`graph_flops` of ``model.train_step`` traced on one batch's shapes (``batch``:
    a tuple of arrays); the model must be compiled and its optimizer built."""
    specs = tuple(tf.TensorSpec(np.shape(a), tf.as_dtype(np.asarray(a).dtype)) for a in batch)
    step = tf.function(lambda data: model.train_step(data))
    return graph_flops(step.get_concrete_function(specs).graph)


def _compiled(layers, input_shape):
    """A Sequential model of ``layers`` on a squared error, compiled with SGD, optimizer built."""
    model = keras.Sequential([keras.Input(input_shape), *layers])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def closed_form_checks(batch_size=100) -> list[tuple[str, int, int]]:
    """(what, counted, closed form) matmul and convolution FLOPs of one SGD update: forward
    2 per multiply-add; backward twice that, except the first layer, whose input needs no
    gradient (only its weights' gradient, once the forward count)."""
    b = batch_size
    mlp = _compiled([keras.layers.Dense(256)], (784,))
    dense = ("Dense 784->256", 2 * 2 * b * 784 * 256)
    conv = _compiled([keras.layers.Conv2D(8, 3), keras.layers.Conv2D(16, 3, strides=2,
                                                                      padding="same"),
                      keras.layers.Flatten(), keras.layers.Dense(1)], (12, 12, 3))
    # 'valid' 3x3, 3->8 on 12x12: 10x10 out; 'same' 3x3 stride 2, 8->16: 5x5 out; Dense 400->1
    first, second, last = (2 * b * 100 * 9 * 3 * 8, 2 * b * 25 * 9 * 8 * 16, 2 * b * 400)
    convs = ("Conv2D valid + Conv2D same/2 + Dense", 2 * first + 3 * second + 3 * last)
    checks = []
    for model, (what, closed), shape in ((mlp, dense, (784,)), (conv, convs, (12, 12, 3))):
        x = np.zeros((b, *shape), np.float32)
        y = np.zeros((b, *model.output_shape[1:]), np.float32)
        checks.append((what, train_step_flops(model, (x, y))["matmul_conv"], closed))
    return checks


# ------------------------------------------------------------------------------- the peak
def matmul_peak(n=2048, repeats=8) -> dict:
    """Float32 GFLOP/s of an n x n matmul, the best of ``repeats`` after a warm-up, with
    TensorFlow (the thread settings the training uses) and with NumPy."""
    rng = np.random.default_rng(SEED)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    ta, tb = tf.constant(a), tf.constant(b)

    def best(run):
        run()  # warm-up
        seconds = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            seconds = min(seconds, time.perf_counter() - start)
        return 2 * n**3 / seconds / 1e9

    return {"tensorflow": best(lambda: tf.matmul(ta, tb).numpy()),
            "numpy": best(lambda: a @ b), "n": n, "repeats": repeats}


# -------------------------------------------------------------------------------- training
def set_global_mode(deterministic: bool) -> None:
    """What config.set_seed(SEED) does in a notebook (deterministic ops, no memory-optimising
    rewrite), or Keras's plain seeding with TensorFlow's defaults."""
    if deterministic:
        config.set_seed(SEED)
    else:
        keras.utils.set_random_seed(SEED)
        disable_op_determinism()
        config.set_memory_optimizer(True)


class TrainTimer(keras.callbacks.Callback):
    """Wall seconds from the start of training to its end: every epoch, its iterator and
    callbacks included; the set-up of the ``fit`` call (input checks, the conversion of the
    arrays), paid once in a notebook's long training, excluded."""

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_end(self, logs=None):
        self.seconds = time.perf_counter() - self.start


@dataclass
class TrainingPath:
    """One way of training a workload: a compiled model and the input it is fitted on."""

    name: str
    model: keras.Model
    deterministic: bool
    stream: Callable[[tuple], object] | None
    fit_args: dict

    def fit(self, arrays, batch_size, epochs=1) -> float:
        """Seconds of training (:class:`TrainTimer`) of ``epochs`` passes over ``arrays``, or
        over the stream made from them."""
        if self.stream is not None:
            inputs, kwargs = (self.stream(arrays),), {}
        else:
            inputs, kwargs = arrays, {"batch_size": batch_size, **self.fit_args}
        timer = TrainTimer()
        self.model.fit(*inputs, epochs=epochs, verbose=0, callbacks=[timer], **kwargs)
        return timer.seconds

    def timed_steps(self, pool, batch_size, steps) -> tuple[int, float]:
        """(updates, seconds) of about ``steps`` updates: whole epochs over the first batches
        of ``pool``, at most all of it (the notebook's training set size)."""
        per_epoch = min(steps, len(pool[0]) // batch_size)
        epochs = max(1, round(steps / per_epoch))
        arrays = tuple(a[:per_epoch * batch_size] for a in pool)
        return epochs * per_epoch, self.fit(arrays, batch_size, epochs)


def make_paths(name: str, work: Workload) -> tuple[TrainingPath, TrainingPath]:
    """The plain path and the project path of a workload, each built from the same seed."""
    settings = dict(PROJECT_SETTINGS[name])
    deterministic = settings.pop("deterministic")
    paths = []
    for label, options, det, stream, fit_args in (
            ("plain", {}, False, None, {}),
            ("project", settings, deterministic, work.stream, work.fit_args)):
        set_global_mode(det)
        model = work.build()
        model.compile(**work.compile_args(), **options)
        paths.append(TrainingPath(label, model, det, stream, fit_args))
    return paths[0], paths[1]


def calibrated_steps(path, pool, batch_size, seconds, first) -> int:
    """Updates that take about ``seconds`` on ``path``, from its rate on longer and longer
    fits (a short one is dominated by the cost of starting an epoch)."""
    trial = first
    for _ in range(8):
        done, took = path.timed_steps(pool, batch_size, trial)
        if took >= seconds / 2:
            break
        trial = math.ceil(done * min(10.0, seconds / max(took, 1e-3)))
    return max(first, round(done / took * seconds))


def measure(name: str, args) -> dict:
    """Updates per second of both paths, interleaved, and the FLOPs of one update."""
    work = MODELS[name]()
    b = work.batch_size
    rng = np.random.default_rng(SEED)
    plain, project = make_paths(name, work)
    pool = work.data(rng, work.n_train // b * b)  # the notebook's training set size
    warm = tuple(a[:args.warmup * b] for a in pool)
    for path in (plain, project):  # build, trace, one epoch of a few steps: not timed
        set_global_mode(path.deterministic)
        path.fit(warm, b)

    steps = args.steps
    if steps is None:
        set_global_mode(plain.deterministic)
        plain.fit(warm, b)  # re-warm: switching the global mode costs a new function instance
        steps = calibrated_steps(plain, pool, b, args.seconds / (2 * args.repeats), args.warmup)

    times = {"plain": [], "project": []}
    for _ in range(args.repeats):
        for path in (plain, project):
            set_global_mode(path.deterministic)
            path.fit(warm, b)  # re-warm after switching TensorFlow's global mode
            steps_done, seconds = path.timed_steps(pool, b, steps)
            times[path.name].append(seconds)
    flops = train_step_flops(plain.model, tuple(a[:b] for a in pool))
    row = {"model": name, "notebook": work.notebook, "batch_size": b, "steps": steps_done,
           "steps_per_epoch": min(steps, len(pool[0]) // b),
           "project_settings": PROJECT_SETTINGS[name],
           "jit_compile": {"plain": bool(plain.model.jit_compile),
                           "project": bool(project.model.jit_compile)}}
    for label in ("plain", "project"):
        median = statistics.median(times[label])
        row[f"seconds_{label}"] = [round(s, 4) for s in times[label]]
        row[f"updates_per_s_{label}"] = steps_done / median
        row[f"examples_per_s_{label}"] = steps_done * b / median
    row["ratio"] = row["updates_per_s_project"] / row["updates_per_s_plain"]
    row["mflop_per_update"] = flops["total"] / 1e6
    row["matmul_conv_fraction"] = flops["matmul_conv"] / max(flops["total"], 1)
    row["pruned_mflop"] = flops["pruned"] / 1e6
    row["profiler_mflop"] = flops["profiler"] / 1e6
    row["nested_calls"] = flops["nested_calls"]
    row["gflop_per_s"] = flops["total"] * row["updates_per_s_project"] / 1e9
    row["flops_by_type"] = flops["by_type"]
    del plain, project, pool
    keras.backend.clear_session()
    gc.collect()
    return row


# ------------------------------------------------------------------------------- the report
COLUMNS = (  # header, width, format, key of the row
    ("model", 22, "", "model"), ("batch", 5, "d", "batch_size"),
    ("upd/s plain", 11, ".1f", "updates_per_s_plain"),
    ("upd/s proj", 10, ".1f", "updates_per_s_project"), ("ratio", 5, ".2f", "ratio"),
    ("ex/s plain", 10, ".0f", "examples_per_s_plain"),
    ("ex/s proj", 9, ".0f", "examples_per_s_project"),
    ("MFLOP/upd", 9, ".1f", "mflop_per_update"), ("GFLOP/s", 7, ".2f", "gflop_per_s"),
    ("of peak", 7, ".1%", "fraction_of_peak"))


def table_line(row=None) -> str:
    """The header (no ``row``) or one row of the table."""
    cells = []
    for i, (header, width, spec, key) in enumerate(COLUMNS):
        align = "<" if i == 0 else ">"
        value, spec = (header, "") if row is None else (row[key], spec)
        cells.append(f"{value:{align}{width}{spec}}")
    return "  ".join(cells)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="about 1-2 s of timed training per model, to check that it runs")
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated subset of: {', '.join(MODELS)}")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed fits per path, interleaved; the median is reported")
    parser.add_argument("--seconds", type=float, default=None,
                        help="timed seconds per model, both paths and all repeats together "
                             "(default 15, 1.5 with --quick)")
    parser.add_argument("--steps", type=int, default=None,
                        help="updates per timed fit (default: from --seconds and a short "
                             "calibration fit)")
    parser.add_argument("--json", metavar="FILE", help="write the table as JSON to FILE")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"--models: unknown {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    if args.repeats < 1 or (args.steps is not None and args.steps < 1):
        parser.error("--repeats and --steps must be at least 1")
    if args.seconds is None:
        args.seconds = 1.5 if args.quick else 15.0
    args.warmup = 3 if args.quick else 5
    return args


def main(argv=None):
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_training_") as scratch:
        # any cache a helper writes goes to a folder deleted at the end, never to data/
        os.environ["GENERATIVE_DATA_DIR"] = os.path.join(scratch, "data")
        os.environ["GENERATIVE_BUILD_DIR"] = os.path.join(scratch, "build")
        checks = closed_form_checks()
        peak = matmul_peak(repeats=3 if args.quick else 8)
        threads = tf.config.threading.get_intra_op_parallelism_threads()
        print(f"Training throughput: project path (PROJECT_SETTINGS) against the plain way "
              f"(Keras defaults), median of {args.repeats} interleaved fits each")
        print(f"  TensorFlow {tf.__version__}, Keras {keras.__version__}, "
              f"{len(os.sched_getaffinity(0))} cores, intra-op threads "
              f"{threads or 'default (all)'}, device: "
              f"{', '.join(d.device_type for d in tf.config.list_logical_devices())}")
        print(f"  float32 matmul peak ({peak['n']}x{peak['n']}, best of {peak['repeats']}): "
              f"TensorFlow {peak['tensorflow']:.1f} GFLOP/s, NumPy {peak['numpy']:.1f} GFLOP/s")
        print("  FLOPs per update: TensorFlow's profiler (float_operation) on the graph of "
              "model.train_step traced on one batch,")
        print("    over the ops that run; convolution backprops recounted from the output "
              "gradient's shape (the profiler's")
        print("    formula holds for 'same' padding only)")
        for what, counted, closed in checks:
            print(f"  check, {what}, batch 100: {counted:,} FLOPs counted, closed form "
                  f"{closed:,} {'(equal)' if counted == closed else '(DIFFERENT)'}")
        print()
        print(table_line())
        rows = []
        for name in args.models:
            row = measure(name, args)
            row["fraction_of_peak"] = row["gflop_per_s"] / peak["tensorflow"]
            rows.append(row)
            print(table_line(row), flush=True)
    for r in rows:  # what the FLOP count leaves out or corrects
        notes, total = [], r["mflop_per_update"]
        if r["pruned_mflop"] > 0.1 * total:
            notes.append(f"its graph also holds {r['pruned_mflop']:.0f} MFLOP of gradients that "
                         "nothing reads (pruned, not counted)")
        if abs(r["profiler_mflop"] - total) > 0.05 * total:
            notes.append(f"the profiler's own convolution formula gives "
                         f"{r['profiler_mflop']:.0f} MFLOP")
        if r["nested_calls"]:
            notes.append(f"{r['nested_calls']} calls of nested functions not counted")
        if notes:
            print(f"  note, {r['model']}: " + "; ".join(notes))
    if args.json:
        result = {"peak_gflop_per_s": peak,
                  "closed_form_checks": [{"what": w, "counted": c, "closed_form": f}
                                         for w, c, f in checks],
                  "flop_method": "tensorflow profiler float_operation on the traced "
                                 "train_step, live ops only, conv backprops recounted",
                  "repeats": args.repeats, "cpu_count": len(os.sched_getaffinity(0)),
                  "tensorflow": tf.__version__, "keras": keras.__version__, "rows": rows}
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

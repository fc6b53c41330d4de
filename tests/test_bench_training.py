"""The FLOP counting of benchmarks/bench_training.py against closed forms worked by hand."""

import importlib.util
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_training.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_training", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def update_flops(bench, layers, input_shape, batch_size):
    """Counted FLOPs of one SGD update of a Sequential model on a squared error."""
    model = bench._compiled(layers, input_shape)
    x = np.zeros((batch_size, *input_shape), np.float32)
    y = np.zeros((batch_size, *model.output_shape[1:]), np.float32)
    return bench.train_step_flops(model, (x, y))


def test_mlp_matches_closed_form(bench):
    # forward 2 B (in h + h out); backward: both weight gradients, and the hidden layer's
    # input gradient, but not the data's: 4 B in h + 6 B h out in all
    b, n_in, hidden, n_out = 32, 20, 16, 3
    flops = update_flops(bench, [keras.layers.Dense(hidden, activation="relu"),
                                 keras.layers.Dense(n_out)], (n_in,), b)
    assert flops["matmul_conv"] == 4 * b * n_in * hidden + 6 * b * hidden * n_out
    assert flops["by_type"]["MatMul"] == flops["matmul_conv"]
    assert flops["total"] > flops["matmul_conv"]  # biases, loss and SGD add a little
    assert flops["nested_calls"] == 0


def test_convolutions_match_closed_form(bench):
    # 'valid' 3x3 conv 2 -> 4 on 9x9 (7x7 out), then a 'same' 5x5 conv 4 -> 6 with stride 2
    # (4x4 out, an odd size that does not divide), Dense 96 -> 1
    b = 8
    first = 2 * b * 7 * 7 * 3 * 3 * 2 * 4
    second = 2 * b * 4 * 4 * 5 * 5 * 4 * 6
    last = 2 * b * 96
    flops = update_flops(bench, [keras.layers.Conv2D(4, 3),
                                 keras.layers.Conv2D(6, 5, strides=2, padding="same"),
                                 keras.layers.Flatten(), keras.layers.Dense(1)], (9, 9, 2), b)
    assert flops["matmul_conv"] == 2 * first + 3 * second + 3 * last
    assert flops["by_type"]["Conv2D"] == first + second
    # the tape also builds the data's gradient, which nothing reads: not run, not counted
    assert flops["pruned"] > 0


def test_transposed_convolution_counts_its_multiply_adds(bench):
    # a 3x3 transposed conv 5 -> 2 with stride 2 on 4x4 (8x8 out): each of the 4x4x5 inputs
    # is spread over a 3x3x2 patch, forward; its weights' gradient costs as much again
    b = 4
    forward = 2 * b * 4 * 4 * 5 * 3 * 3 * 2
    flops = update_flops(bench, [keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same",
                                                              use_bias=False)], (4, 4, 5), b)
    assert flops["matmul_conv"] == 2 * forward


def test_table_line_has_one_cell_per_column(bench):
    row = {key: 1.0 for _, _, _, key in bench.COLUMNS} | {"model": "m", "batch_size": 64}
    header, line = bench.table_line(), bench.table_line(row)
    assert len(header) == len(line)
    assert line.split()[:2] == ["m", "64"]

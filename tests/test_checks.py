"""The shared argument checks name the argument they reject."""

import numpy as np
import pytest

from helpers.data import galaxies, heatmaps, mnist
from helpers.evaluation import likelihood, partition
from helpers.infra.checks import (
    as_finite_array,
    check_bool,
    check_broadcastable,
    check_finite,
    check_range,
    check_same_length,
    check_seed,
)
from helpers.models import rbm as rbm_lib


def test_check_seed():
    assert check_seed(None) is None and check_seed(np.int64(3)) == 3
    for bad in (-1, "a", 1.5, True):
        with pytest.raises(ValueError, match="seed"):
            check_seed(bad)
    with pytest.raises(ValueError, match="df_seed"):
        check_seed(None, "df_seed", allow_none=False)


def test_check_finite():
    assert check_finite("2.5", "x") == 2.5
    for bad in ("a", None, float("inf")):
        with pytest.raises(ValueError, match="log_z"):
            check_finite(bad, "log_z")


@pytest.mark.parametrize("call, match", [
    (lambda: mnist.binarize(np.zeros((2, 3)), seed="a"), "seed"),
    (lambda: mnist.DynamicBinarization(np.zeros((2, 3)), seed="a"), "seed"),
    (lambda: galaxies.sample_galaxies(10, seed="a"), "seed"),
    (lambda: heatmaps.load_heatmaps(seed=-1), "seed"),
    (lambda: likelihood.independent_log_likelihood(np.zeros((3, 6)), np.zeros((3, 5))),
     "x_test"),
    (lambda: rbm_lib.RBM(weight_decay="x"), "weight_decay"),
    (lambda: rbm_lib.RBM(n_visible=6, n_hidden=3).sample(5, n=0), "n"),
    (lambda: partition.average_log_likelihood(rbm_lib.RBM(n_visible=6, n_hidden=3),
                                            np.zeros((2, 6)), "a"), "log_z")])
def test_helpers_name_the_bad_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_check_range():
    assert check_range((-3, 3.5), "limits") == (-3.0, 3.5)
    assert check_range(np.array([0.1, 0.9]), "quantiles") == (0.1, 0.9)
    with pytest.raises(TypeError, match="limits must be a pair"):
        check_range(3.0, "limits")
    with pytest.raises(TypeError, match="limits must be a pair"):
        check_range("ab", "limits")
    for bad, match in (((1.0,), "a pair"), ((0.0, float("nan")), "a finite number"),
                       ((2.0, 1.0), "low < high"), ((1.0, 1.0), "low < high")):
        with pytest.raises(ValueError, match="limits must be .*" + match):
            check_range(bad, "limits")


def test_check_same_length():
    assert check_same_length({"a": np.zeros(3), "b": np.float64(1.0), "c": [1, 2, 3]}) == 3
    assert check_same_length({"a": np.float64(1.0)}) == 1
    with pytest.raises(ValueError, match="a, b and c must have the same length, got 3, scalar, 2"):
        check_same_length({"a": np.zeros(3), "b": np.float64(1.0), "c": [1, 2]})


def test_a_ragged_list_is_named():
    # used to be NumPy's "setting an array element with a sequence" without the argument
    with pytest.raises(ValueError, match="points must be a rectangular array"):
        as_finite_array([[0.0, 0.0], [1.0]], "points")


def test_check_broadcastable():
    assert check_broadcastable({"a": np.zeros((3, 1)), "b": np.zeros(4), "c": 1.0}) == (3, 4)
    with pytest.raises(ValueError, match=r"a and b must broadcast .*got shapes \(3,\), \(2,\)"):
        check_broadcastable({"a": np.zeros(3), "b": [1, 2]})


def test_check_bool_takes_python_and_numpy_booleans_only():
    assert check_bool(True, "flag") is True and check_bool(np.bool_(False), "flag") is False
    for bad in (1, 0, "yes", None, np.array([True])):
        with pytest.raises(TypeError, match="flag must be True or False"):
            check_bool(bad, "flag")

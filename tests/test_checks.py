"""The shared argument checks name the argument they reject."""

import numpy as np
import pytest

from helpers.data import galaxies, heatmaps, mnist
from helpers.evaluation import likelihood, partition
from helpers.infra.checks import check_finite, check_seed
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

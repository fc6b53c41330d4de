"""The latent-space probe recovers what a code plainly holds, and nothing from noise."""

import numpy as np
import pytest

from helpers.evaluation import probes


def test_probe_reads_back_a_property_the_codes_hold():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(600, 2))
    side = (z[:, 0] > 0).astype(int)  # a class the first coordinate decides
    classifier = probes.knn_probe(z[:400], side[:400], "classifier", n_neighbors=[3, 5, 9])
    assert classifier.score(z[400:], side[400:]) > 0.95
    assert classifier.best_params_["kneighborsclassifier__n_neighbors"] in (3, 5, 9)
    regressor = probes.knn_probe(z[:400], 3 * z[:400, 1], "regressor")
    assert regressor.score(z[400:], 3 * z[400:, 1]) > 0.95  # held-out R^2


def test_probe_finds_nothing_in_noise():
    rng = np.random.default_rng(1)
    z, y = rng.normal(size=(600, 3)), rng.normal(size=600)
    assert probes.knn_probe(z[:400], y[:400], "regressor").score(z[400:], y[400:]) < 0.1


@pytest.mark.parametrize("kwargs, match", [
    ({"kind": "forest"}, "kind"), ({"kind": "classifier", "n_neighbors": [0]}, "n_neighbors"),
    ({"kind": "classifier", "cv": 1.5}, "cv")])
def test_probe_arguments(kwargs, match):
    z, y = np.zeros((20, 2)), np.arange(20) % 2
    with pytest.raises(ValueError, match=match):
        probes.knn_probe(z, y, **kwargs)
    with pytest.raises(ValueError, match="y_train"):
        probes.knn_probe(z, y[:5], "classifier")


@pytest.mark.parametrize("kwargs, error, match", [
    ({"kind": ["classifier"]}, ValueError, "kind"),
    ({"kind": "classifier", "n_neighbors": []}, ValueError, "n_neighbors"),
    # 20 codes in 5 folds: 16 to train on, too few for 17 neighbours
    ({"kind": "classifier", "n_neighbors": [3, 17]}, ValueError, r"n_neighbors.*16"),
    ({"kind": "classifier", "cv": 1}, ValueError, "cv"),
    ({"kind": "classifier", "cv": 21}, ValueError, "cv"),
    ({"kind": "regressor", "y_train": np.full(20, np.nan)}, ValueError, "y_train"),
    ({"kind": "regressor", "y_train": np.array(list("ab") * 10)}, TypeError, "y_train"),
])
def test_probe_rejects_what_cross_validation_cannot_use(kwargs, error, match):
    z, y = np.random.default_rng(0).normal(size=(20, 2)), np.arange(20) % 2
    kwargs = {"y_train": y, **kwargs}
    with pytest.raises(error, match=match):
        probes.knn_probe(z, **kwargs)


def test_probe_takes_string_class_labels():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 2))
    side = np.where(z[:, 0] > 0, "right", "left")
    probe = probes.knn_probe(z[:150], side[:150], "classifier", n_neighbors=[3])
    assert probe.score(z[150:], side[150:]) > 0.9

"""Digit classifier and its sample-quality metrics: the Frechet distance against closed
forms and a scipy.linalg.sqrtm reference, class fractions, and the classifier's accuracy
on test digits it never saw."""

import numpy as np
import pytest
from scipy import linalg

from helpers.data import mnist
from helpers.evaluation import distances, judge


def sqrtm_reference(a, b):
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(s_a @ s_b).real
    return ((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * root)


def test_frechet_distance_is_zero_for_identical_sets():
    x = np.random.default_rng(0).standard_normal((500, 16))
    assert distances.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_matches_scipy_on_random_gaussians():
    rng = np.random.default_rng(1)
    mix_a, mix_b = rng.standard_normal((8, 8)), rng.standard_normal((8, 8))
    a = rng.standard_normal((2000, 8)) @ mix_a + 1.0
    b = rng.standard_normal((1500, 8)) @ mix_b - 0.5
    assert distances.frechet_distance(a, b) == pytest.approx(sqrtm_reference(a, b), rel=1e-6)


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    # exact Gaussians built from whitened samples: mean and covariance are known exactly
    rng = np.random.default_rng(2)
    base = rng.standard_normal((4000, 3))
    base = (base - base.mean(0)) @ np.linalg.inv(np.linalg.cholesky(np.cov(base, rowvar=False))).T
    var_a, var_b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    a = base * np.sqrt(var_a)
    b = base * np.sqrt(var_b) + np.array([1.0, 2.0, 0.0])
    expected = 1 + 4 + ((np.sqrt(var_a) - np.sqrt(var_b)) ** 2).sum()  # = 5 + 4 + 1 = 10
    assert distances.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_bad_input():
    with pytest.raises(ValueError, match="same width"):
        distances.frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        distances.frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))


def test_class_fractions():
    probs = np.eye(10)[[0, 0, 3, 9]]
    expected = np.zeros(10)
    expected[[0, 3, 9]] = [0.5, 0.25, 0.25]
    np.testing.assert_allclose(judge.class_fractions(probs), expected)
    with pytest.raises(ValueError, match="10 columns"):
        judge.class_fractions(np.ones((3, 9)))


def test_classifier_input_checks():
    model = judge.build_classifier()
    with pytest.raises(ValueError, match="28"):
        judge.predict_probabilities(model, np.zeros((2, 27, 28)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        judge.features(model, np.full((2, 28, 28), 255.0))


def test_classifier_accuracy_on_unseen_test_digits():
    data = mnist.load_mnist(offline=True)
    x_train = mnist.to_unit_interval(data.x_train, flatten=False)
    x_test = mnist.to_unit_interval(data.x_test, flatten=False)
    model, _ = judge.train_classifier(x_train, data.y_train, updates=504, source=data.source)
    accuracy = np.mean(judge.predict_probabilities(model, x_test).argmax(1) == data.y_test)
    assert accuracy >= 0.95  # 1,000 held-out digits of the bundled subset
    feats = judge.features(model, x_test[:20])
    assert feats.shape == (20, 128) and feats.min() >= 0

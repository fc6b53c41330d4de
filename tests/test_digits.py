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


def test_precision_recall_by_hand_in_one_dimension():
    # real 0, 1, 2, 10 with k = 1: radii 1, 1, 1, 8. Generated 0.5, 5, 20 (radii 4.5, 4.5, 15):
    # 0.5 lies in the ball of 0, 5 in the ball of 10, 20 in none -> precision 2/3;
    # 0, 1, 2 lie in the ball of 0.5, 10 only in the ball of 20 -> recall 1
    real, generated = np.array([[0.0], [1.0], [2.0], [10.0]]), np.array([[0.5], [5.0], [20.0]])
    precision, recall = distances.precision_recall(real, generated, k=1)
    assert precision == pytest.approx(2 / 3)
    assert recall == 1.0
    # k = 2: real radii 2, 1, 2, 9; generated radii 19.5, 15, 19.5 -> 20 is still outside
    # (10 away from 10 > 9), so precision stays 2/3; recall stays 1
    assert distances.precision_recall(real, generated, k=2) == (pytest.approx(2 / 3), 1.0)


def test_precision_recall_match_brute_force_and_see_collapse():
    rng = np.random.default_rng(3)
    real, generated = rng.standard_normal((300, 5)), 0.5 * rng.standard_normal((200, 5)) + 0.3

    def brute(queries, reference, k):
        within = np.linalg.norm(reference[:, None] - reference[None], axis=-1)
        radii = np.sort(within, axis=1)[:, k]  # column 0 is the point itself
        gaps = np.linalg.norm(queries[:, None] - reference[None], axis=-1)
        return np.mean([(row <= radii).any() for row in gaps])

    for k in (1, 3, 5):
        precision, recall = distances.precision_recall(real, generated, k=k)
        assert precision == pytest.approx(brute(generated, real, k))
        assert recall == pytest.approx(brute(real, generated, k))
    # a generator that draws the centre only: realistic but covering little of the data
    precision, recall = distances.precision_recall(real, 0.05 * generated)
    assert precision == 1.0 and recall < 0.1


def test_precision_recall_bad_input():
    with pytest.raises(ValueError, match="same width"):
        distances.precision_recall(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="generated_features needs more than k = 3"):
        distances.precision_recall(np.zeros((5, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="k must be >= 1"):
        distances.precision_recall(np.zeros((5, 3)), np.zeros((5, 3)), k=0)
    with pytest.raises(ValueError, match="k must be an integer"):
        distances.precision_recall(np.zeros((5, 3)), np.zeros((5, 3)), k=2.5)
    with pytest.raises(ValueError, match="real_features"):
        distances.precision_recall(np.full((5, 3), np.nan), np.zeros((5, 3)))


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

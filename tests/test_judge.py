"""The judge's arguments: labels are whole numbers 0..9, images lie in [0, 1]; and the
distances its features feed. Every bad argument is refused before anything is trained."""

import numpy as np
import pytest

from helpers.evaluation import distances, judge


@pytest.mark.parametrize("labels, error, match", [
    ([1.7, 2.0], ValueError, r"y_train must hold whole-number .*1\.7"),
    ([np.nan, 1.0], ValueError, "y_train must hold whole-number"),
    (["a", "b"], TypeError, "y_train must hold integer"),
    ([True, False], TypeError, "y_train must hold integer"),
    ([10, 1], ValueError, r"y_train must hold labels 0\.\.9"),
    ([-1, 1], ValueError, r"y_train must hold labels 0\.\.9"),
    ([[1], [2]], ValueError, r"shape \(2,\)"),
])
def test_train_classifier_refuses_labels_that_are_not_classes(labels, error, match,
                                                              monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("bad labels reached the training")

    monkeypatch.setattr(judge, "fit_or_load", no_training)
    with pytest.raises(error, match=match):
        judge.train_classifier(np.zeros((2, 28, 28)), labels, updates=1)


def test_whole_float_labels_are_the_integers_they_hold(monkeypatch):
    seen = {}

    def record(trainer, x, y, **kwargs):
        seen["y"] = y
        return {}

    monkeypatch.setattr(judge, "fit_or_load", record)
    judge.train_classifier(np.zeros((3, 28, 28)), np.array([3.0, 0.0, 9.0]), updates=1)
    assert seen["y"].dtype == np.int64 and seen["y"].tolist() == [3, 0, 9]


@pytest.mark.parametrize("kwargs, error, match", [
    ({"seed": -1}, ValueError, "seed"), ({"seed": 1.5}, ValueError, "seed"),
    ({"source": None}, TypeError, "source"), ({"retrain": "yes"}, TypeError, "retrain")])
def test_train_classifier_checks_its_options(kwargs, error, match, monkeypatch):
    monkeypatch.setattr(judge, "fit_or_load", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(error, match=match):
        judge.train_classifier(np.zeros((2, 28, 28)), [0, 1], updates=1, **kwargs)


def test_predictions_check_the_classifier_and_batch_size():
    images = np.zeros((2, 28, 28))
    with pytest.raises(TypeError, match="classifier"):
        judge.predict_probabilities("classifier", images)
    with pytest.raises(TypeError, match="classifier"):
        judge.features(None, images)
    classifier = judge.build_classifier()
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            judge.predict_probabilities(classifier, images, batch_size=bad)
        with pytest.raises(ValueError, match="batch_size"):
            judge.features(classifier, images, batch_size=bad)


def test_class_fractions_by_hand_and_bad_probabilities():
    probs = np.full((4, 10), 0.05)
    probs[[0, 1, 2, 3], [3, 3, 7, 0]] = 0.55
    expected = np.zeros(10)
    expected[[3, 7, 0]] = [0.5, 0.25, 0.25]
    np.testing.assert_array_equal(judge.class_fractions(probs), expected)
    with pytest.raises(ValueError, match=r"probabilities must lie in \[0, 1\]"):
        judge.class_fractions(-probs)


def test_frobenius_error_needs_a_stack_of_images():
    # by hand: ||(3, 4)|| = 5 for the first image, 0 for the second
    np.testing.assert_allclose(distances.frobenius_error([[3, 4], [1, 1]], [[0, 0], [1, 1]]),
                               [5.0, 0.0])
    with pytest.raises(ValueError, match="x and x_hat"):
        distances.frobenius_error(1.0, 2.0)

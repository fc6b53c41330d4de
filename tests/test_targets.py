"""Headline-number checks: strict runs fail, interactive runs warn and go on."""

import warnings

import numpy as np
import pytest

from helpers.infra import targets


@pytest.fixture
def strict(monkeypatch):
    monkeypatch.setenv("NOTEBOOK_STRICT", "1")


@pytest.fixture
def lenient(monkeypatch):
    monkeypatch.delenv("NOTEBOOK_STRICT", raising=False)


def test_met_targets_pass_silently_in_both_modes(monkeypatch):
    for value in ("1", "0"):
        monkeypatch.setenv("NOTEBOOK_STRICT", value)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert targets.at_least("accuracy", 0.95, 0.9) is True
            assert targets.at_least("accuracy", 0.9, 0.9) is True  # the bound itself counts
            assert targets.at_most("loss", np.float32(150.0), 160) is True
            assert targets.holds("GAN below VAE", np.bool_(True)) is True


def test_strict_mode_raises_with_name_value_and_target(strict):
    with pytest.raises(targets.TargetMissed, match=r"accuracy = 0\.85, target >= 0\.9 \(paper\)"):
        targets.at_least("accuracy", 0.85, 0.9, "paper")
    with pytest.raises(AssertionError, match=r"loss = 170, target <= 160"):
        targets.at_most("loss", 170, 160)
    with pytest.raises(targets.TargetMissed, match="expected GAN below VAE: 20 vs 10"):
        targets.holds("GAN below VAE", 20 < 10, "20 vs 10")


def test_lenient_mode_warns_every_time_and_returns_false(lenient):
    with pytest.warns(targets.TargetWarning, match="TARGET MISSED: loss = 170"):
        assert targets.at_most("loss", 170, 160) is False
    with pytest.warns(targets.TargetWarning):  # a second miss at the same line warns again
        assert targets.at_most("loss", 170, 160) is False


def test_nan_never_meets_a_target(lenient):
    with pytest.warns(targets.TargetWarning):
        assert targets.at_least("x", float("nan"), 0.0) is False
    with pytest.warns(targets.TargetWarning):
        assert targets.at_most("x", np.nan, 0.0) is False


def test_bad_arguments_are_named(lenient):
    with pytest.raises(TypeError, match="value"):
        targets.at_least("x", "0.9", 0.5)
    with pytest.raises(TypeError, match="value"):
        targets.at_least("x", np.array([1.0, 2.0]), 0.5)
    with pytest.raises(TypeError, match="target"):
        targets.at_most("x", 1.0, None)
    with pytest.raises(TypeError, match="value"):
        targets.at_least("x", True, 0.5)
    with pytest.raises(TypeError, match="name"):
        targets.at_least("", 1.0, 0.5)
    with pytest.raises(TypeError, match="condition"):
        targets.holds("claim", np.array([True, False]))


def test_bad_strict_flag_is_named(monkeypatch):
    monkeypatch.setenv("NOTEBOOK_STRICT", "maybe")
    with pytest.raises(ValueError, match="NOTEBOOK_STRICT"):
        targets.at_least("x", 0.0, 1.0)


def test_zero_d_arrays_and_tensors_are_numbers(strict):
    import keras

    assert targets.at_least("x", np.array(2.5), 2) and targets.at_most("x", np.array(3), 3)
    assert targets.at_least("x", keras.ops.convert_to_tensor(1.5), 1.0)
    with pytest.raises(TypeError, match="value"):
        targets.at_least("x", np.array(1 + 2j), 0.0)


def test_a_condition_is_a_truth_value(lenient):
    import keras

    for bad in (None, 0.0, 1, "False", np.array(0.5), np.array([True])):
        with pytest.raises(TypeError, match="condition"):
            targets.holds("claim", bad)
    assert targets.holds("claim", np.array(True)) is True
    assert targets.holds("claim", keras.ops.convert_to_tensor(True)) is True
    with pytest.warns(targets.TargetWarning):
        assert targets.holds("claim", np.bool_(False)) is False


def test_targets_and_details_are_checked(lenient):
    with pytest.raises(ValueError, match="target"):
        targets.at_least("x", 1.0, float("nan"))
    with pytest.raises(ValueError, match="target"):
        targets.at_most("x", 1.0, np.nan)
    with pytest.raises(TypeError, match="why"):
        targets.at_least("x", 1.0, 0.5, why=3)
    with pytest.raises(TypeError, match="detail"):
        targets.holds("claim", True, detail=None)
    with pytest.raises(TypeError, match="claim must be"):
        targets.holds("", True)
    assert targets.at_most("x", 3, 3) is True  # integers are numbers

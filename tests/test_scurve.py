import numpy as np
import pytest

from helpers.data import scurve
from helpers.evaluation import distances


def test_embedding_endpoints_and_centre():
    points = scurve.embed_s_curve([0.0, 0.5, 1.0])
    np.testing.assert_allclose(points, [[1.0, 0.75], [0.5, 0.5], [0.0, 0.25]], atol=1e-12)


def test_curve_is_continuous_and_inside_the_unit_square():
    points = scurve.reference_curve(5001)
    assert points.min() >= 0.0 and points.max() <= 1.0
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    assert steps.max() < 1e-3  # no jump at t = 1/2, where sign(u) flips
    _, sample = scurve.s_curve(300, seed=0)
    assert sample.shape == (300, 2) and sample.dtype == np.float32
    assert sample.min() >= 0.0 and sample.max() <= 1.0


def test_sampling_is_reproducible_and_noise_has_the_requested_scale():
    t1, p1 = scurve.s_curve(50, seed=3)
    t2, p2 = scurve.s_curve(50, seed=3)
    np.testing.assert_array_equal(p1, p2)
    t, noisy = scurve.s_curve(20_000, noise=0.05, seed=1)
    residual = noisy - scurve.embed_s_curve(t.astype(np.float64))
    assert residual.std() == pytest.approx(0.05, rel=0.03)


@pytest.mark.parametrize("kwargs, match", [({"n": 0}, "n must"), ({"n": 2.5}, "n must"),
                                           ({"noise": -0.1}, "noise"),
                                           ({"noise": float("nan")}, "noise")])
def test_bad_sampling_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        scurve.s_curve(**kwargs)


def test_embedding_rejects_t_outside_the_unit_interval():
    with pytest.raises(ValueError, match="t must lie"):
        scurve.embed_s_curve([0.5, 1.2])


def test_chamfer_is_zero_for_identical_sets_and_symmetric():
    rng = np.random.default_rng(0)
    a, b = rng.random((40, 2)), rng.random((25, 2))
    assert distances.chamfer_distance(a, a) == 0.0
    assert distances.chamfer_distance(a, b) == pytest.approx(distances.chamfer_distance(b, a))


def test_chamfer_hand_computed():
    # a -> b: the nearest of (1, 0) and (0, 2) is 1 away; b -> a: 1 and 2, mean 1.5
    assert distances.chamfer_distance([[0, 0]], [[1, 0], [0, 2]]) == pytest.approx(1.25)


def test_chamfer_matches_brute_force():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(60, 2)), rng.normal(size=(45, 2))
    d = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1))
    expected = 0.5 * (d.min(axis=1).mean() + d.min(axis=0).mean())
    assert distances.chamfer_distance(a, b) == pytest.approx(expected, rel=1e-12)


def test_chamfer_rejects_mismatched_or_bad_sets():
    with pytest.raises(ValueError, match="same number of columns"):
        distances.chamfer_distance(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        distances.chamfer_distance([[np.nan, 0.0]], [[0.0, 0.0]])


@pytest.mark.parametrize("kwargs, match", [({"seed": -1}, "seed must be >= 0"),
                                           ({"seed": 1.5}, "seed must be an integer"),
                                           ({"noise": "a"}, "noise must be"),
                                           ({"noise": None}, "noise must be")])
def test_bad_seed_and_noise_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        scurve.s_curve(**kwargs)

import math

import numpy as np
import pytest

from helpers.data import galaxies


def test_disc_velocity_hand_computed():
    # y = R / (2 R_d) = 1; Bessel values from Abramowitz & Stegun, tables 9.8 and 9.1
    i0, k0, i1, k1 = 1.2660658778, 0.4210244382, 0.5651591040, 0.6019072302
    v2 = 2 * 4.30091e-6 * 1e10 / 2.0 * (i0 * k0 - i1 * k1)
    assert galaxies.disc_velocity(4.0, 1e10, 2.0) == pytest.approx(math.sqrt(v2), rel=1e-8)


def test_disc_velocity_peaks_at_2_15_scale_lengths():
    radius = np.linspace(0.5, 10.0, 200_001)
    for rd in (1.0, 3.7):
        v = galaxies.disc_velocity(radius * rd, 5e10, rd)
        assert radius[np.argmax(v)] == pytest.approx(2.15, rel=0.01)


def test_disc_velocity_is_keplerian_far_out():
    # far outside the disc, all the mass is enclosed: v -> sqrt(G M / R)
    r = 500.0
    assert galaxies.disc_velocity(r, 1e11, 2.0) == pytest.approx(
        math.sqrt(4.30091e-6 * 1e11 / r), rel=2e-3)


def test_virial_quantities_hand_computed():
    # R200^3 = G M / (100 H^2): 4.30091e-6 * 1e12 / (100 * 0.07^2) kpc^3
    r200 = (4.30091e-6 * 1e12 / (100 * 0.07**2)) ** (1 / 3)
    assert galaxies.virial_radius(1e12) == pytest.approx(r200, rel=1e-12)
    assert r200 == pytest.approx(206.3, abs=0.1)
    assert galaxies.virial_velocity(1e12) == pytest.approx(10 * 0.07 * r200, rel=1e-12)


@pytest.mark.parametrize("mass, c", [(1e11, 15.0), (1e12, 8.0), (1e14, 4.0)])
def test_nfw_velocity_equals_the_virial_velocity_at_the_virial_radius(mass, c):
    r200 = galaxies.virial_radius(mass)
    assert galaxies.nfw_velocity(r200, mass, c) == pytest.approx(
        galaxies.virial_velocity(mass), rel=1e-12)
    # and the enclosed mass there is M200: v^2 R / G
    v = galaxies.nfw_velocity(r200, mass, c)
    assert v**2 * r200 / galaxies.G == pytest.approx(mass, rel=1e-10)


def test_rotation_curves_add_in_quadrature():
    curves = galaxies.rotation_curves([1e10, 1e11], [1e12, 5e12], [2.0, 4.0], [10.0, 7.0])
    assert curves.shape == (2, 50)
    r = galaxies.RADII
    expected = np.sqrt(galaxies.disc_velocity(r, 1e11, 4.0) ** 2
                       + galaxies.nfw_velocity(r, 5e12, 7.0) ** 2)
    np.testing.assert_allclose(curves[1], expected, rtol=1e-12)
    assert r[0] == pytest.approx(0.1) and r[-1] == pytest.approx(50.0)


def test_moster_relation_at_the_characteristic_mass():
    # at M_halo = M1 the ratio is 2N / (1 + 1) = N
    assert galaxies.moster_stellar_mass(11.59) == pytest.approx(11.59 + math.log10(0.0351))


def test_population_follows_the_published_relations():
    p = galaxies.sample_galaxies(20_000, seed=1)
    assert set(p) == set(galaxies.PARAMETERS)
    assert 9.0 <= p["log_mstar"].min() and p["log_mstar"].max() <= 12.0
    # concentration: a least-squares fit recovers Dutton & Maccio's slope and scatter
    slope, intercept = np.polyfit(p["log_mhalo"], p["log_c"], 1)
    assert slope == pytest.approx(-0.101, abs=0.01)
    assert intercept + 12 * slope == pytest.approx(0.905 - 0.101 * math.log10(0.7), abs=0.01)
    residual = p["log_c"] - (intercept + slope * p["log_mhalo"])
    assert residual.std() == pytest.approx(0.11, rel=0.05)
    # size: the median R_d near M* = 1e10 matches Shen et al.'s R50 / 1.678
    near = np.abs(p["log_mstar"] - 10.0) < 0.05
    r50 = 0.10 * 1e10**0.14 * (1 + 1e10 / 3.98e10) ** 0.25
    assert np.median(p["log_rd"][near]) == pytest.approx(math.log10(r50 / 1.678), abs=0.05)
    # halo mass: the stellar masses scatter 0.15 dex about Moster's mean relation
    low = p["log_mstar"] < 10.5  # where the relation is steep and the slope nearly constant
    offsets = p["log_mstar"][low] - galaxies.moster_stellar_mass(p["log_mhalo"][low])
    assert offsets.std() == pytest.approx(0.15, rel=0.1)
    assert abs(offsets.mean()) < 0.02


def test_population_is_reproducible():
    a, b = galaxies.sample_galaxies(50, seed=7), galaxies.sample_galaxies(50, seed=7)
    for k in galaxies.PARAMETERS:
        np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.parametrize("call, match", [
    (lambda: galaxies.disc_velocity(1.0, -1e10, 2.0), "mass must be > 0"),
    (lambda: galaxies.disc_velocity(1.0, 1e10, 0.0), "scale_length must be > 0"),
    (lambda: galaxies.disc_velocity(-1.0, 1e10, 2.0), "radius must be > 0"),
    (lambda: galaxies.nfw_velocity(1.0, 1e12, 0.0), "concentration must be > 0"),
    (lambda: galaxies.virial_radius(0.0), "halo_mass must be > 0"),
    (lambda: galaxies.rotation_curves([1e10], [1e12], [np.nan], [10.0]), "NaN"),
    (lambda: galaxies.sample_galaxies(0), "n must"),
    (lambda: galaxies.sample_galaxies(10, log_mstar_range=(12, 9)), "log_mstar_range"),
    (lambda: galaxies.curves_from_parameters({"log_mstar": [10.0]}), "missing"),
])
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_stellar_masses_beyond_the_relation_raise_naming_the_supported_range():
    # the inverse Moster relation is tabulated for log M_halo in [9, 17]; the stellar masses
    # it reaches are moster_stellar_mass(9) and (17), by hand (N = 0.0351, beta = 1.376,
    # gamma = 0.608, log M1 = 11.59): 9 + log10(2N / (10^(2.59 beta) + 10^(-2.59 gamma)))
    lo = 9 + math.log10(2 * 0.0351 / (10 ** (2.59 * 1.376) + 10 ** (-2.59 * 0.608)))
    hi = 17 + math.log10(2 * 0.0351 / (10 ** (-5.41 * 1.376) + 10 ** (5.41 * 0.608)))
    assert (lo, hi) == (pytest.approx(4.2825, abs=1e-4), pytest.approx(12.5571, abs=1e-4))
    # halo masses used to be clamped at 10^17 without a word; the range is rounded inwards
    with pytest.raises(ValueError, match=r"log_mstar_range.*\[4\.29, 12\.55\].*\(13\.5, 14"):
        galaxies.sample_galaxies(10, log_mstar_range=(13.5, 14))
    with pytest.raises(ValueError, match=r"log_mstar_range.*\[4\.29, 12\.55\]"):
        galaxies.sample_galaxies(10, log_mstar_range=(3.0, 10.0))
    with pytest.raises(ValueError, match="log_mstar_range"):
        galaxies.sample_galaxies(10, log_mstar_range=(12.0, 12.56))
    p = galaxies.sample_galaxies(200, seed=0, log_mstar_range=(4.29, 12.55))  # the edges: fine
    assert 4.29 <= p["log_mstar"].min() and p["log_mstar"].max() <= 12.55


@pytest.mark.parametrize("call, error, match", [
    (lambda: galaxies.sample_galaxies(10, log_mstar_range=10.0), TypeError, "log_mstar_range"),
    (lambda: galaxies.sample_galaxies(10, log_mstar_range=(9.0, 10.0, 11.0)), ValueError,
     "log_mstar_range"),
    (lambda: galaxies.sample_galaxies(10, log_mstar_range=(np.nan, 10.0)), ValueError,
     "log_mstar_range"),
    (lambda: galaxies.sample_galaxies(10, seed=-1), ValueError, "seed must be >= 0"),
    (lambda: galaxies.rotation_curves([1e10, 1e11], [1e12] * 3, [2.0, 2.0], [10.0, 10.0]),
     ValueError, r"mstar, mhalo, rd and c must have the same length, got 2, 3, 2, 2"),
    (lambda: galaxies.rotation_curves(1e10, 1e12, 2.0, 10.0, radii=np.ones((2, 3))),
     ValueError, "radii must have 1 dimensions"),
    (lambda: galaxies.rotation_curves(np.full((2, 2), 1e10), 1e12, 2.0, 10.0), ValueError,
     "mstar must have 0 or 1 dimensions"),
    (lambda: galaxies.moster_stellar_mass(np.nan), ValueError, "log_mhalo contains NaN"),
    (lambda: galaxies.moster_stellar_mass("12"), TypeError, "log_mhalo must be numeric"),
    (lambda: galaxies.curves_from_parameters(np.zeros((3, 4))), TypeError, "params must be"),
])
def test_more_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_scalar_parameters_broadcast_against_arrays():
    # a scalar is one value for every galaxy, as before
    curves = galaxies.rotation_curves([1e10, 1e11], 1e12, 2.0, [10.0, 7.0])
    expected = np.sqrt(galaxies.disc_velocity(galaxies.RADII, 1e11, 2.0) ** 2
                       + galaxies.nfw_velocity(galaxies.RADII, 1e12, 7.0) ** 2)
    np.testing.assert_allclose(curves[1], expected, rtol=1e-12)


def test_velocities_name_arguments_that_do_not_broadcast():
    with pytest.raises(ValueError, match=r"radius, mass and scale_length must broadcast.*"
                                         r"\(3,\), \(2,\), \(\)"):
        galaxies.disc_velocity([1.0, 2.0, 3.0], [1e10, 2e10], 2.0)
    with pytest.raises(ValueError, match=r"radius, halo_mass and concentration must broadcast"):
        galaxies.nfw_velocity([1.0, 2.0, 3.0], 1e12, [5.0, 10.0])

"""Rotation curves of disc galaxies: an exponential (Freeman) disc plus an NFW dark halo,
and a galaxy population drawn from published scaling relations. Used by the rotation-curve
notebook.

Units: kpc, km/s, solar masses; G = 4.30091e-6 kpc (km/s)^2 / Msun; H0 = 70 km/s/Mpc.
Halo masses and concentrations are for an overdensity of 200 times the critical density.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import i0e, i1e, k0e, k1e

from helpers.infra.checks import (
    as_finite_array,
    check_broadcastable,
    check_positive_array,
    check_positive_int,
    check_range,
    check_same_length,
    check_seed,
)

G = 4.30091e-6  # kpc (km/s)^2 / Msun
H0 = 70.0  # km/s/Mpc
LITTLE_H = H0 / 100.0
H0_KPC = H0 / 1000.0  # km/s/kpc
RADII = np.logspace(np.log10(0.1), np.log10(50.0), 50)  # kpc
PARAMETERS = ("log_mstar", "log_mhalo", "log_rd", "log_c")

# Moster, Naab & White 2013 (MNRAS 428, 3121), z = 0: stellar mass as a function of M200c
MOSTER13 = dict(log_m1=11.590, n=0.0351, beta=1.376, gamma=0.608, scatter_dex=0.15)
# Shen et al. 2003 (MNRAS 343, 978), eq. 18 and table 1, late types: half-mass radius
SHEN03 = dict(alpha=0.14, beta=0.39, gamma_kpc=0.10, m0=3.98e10, sigma1=0.47, sigma2=0.34)
# Dutton & Maccio 2014 (MNRAS 441, 3359), NFW c200 at z = 0: log c = a + b log(M h / 1e12)
DUTTON14 = dict(a=0.905, b=-0.101, scatter_dex=0.11)
HALF_MASS_TO_SCALE = 1.678  # R_50 = 1.678 R_d for an exponential disc
# the inverse Moster relation is tabulated on this halo-mass grid (it is monotonic there)
LOG_MHALO_GRID = np.linspace(9.0, 17.0, 4001)


def disc_velocity(radius, mass, scale_length) -> np.ndarray:
    """Circular velocity (km/s) of a razor-thin exponential disc (Freeman 1970):
    v^2 = 2 G M / R_d * y^2 [I0(y) K0(y) - I1(y) K1(y)], y = R / (2 R_d). Broadcasts."""
    radius = check_positive_array(radius, "radius")
    mass = check_positive_array(mass, "mass")
    scale_length = check_positive_array(scale_length, "scale_length")
    check_broadcastable({"radius": radius, "mass": mass, "scale_length": scale_length})
    y = radius / (2.0 * scale_length)
    # exponentially scaled Bessel functions: the e^y and e^-y factors cancel exactly
    bessel = i0e(y) * k0e(y) - i1e(y) * k1e(y)
    return np.sqrt(2.0 * G * mass / scale_length * y**2 * bessel)


def virial_radius(halo_mass) -> np.ndarray:
    """R200 (kpc): the radius enclosing 200 times the critical density, 200 rho_c."""
    halo_mass = check_positive_array(halo_mass, "halo_mass")
    return (G * halo_mass / (100.0 * H0_KPC**2)) ** (1.0 / 3.0)


def virial_velocity(halo_mass) -> np.ndarray:
    """V200 = sqrt(G M200 / R200) = 10 H0 R200 (km/s)."""
    return 10.0 * H0_KPC * virial_radius(halo_mass)


def _nfw_mass_shape(x):
    return np.log1p(x) - x / (1.0 + x)


def nfw_velocity(radius, halo_mass, concentration) -> np.ndarray:
    """Circular velocity (km/s) of an NFW halo:
    v^2 = V200^2 (R200 / R) f(c R / R200) / f(c), f(x) = ln(1 + x) - x / (1 + x)."""
    radius = check_positive_array(radius, "radius")
    halo_mass = check_positive_array(halo_mass, "halo_mass")
    concentration = check_positive_array(concentration, "concentration")
    check_broadcastable({"radius": radius, "halo_mass": halo_mass, "concentration": concentration})
    r200, v200 = virial_radius(halo_mass), virial_velocity(halo_mass)
    x = concentration * radius / r200
    return np.sqrt(v200**2 * (r200 / radius) * _nfw_mass_shape(x)
                   / _nfw_mass_shape(concentration))


def rotation_curves(mstar, mhalo, rd, c, radii=RADII) -> np.ndarray:
    """Curves (n, len(radii)) of v_c = sqrt(v_disc^2 + v_halo^2), one row per galaxy."""
    radii = check_positive_array(radii, "radii", ndim=1)[None, :]
    values = {n: check_positive_array(v, n, ndim=(0, 1)) for v, n in
              ((mstar, "mstar"), (mhalo, "mhalo"), (rd, "rd"), (c, "c"))}
    check_same_length(values)
    mstar, mhalo, rd, c = (np.atleast_1d(v)[:, None] for v in values.values())
    return np.sqrt(disc_velocity(radii, mstar, rd) ** 2 + nfw_velocity(radii, mhalo, c) ** 2)


def moster_stellar_mass(log_mhalo) -> np.ndarray:
    """Mean log stellar mass at a given log halo mass (Moster et al. 2013, z = 0)."""
    p = MOSTER13
    log_mhalo = as_finite_array(log_mhalo, "log_mhalo", dtype=np.float64)
    ratio = 10.0 ** (log_mhalo - p["log_m1"])
    return log_mhalo + np.log10(2 * p["n"] / (ratio ** -p["beta"]
                                                          + ratio ** p["gamma"]))


def sample_galaxies(n: int = 2000, seed: int | None = 0,
                    log_mstar_range=(9.0, 12.0)) -> dict[str, np.ndarray]:
    """Draw ``n`` galaxies: log M* uniform in ``log_mstar_range``; halo mass from the inverse
    Moster relation with its 0.15 dex scatter in M* carried to M_halo through the relation's
    local slope; disc scale length from Shen et al. 2003 with its log-normal scatter;
    concentration from Dutton & Maccio 2014 with 0.11 dex scatter. Returns log10 values.
    ``log_mstar_range`` must lie within [4.29, 12.55]: the stellar masses of halo masses
    10^9 to 10^17, where the relation is inverted, rounded inwards."""
    n = check_positive_int(n, "n")
    lo, hi = check_range(log_mstar_range, "log_mstar_range")
    grid = LOG_MHALO_GRID  # the relation is monotonic: invert by interpolation
    log_ms_grid = moster_stellar_mass(grid)
    supported = (math.ceil(100 * log_ms_grid[0]) / 100, math.floor(100 * log_ms_grid[-1]) / 100)
    if lo < supported[0] or hi > supported[1]:
        raise ValueError(f"log_mstar_range must lie in [{supported[0]:.2f}, {supported[1]:.2f}], "
                         f"the stellar masses of halos of 10^{grid[0]:.0f} to 10^{grid[-1]:.0f} "
                         f"Msun under the Moster relation, got {tuple(log_mstar_range)!r}")
    rng = np.random.default_rng(check_seed(seed))
    log_mstar = rng.uniform(lo, hi, n)

    mean_mhalo = np.interp(log_mstar, log_ms_grid, grid)
    slope = np.interp(mean_mhalo, grid, np.gradient(log_ms_grid, grid))
    log_mhalo = mean_mhalo + rng.normal(0.0, MOSTER13["scatter_dex"] / slope)

    s = SHEN03
    mstar = 10.0 ** log_mstar
    r50 = s["gamma_kpc"] * mstar ** s["alpha"] * (1.0 + mstar / s["m0"]) ** (s["beta"] - s["alpha"])
    sigma_ln = s["sigma2"] + (s["sigma1"] - s["sigma2"]) / (1.0 + (mstar / s["m0"]) ** 2)
    log_rd = np.log10(r50 / HALF_MASS_TO_SCALE) + rng.normal(0.0, sigma_ln) / np.log(10.0)

    d = DUTTON14
    log_c = (d["a"] + d["b"] * (log_mhalo + np.log10(LITTLE_H) - 12.0)
             + rng.normal(0.0, d["scatter_dex"], n))
    return {"log_mstar": log_mstar, "log_mhalo": log_mhalo, "log_rd": log_rd, "log_c": log_c}


def curves_from_parameters(params: dict[str, np.ndarray], radii=RADII) -> np.ndarray:
    """Rotation curves for a dict of log10 parameters as returned by ``sample_galaxies``."""
    if not hasattr(params, "keys"):
        raise TypeError(f"params must be a dict of log10 values {PARAMETERS}, got "
                        f"{type(params).__name__}")
    missing = [k for k in PARAMETERS if k not in params]
    if missing:
        raise ValueError(f"params is missing {missing}")
    return rotation_curves(*(10.0 ** np.asarray(params[k]) for k in PARAMETERS), radii=radii)

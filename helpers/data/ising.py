"""2-D ferromagnetic Ising model on an L x L torus (J = k_B = 1): a numba Monte Carlo
sampler (checkerboard Metropolis and Wolff cluster updates), exact references (Onsager's
infinite lattice, Kaufman's finite torus), autocorrelation times, and a cached data set.
Used by the Ising notebook.

Energy convention: E = -sum_i s_i (s_right(i) + s_down(i)), i.e. each nearest-neighbour
bond once; on a 2 x 2 torus right and left neighbours coincide and that bond counts twice.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import NamedTuple

import numba
import numpy as np
from scipy.special import ellipk

from helpers.infra.checks import (
    as_finite_array,
    check_positive,
    check_positive_array,
    check_positive_int,
    check_seed,
)
from helpers.infra.config import data_dir
from helpers.infra.progress import progress as progress_bar

TC = 2.0 / math.log(1.0 + math.sqrt(2.0))  # Onsager's critical temperature, 2.269185...
DEFAULT_TEMPERATURES = np.round(np.arange(1, 17) * 0.25, 2)  # 0.25, 0.50, ..., 4.00
ALGORITHMS = ("hybrid", "metropolis", "wolff")
ORIGINAL_FILE = "Ising2DFM_reSample_L40_T=All.pkl"
_CACHE_VERSION = 1
_TWO32 = 4294967296.0


# ---------------------------------------------------------------- input checks
def _check_L(L) -> int:
    return check_positive_int(L, "L", minimum=2)


def _check_temperatures(temperatures) -> np.ndarray:
    return np.atleast_1d(check_positive_array(temperatures, "temperatures", ndim=(0, 1)))


def _check_algorithm(algorithm) -> str:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    return algorithm


def _check_temperature(temperature) -> float:
    t = _check_temperatures(temperature)
    if t.size != 1:
        raise ValueError(f"temperature must be a single number, got {t.size} values; run one "
                         "IsingChains per temperature (as generate_ising does)")
    return float(t[0])


def _check_seed(seed, name="seed") -> int:
    return check_seed(seed, name, allow_none=False)


def _check_spins(spins) -> np.ndarray:
    s = np.asarray(spins)
    if s.ndim < 2 or s.shape[-1] != s.shape[-2] or s.shape[-1] == 0:
        raise ValueError(f"spins must have shape (..., L, L) with L >= 1, got {s.shape}")
    # two comparisons: np.isin takes seconds per million int8 spins
    if not ((s == 1) | (s == -1)).all():
        raise ValueError("spins must hold only -1 and +1 (convert 0/1 bits with 2 * bits - 1)")
    return s


def _check_energies(energies, name) -> None:
    """The energy per spin of the 2-D model lies in [-2, 2] (every bond aligned or broken)."""
    lo, hi = float(energies.min()), float(energies.max())
    if lo < -2.0 or hi > 2.0:
        raise ValueError(f"{name} must be energies per spin, in [-2, 2], got values in "
                         f"[{lo:.4g}, {hi:.4g}]")


# ---------------------------------------------------------------- observables
def energy_per_spin(spins) -> np.ndarray:
    """Energy per spin of each configuration in ``spins`` (shape (..., L, L), values +-1)."""
    s = _check_spins(spins).astype(np.int8, copy=False)  # +-1; each bond term in -2..2
    bonds = s * (np.roll(s, -1, axis=-1) + np.roll(s, -1, axis=-2))
    return -bonds.sum(axis=(-2, -1), dtype=np.int64) / (s.shape[-1] * s.shape[-2])


def magnetization(spins) -> np.ndarray:
    """Magnetization per spin of each configuration in ``spins`` (shape (..., L, L), values
    +-1)."""
    s = _check_spins(spins)
    return s.mean(axis=(-2, -1), dtype=np.float64)


# ---------------------------------------------------------------- exact references
def onsager_energy(temperatures) -> np.ndarray:
    """Onsager's internal energy per spin of the infinite lattice (-sqrt 2 at Tc)."""
    t = _check_temperatures(temperatures)
    b = 1.0 / t
    # k = 2 sinh(2b) / cosh^2(2b), written so that it tends to 0 instead of inf / inf at low T
    with np.errstate(over="ignore"):
        k = 2.0 * np.tanh(2 * b) / np.cosh(2 * b)
    k2 = np.minimum(k**2, np.nextafter(1.0, 0.0))
    u = -1.0 / np.tanh(2 * b) * (1 + 2 / np.pi * (2 * np.tanh(2 * b) ** 2 - 1) * ellipk(k2))
    return np.where(np.isclose(t, TC, rtol=0, atol=1e-12), -math.sqrt(2.0), u)


def onsager_magnetization(temperatures) -> np.ndarray:
    """Onsager-Yang spontaneous magnetization per spin (0 at and above Tc)."""
    t = _check_temperatures(temperatures)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = (1 - np.sinh(2 / t) ** -4.0) ** 0.125
    return np.where(t < TC, m, 0.0)


def _log2cosh(x):
    a = np.abs(x)
    return a + np.log1p(np.exp(-2 * a))


def _log2sinh(x):  # x > 0
    return x + np.log1p(-np.exp(-2 * x))


def _kaufman_terms(L: int, K: float):
    """log Z and d log Z / dK of an L x L torus at coupling K (Kaufman 1949, eq. 39)."""
    m = n = L
    c = np.cosh(2 * K) / np.tanh(2 * K)
    dc = 2 * np.cosh(2 * K) * (1 - 1 / np.sinh(2 * K) ** 2)
    l_odd = np.arange(1, 2 * n, 2)
    l_even = np.arange(2, 2 * n, 2)
    g_odd = np.arccosh(c - np.cos(np.pi * l_odd / n))
    g_even = np.arccosh(c - np.cos(np.pi * l_even / n))
    dg_odd = dc / np.sinh(g_odd)
    dg_even = dc / np.sinh(g_even)
    g0 = 2 * K + np.log(np.tanh(K))  # gamma_0 carries a sign: negative below Tc
    dg0 = 2 + 2 / np.sinh(2 * K)
    h_odd, h_even, h0 = m * g_odd / 2, m * g_even / 2, m * g0 / 2

    logs = np.array([
        _log2cosh(h_odd).sum(),
        _log2sinh(h_odd).sum(),
        _log2cosh(h_even).sum() + _log2cosh(h0),
        _log2sinh(h_even).sum() + _log2cosh(h0),
    ])
    weights = np.array([1.0, 1.0, 1.0, np.tanh(h0)])  # Z4 = P * 2cosh(h0) * tanh(h0)
    derivs = np.array([
        (m / 2 * dg_odd * np.tanh(h_odd)).sum(),
        (m / 2 * dg_odd / np.tanh(h_odd)).sum(),
        (m / 2 * dg_even * np.tanh(h_even)).sum() + m / 2 * dg0 * np.tanh(h0),
        np.tanh(h0) * (m / 2 * dg_even / np.tanh(h_even)).sum() + m / 2 * dg0,
    ])
    top = logs.max()
    scale = np.exp(logs - top)
    s = np.sum(scale * weights)
    ds = np.sum(scale * derivs)  # d(sum Z_i)/dK, divided by exp(top)
    N = m * n
    log_z = -math.log(2) + N / 2 * math.log(2 * math.sinh(2 * K)) + top + math.log(s)
    dlog_z = N / math.tanh(2 * K) + ds / s
    return log_z, dlog_z


def exact_log_partition(L, temperatures) -> np.ndarray:
    """Exact log Z of the L x L torus (Kaufman 1949), one value per temperature."""
    L, t = _check_L(L), _check_temperatures(temperatures)
    return np.array([_kaufman_terms(L, 1.0 / ti)[0] for ti in t])


def exact_energy(L, temperatures) -> np.ndarray:
    """Exact mean energy per spin of the L x L torus, -(1/N) d log Z / d beta
    (Kaufman 1949; Ferdinand & Fisher 1969)."""
    L, t = _check_L(L), _check_temperatures(temperatures)
    return np.array([-_kaufman_terms(L, 1.0 / ti)[1] / L**2 for ti in t])


def energy_deviations(chain_energies, exact, L) -> np.ndarray:
    """|Monte Carlo mean - exact| energy per spin at each temperature, in standard errors of
    the chain means. ``chain_energies`` (n_temperatures, n_chains, n_per_chain) holds the
    energy per spin of every stored configuration, ``exact`` the exact means. Where every
    configuration has the same energy (all ground states at low temperature) the standard
    error is 0: the deviation is then 0 if the exact mean implies fewer than 3 excited
    configurations in the sample (one flipped spin costs 8 / L^2 per spin), else infinite.
    The standard error needs at least 2 chains per temperature."""
    energies = as_finite_array(chain_energies, "chain_energies", ndim=3, dtype=np.float64)
    exact = as_finite_array(exact, "exact", ndim=1, dtype=np.float64)
    if len(exact) != len(energies):
        raise ValueError(f"exact must hold one value per temperature ({len(energies)}), "
                         f"got {len(exact)}")
    if energies.shape[1] < 2:
        raise ValueError(f"chain_energies needs at least 2 chains per temperature (axis 1) for "
                         f"a standard error of the chain means, got shape {energies.shape}")
    _check_energies(energies, "chain_energies")
    _check_energies(exact, "exact")
    L = _check_L(L)
    chain_means = energies.mean(axis=2)
    mean = chain_means.mean(axis=1)
    se = chain_means.std(axis=1, ddof=1) / np.sqrt(chain_means.shape[1])
    gap = np.abs(mean - exact)
    n = energies.shape[1] * energies.shape[2]
    expected_excited = n * gap / (8 / L**2)  # configurations with one flip, implied by exact
    frozen = np.where(expected_excited < 3, 0.0, np.inf)
    return np.where(se > 0, gap / np.where(se > 0, se, 1.0), frozen)


def enumerate_states(L) -> np.ndarray:
    """All 2**(L*L) configurations of an L x L lattice as int8 +-1 (L <= 4)."""
    L = _check_L(L)
    if L > 4:
        raise ValueError(f"L must be <= 4 for enumeration (2**(L*L) states), got {L}")
    codes = np.arange(2 ** (L * L), dtype=np.int64)
    bits = (codes[:, None] >> np.arange(L * L)) & 1
    return (2 * bits - 1).astype(np.int8).reshape(-1, L, L)


# ---------------------------------------------------------------- autocorrelation
def integrated_autocorr_time(x, c: float = 5.0) -> float:
    """Integrated autocorrelation time tau = 1/2 + sum_t rho(t) of a series, or of several
    independent chains of equal length (rows of a 2-D array), with Sokal's automatic window:
    the sum stops at the first lag M with M >= c * tau(M). A constant series gives 0.5.

    Warns (UserWarning) when the estimate cannot be trusted: when the window found no such
    lag, or when a chain is shorter than 50 tau (Sokal 1997); the estimate is then usually
    far too small. For an AR(1) series with coefficient rho, tau = (1 + rho) / (2 (1 - rho))."""
    c = check_positive(c, "c")
    a = as_finite_array(x, "x", ndim=(1, 2), dtype=np.float64)
    a = np.atleast_2d(a)
    n = a.shape[1]
    if n < 4:
        raise ValueError(f"x needs at least 4 steps per chain, got {n}")
    a = a - a.mean(axis=1, keepdims=True)
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(a, n=size, axis=1)
    acov = np.fft.irfft(f * np.conj(f), n=size, axis=1)[:, :n].mean(axis=0)
    if acov[0] <= 1e-12 * max(1.0, float(np.abs(a).max()) ** 2):
        return 0.5
    rho = acov / acov[0]
    taus = np.cumsum(rho) - 0.5  # tau(M) = 1/2 + sum_{t=1}^{M} rho(t)
    window = np.arange(n) >= c * taus
    m = int(np.argmax(window)) if window.any() else n - 1
    tau = float(taus[m])
    if not window.any() or n < 50 * tau:
        problem = ("the automatic window did not converge" if not window.any()
                   else f"{n} steps < 50 tau = {50 * tau:.0f}")
        warnings.warn(f"integrated_autocorr_time: the estimate tau = {tau:.4g} from chains of "
                      f"{n} steps is unreliable ({problem}); a chain needs at least 50 tau "
                      "steps, and a short one underestimates tau", UserWarning, stacklevel=2)
    return tau


# ---------------------------------------------------------------- numba kernels
# Random numbers: each chain owns a splitmix64 counter (Steele et al. 2014). A Metropolis
# row pass draws one 64-bit key from it and hashes key + j * golden with Wellons' 32-bit
# "lowbias32" integer hash, a counter-based stream that vectorises across the row.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_GOLDEN32 = np.uint32(0x9E3779B9)
_H1 = np.uint32(0x7FEB352D)
_H2 = np.uint32(0x846CA68B)
_HALF = np.uint32(1 << 31)


@numba.njit(inline="always")
def _mix64(z):
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@numba.njit(inline="always")
def _hash32(v):
    v = np.uint32(v ^ (v >> np.uint32(16)))
    v = np.uint32(v * _H1)
    v = np.uint32(v ^ (v >> np.uint32(15)))
    v = np.uint32(v * _H2)
    return np.uint32(v ^ (v >> np.uint32(16)))


def _seed_states(seed: int, stream: int, n: int) -> np.ndarray:
    """Independent splitmix64 states for ``n`` chains of stream ``stream`` of ``seed``."""
    return np.random.SeedSequence([int(seed), int(stream)]).generate_state(n, dtype=np.uint64)


def _thresholds(beta: float) -> tuple[np.uint32, np.uint32]:
    """Metropolis acceptance exp(-beta dE) for dE = 4 and 8 as thresholds on 32-bit uniforms."""
    return (np.uint32(math.floor(math.exp(-4 * beta) * _TWO32)),
            np.uint32(math.floor(math.exp(-8 * beta) * _TWO32)))


@numba.njit(cache=True)
def _sweep(s, t4, t8, x, h):
    """One checkerboard Metropolis sweep of lattice ``s``: for each colour, each row's sites
    of that colour are updated together (they do not interact). A flip is accepted with
    probability min(1, exp(-beta dE)), except that dE = 0 is accepted with probability 1/2:
    detailed balance holds either way, and with a fixed sweep order, always accepting
    dE = 0 locks small lattices into cycles (a 2x2 stripe flips forever). Returns the RNG
    counter."""
    L = s.shape[0]
    L_vec = L - (L & 1)  # on an odd torus, site L-1 neighbours site 0 of the same colour
    for colour in range(2):
        for i in range(L):
            up = s[i - 1 if i > 0 else L - 1]
            dn = s[i + 1 if i < L - 1 else 0]
            row = s[i]
            p = (i + colour) & 1
            h[0] = up[0] + dn[0] + row[L - 1] + row[1]
            for j in range(1, L - 1):
                h[j] = up[j] + dn[j] + row[j - 1] + row[j + 1]
            h[L - 1] = up[L - 1] + dn[L - 1] + row[L - 2] + row[0]
            x += _GOLDEN
            key = np.uint32(_mix64(x) >> np.uint64(32))
            for j in range(L_vec):
                r = _hash32(np.uint32(key + np.uint32(np.uint32(j) * _GOLDEN32)))
                prod = row[j] * h[j]
                accept = (prod < 0) | (r < (_HALF if prod == 0 else (t4 if prod == 2 else t8)))
                flip = accept & ((j & 1) == p)
                row[j] = row[j] * (1 - 2 * flip)
            if L_vec < L and p == 0:  # the last site of an odd row, after its neighbours
                j = L - 1
                prod = row[j] * (up[j] + dn[j] + row[j - 1] + row[0])
                r = _hash32(np.uint32(key + np.uint32(np.uint32(j) * _GOLDEN32)))
                if prod < 0 or r < (_HALF if prod == 0 else (t4 if prod == 2 else t8)):
                    row[j] = -row[j]
    return x


@numba.njit(cache=True)
def _wolff(s, p_add, x, stack):
    """Grow one Wolff cluster from a random site and flip it. Returns the RNG counter."""
    L = s.shape[0]
    x += _GOLDEN
    site = np.int64(((_mix64(x) >> np.uint64(32)) * np.uint64(L * L)) >> np.uint64(32))
    old = s[site // L, site % L]
    s[site // L, site % L] = -old
    stack[0] = site
    top = 1
    while top > 0:
        top -= 1
        site = stack[top]
        i, j = site // L, site % L
        for d in range(4):
            if d == 0:
                ni, nj = i + 1 if i < L - 1 else 0, j
            elif d == 1:
                ni, nj = i - 1 if i > 0 else L - 1, j
            elif d == 2:
                ni, nj = i, j + 1 if j < L - 1 else 0
            else:
                ni, nj = i, j - 1 if j > 0 else L - 1
            if s[ni, nj] == old:
                x += _GOLDEN
                if (_mix64(x) >> np.uint64(32)) < p_add:
                    s[ni, nj] = -old
                    stack[top] = ni * L + nj
                    top += 1
    return x


@numba.njit(cache=True)
def _step(s, t4, t8, p_add, n_sweeps, n_clusters, x, h, stack):
    for _ in range(n_sweeps):
        x = _sweep(s, t4, t8, x, h)
    for _ in range(n_clusters):
        x = _wolff(s, p_add, x, stack)
    return x


@numba.njit(cache=True)
def _lattice_energy_mag(s):
    L = s.shape[0]
    e, m = 0, 0
    for i in range(L):
        dn = i + 1 if i < L - 1 else 0
        for j in range(L):
            rt = j + 1 if j < L - 1 else 0
            e -= s[i, j] * (s[i, rt] + s[dn, j])
            m += s[i, j]
    return e, m


@numba.njit(cache=True)
def _chain_buffers(L):
    """Scratch space of one chain: a row of the lattice and the Wolff cluster stack."""
    return np.empty(L, dtype=np.int8), np.empty(L * L, dtype=np.int64)


@numba.njit(parallel=True, cache=True)
def _run_series(spins, states, t4, t8, p_add, n_sweeps, n_clusters, n_steps, energy, mag):
    """Advance each chain ``n_steps`` steps, recording energy and magnetization per spin."""
    n_chains, L = spins.shape[0], spins.shape[1]
    for c in numba.prange(n_chains):
        h, stack = _chain_buffers(L)
        x = states[c]
        for t in range(n_steps):
            x = _step(spins[c], t4, t8, p_add, n_sweeps, n_clusters, x, h, stack)
            e, m = _lattice_energy_mag(spins[c])
            energy[c, t] = e / (L * L)
            mag[c, t] = m / (L * L)
        states[c] = x


@numba.njit(parallel=True, cache=True)
def _run_samples(spins, states, t4, t8, p_add, n_sweeps, n_clusters, burn_in, thin, out):
    """Burn each chain in, then store a configuration every ``thin`` steps into ``out``."""
    n_chains, n_keep, L = out.shape[0], out.shape[1], spins.shape[1]
    for c in numba.prange(n_chains):
        h, stack = _chain_buffers(L)
        x = states[c]
        for _ in range(burn_in):
            x = _step(spins[c], t4, t8, p_add, n_sweeps, n_clusters, x, h, stack)
        for t in range(n_keep):
            for _ in range(thin):
                x = _step(spins[c], t4, t8, p_add, n_sweeps, n_clusters, x, h, stack)
            out[c, t] = spins[c]
        states[c] = x


# ---------------------------------------------------------------- chains
_MOVES = {"hybrid": (1, 1), "metropolis": (1, 0), "wolff": (0, 1)}


class IsingChains:
    """``n_chains`` independent chains of an L x L torus at temperature ``temperature``.
    One step is one checkerboard Metropolis sweep and/or one Wolff cluster flip, as set by
    ``algorithm`` ("hybrid": both, "metropolis", "wolff"). Chains start ordered, each with
    a random overall sign, and are reproducible from ``seed`` and ``stream``."""

    def __init__(self, L, temperature, n_chains, algorithm="hybrid", seed=0, stream=0,
                 start="ordered"):
        self.L = _check_L(L)
        self.temperature = _check_temperature(temperature)
        self.n_chains = check_positive_int(n_chains, "n_chains")
        self.algorithm = _check_algorithm(algorithm)
        seed, stream = _check_seed(seed), _check_seed(stream, "stream")
        self.states = _seed_states(seed, stream, self.n_chains)
        beta = 1.0 / self.temperature
        self.t4, self.t8 = _thresholds(beta)
        self.p_add = np.uint64(math.floor(-math.expm1(-2 * beta) * _TWO32))
        self.n_sweeps, self.n_clusters = _MOVES[self.algorithm]
        rng = np.random.default_rng([seed, stream, 1])
        if start == "ordered":
            signs = rng.choice(np.array([-1, 1], dtype=np.int8), size=self.n_chains)
            self.spins = np.ones((self.n_chains, self.L, self.L), dtype=np.int8)
            self.spins *= signs[:, None, None]
        elif start == "random":
            self.spins = rng.choice(np.array([-1, 1], dtype=np.int8),
                                    size=(self.n_chains, self.L, self.L))
        else:
            raise ValueError(f"start must be 'ordered' or 'random', got {start!r}")

    def series(self, n_steps):
        """Run ``n_steps`` steps; return energy and magnetization per spin, (n_chains, n_steps)."""
        n_steps = check_positive_int(n_steps, "n_steps")
        energy = np.empty((self.n_chains, n_steps))
        mag = np.empty((self.n_chains, n_steps))
        _run_series(self.spins, self.states, self.t4, self.t8, self.p_add, self.n_sweeps,
                    self.n_clusters, n_steps, energy, mag)
        return energy, mag

    def samples(self, n_per_chain, burn_in, thin):
        """Run ``burn_in`` steps, then keep ``n_per_chain`` configurations ``thin`` steps apart:
        int8 array (n_chains, n_per_chain, L, L)."""
        n_per_chain = check_positive_int(n_per_chain, "n_per_chain")
        burn_in = check_positive_int(burn_in, "burn_in", minimum=0)
        thin = check_positive_int(thin, "thin")
        out = np.empty((self.n_chains, n_per_chain, self.L, self.L), dtype=np.int8)
        _run_samples(self.spins, self.states, self.t4, self.t8, self.p_add, self.n_sweeps,
                     self.n_clusters, burn_in, thin, out)
        return out

    def sweeps(self, n_sweeps):
        """Metropolis sweeps only, whatever the algorithm, nothing recorded (for timing)."""
        energy = np.empty((self.n_chains, 1))
        mag = np.empty((self.n_chains, 1))
        _run_series(self.spins, self.states, self.t4, self.t8, self.p_add,
                    check_positive_int(n_sweeps, "n_sweeps"), 0, 1, energy, mag)


class Decorrelation(NamedTuple):
    """Measured integrated autocorrelation times (in steps) and the schedule they set."""

    tau_energy: float
    tau_abs_m: float
    burn_in: int
    thin: int


def measure_decorrelation(L, temperature, algorithm="hybrid", seed=0, stream=0, n_chains=8,
                          n_steps=2000, pilot_burn_in=500) -> Decorrelation:
    """Pilot run: after ``pilot_burn_in`` steps, measure tau_int of the energy and of |m| over
    ``n_steps`` steps of ``n_chains`` chains. Thinning is 4 * tau_max steps (rounded up; for an
    exponential decay the correlation between kept samples is then about exp(-4) = 0.02);
    burn-in is max(100, 20 * tau_max) steps."""
    n_steps = check_positive_int(n_steps, "n_steps", minimum=4)
    chains = IsingChains(L, temperature, n_chains, algorithm, seed=seed, stream=stream)
    chains.series(check_positive_int(pilot_burn_in, "pilot_burn_in"))
    energy, mag = chains.series(n_steps)
    tau_e = integrated_autocorr_time(energy)
    tau_m = integrated_autocorr_time(np.abs(mag))
    tau = max(tau_e, tau_m)
    return Decorrelation(tau_e, tau_m, max(100, math.ceil(20 * tau)), max(1, math.ceil(4 * tau)))


# ---------------------------------------------------------------- data set
class IsingData(NamedTuple):
    """Spin configurations (n, L, L) int8 in {-1, +1} and the temperature of each."""

    spins: np.ndarray
    temperatures: np.ndarray


def generate_ising(n_per_temperature=10_000, temperatures=None, L=40, seed=0,
                   algorithm="hybrid", n_chains=None, progress=True):
    """Generate equilibrium configurations with decorrelation measured per temperature.
    Returns (IsingData, list of Decorrelation); configurations are ordered by temperature,
    then chain, then time."""
    n = check_positive_int(n_per_temperature, "n_per_temperature")
    t = DEFAULT_TEMPERATURES if temperatures is None else _check_temperatures(temperatures)
    L, seed, algorithm = _check_L(L), _check_seed(seed), _check_algorithm(algorithm)
    n_chains = min(n, 100) if n_chains is None else check_positive_int(n_chains, "n_chains")
    per_chain = -(-n // n_chains)
    spins = np.empty((len(t), n, L, L), dtype=np.int8)
    schedule = []
    for k, temp in enumerate(progress_bar(t, desc=f"Ising L={L}", unit="T",
                                                   disable=not progress)):
        dec = measure_decorrelation(L, temp, algorithm, seed=seed, stream=2 * k + 1)
        chains = IsingChains(L, temp, n_chains, algorithm, seed=seed, stream=2 * k + 2)
        out = chains.samples(per_chain, dec.burn_in, dec.thin)
        spins[k] = out.reshape(-1, L, L)[:n]
        schedule.append(dec)
    data = IsingData(spins.reshape(-1, L, L), np.repeat(t, n))
    return data, schedule


def _cache_file(n_per_temperature, temperatures, L, seed, algorithm) -> tuple[Path, dict]:
    """Checked generation parameters and the cache file they key."""
    n = check_positive_int(n_per_temperature, "n_per_temperature")
    t = DEFAULT_TEMPERATURES if temperatures is None else _check_temperatures(temperatures)
    L, seed, algorithm = _check_L(L), _check_seed(seed), _check_algorithm(algorithm)
    params = {"n_per_temperature": n, "temperatures": [round(float(x), 10) for x in t],
              "L": L, "seed": seed, "algorithm": algorithm, "version": _CACHE_VERSION}
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    return data_dir("ising") / f"ising_L{L}_n{n}_{key}.npz", params


def _pack(spins: np.ndarray) -> np.ndarray:
    return np.packbits(spins.reshape(len(spins), -1) > 0, axis=1)


def _unpack(packed: np.ndarray, L: int) -> np.ndarray:
    bits = np.unpackbits(packed, axis=1, count=L * L)
    return (2 * bits.astype(np.int8) - 1).reshape(-1, L, L)


def _read_cache(path: Path, params: dict):
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
        packed, temps = f["packed"], f["temperatures"]
    if meta.get("params") != params:
        raise ValueError("cache parameters do not match")
    if hashlib.sha256(packed.tobytes()).hexdigest() != meta.get("sha256"):
        raise ValueError("cache checksum mismatch")
    n_total = params["n_per_temperature"] * len(params["temperatures"])
    if packed.shape[0] != n_total or temps.shape != (n_total,):
        raise ValueError("cache has the wrong shape")
    return IsingData(_unpack(packed, params["L"]), temps), meta


def load_ising(n_per_temperature=10_000, temperatures=None, L=40, seed=0, algorithm="hybrid",
               *, path=None, cache=True, progress=True) -> IsingData:
    """Equilibrium configurations of the 2-D Ising model, ``n_per_temperature`` at each of
    ``temperatures`` (default 0.25, 0.50, ..., 4.00) on an L x L torus.

    Generated with :func:`generate_ising` and cached under ``data/ising/`` as bit-packed
    arrays keyed by the parameters; the file is written atomically and checked (parameters
    and checksum) when read, and a corrupt or mismatched cache is regenerated. With ``path``,
    reads the original Mehta et al. pickle instead (see :func:`read_ising_pickle`)."""
    if path is not None:
        return read_ising_pickle(path, L=L, n_per_temperature=n_per_temperature,
                                 temperatures=temperatures)
    file, params = _cache_file(n_per_temperature, temperatures, L, seed, algorithm)
    t = DEFAULT_TEMPERATURES if temperatures is None else _check_temperatures(temperatures)
    if cache and file.exists():
        try:
            return _read_cache(file, params)[0]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            warnings.warn(f"Ising cache {file.name} is unreadable ({err}); regenerating",
                          stacklevel=2)
    data, schedule = generate_ising(params["n_per_temperature"], t, params["L"], params["seed"],
                                    algorithm, progress=progress)
    if cache:
        try:
            _write_cache(file, data, params, schedule)
        except OSError as err:  # keep what was generated; only the cache is lost
            warnings.warn(f"Could not write the Ising cache {file} ({err}); the generated data "
                          "are returned but not cached.", stacklevel=2)
    return data


def _write_cache(file: Path, data: IsingData, params: dict, schedule) -> None:
    from helpers.infra.files import replace_atomic

    packed = _pack(data.spins)
    meta = {"params": params, "sha256": hashlib.sha256(packed.tobytes()).hexdigest(),
            "schedule": [d._asdict() for d in schedule]}

    def write(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, packed=packed, temperatures=data.temperatures,
                     meta=np.array(json.dumps(meta)))
            fh.flush()
            os.fsync(fh.fileno())

    replace_atomic(file, write)


def cached_schedule(n_per_temperature=10_000, temperatures=None, L=40, seed=0,
                    algorithm="hybrid") -> list[Decorrelation] | None:
    """The decorrelation schedule stored with a cached data set, or None if not cached."""
    file, params = _cache_file(n_per_temperature, temperatures, L, seed, algorithm)
    try:
        meta = _read_cache(file, params)[1]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    return [Decorrelation(**d) for d in meta["schedule"]]


def read_ising_pickle(path, L=40, n_per_temperature=None, temperatures=None) -> IsingData:
    """Read a file in the format of Mehta et al.'s ``Ising2DFM_reSample_L40_T=All.pkl``: a
    pickled uint8 array of packed bits (1 = spin up), all configurations of the default
    16 temperatures in order, the same number at each. Keeps ``temperatures`` (a subset of
    the file's) and the first ``n_per_temperature`` configurations of each."""
    L = _check_L(L)
    with open(path, "rb") as fh:
        try:
            raw = np.asarray(pickle.load(fh, encoding="latin1"), dtype=np.uint8)
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
            raise ValueError(f"{path} is not a pickled array of packed spins "
                             f"({type(err).__name__}: {err})") from err
    bits = np.unpackbits(raw.ravel())
    if bits.size % (L * L):
        raise ValueError(f"{path} holds {bits.size} bits, not a whole number of {L}x{L} lattices")
    spins = (2 * bits.astype(np.int8) - 1).reshape(-1, L, L)
    n_t = len(DEFAULT_TEMPERATURES)
    if len(spins) % n_t:
        raise ValueError(f"{path} holds {len(spins)} configurations, not a multiple of {n_t}")
    per = len(spins) // n_t
    n = per if n_per_temperature is None else check_positive_int(n_per_temperature,
                                                                 "n_per_temperature")
    if n > per:
        raise ValueError(f"n_per_temperature={n} exceeds the {per} per temperature in {path}")
    t = DEFAULT_TEMPERATURES if temperatures is None else _check_temperatures(temperatures)
    idx = [int(np.argmin(np.abs(DEFAULT_TEMPERATURES - x))) for x in t]
    if not np.allclose(DEFAULT_TEMPERATURES[idx], t):
        raise ValueError(f"temperatures must be among {DEFAULT_TEMPERATURES.tolist()}")
    blocks = spins.reshape(n_t, per, L, L)[idx, :n]
    return IsingData(blocks.reshape(-1, L, L), np.repeat(t, n))

"""Ising sampler, exact references and data cache, checked against enumeration and closed forms."""

import math
import pickle
import warnings

import numpy as np
import pytest
from scipy import stats

from helpers.data import ising


def boltzmann(L, T):
    """Exact state probabilities of an L x L torus by enumeration, and the state codes."""
    states = ising.enumerate_states(L)
    energy = ising.energy_per_spin(states) * L * L
    w = np.exp(-(energy - energy.min()) / T)
    return states, w / w.sum()


def state_codes(spins):
    n, L, _ = spins.shape
    return ((spins.reshape(n, -1) > 0) * (1 << np.arange(L * L))).sum(axis=1)


# ---------------------------------------------------------------- exact references
def test_energy_per_spin_by_hand():
    up = np.ones((3, 3), dtype=np.int8)
    assert ising.energy_per_spin(up) == -2.0
    checker = np.array([[1, -1], [-1, 1]], dtype=np.int8)  # every bond anti-aligned
    assert ising.energy_per_spin(checker) == 2.0
    one_flip = np.ones((4, 4), dtype=np.int8)
    one_flip[1, 2] = -1  # four broken bonds of 32: E = -32 + 8
    assert ising.energy_per_spin(one_flip) == pytest.approx(-24 / 16)
    assert ising.magnetization(one_flip) == pytest.approx(14 / 16)


@pytest.mark.parametrize("L", [2, 3, 4])
@pytest.mark.parametrize("T", [0.5, 1.5, ising.TC, 3.0, 10.0])
def test_kaufman_matches_enumeration(L, T):
    states = ising.enumerate_states(L)
    energy = ising.energy_per_spin(states) * L * L
    log_w = -energy / T
    log_z = np.logaddexp.reduce(log_w)
    mean_energy = np.sum(np.exp(log_w - log_z) * energy) / L**2
    assert ising.exact_log_partition(L, T)[0] == pytest.approx(log_z, rel=1e-12)
    assert ising.exact_energy(L, T)[0] == pytest.approx(mean_energy, abs=1e-10)


def test_onsager_limits():
    # the finite torus approaches the infinite lattice away from Tc
    t = np.array([1.0, 1.8, 3.0, 4.0])
    assert np.allclose(ising.exact_energy(256, t), ising.onsager_energy(t), atol=1e-9)
    assert ising.onsager_energy(ising.TC)[0] == pytest.approx(-math.sqrt(2))
    assert ising.onsager_energy(ising.TC * (1 - 1e-9))[0] == pytest.approx(-math.sqrt(2), abs=1e-6)
    # high-temperature series: Z ~ cosh(b)^(2N) (1 + N t^4 + ...), t = tanh b, so
    # u = -2t - 4t^3 (1 - t^2) + O(t^5)
    t = math.tanh(1 / 50.0)
    assert ising.onsager_energy(50.0)[0] == pytest.approx(-2 * t - 4 * t**3, rel=1e-6)
    # ground state and low-temperature expansion u = -2 + 8 exp(-8b) + ...
    assert ising.onsager_energy(0.4)[0] == pytest.approx(-2 + 8 * math.exp(-8 / 0.4), rel=1e-6)


def test_onsager_magnetization():
    assert ising.onsager_magnetization([0.01])[0] == pytest.approx(1.0)
    assert np.all(ising.onsager_magnetization([ising.TC, 2.5, 4.0]) == 0.0)
    m = ising.onsager_magnetization([2.0])[0]
    assert m == pytest.approx((1 - math.sinh(1.0) ** -4) ** 0.125)
    # critical exponent 1/8: m ~ (Tc - T)^(1/8) close to Tc
    d1, d2 = 1e-4, 1e-6
    m1, m2 = ising.onsager_magnetization([ising.TC - d1, ising.TC - d2])
    assert math.log(m1 / m2) / math.log(d1 / d2) == pytest.approx(0.125, rel=1e-2)


# ---------------------------------------------------------------- autocorrelation
def test_integrated_time_of_ar1():
    # AR(1) x_t = phi x_{t-1} + e_t has tau_int = (1 + phi) / (2 (1 - phi))
    rng = np.random.default_rng(0)
    phi, n, chains = 0.8, 20_000, 8
    x = np.zeros((chains, n))
    noise = rng.normal(size=(chains, n))
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    assert ising.integrated_autocorr_time(x) == pytest.approx((1 + phi) / (2 * (1 - phi)),
                                                              rel=0.08)
    assert ising.integrated_autocorr_time(noise) == pytest.approx(0.5, abs=0.05)
    assert ising.integrated_autocorr_time(np.ones(100)) == 0.5


# ---------------------------------------------------------------- sampler
@pytest.mark.parametrize("algorithm", ising.ALGORITHMS)
@pytest.mark.parametrize("L", [2, 3])
@pytest.mark.parametrize("T", [1.0, 2.5])
def test_sampler_matches_boltzmann_weights(algorithm, L, T):
    _, p = boltzmann(L, T)
    n = 20_000
    chains = ising.IsingChains(L, T, n, algorithm, seed=3, start="random")
    chains.series(40)  # 40 steps from a random start: far past the tiny lattices' mixing
    observed = np.bincount(state_codes(chains.spins), minlength=p.size)
    expected = p * n
    big = expected >= 5
    obs = np.append(observed[big], observed[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    if exp[-1] < 5:  # fold a small remainder into the last large cell
        obs, exp = obs[:-1], exp[:-1]
        obs[-1] += observed[~big].sum()
        exp[-1] += expected[~big].sum()
    assert stats.chisquare(obs, exp).pvalue > 1e-3


def test_same_seed_same_spins():
    a = ising.generate_ising(30, temperatures=[1.5, 2.5], L=8, seed=7, progress=False)[0]
    b = ising.generate_ising(30, temperatures=[1.5, 2.5], L=8, seed=7, progress=False)[0]
    c = ising.generate_ising(30, temperatures=[1.5, 2.5], L=8, seed=8, progress=False)[0]
    assert np.array_equal(a.spins, b.spins)
    assert not np.array_equal(a.spins, c.spins)
    assert a.spins.dtype == np.int8 and set(np.unique(a.spins)) <= {-1, 1}
    assert a.spins.shape == (60, 8, 8)
    assert np.array_equal(a.temperatures, np.repeat([1.5, 2.5], 30))


def test_generated_energy_matches_exact_L8():
    t = np.array([1.5, ising.TC, 3.5])
    data, schedule = ising.generate_ising(2000, temperatures=t, L=8, seed=1, progress=False)
    energy = ising.energy_per_spin(data.spins).reshape(len(t), 100, -1)
    exact = ising.exact_energy(8, t)
    for k in range(len(t)):
        chain_means = energy[k].mean(axis=1)  # 100 independent chains
        se = chain_means.std(ddof=1) / math.sqrt(len(chain_means))
        assert abs(chain_means.mean() - exact[k]) < 4 * se
        assert schedule[k].thin >= 4 * max(schedule[k].tau_energy, schedule[k].tau_abs_m)


def test_metropolis_slows_near_tc_and_wolff_fixes_it():
    metro = ising.measure_decorrelation(16, ising.TC, "metropolis", n_steps=3000)
    hybrid = ising.measure_decorrelation(16, ising.TC, "hybrid", n_steps=3000)
    assert metro.tau_abs_m > 5 * hybrid.tau_abs_m


# ---------------------------------------------------------------- data API and cache
def test_load_ising_caches_and_rebuilds(isolated_dirs):
    kwargs = dict(n_per_temperature=20, temperatures=[2.0, 3.0], L=6, seed=2, progress=False)
    first = ising.load_ising(**kwargs)
    files = list((isolated_dirs / "data" / "ising").glob("*.npz"))
    assert len(files) == 1 and not list(files[0].parent.glob(".*tmp"))
    again = ising.load_ising(**kwargs)
    assert np.array_equal(first.spins, again.spins)
    assert ising.cached_schedule(20, [2.0, 3.0], 6, 2) is not None
    # a truncated file is detected and rebuilt with the same content
    raw = files[0].read_bytes()
    files[0].write_bytes(raw[: len(raw) // 2])
    with pytest.warns(UserWarning, match="regenerating"):
        rebuilt = ising.load_ising(**kwargs)
    assert np.array_equal(first.spins, rebuilt.spins)
    # a file whose bits were altered fails the checksum
    with np.load(files[0]) as f:
        packed, temps, meta = f["packed"].copy(), f["temperatures"], f["meta"]
    packed[0, 0] ^= 1
    np.savez(files[0], packed=packed, temperatures=temps, meta=meta)
    with pytest.warns(UserWarning, match="checksum"):
        ising.load_ising(**kwargs)


def test_interrupted_write_leaves_no_file(isolated_dirs, monkeypatch):
    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ising.np, "savez", fail)
    with pytest.raises(KeyboardInterrupt):
        ising.load_ising(5, temperatures=[2.0], L=4, progress=False)
    assert list((isolated_dirs / "data" / "ising").iterdir()) == []


def test_reads_original_pickle_format(tmp_path):
    rng = np.random.default_rng(0)
    n_per, L = 3, 40
    spins = rng.choice(np.array([-1, 1], dtype=np.int8), size=(16 * n_per, L, L))
    path = tmp_path / ising.ORIGINAL_FILE
    with open(path, "wb") as fh:  # the original: np.packbits of the 0/1 spins, pickled
        pickle.dump(np.packbits((spins > 0).astype(np.uint8)), fh)
    data = ising.load_ising(n_per_temperature=2, path=path)
    assert np.array_equal(data.spins[:2], spins[:2])
    assert np.array_equal(data.spins[2:4], spins[3:5])
    assert np.allclose(data.temperatures[:4], [0.25, 0.25, 0.5, 0.5])
    sub = ising.read_ising_pickle(path, temperatures=[4.0])
    assert np.array_equal(sub.spins, spins[-3:])
    with pytest.raises(ValueError, match="n_per_temperature"):
        ising.read_ising_pickle(path, n_per_temperature=4)
    with pytest.raises(ValueError, match="temperatures"):
        ising.read_ising_pickle(path, temperatures=[2.3])


@pytest.mark.parametrize("kwargs, match", [
    (dict(L=1), "L"),
    (dict(temperatures=[1.0, 0.0]), "temperatures"),
    (dict(temperatures=[-2.0]), "temperatures"),
    (dict(n_per_temperature=0), "n_per_temperature"),
    (dict(algorithm="swendsen-wang"), "algorithm"),
    (dict(seed=-1), "seed"),
])
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ising.load_ising(**{"n_per_temperature": 2, "L": 4, "progress": False, **kwargs})


def test_bad_input_elsewhere():
    with pytest.raises(ValueError, match="L"):
        ising.exact_energy(1, 2.0)
    with pytest.raises(ValueError, match="temperatures"):
        ising.onsager_energy([0.0])
    with pytest.raises(ValueError, match="start"):
        ising.IsingChains(4, 2.0, 2, start="hot")
    with pytest.raises(ValueError, match="x"):
        ising.integrated_autocorr_time([1.0, 2.0])


def test_onsager_energy_at_very_low_temperature_is_the_ground_state():
    # T -> 0: coth(2/T) -> 1, k -> 0 and K(0) = pi/2, so u -> -1 * (1 + 1) = -2 exactly
    np.testing.assert_allclose(ising.onsager_energy([0.001, 0.01, 0.1]), -2.0, atol=1e-12)
    assert np.all(np.isfinite(ising.onsager_energy(np.linspace(0.001, 5, 200))))


def test_energy_per_spin_refuses_bits():
    with pytest.raises(ValueError, match="-1 and \\+1"):
        ising.energy_per_spin(np.ones((4, 4), dtype=np.int8) * np.array([0, 1, 0, 1]))


def test_a_cache_that_cannot_be_written_keeps_the_generated_data(monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(ising, "_write_cache", refuse)
    with pytest.warns(UserWarning, match="Could not write the Ising cache"):
        data = ising.load_ising(4, temperatures=[1.0, 3.0], L=4, seed=0, progress=False)
    assert data.spins.shape == (8, 4, 4)


def test_energy_deviations_in_standard_errors_of_the_chain_means():
    # two chains of two configurations: chain means -1.0 and -0.8, mean -0.9, se 0.1
    chains = np.array([[[-1.1, -0.9], [-0.7, -0.9]]])
    z = ising.energy_deviations(chains, [-1.2], L=4)
    np.testing.assert_allclose(z, [3.0])


def test_energy_deviations_accept_a_sample_of_ground_states_at_low_temperature():
    # at T = 0.5 on a 40 x 40 torus an excited configuration is so rare that 1,000 ground
    # states (standard error 0) are the expected sample: no deviation, not an infinite one
    exact = ising.exact_energy(40, [0.5])
    assert -2 < exact[0] < -2 + 1e-5
    chains = np.full((1, 100, 10), -2.0)
    np.testing.assert_array_equal(ising.energy_deviations(chains, exact, L=40), [0.0])
    # the same sample against a mean that implies many excitations is flagged
    assert np.isinf(ising.energy_deviations(chains, [-1.99], L=40)[0])


def test_energy_deviations_check_their_arguments():
    with pytest.raises(ValueError, match="chain_energies"):
        ising.energy_deviations(np.zeros((2, 3)), [-1.0, -1.0], L=4)
    with pytest.raises(ValueError, match="exact"):
        ising.energy_deviations(np.zeros((2, 3, 4)), [-1.0], L=4)


# ---------------------------------------------------------------- bad input found in review
def test_energy_deviations_need_two_chains_per_temperature():
    # one chain has no spread of chain means: its standard error is undefined, not 0
    with pytest.raises(ValueError, match="chain_energies.*at least 2 chains"):
        ising.energy_deviations(np.full((1, 1, 5), -1.0), [-1.2], L=4)


def test_energy_deviations_reject_energies_outside_the_physical_range():
    # the energy per spin of the 2-D Ising model lies in [-2, 2] (all bonds aligned / broken)
    with pytest.raises(ValueError, match=r"chain_energies.*\[-2, 2\].*5"):
        ising.energy_deviations(np.full((1, 2, 5), 5.0), [-1.2], L=4)
    with pytest.raises(ValueError, match=r"exact.*\[-2, 2\]"):
        ising.energy_deviations(np.full((1, 2, 5), -1.0), [-3.0], L=4)
    # the bounds themselves are energies: all-up (-2) and the checkerboard (+2)
    z = ising.energy_deviations(np.array([[[-2.0, 2.0], [2.0, -2.0]]]), [0.0], L=2)
    assert z[0] == 0.0


def test_magnetization_refuses_bits():
    with pytest.raises(ValueError, match="-1 and \\+1"):
        ising.magnetization(np.ones((4, 4), dtype=np.int8) * np.array([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="spins must have shape"):
        ising.magnetization(np.ones((4, 3)))
    assert ising.magnetization(np.array([[1, -1], [-1, -1]])) == -0.5  # by hand


def test_ising_chains_take_one_temperature():
    # several temperatures used to be cut to the first, silently: one set of chains per T
    with pytest.raises(ValueError, match="temperature must be a single number"):
        ising.IsingChains(4, [1.0, 2.0], 2)
    with pytest.raises(ValueError, match="temperature must be a single number"):
        ising.measure_decorrelation(4, [1.0, 2.0])
    assert ising.IsingChains(4, 2.5, 2).temperature == 2.5
    assert ising.IsingChains(4, [2.5], 2).temperature == 2.5


def ar1(rho, n, chains, seed):
    """AR(1) chains started in equilibrium: x_0 ~ N(0, 1 / (1 - rho^2))."""
    rng = np.random.default_rng(seed)
    x = np.empty((chains, n))
    x[:, 0] = rng.normal(size=chains) / math.sqrt(1 - rho**2)
    noise = rng.normal(size=(chains, n))
    for t in range(1, n):
        x[:, t] = rho * x[:, t - 1] + noise[:, t]
    return x


def test_integrated_time_warns_when_the_series_is_too_short():
    # tau_int = 1/2 + sum_t rho^t = (1 + rho) / (2 (1 - rho)) = 999.5 for rho = 0.999:
    # 1,000 steps are one tau, where the automatic window cannot converge
    x = ar1(0.999, 1000, 1, seed=0)[0]
    with pytest.warns(UserWarning, match=r"integrated_autocorr_time.*1000 steps.*50 tau"):
        tau = ising.integrated_autocorr_time(x)
    assert tau < 999.5 / 2  # a gross underestimate, which is why it warns


def test_integrated_time_of_a_long_series_is_the_closed_form_without_a_warning():
    rho = 0.9  # tau = 1.9 / 0.2 = 9.5; 8 chains of 20,000 steps = 2,000 tau each
    x = ar1(rho, 20_000, 8, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tau = ising.integrated_autocorr_time(x)
    assert tau == pytest.approx((1 + rho) / (2 * (1 - rho)), rel=0.05)


@pytest.mark.parametrize("call, match", [
    (lambda: ising.IsingChains(4, 2.0, 2, stream=-1), "stream must be >= 0"),
    (lambda: ising.IsingChains(4, 2.0, 2, stream=1.5), "stream must be an integer"),
    (lambda: ising.measure_decorrelation(4, 2.0, stream=-3), "stream must be >= 0"),
    (lambda: ising.measure_decorrelation(4, 2.0, seed=-1), "seed must be >= 0"),
    (lambda: ising.integrated_autocorr_time(np.arange(10.0), c=-1.0), "c must be"),
    (lambda: ising.integrated_autocorr_time(np.arange(10.0), c=float("nan")), "c must be"),
    (lambda: ising.measure_decorrelation(4, 2.0, n_steps=2), "n_steps must be >= 4"),
])
def test_more_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_a_corrupt_pickle_names_the_file(tmp_path):
    path = tmp_path / ising.ORIGINAL_FILE
    path.write_bytes(b"this is not a pickle")
    with pytest.raises(ValueError, match=ising.ORIGINAL_FILE.replace(".", r"\.")):
        ising.read_ising_pickle(path)


def test_observables_refuse_an_empty_lattice():
    # a 0 x 0 lattice used to give NaN energies (0 / 0) and NaN magnetizations
    for observable in (ising.energy_per_spin, ising.magnetization):
        with pytest.raises(ValueError, match="spins must have shape"):
            observable(np.ones((3, 0, 0), dtype=np.int8))

"""Variational autoregressive network: the Ising energy against a double loop, the masks'
autoregressive property, normalisation and exact sampling by enumeration, training to the
exact free energy, unbiased importance sampling of Z, and named input errors.

(exact_log_partition against enumeration of the 4 x 4 lattice is already checked, at five
temperatures, by test_ising.test_kaufman_matches_enumeration.)"""

import math

import keras
import numpy as np
import pytest
from scipy import stats

from helpers.data import ising
from helpers.models import autoregressive as ar


def brute_force_energy(s):
    """-sum_ij s_ij (s_i,j+1 + s_i+1,j) on the torus, by plain Python loops."""
    L = len(s)
    total = 0.0
    for i in range(L):
        for j in range(L):
            total -= s[i][j] * (s[i][(j + 1) % L] + s[(i + 1) % L][j])
    return total


def randomise(model, seed, scale=1.0):
    """Set every trainable weight (kernels, biases, PReLU slopes) to N(0, scale^2) values."""
    rng = np.random.default_rng(seed)
    for w in model.trainable_weights:
        w.assign(scale * rng.standard_normal(tuple(w.shape)).astype(np.float32))


def exact_references(L, beta):
    """States, total energies and ln Z of the L x L torus by enumeration."""
    states = ising.enumerate_states(L).astype(np.float32)
    energy = np.array([brute_force_energy(s.tolist()) for s in states])
    return states, energy, float(np.logaddexp.reduce(-beta * energy))


def exact_log_q(model, states):
    """ln q of every state, in float64, renormalised (a float32 sum of 512 terms is off by
    ~1e-7; the normalisation itself is checked on its own)."""
    lq = np.asarray(model.log_prob(states), dtype=np.float64)
    return lq - np.logaddexp.reduce(lq)


def codes(spins):
    n, L, _ = spins.shape
    return ((spins.reshape(n, -1) > 0) * (1 << np.arange(L * L))).sum(axis=1)


# ---------------------------------------------------------------- energy
def test_energy_against_a_double_loop_and_the_ground_state():
    rng = np.random.default_rng(0)
    for L in (2, 3, 5):
        spins = rng.choice([-1.0, 1.0], size=(20, L, L)).astype(np.float32)
        expected = [brute_force_energy(s.tolist()) for s in spins]
        np.testing.assert_array_equal(np.asarray(ar.ising_energy(spins)), expected)
        ground = np.stack([np.ones((L, L)), -np.ones((L, L))])
        np.testing.assert_array_equal(np.asarray(ar.ising_energy(ground)), [-2 * L**2] * 2)
    spins = rng.choice([-1, 1], size=(10, 4, 4)).astype(np.int8)  # the data module agrees
    np.testing.assert_allclose(np.asarray(ar.ising_energy(spins)),
                               ising.energy_per_spin(spins) * 16)


# ---------------------------------------------------------------- autoregressive masks
@pytest.mark.parametrize("depth", [2, 3])
@pytest.mark.parametrize("channels", [1, 2])
def test_logit_of_site_i_depends_only_on_earlier_sites(depth, channels):
    model = ar.VAN(3, depth=depth, channels=channels, seed=1)
    randomise(model, seed=depth * 10 + channels)
    rng = np.random.default_rng(2)
    s = rng.choice([-1.0, 1.0], size=(16, 3, 3)).astype(np.float32)
    base = np.asarray(model(s)).reshape(16, 9)
    depends = np.zeros((9, 9), dtype=bool)  # depends[i, j]: logit i changes with site j
    for j in range(9):
        flipped = s.reshape(16, 9).copy()
        flipped[:, j] *= -1
        logits = np.asarray(model(flipped.reshape(16, 3, 3))).reshape(16, 9)
        change = np.abs(logits - base).max(axis=0)
        np.testing.assert_array_equal(change[: j + 1], 0.0)  # sites i <= j unchanged
        depends[:, j] = change > 1e-3
    assert all(depends[i, :i].any() for i in range(1, 9))  # masks are not all zeros
    assert depends[8, :8].all()  # with a dense network, the last site sees every other


def test_masks_follow_the_made_degrees():
    mask = ar.autoregressive_mask(4, 8, 4, exclusive=True)
    for v in range(4):
        for u in range(8):
            assert mask[v, u] == (u % 4 > v)
    mask = ar.autoregressive_mask(8, 4, 4, exclusive=False)
    for v in range(8):
        for u in range(4):
            assert mask[v, u] == (u >= v % 4)


# ---------------------------------------------------------------- normalisation and sampling
@pytest.mark.parametrize("symmetric", [False, True])
def test_probabilities_sum_to_one(symmetric):
    model = ar.VAN(3, depth=3, channels=2, symmetric=symmetric, seed=3)
    randomise(model, seed=4, scale=0.7)  # a far from uniform q
    states = ising.enumerate_states(3)
    log_q = np.asarray(model.log_prob(states), dtype=np.float64)
    assert np.exp(log_q).sum() == pytest.approx(1.0, abs=1e-5)
    assert log_q.max() - log_q.min() > 2.0
    # ln q from the conditionals, by hand: prod_i p_i^[s_i = 1] (1 - p_i)^[s_i = -1]
    def by_hand(s):
        p = 1 / (1 + np.exp(-np.asarray(model(s), dtype=np.float64)))
        return np.log(np.where(s > 0, p, 1 - p)).reshape(len(s), -1).sum(axis=1)
    s = states.astype(np.float32)
    expected = by_hand(s) if not symmetric else np.logaddexp(by_hand(s), by_hand(-s)) - math.log(2)
    np.testing.assert_allclose(log_q, expected, atol=1e-4)
    if symmetric:
        np.testing.assert_allclose(log_q, np.asarray(model.log_prob(-states)), atol=1e-6)


@pytest.mark.parametrize("symmetric", [False, True])
def test_samples_follow_q_and_repeat_with_the_seed(symmetric):
    model = ar.VAN(2, depth=2, channels=2, symmetric=symmetric, seed=5)
    randomise(model, seed=6)
    states = ising.enumerate_states(2)
    p = np.exp(np.asarray(model.log_prob(states), dtype=np.float64))
    p /= p.sum()
    n = 20_000
    samples = model.sample(n, seed=7)
    assert samples.shape == (n, 2, 2) and samples.dtype == np.float32
    assert set(np.unique(samples)) == {-1.0, 1.0}
    observed = np.bincount(codes(samples), minlength=16)  # enumerate_states orders by code
    assert stats.chisquare(observed, n * p).pvalue > 1e-3
    np.testing.assert_array_equal(samples[:500], model.sample(500, seed=7))
    assert not np.array_equal(samples[:500], model.sample(500, seed=8))
    batched = model.sample(300, seed=9, batch_size=128)
    assert batched.shape == (300, 2, 2)
    np.testing.assert_array_equal(batched, model.sample(300, seed=9, batch_size=128))


def test_sampling_a_16_x_16_lattice_in_batches():
    model = ar.VAN(16, depth=2, seed=0)
    est = ar.free_energy_estimates(model, 0.44, n_samples=40, seed=0, batch_size=16)
    assert est.n_samples == 40 and 0 < est.ess <= 1
    assert -2 <= est.energy <= 2 and math.isfinite(est.log_z)
    assert est.free_energy <= est.free_energy_q + 1e-9  # Jensen: ln mean w >= mean ln w


# ---------------------------------------------------------------- training
def test_training_reaches_the_exact_free_energy_from_above():
    beta, T = 0.4, 2.5
    states, energy, log_z = exact_references(3, beta)
    free_energy = -T * log_z

    def variational(model):
        log_q = exact_log_q(model, states)
        return float(np.sum(np.exp(log_q) * (energy + T * log_q)))

    model = ar.VAN(3, depth=2, channels=1, seed=0)
    before = variational(model)
    history = ar.train_van(model, beta, steps=250, batch_size=500, learning_rate=1e-2, seed=0,
                           anneal=0.98)
    after = variational(model)
    assert before >= free_energy and after >= free_energy  # Gibbs: F_q >= F
    assert after - free_energy < 0.01 * abs(free_energy) < before - free_energy
    assert set(history) == {"free_energy", "energy", "entropy", "beta"}
    assert len(history["free_energy"]) == 250 and history["beta"][-1] < beta
    assert model.beta == pytest.approx(beta)  # annealing ends at the target
    assert np.mean(history["free_energy"][-20:]) == pytest.approx(free_energy / 9, rel=0.01)
    # the same seed repeats the same run
    again = ar.VAN(3, depth=2, channels=1, seed=0)
    repeat = ar.train_van(again, beta, steps=20, batch_size=200, learning_rate=1e-2, seed=0)
    first = ar.VAN(3, depth=2, channels=1, seed=0)
    assert ar.train_van(first, beta, steps=20, batch_size=200, learning_rate=1e-2,
                        seed=0) == repeat


def test_beta_annealing_schedule():
    callback = ar.BetaAnnealing(0.5, decay=0.9)
    model = ar.VAN(2, seed=0)
    history = ar.train_van(model, 0.5, steps=5, batch_size=10, callbacks=[callback])
    np.testing.assert_allclose(callback.betas, [0.5 * (1 - 0.9 ** (k + 1)) for k in range(5)])
    assert model.beta == pytest.approx(0.5) and len(history["energy"]) == 5


# ---------------------------------------------------------------- estimates
def test_importance_sampling_of_z_is_unbiased():
    beta = 0.3
    states, energy, log_z = exact_references(3, beta)
    model = ar.VAN(3, depth=2, seed=11)  # untrained: the exact ESS of its weights is 0.12
    log_q = exact_log_q(model, states)
    q = np.exp(log_q)
    w = np.exp(-beta * energy - log_q - log_z)  # w / Z of every state, by enumeration
    rel_var = float(np.sum(q * w**2) - 1)  # Var_q(w) / Z^2 per sample
    assert 5 < rel_var < 10
    n, batches = 100, 100
    z = np.array([math.exp(ar.free_energy_estimates(model, beta, n_samples=n, seed=k).log_z
                           - log_z) for k in range(batches)])  # estimates of Z / Z_exact
    exact_se = math.sqrt(rel_var / (n * batches))
    assert abs(z.mean() - 1) < 4 * exact_se
    assert 0.5 < z.std(ddof=1) / math.sqrt(rel_var / n) < 2  # the spread of one estimate

    n = 20_000
    est = ar.free_energy_estimates(model, beta, n_samples=n, seed=999, batch_size=6000)
    assert est.n_samples == n and est.beta == beta
    assert est.log_z == pytest.approx(log_z, abs=4 * math.sqrt(rel_var / n))
    assert est.free_energy == pytest.approx(-log_z / (beta * 9), rel=0.01)
    assert 0.5 < est.log_z_se / math.sqrt(rel_var / n) < 2
    exact_fq = np.sum(q * (energy + log_q / beta)) / 9
    assert abs(est.free_energy_q - exact_fq) < 4 * est.free_energy_q_se
    mean_q = np.sum(q * energy)
    se_plain = math.sqrt(np.sum(q * (energy - mean_q) ** 2) / n) / 9
    assert abs(est.energy - mean_q / 9) < 4 * se_plain
    exact_mean = ising.exact_energy(3, 1 / beta)[0] * 9  # self-normalised, by the delta method
    se_weighted = math.sqrt(np.sum(q * w**2 * (energy - exact_mean) ** 2) / n) / 9
    assert abs(est.energy_weighted - exact_mean / 9) < 4 * se_weighted
    assert 0 < est.ess <= 1
    assert est.ess == pytest.approx(1 / (1 + rel_var), rel=0.1)  # its n -> infinity limit


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, match", [
    ({"L": 1}, "L must"), ({"L": 2.5}, "L must"), ({"L": "3"}, "L must"),
    ({"L": 3, "depth": 0}, "depth"), ({"L": 3, "channels": 0}, "channels"),
    ({"L": 3, "symmetric": "yes"}, "symmetric"), ({"L": 3, "seed": -1}, "seed"),
])
def test_bad_model_arguments_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ar.VAN(**kwargs)


def test_bad_inputs_are_named():
    model = ar.VAN(3, seed=0)
    good = np.ones((2, 3, 3), np.float32)
    for bad in (np.ones((3, 3)), np.ones((2, 3, 4)), np.zeros((2, 3, 3)), np.ones((0, 3, 3)),
                np.ones((2, 3, 3), bool), [["a"]]):
        with pytest.raises((ValueError, TypeError), match="spins"):
            ar.ising_energy(bad)
        with pytest.raises((ValueError, TypeError), match="spins"):
            model.log_prob(bad)
    with pytest.raises(ValueError, match="spins must be 3 x 3"):
        model.log_prob(np.ones((2, 4, 4)))
    with pytest.raises(ValueError, match="n must"):
        model.sample(0)
    with pytest.raises(ValueError, match="seed"):
        model.sample(3, seed=-2)
    with pytest.raises(ValueError, match="beta"):
        model.beta = 0.0
    with pytest.raises(TypeError, match="model"):
        ar.free_energy_estimates("van", 0.4)
    for kwargs, match in (({"beta": -1.0}, "beta"), ({"beta": 1.0, "n_samples": 0}, "n_samples"),
                          ({"beta": 1.0, "batch_size": 0}, "batch_size")):
        with pytest.raises(ValueError, match=match):
            ar.free_energy_estimates(model, **kwargs)
    for kwargs, match in (({"beta": 0, "steps": 1}, "beta"), ({"beta": 1, "steps": 0}, "steps"),
                          ({"beta": 1, "steps": 1, "batch_size": 0}, "batch_size"),
                          ({"beta": 1, "steps": 1, "learning_rate": 0}, "learning_rate"),
                          ({"beta": 1, "steps": 1, "anneal": 1.5}, "decay")):
        with pytest.raises(ValueError, match=match):
            ar.train_van(model, **kwargs)
    with pytest.raises(ValueError, match="decay"):
        ar.BetaAnnealing(1.0, decay=0.0)
    assert np.asarray(model.log_prob(good)).shape == (2,)


def test_the_model_round_trips_through_a_keras_file(tmp_path):
    model = ar.VAN(3, depth=3, channels=2, symmetric=True, seed=4)
    randomise(model, seed=5)
    model.beta = 0.3
    path = tmp_path / "van.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, ar.VAN) and loaded.symmetric and loaded.beta == pytest.approx(0.3)
    states = ising.enumerate_states(3)
    np.testing.assert_allclose(np.asarray(loaded.log_prob(states)),
                               np.asarray(model.log_prob(states)), atol=1e-6)


def test_given_uniforms_the_sampler_draws_what_a_site_by_site_loop_draws():
    """Ancestral sampling written independently (one call of the network per site, reading
    that site's logit) against the helper, fed the same uniform numbers."""
    model = ar.VAN(3, depth=3, channels=2, seed=4)
    for w in model.trainable_weights:  # random weights, not the near-zero start
        w.assign(np.random.default_rng(1).normal(0, 1, w.shape).astype("float32"))
    u = np.random.default_rng(2).random((50, 3, 3)).astype(np.float32)
    s = np.zeros((50, 9), np.float32)
    for i in range(9):
        p = 1 / (1 + np.exp(-np.asarray(model(s.reshape(50, 3, 3))).reshape(50, 9)[:, i]))
        s[:, i] = np.where(u.reshape(50, 9)[:, i] < p, 1.0, -1.0)
    np.testing.assert_array_equal(model.sample(50, uniforms=u, batch_size=20),
                                  s.reshape(50, 3, 3))
    with pytest.raises(ValueError, match="uniforms"):
        model.sample(50, uniforms=u[:10])
    with pytest.raises(ValueError, match="uniforms"):
        ar.VAN(3, symmetric=True).sample(50, uniforms=u)


def test_a_trained_van_is_reloaded_from_the_weight_cache(recwarn, capsys):
    """The VAN trains on dummy zeros of shape (n, 1), which its call does not accept: the
    cache must load it without calling it on them (it is built when made)."""
    from helpers import training

    def fit():
        model = ar.VAN(2, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        model.beta = 0.5
        training.fit_or_load(model, np.zeros((20, 1), np.float32), name="van", epochs=2,
                             batch_size=10, verbose=0, settings={"seed": 0})
        return model

    first = fit()
    capsys.readouterr()
    second = fit()
    assert "Loaded cached weights van-" in capsys.readouterr().out
    assert not [w for w in recwarn if "unusable" in str(w.message)]
    for a, b in zip(first.weights, second.weights, strict=True):
        np.testing.assert_array_equal(a, b)

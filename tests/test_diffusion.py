"""Diffusion models: the schedules against their closed forms, the forward marginal against
T composed single steps (Monte Carlo), the posterior against Bayes' rule for two Gaussians,
the DDPM and DDIM steps against each other, DDIM with an exact noise predictor on a
Gaussian, the mixture's noised density and score against finite differences, integration
and the Gaussian formula, the networks' shapes and a short training, and named input
errors. Every reference is written here, independently of the module."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import integrate, stats

from helpers.models import diffusion as d

LINEAR = d.linear_schedule()  # DDPM's: T = 1000, betas 1e-4 .. 0.02


def small_mlp(seed=0, time_dim=16):
    keras.utils.set_random_seed(seed)
    return d.build_mlp_denoiser(dim=2, width=32, depth=2, time_dim=time_dim)


def gaussian_eps(schedule, m, s):
    """The exact noise prediction for data N(m, s^2): at step t, x_t ~ N(sqrt(ab) m, v) with
    v = ab s^2 + 1 - ab, and E[eps | x_t] = sqrt(1 - ab) (x_t - sqrt(ab) m) / v."""
    def predict(inputs):
        x, t = inputs
        ab = schedule.alpha_bar[np.asarray(t)].reshape((-1,) + (1,) * (np.ndim(x) - 1))
        return np.sqrt(1 - ab) * (x - np.sqrt(ab) * m) / (ab * s**2 + 1 - ab)
    return predict


# ---------------------------------------------------------------- schedules
def test_linear_schedule_endpoints_and_cumulative_products():
    assert LINEAR.T == 1000
    assert LINEAR.betas[0] == pytest.approx(1e-4, rel=1e-12)
    assert LINEAR.betas[-1] == pytest.approx(0.02, rel=1e-12)
    assert np.all(np.diff(LINEAR.betas) > 0)
    ab = LINEAR.alpha_bar
    assert np.all(np.diff(ab) < 0) and 0 < ab[-1] < ab[0] < 1
    product = 1.0  # alpha_bar by a plain loop
    for t in range(LINEAR.T):
        product *= 1 - LINEAR.betas[t]
        if t in (0, 1, 499, 999):
            assert ab[t] == pytest.approx(product, rel=1e-12)
    assert ab[-1] == pytest.approx(4.04e-5, rel=0.01)  # DDPM's x_T is nearly pure noise
    np.testing.assert_allclose(LINEAR.sqrt_alpha_bar**2 + LINEAR.sqrt_one_minus_alpha_bar**2, 1,
                               rtol=1e-12)
    assert LINEAR.alpha_bar_prev[0] == 1 and LINEAR.posterior_variance[0] == 0
    with pytest.raises(ValueError):
        LINEAR.betas[0] = 0.5  # read-only tables


def test_cosine_schedule_follows_its_closed_form():
    T, s = 1000, 0.008
    schedule = d.cosine_schedule(T, s)

    def f(u):
        return math.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2

    clipped = schedule.betas >= 0.999
    assert clipped.sum() <= 2 and clipped[-1]  # only the very last steps reach the clip
    for t in range(T):
        if not clipped[: t + 1].any():  # paper step u = t + 1
            assert schedule.alpha_bar[t] == pytest.approx(f(t + 1) / f(0), rel=1e-9)
    assert np.all((schedule.alpha_bar > 0) & (schedule.alpha_bar < 1))
    assert np.all(np.diff(schedule.alpha_bar) < 0)
    assert np.all(schedule.betas <= 0.999)
    # the cosine schedule keeps more signal half way than the linear one
    assert schedule.alpha_bar[499] > LINEAR.alpha_bar[499]


# ---------------------------------------------------------------- forward process
def test_closed_form_marginal_matches_composed_single_steps():
    n = 200_000
    rng = np.random.default_rng(0)
    x0 = 0.5 + 0.2 * rng.standard_normal(n)  # the same clean values on both paths
    x = x0.copy()
    checked = (0, 9, 299, 999)
    for t in range(LINEAR.T):  # x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps
        x = math.sqrt(1 - LINEAR.betas[t]) * x + math.sqrt(LINEAR.betas[t]) * rng.standard_normal(n)
        if t not in checked:
            continue
        direct = LINEAR.q_sample(x0, np.full(n, t), rng.standard_normal(n))
        # standard errors of the difference of two independent means, and of two variances
        se_mean = math.sqrt((x.var() + direct.var()) / n)
        se_var = math.sqrt(2 * (x.var() ** 2 + direct.var() ** 2) / n)
        assert abs(x.mean() - direct.mean()) < 5 * se_mean, t
        assert abs(x.var() - direct.var()) < 5 * se_var, t
        # and the law itself: mean sqrt(ab) E[x0], variance ab Var[x0] + 1 - ab
        ab = np.prod(1 - LINEAR.betas[: t + 1])
        assert x.mean() == pytest.approx(math.sqrt(ab) * x0.mean(), abs=5 * math.sqrt(x.var() / n))
        assert x.var() == pytest.approx(ab * x0.var() + 1 - ab, rel=5 * math.sqrt(2 / n))


def test_q_sample_per_example_steps_and_tensors():
    rng = np.random.default_rng(1)
    x0 = rng.uniform(-1, 1, (4, 3, 3, 1))
    noise = rng.standard_normal((4, 3, 3, 1))
    t = np.array([0, 10, 500, 999])
    out = LINEAR.q_sample(x0, t, noise)
    for i, step in enumerate(t):
        ab = np.prod(1 - LINEAR.betas[: step + 1])
        np.testing.assert_allclose(out[i], math.sqrt(ab) * x0[i] + math.sqrt(1 - ab) * noise[i],
                                   rtol=1e-10)
    as_tensor = LINEAR.q_sample(tf.constant(x0, tf.float32), tf.constant(t, tf.int32),
                                tf.constant(noise, tf.float32))
    assert tf.is_tensor(as_tensor) and as_tensor.dtype == tf.float32
    np.testing.assert_allclose(as_tensor.numpy(), out, atol=1e-5)
    # predict_x0 inverts q_sample when given the true noise
    np.testing.assert_allclose(LINEAR.predict_x0(out, t, noise), x0, atol=1e-9)


def test_posterior_against_bayes_rule_for_two_gaussians():
    rng = np.random.default_rng(2)
    x0, xt = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
    for t in (1, 2, 50, 700, 999):
        beta = LINEAR.betas[t]
        prior_mean_scale = np.prod(1 - LINEAR.betas[:t])  # alpha_bar_{t-1}
        # prior q(x_{t-1} | x0) = N(sqrt(ab') x0, 1 - ab'); likelihood q(x_t | x_{t-1}) =
        # N(sqrt(1 - beta) x_{t-1}, beta): precisions add, means weight by precision
        prior_var = 1 - prior_mean_scale
        precision = 1 / prior_var + (1 - beta) / beta
        var = 1 / precision
        mean = var * (math.sqrt(prior_mean_scale) * x0 / prior_var
                      + math.sqrt(1 - beta) * xt / beta)
        got_mean, got_var = LINEAR.posterior_mean_variance(x0, xt, t)
        np.testing.assert_allclose(got_mean, mean, rtol=1e-10, atol=1e-12)
        assert float(got_var) == pytest.approx(var, rel=1e-10)
    # t = 0: x_{-1} is x0 itself
    mean0, var0 = LINEAR.posterior_mean_variance(x0, xt, 0)
    np.testing.assert_allclose(mean0, x0, atol=1e-12)
    assert float(var0) == 0
    # per-example steps broadcast the variance against the batch
    _, var = LINEAR.posterior_mean_variance(x0, xt, np.arange(6))
    assert var.shape == (6, 1)


# ---------------------------------------------------------------- the steps
def test_ddpm_step_mean_is_the_posterior_mean_at_the_predicted_x0():
    rng = np.random.default_rng(3)
    xt, eps = rng.standard_normal((5, 2)), rng.standard_normal((5, 2))
    for t in (0, 1, 400, 999):
        x0_hat = LINEAR.predict_x0(xt, t, eps)
        mean, var = LINEAR.posterior_mean_variance(x0_hat, xt, t)
        zero, one = np.zeros_like(xt), np.ones_like(xt)
        np.testing.assert_allclose(d.ddpm_step(LINEAR, xt, t, eps, zero), mean, atol=1e-10)
        for variance, sigma2 in (("beta", LINEAR.betas[t]), ("beta_tilde", float(var))):
            step = d.ddpm_step(LINEAR, xt, t, eps, one, variance=variance)
            expected = 0.0 if t == 0 else math.sqrt(sigma2)  # no noise at the last step
            np.testing.assert_allclose(step - mean, expected, atol=1e-10)


def test_ddim_with_eta_one_over_all_steps_is_ddpm_with_posterior_variance():
    rng = np.random.default_rng(4)
    xt, eps = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    zero, one = np.zeros_like(xt), np.ones_like(xt)
    for schedule in (LINEAR, d.cosine_schedule(200)):
        for t in (0, 1, 2, 57, schedule.T // 2, schedule.T - 2):
            ddim_mean = d.ddim_step(schedule, xt, t, t - 1, eps, zero, eta=1.0)
            ddim_std = d.ddim_step(schedule, xt, t, t - 1, eps, one, eta=1.0) - ddim_mean
            ddpm_mean = d.ddpm_step(schedule, xt, t, eps, zero, variance="beta_tilde")
            ddpm_std = d.ddpm_step(schedule, xt, t, eps, one, variance="beta_tilde") - ddpm_mean
            np.testing.assert_allclose(ddim_mean, ddpm_mean, atol=1e-10)
            np.testing.assert_allclose(ddim_std, ddpm_std, atol=1e-10)
            # beta_tilde written out: (1 - ab_{t-1}) / (1 - ab_t) beta_t
            ab, ab_prev = np.prod(schedule.alphas[: t + 1]), np.prod(schedule.alphas[:t])
            assert d.ddim_sigma(schedule, t, t - 1, 1.0) ** 2 == pytest.approx(
                (1 - ab_prev) / (1 - ab) * schedule.betas[t], rel=1e-9, abs=1e-15)


def test_ddim_with_eta_zero_is_deterministic():
    network = small_mlp(seed=5)
    schedule = d.linear_schedule(50)
    a = d.ddim_sample(network, schedule, (64, 2), steps=10, eta=0.0, seed=3)
    b = d.ddim_sample(network, schedule, (64, 2), steps=10, eta=0.0, seed=3)
    assert a.shape == (64, 2) and a.dtype == np.float32 and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, d.ddim_sample(network, schedule, (64, 2), steps=10, seed=4))
    # with eta > 0 the same seed repeats too, but the path is different
    c = d.ddim_sample(network, schedule, (64, 2), steps=10, eta=1.0, seed=3)
    np.testing.assert_array_equal(c, d.ddim_sample(network, schedule, (64, 2), 10, 1.0, seed=3))
    assert not np.allclose(a, c)
    np.testing.assert_array_equal(d.ddim_timesteps(50, 10)[[0, -1]], [49, 0])
    np.testing.assert_array_equal(d.ddim_timesteps(50, 50), np.arange(49, -1, -1))


def test_ddim_with_the_exact_predictor_recovers_a_gaussian():
    m, s, n = 1.5, 0.5, 20_000
    x = d.ddim_sample(gaussian_eps(LINEAR, m, s), LINEAR, (n, 1), steps=1000, eta=0.0,
                      seed=6).astype(np.float64)
    assert x.mean() == pytest.approx(m, abs=5 * s / math.sqrt(n))
    # standard error of a std, plus the discretisation error of 1000 steps (< 1%)
    assert x.std() == pytest.approx(s, rel=5 / math.sqrt(2 * n) + 0.01)
    # fewer steps are coarser: the deterministic map shrinks the spread
    coarse = d.ddim_sample(gaussian_eps(LINEAR, m, s), LINEAR, (n, 1), steps=20, seed=6)
    assert coarse.std() < x.std()


def test_ddpm_sampler_with_the_exact_predictor_and_its_trajectory():
    m, s, n = -0.5, 0.3, 20_000
    schedule = d.linear_schedule(1000)
    x, path = d.ddpm_sample(gaussian_eps(schedule, m, s), schedule, (n, 1), seed=7,
                            return_steps=[999, 500, 0])
    x = x.astype(np.float64)
    assert x.mean() == pytest.approx(m, abs=5 * s / math.sqrt(n) + 0.005)
    assert x.std() == pytest.approx(s, rel=5 / math.sqrt(2 * n) + 0.01)
    assert sorted(path) == [0, 500, 999]
    assert path[999].std() == pytest.approx(1, rel=0.03)  # the initial noise
    ab = schedule.alpha_bar[500]  # the input of step 500 follows the noised marginal
    assert path[500].mean() == pytest.approx(math.sqrt(ab) * m, abs=0.03)
    assert path[500].var() == pytest.approx(ab * s**2 + 1 - ab, rel=0.05)


def test_samplers_run_a_keras_network_in_batches():
    network = small_mlp(seed=8)
    schedule = d.linear_schedule(20)
    a = d.ddpm_sample(network, schedule, (10, 2), seed=1)
    b = d.ddpm_sample(network, schedule, (10, 2), seed=1, batch_size=3)
    assert a.shape == (10, 2) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-5)
    _, path = d.ddim_sample(network, schedule, (10, 2), steps=5, seed=1, return_steps=[19])
    assert list(path) == [19] and path[19].shape == (10, 2)


def test_a_network_is_compiled_once_for_every_sampler_call():
    # timing a sampler must not time TensorFlow's tracing again on every call
    network = small_mlp(seed=8)
    schedule = d.linear_schedule(20)
    d.ddim_sample(network, schedule, (10, 2), steps=5, seed=1)
    call = d._compiled(network)
    traces = call.experimental_get_tracing_count()
    d.ddim_sample(network, schedule, (10, 2), steps=5, seed=2)
    d.ddpm_sample(network, schedule, (10, 2), seed=2)
    assert d._compiled(network) is call
    assert call.experimental_get_tracing_count() == traces
    assert d._compiled(small_mlp(seed=8)) is not call  # one per network


def test_the_compiled_predictor_does_not_keep_its_network_alive():
    # the cache is keyed weakly: a network dropped by the user is freed with its function
    import gc
    import weakref

    network = small_mlp(seed=8)
    d.ddim_sample(network, d.linear_schedule(20), (10, 2), steps=5, seed=1)
    ref = weakref.ref(network)
    del network
    gc.collect()
    assert ref() is None


# ---------------------------------------------------------------- the 2-D mixture
MIXTURE = d.GaussianMixture2D(means=[[-2.0, 0.0], [2.0, 1.0], [0.0, -2.0]],
                              stds=[0.3, 0.5, 0.4], weights=[0.5, 0.3, 0.2])


@pytest.mark.parametrize("t", [None, 0, 100, 600])
def test_mixture_score_matches_finite_differences(t):
    x = np.random.default_rng(9).uniform(-3, 3, (50, 2))
    score = MIXTURE.score(x, t, LINEAR)
    h = 1e-5
    for axis in range(2):
        step = np.zeros(2)
        step[axis] = h
        numeric = (MIXTURE.log_density(x + step, t, LINEAR)
                   - MIXTURE.log_density(x - step, t, LINEAR)) / (2 * h)
        np.testing.assert_allclose(score[:, axis], numeric, rtol=1e-5, atol=1e-5)


def test_one_component_score_and_density_are_the_noised_gaussian():
    m, s = np.array([1.0, -0.5]), 0.4
    single = d.GaussianMixture2D([m], [s])
    x = np.random.default_rng(10).standard_normal((20, 2))
    for t in (0, 250, 999):
        ab = np.prod(1 - LINEAR.betas[: t + 1])
        v = ab * s**2 + 1 - ab
        np.testing.assert_allclose(single.score(x, t, LINEAR), -(x - math.sqrt(ab) * m) / v,
                                   rtol=1e-10)
        expected = stats.multivariate_normal(math.sqrt(ab) * m, v * np.eye(2)).logpdf(x)
        np.testing.assert_allclose(single.log_density(x, t, LINEAR), expected, rtol=1e-10)
    # the ideal noise prediction gives back the score
    eps = single.noise_predictor(LINEAR)([x, np.full(20, 250)])
    np.testing.assert_allclose(d.score_from_noise(eps, 250, LINEAR), single.score(x, 250, LINEAR),
                               rtol=1e-10)


@pytest.mark.parametrize("t", [20, 400])
def test_noised_mixture_density_integrates_to_one(t):
    grid = np.linspace(-8, 8, 641)
    xx, yy = np.meshgrid(grid, grid, indexing="ij")
    density = np.exp(MIXTURE.log_density(np.stack([xx.ravel(), yy.ravel()], 1), t, LINEAR))
    total = integrate.trapezoid(integrate.trapezoid(density.reshape(xx.shape), grid), grid)
    assert total == pytest.approx(1.0, abs=1e-6)


def test_mixture_samples_follow_the_weights_and_repeat():
    x = MIXTURE.sample(30_000, seed=11)
    assert x.shape == (30_000, 2) and x.dtype == np.float32
    np.testing.assert_array_equal(MIXTURE.sample(100, seed=11), MIXTURE.sample(100, seed=11))
    assert not np.array_equal(MIXTURE.sample(100, seed=11), MIXTURE.sample(100, seed=12))
    nearest = np.argmin(((x[:, None, :] - MIXTURE.means[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_allclose(np.bincount(nearest) / len(x), MIXTURE.weights, atol=0.01)


# ---------------------------------------------------------------- networks and training
def test_sinusoidal_embedding_formula():
    t = np.array([0, 1, 17, 999])
    emb = np.asarray(d.sinusoidal_embedding(t, 8))
    w = 10000.0 ** (-np.arange(4) / 3)
    np.testing.assert_allclose(emb, np.concatenate([np.sin(np.outer(t, w)),
                                                    np.cos(np.outer(t, w))], 1), atol=1e-4)


def test_unet_shapes_and_determinism():
    keras.utils.set_random_seed(12)
    unet = d.build_unet()
    assert unet.count_params() > 0
    rng = np.random.default_rng(12)
    x = rng.uniform(-1, 1, (3, 28, 28, 1)).astype(np.float32)
    t = np.array([0, 400, 999], dtype=np.int32)
    out = np.asarray(unet([x, t], training=False))
    assert out.shape == x.shape and np.all(np.isfinite(out))
    np.testing.assert_array_equal(out, np.asarray(unet([x, t], training=False)))
    other = d.build_unet()
    other.set_weights(unet.get_weights())
    np.testing.assert_allclose(np.asarray(other([x, t], training=False)), out, atol=1e-5)
    later = np.asarray(unet([x, np.array([1, 401, 998], dtype=np.int32)], training=False))
    assert not np.allclose(later, out)  # the step enters the prediction
    three = d.build_unet(base=8, multipliers=(1, 2, 2), time_dim=16)
    assert np.asarray(three([x, t])).shape == x.shape


def test_one_training_step_of_the_unet():
    keras.utils.set_random_seed(13)
    model = d.DiffusionModel(d.build_unet(base=8, time_dim=16), d.linear_schedule(100), seed=13)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    x = np.random.default_rng(13).uniform(-1, 1, (4, 28, 28, 1)).astype(np.float32)
    before = [w.copy() for w in model.network.get_weights()]
    history = model.fit(x, epochs=1, batch_size=4, verbose=0).history
    assert list(history) == ["loss"] and math.isfinite(history["loss"][0])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.network.get_weights(),
                                                          strict=True))


def test_mlp_denoiser_learns_a_gaussian():
    schedule = d.linear_schedule(200)
    model = d.DiffusionModel(small_mlp(seed=14), schedule, seed=14)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    rng = np.random.default_rng(14)
    data = (np.array([1.0, -1.0]) + 0.2 * rng.standard_normal((256 * 300, 2))).astype(np.float32)
    held_out = (np.array([1.0, -1.0]) + 0.2 * rng.standard_normal((8192, 2))).astype(np.float32)
    before = model.evaluate(held_out, batch_size=8192, verbose=0, return_dict=True)["loss"]
    model.fit(data, batch_size=256, epochs=1, verbose=0)
    after = model.evaluate(held_out, batch_size=8192, verbose=0, return_dict=True)["loss"]
    assert math.isfinite(before) and after < 0.6 * before, (before, after)


def test_min_snr_weights_cap_the_clean_image_error_at_gamma():
    # by hand: alpha_bar as a running product, SNR = a / (1 - a), weight min(SNR, 5) / SNR
    betas = np.linspace(1e-4, 0.08, 250)
    alpha_bar = np.cumprod(1 - betas)
    snr = alpha_bar / (1 - alpha_bar)
    w = d.min_snr_weights(d.linear_schedule(250, 1e-4, 0.08), 5)
    assert w.shape == (250,)
    np.testing.assert_allclose(w[snr <= 5], 1.0)
    np.testing.assert_allclose(w[snr > 5], 5 / snr[snr > 5], rtol=1e-12)
    assert 0 < (snr > 5).sum() < 250  # both regimes occur on this schedule
    # the weighted noise error is the clean-image error weighted by min(SNR, gamma)
    rng = np.random.default_rng(3)
    schedule = d.linear_schedule(250, 1e-4, 0.08)
    x0, eps, eps_hat = rng.standard_normal((3, 7, 5))
    for t in (0, 20, 200):
        xt = schedule.q_sample(x0, t, eps)
        x0_hat = schedule.predict_x0(xt, t, eps_hat)
        np.testing.assert_allclose(w[t] * ((eps - eps_hat) ** 2).sum(),
                                   min(snr[t], 5) * ((x0 - x0_hat) ** 2).sum(), rtol=1e-9)


def test_min_snr_loss_is_the_weighted_mean_of_the_examples_errors(monkeypatch):
    schedule = d.linear_schedule(100, 1e-4, 0.2)
    model = d.DiffusionModel(small_mlp(seed=16), schedule, seed=16, min_snr_gamma=2.0)
    rng = np.random.default_rng(16)
    xt, noise = rng.standard_normal((2, 6, 2)).astype(np.float32)
    t = np.array([0, 3, 10, 40, 70, 99], dtype=np.int32)
    monkeypatch.setattr(model, "_noised", lambda data: (xt, t, noise))
    loss = float(model.test_step(np.zeros((6, 2), np.float32))["loss"])
    errors = ((noise - np.asarray(model.network([xt, t]))) ** 2).mean(axis=1)
    np.testing.assert_allclose(loss, np.mean(d.min_snr_weights(schedule, 2.0)[t] * errors),
                               rtol=1e-5)
    plain = d.DiffusionModel(model.network, schedule, seed=16)
    monkeypatch.setattr(plain, "_noised", lambda data: (xt, t, noise))
    np.testing.assert_allclose(float(plain.test_step(xt)["loss"]), errors.mean(), rtol=1e-5)


def test_min_snr_with_a_gamma_above_every_snr_trains_as_the_plain_loss():
    schedule = d.linear_schedule(50, 1e-4, 0.3)
    top = float((schedule.alpha_bar / (1 - schedule.alpha_bar)).max())
    x = np.random.default_rng(17).standard_normal((64, 2)).astype(np.float32)
    trained = []
    for gamma in (None, 2 * top):
        keras.utils.set_random_seed(17)
        model = d.DiffusionModel(small_mlp(seed=17), schedule, seed=17, min_snr_gamma=gamma)
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        model.fit(x, batch_size=16, epochs=2, verbose=0, shuffle=False)
        trained.append(model.network.get_weights())
    for a, b in zip(*trained, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_diffusion_model_reloads_and_accepts_float64_pairs(tmp_path):
    model = d.DiffusionModel(small_mlp(seed=15), d.cosine_schedule(50), seed=15,
                             min_snr_gamma=5)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    x = np.random.default_rng(15).standard_normal((32, 2))  # float64, with dummy targets
    history = model.fit(x, np.zeros(32), batch_size=16, epochs=1, verbose=0).history
    assert math.isfinite(history["loss"][0])
    model.save(tmp_path / "diffusion.keras")
    loaded = keras.saving.load_model(tmp_path / "diffusion.keras")
    np.testing.assert_array_equal(loaded.schedule.betas, model.schedule.betas)
    assert loaded.min_snr_gamma == 5.0
    t = np.arange(32, dtype=np.int32)
    np.testing.assert_allclose(np.asarray(loaded([x, t])), np.asarray(model([x, t])), atol=1e-6)


# ---------------------------------------------------------------- named input errors
@pytest.mark.parametrize("call, name", [
    (lambda: d.NoiseSchedule([0.1, 1.2]), "betas"),
    (lambda: d.NoiseSchedule([0.1, 0.0]), "betas"),
    (lambda: d.NoiseSchedule([[0.1]]), "betas"),
    (lambda: d.linear_schedule(0), "T"),
    (lambda: d.linear_schedule(10, beta_T=1.5), "beta_T"),
    (lambda: d.cosine_schedule(10, s=-1), "s"),
    (lambda: LINEAR.q_sample(np.zeros((2, 3)), [0, 1000], np.zeros((2, 3))), "t"),
    (lambda: LINEAR.q_sample(np.zeros((2, 3)), [0.5, 1], np.zeros((2, 3))), "t"),
    (lambda: LINEAR.q_sample(np.zeros((2, 3)), [0, 1], np.zeros((2, 4))), "noise"),
    (lambda: LINEAR.q_sample(np.full((2, 3), np.nan), [0, 1], np.zeros((2, 3))), "x0"),
    (lambda: LINEAR.q_sample(np.zeros((2, 3)), [0, 1, 2], np.zeros((2, 3))), "x0"),
    (lambda: LINEAR.posterior_mean_variance("a", np.zeros(3), 1), "x0"),
    (lambda: LINEAR.predict_x0(np.zeros(3), -1, np.zeros(3)), "t"),
    (lambda: d.sinusoidal_embedding([1, 2], 7), "dim"),
    (lambda: d.sinusoidal_embedding([[1, 2]], 8), "t"),
    (lambda: d.build_unet(image_size=30, multipliers=(1, 2, 2)), "image_size"),
    (lambda: d.build_unet(base=0), "base"),
    (lambda: d.build_unet(multipliers=()), "multipliers"),
    (lambda: d.build_unet(time_dim=15), "time_dim"),
    (lambda: d.build_mlp_denoiser(depth=0), "depth"),
    (lambda: d.DiffusionModel("net", LINEAR), "network"),
    (lambda: d.DiffusionModel(small_mlp(), "linear"), "schedule"),
    (lambda: d.DiffusionModel(small_mlp(), LINEAR, seed=-1), "seed"),
    (lambda: d.DiffusionModel(small_mlp(), LINEAR, min_snr_gamma=0), "min_snr_gamma"),
    (lambda: d.DiffusionModel(small_mlp(), LINEAR, min_snr_gamma="5"), "min_snr_gamma"),
    (lambda: d.DiffusionModel(small_mlp(), LINEAR, min_snr_gamma=True), "min_snr_gamma"),
    (lambda: d.min_snr_weights(LINEAR, None), "gamma"),
    (lambda: d.min_snr_weights(LINEAR, -1.0), "gamma"),
    (lambda: d.min_snr_weights("linear", 5), "schedule"),
    (lambda: d.ddpm_step(LINEAR, np.zeros(2), [1, 2], np.zeros(2), np.zeros(2)), "t"),
    (lambda: d.ddpm_step(LINEAR, np.zeros(2), 1, np.zeros(3), np.zeros(2)), "eps_hat"),
    (lambda: d.ddpm_step(LINEAR, np.zeros(2), 1, np.zeros(2), np.zeros(2), "tilde"), "variance"),
    (lambda: d.ddim_step(LINEAR, np.zeros(2), 5, 5, np.zeros(2), np.zeros(2)), "t_prev"),
    (lambda: d.ddim_step(LINEAR, np.zeros(2), 5, 4, np.zeros(2), np.zeros(2), eta=-1), "eta"),
    # above 1, sigma^2 can exceed 1 - alpha_bar_prev: the step would no longer keep the marginals
    (lambda: d.ddim_step(LINEAR, np.zeros(2), 5, 4, np.zeros(2), np.zeros(2), eta=1.5), "eta"),
    (lambda: d.ddim_sample(small_mlp(), LINEAR, (4, 2), steps=1001), "steps"),
    (lambda: d.ddim_sample(small_mlp(), LINEAR, 4, steps=10), "shape"),
    (lambda: d.ddim_sample(42, LINEAR, (4, 2), steps=10), "network"),
    (lambda: d.ddim_sample(small_mlp(), LINEAR, (4, 2), 10, return_steps=[998]),
     "return_steps"),
    (lambda: d.ddpm_sample(small_mlp(), LINEAR, (4, 2), seed=None), "seed"),
    (lambda: d.ddpm_sample(small_mlp(), LINEAR, (4, 2), seed=0, return_steps=[1000]),
     "return_steps"),
    (lambda: d.ddim_timesteps(10, 0), "steps"),
    (lambda: d.GaussianMixture2D([[0.0, 0.0, 0.0]], [1.0]), "means"),
    (lambda: d.GaussianMixture2D([[0.0, 0.0]], [-1.0]), "stds"),
    (lambda: d.GaussianMixture2D([[0.0, 0.0]], [1.0], weights=[0.5, 0.5]), "weights"),
    (lambda: MIXTURE.sample(0), "n"),
    (lambda: MIXTURE.log_density(np.zeros((3, 3)), 1, LINEAR), "x"),
    (lambda: MIXTURE.score(np.zeros((3, 2)), 1, "linear"), "schedule"),
    (lambda: MIXTURE.score(np.zeros((3, 2)), 1000, LINEAR), "t"),
    (lambda: d.score_from_noise(np.zeros((3, 2)), [1, 2], LINEAR), "eps_hat"),
])
def test_bad_inputs_name_the_argument(call, name):
    with pytest.raises((ValueError, TypeError), match=rf"\b{name}\b"):
        call()


@pytest.mark.parametrize("channels, groups", [(16, 8), (12, 4), (8, 8), (6, 1)])
def test_image_group_norm_is_keras_group_normalization(channels, groups):
    # a NumPy float64 reference and Keras's own layer, with the same random weights, on
    # inputs whose mean is far from 0; gradients against Keras's layer
    rng = np.random.default_rng(channels + groups)
    x = (3.0 + 2.0 * rng.standard_normal((5, 7, 6, channels))).astype("float32")
    ours = d.ImageGroupNorm(groups)
    keras_layer = keras.layers.GroupNormalization(groups)
    ours.build(x.shape)
    keras_layer.build(x.shape)
    gamma, beta = rng.normal(1, 0.3, channels), rng.normal(0, 0.3, channels)
    for layer in (ours, keras_layer):
        layer.set_weights([gamma.astype("float32"), beta.astype("float32")])
    grouped = x.astype(np.float64).reshape(5, 7, 6, groups, channels // groups)
    mean = grouped.mean(axis=(1, 2, 4), keepdims=True)
    var = grouped.var(axis=(1, 2, 4), keepdims=True)
    expected = ((grouped - mean) / np.sqrt(var + keras_layer.epsilon)).reshape(x.shape)
    expected = expected * gamma + beta
    np.testing.assert_allclose(np.asarray(ours(x)), expected, rtol=1e-5, atol=1e-5)
    upstream = rng.standard_normal(x.shape).astype("float32")
    grads = []
    for layer in (ours, keras_layer):
        inputs = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(layer(inputs) * upstream)
        grads.append([np.asarray(g) for g in tape.gradient(
            loss, [inputs, *layer.trainable_weights])])
    for ours_grad, keras_grad in zip(*grads, strict=True):
        np.testing.assert_allclose(ours_grad, keras_grad, rtol=1e-4, atol=1e-4)


def test_image_group_norm_bad_input():
    with pytest.raises(ValueError, match="ImageGroupNorm takes images"):
        d.ImageGroupNorm(2)(np.zeros((3, 4), "float32"))
    with pytest.raises(ValueError, match="ImageGroupNorm takes images"):
        d.ImageGroupNorm(2, axis=1)(np.zeros((3, 4, 4, 2), "float32"))

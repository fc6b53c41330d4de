import math

import keras
import numpy as np
import pytest
from scipy import stats

from helpers.evaluation import likelihood
from helpers.models import autoencoders, losses


def test_bernoulli_nll_matches_hand_computation():
    x = np.array([[1.0, 0.0, 1.0]], dtype=np.float32)
    p = np.array([[0.9, 0.2, 0.5]], dtype=np.float32)
    expected = -(math.log(0.9) + math.log(0.8) + math.log(0.5))  # 1.0216512...
    assert float(losses.bernoulli_nll(x, p)[0]) == pytest.approx(expected, rel=1e-6)


def test_bernoulli_nll_with_grey_targets_is_cross_entropy():
    x = np.array([[0.25]], dtype=np.float32)
    p = np.array([[0.6]], dtype=np.float32)
    expected = -(0.25 * math.log(0.6) + 0.75 * math.log(0.4))
    assert float(losses.bernoulli_nll(x, p)[0]) == pytest.approx(expected, rel=1e-6)


def test_bernoulli_nll_sums_over_all_feature_axes():
    rng = np.random.default_rng(0)
    x = (rng.random((4, 5, 6)) < 0.5).astype(np.float32)
    p = rng.uniform(0.1, 0.9, (4, 5, 6)).astype(np.float32)
    expected = -stats.bernoulli.logpmf(x, p).reshape(4, -1).sum(axis=1)
    np.testing.assert_allclose(losses.bernoulli_nll(x, p), expected, rtol=1e-5)


def test_gaussian_nll_matches_scipy():
    rng = np.random.default_rng(1)
    x, mean = rng.normal(size=(3, 7)), rng.normal(size=(3, 7))
    sigma = 0.37
    expected = -stats.norm.logpdf(x, mean, sigma).sum(axis=1)
    got = losses.gaussian_nll(x.astype(np.float32), mean.astype(np.float32),
                                  np.float32(math.log(sigma)))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_kl_of_the_prior_with_itself_is_zero():
    zeros = np.zeros((5, 3), dtype=np.float32)
    np.testing.assert_allclose(losses.gaussian_kl(zeros, zeros), 0.0, atol=1e-7)


def test_kl_matches_a_monte_carlo_estimate():
    mean = np.array([0.5, -1.0, 2.0])
    log_var = np.array([-0.5, 0.7, -2.0])
    rng = np.random.default_rng(2)
    z = mean + np.exp(0.5 * log_var) * rng.standard_normal((400_000, 3))
    log_ratio = (stats.norm.logpdf(z, mean, np.exp(0.5 * log_var)).sum(axis=1)
                 - stats.norm.logpdf(z).sum(axis=1))
    mc, se = log_ratio.mean(), log_ratio.std() / math.sqrt(len(z))
    exact = float(losses.gaussian_kl(mean[None].astype(np.float32),
                                         log_var[None].astype(np.float32))[0])
    assert abs(exact - mc) < 4 * se


def test_log_normal_diag_matches_scipy():
    rng = np.random.default_rng(3)
    z, mean, log_var = rng.normal(size=(3, 4, 2))
    expected = stats.multivariate_normal(mean[0], np.diag(np.exp(log_var[0]))).logpdf(z[0])
    got = losses.log_normal_diag(z[:1].astype(np.float32), mean[:1].astype(np.float32),
                                     log_var[:1].astype(np.float32))
    assert float(got[0]) == pytest.approx(expected, rel=1e-5)


def _linear_gaussian_vae(weight, bias, sigma, mean_scale=1.0, var_scale=1.0):
    """VAE with decoder x = W z + b + N(0, sigma^2 I), so p(x) = N(b, W W^T + sigma^2 I).

    W has orthogonal columns, so the exact posterior q*(z|x) = N(S W^T (x - b) / sigma^2, S),
    S = (I + W^T W / sigma^2)^-1, is diagonal; the linear encoder is set to it, with its
    mean scaled by ``mean_scale`` and its variance by ``var_scale`` to spoil it on purpose.
    """
    dim_x, dim_z = weight.shape
    cov = np.linalg.inv(np.eye(dim_z) + weight.T @ weight / sigma**2)
    assert np.allclose(cov, np.diag(np.diag(cov)))
    gain = mean_scale * cov @ weight.T / sigma**2  # z_mean = gain (x - b)
    x_in = keras.Input((dim_x,))
    z_mean = keras.layers.Dense(dim_z)
    z_log_var = keras.layers.Dense(dim_z)
    encoder = keras.Model(x_in, [z_mean(x_in), z_log_var(x_in)])
    z_mean.set_weights([gain.T, -gain @ bias])
    z_log_var.set_weights([np.zeros((dim_x, dim_z)), np.log(var_scale * np.diag(cov))])
    z_in = keras.Input((dim_z,))
    dense = keras.layers.Dense(dim_x)
    decoder = keras.Model(z_in, dense(z_in))
    dense.set_weights([weight.T, bias])
    return autoencoders.VAE(encoder, decoder, likelihood="gaussian", sigma=sigma, seed=0)


def _problem(seed=4):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(3, 2)))
    weight = q * np.array([1.5, 0.7])  # orthogonal columns
    bias, sigma = rng.normal(size=3), 0.5
    x = rng.normal(size=(6, 3)).astype(np.float32)
    exact = stats.multivariate_normal(bias, weight @ weight.T + sigma**2 * np.eye(3)).logpdf(x)
    return weight, bias, sigma, x, exact


def test_importance_weights_are_exact_with_the_true_posterior():
    # with q = p(z|x) every weight p(x,z)/q(z|x) equals p(x): even K = 1 is exact
    weight, bias, sigma, x, exact = _problem()
    vae = _linear_gaussian_vae(weight, bias, sigma)
    for k in (1, 50):
        estimate = likelihood.importance_log_likelihood(vae, x, n_samples=k, batch_size=4)
        np.testing.assert_allclose(estimate, exact, atol=1e-4)


def test_importance_sampling_converges_with_a_wider_proposal():
    weight, bias, sigma, x, exact = _problem()
    vae = _linear_gaussian_vae(weight, bias, sigma, mean_scale=0.8, var_scale=2.0)
    one = likelihood.importance_log_likelihood(vae, x, n_samples=1, batch_size=6)
    many = likelihood.importance_log_likelihood(vae, x, n_samples=20_000, batch_size=3,
                                                chunk=5_000)
    np.testing.assert_allclose(many, exact, atol=0.02)
    assert np.mean(one) < np.mean(exact) - 0.1  # K = 1 is the looser ELBO-like bound


def test_importance_sampling_rejects_bad_arguments():
    weight, bias, sigma, _, _ = _problem()
    vae = _linear_gaussian_vae(weight, bias, sigma)
    x = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="n_samples"):
        likelihood.importance_log_likelihood(vae, x, n_samples=0)
    with pytest.raises(ValueError, match="x must have shape"):
        likelihood.importance_log_likelihood(vae, np.zeros((2, 4)), n_samples=5)


def test_independent_model_log_likelihood_hand_computed():
    x_train = np.array([[1, 0], [1, 1], [0, 0]], np.float64)
    # smoothed p = ((2 + 1) / 5, (1 + 1) / 5) = (0.6, 0.4)
    expected = np.mean([math.log(0.6) + math.log(0.6), math.log(0.4) + math.log(0.6)])
    got = likelihood.independent_log_likelihood(x_train, np.array([[1, 0], [0, 0]]))
    assert got == pytest.approx(expected)


def test_base_rate_bias_needs_a_positive_pseudocount():
    x = np.array([[0, 1], [0, 1]], np.float32)  # pixel 0 never on: log 0 without smoothing
    with pytest.raises(ValueError, match="pseudocount"):
        likelihood.base_rate_bias(x, pseudocount=0)
    np.testing.assert_allclose(likelihood.base_rate_bias(x, pseudocount=1),
                               [math.log(1 / 3), math.log(3)])


def test_independent_model_rejects_non_binary_data():
    binary = np.array([[1, 0], [0, 1]], np.float64)
    for grey in (np.full((2, 2), 0.5), 255 * binary, [[2, 0], [0, 1]]):
        with pytest.raises(ValueError, match="x_test must be binary"):
            likelihood.independent_log_likelihood(binary, grey)
        with pytest.raises(ValueError, match="x_train must be binary"):
            likelihood.independent_log_likelihood(grey, binary)
        with pytest.raises(ValueError, match="x must be binary"):
            likelihood.base_rate_bias(grey)
    for bad in (True, np.bool_(True)):
        with pytest.raises(TypeError, match="pseudocount"):
            likelihood.independent_log_likelihood(binary, binary, pseudocount=bad)


def test_independent_model_takes_lists_and_an_integer_pseudocount():
    # the hand-computed case above, as lists: p = (0.6, 0.4)
    expected = np.mean([math.log(0.6) + math.log(0.6), math.log(0.4) + math.log(0.6)])
    got = likelihood.independent_log_likelihood([[1, 0], [1, 1], [0, 0]], [[1, 0], [0, 0]],
                                                pseudocount=1)
    assert got == pytest.approx(expected)

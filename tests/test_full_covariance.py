import math

import keras
import numpy as np
import pytest
from scipy import stats

from helpers.infra import config
from helpers.models import autoencoders, builders, losses


def _raw_from_chol(chol):
    """Inverse of losses.cholesky_factor: log on the diagonal, L_ij / L_ii below it."""
    chol = np.asarray(chol, dtype=np.float64)
    diagonal = np.diagonal(chol, axis1=-2, axis2=-1)
    raw = chol / diagonal[..., :, None]
    idx = np.arange(raw.shape[-1])
    raw[..., idx, idx] = np.log(diagonal)
    return raw.astype(np.float32)


def test_cholesky_factor_is_lower_triangular_with_positive_diagonal():
    raw = np.random.default_rng(0).normal(size=(5, 3, 3)).astype(np.float32)
    chol = losses.cholesky_factor(raw).numpy()
    assert np.all(np.triu(chol, 1) == 0)
    np.testing.assert_allclose(np.diagonal(chol, axis1=-2, axis2=-1),
                               np.exp(np.diagonal(raw, axis1=-2, axis2=-1)), rtol=1e-6)


def test_cholesky_factor_by_hand():
    # A = [[a, ., .], [b, c, .], [e, f, g]] -> L = [[e^a, 0, 0], [e^c b, e^c, 0],
    # [e^g e, e^g f, e^g]]: each row is scaled by its exponentiated diagonal entry
    raw = np.array([[0.0, 9.0, 9.0], [0.5, math.log(2.0), 9.0], [-1.0, 3.0, math.log(0.1)]],
                   np.float32)
    expected = np.array([[1.0, 0.0, 0.0], [1.0, 2.0, 0.0], [-0.1, 0.3, 0.1]])
    np.testing.assert_allclose(losses.cholesky_factor(raw[None]).numpy()[0], expected,
                               rtol=1e-6, atol=1e-7)
    # and back: every lower-triangular factor with a positive diagonal is reached
    np.testing.assert_allclose(np.tril(_raw_from_chol(expected)), np.tril(raw), rtol=1e-6)


def test_one_raw_number_narrows_a_whole_row_of_the_factor():
    # the cause of notebook 04's full-covariance ELBO below the diagonal one: with the
    # off-diagonal entries of L in absolute units, shrinking a posterior coordinate took the
    # diagonal entry and every entry of its row, each driven to zero on its own. Shifting
    # A_ii by log s must scale row i of L by s, leaving the correlations of the posterior.
    raw = np.random.default_rng(4).normal(size=(1, 4, 4)).astype(np.float32)
    shifted = raw.copy()
    shifted[0, 2, 2] += math.log(0.01)
    chol, narrow = (losses.cholesky_factor(r).numpy()[0] for r in (raw, shifted))
    np.testing.assert_allclose(narrow[2], 0.01 * chol[2], rtol=1e-5)
    np.testing.assert_array_equal(np.delete(narrow, 2, axis=0), np.delete(chol, 2, axis=0))
    cov, cov_narrow = chol @ chol.T, narrow @ narrow.T
    assert cov_narrow[2, 2] == pytest.approx(1e-4 * cov[2, 2], rel=1e-4)

    def corr(c):
        return c / np.sqrt(np.outer(np.diag(c), np.diag(c)))

    np.testing.assert_allclose(corr(cov_narrow), corr(cov), rtol=1e-4, atol=1e-6)


def test_full_kl_equals_diagonal_kl_without_correlations():
    rng = np.random.default_rng(1)
    mean = rng.normal(size=(4, 3)).astype(np.float32)
    log_var = rng.normal(size=(4, 3)).astype(np.float32)
    chol = np.zeros((4, 3, 3), np.float32)
    idx = np.arange(3)
    chol[:, idx, idx] = np.exp(0.5 * log_var)
    np.testing.assert_allclose(losses.gaussian_kl_full(mean, chol),
                               losses.gaussian_kl(mean, log_var), rtol=1e-5)


def test_full_kl_matches_monte_carlo():
    mean = np.array([0.3, -0.8, 1.1])
    chol = np.array([[0.9, 0.0, 0.0], [0.5, 0.4, 0.0], [-0.3, 0.2, 1.3]])
    cov = chol @ chol.T
    rng = np.random.default_rng(2)
    z = rng.multivariate_normal(mean, cov, size=400_000)
    log_ratio = (stats.multivariate_normal(mean, cov).logpdf(z)
                 - stats.multivariate_normal(np.zeros(3), np.eye(3)).logpdf(z))
    se = log_ratio.std() / math.sqrt(len(z))
    exact = float(losses.gaussian_kl_full(mean[None].astype(np.float32),
                                              chol[None].astype(np.float32))[0])
    assert abs(exact - log_ratio.mean()) < 4 * se


def _full_vae(latent_dim=3, **kwargs):
    encoder = builders.mlp_encoder(6, latent_dim, hidden=(8,), covariance="full")
    decoder = builders.mlp_decoder(latent_dim, 6, hidden=(8,), output_activation=None)
    return autoencoders.FullCovVAE(encoder, decoder, likelihood="gaussian", **kwargs)


def test_cholesky_samples_recover_the_covariance():
    chol = np.array([[0.8, 0.0, 0.0], [0.6, 0.5, 0.0], [-0.4, 0.3, 1.2]], np.float32)
    vae = _full_vae(seed=3)
    n = 100_000
    z = vae.sample_latent(np.zeros((n, 3), np.float32),
                          np.broadcast_to(_raw_from_chol(chol), (n, 3, 3))).numpy()
    target = chol @ chol.T
    sample = np.cov(z, rowvar=False)
    # within 5% of the largest variance, entry by entry (off-diagonals can be near 0)
    assert np.abs(sample - target).max() < 0.05 * np.abs(target).max()
    np.testing.assert_allclose(np.diag(sample), np.diag(target), rtol=0.05)


def test_full_covariance_vae_trains_and_round_trips(tmp_path):
    config.set_seed(0)
    x = np.random.default_rng(0).normal(size=(128, 6)).astype(np.float32)
    vae = _full_vae(seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = vae.fit(x, epochs=5, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    z_mean, chol = vae.posterior(x[:4])
    assert chol.shape == (4, 3, 3) and np.all(np.triu(chol, 1) == 0)
    vae.save(tmp_path / "full.keras")
    loaded = keras.saving.load_model(tmp_path / "full.keras")
    assert type(loaded) is autoencoders.FullCovVAE
    np.testing.assert_array_equal(loaded.posterior(x[:4])[1], chol)


def test_full_covariance_needs_a_square_second_output():
    with pytest.raises(ValueError, match="covariance='full'"):
        autoencoders.FullCovVAE(builders.mlp_encoder(6, 3), builders.mlp_decoder(3, 6))
    with pytest.raises(ValueError, match="covariance"):
        builders.mlp_encoder(6, 3, covariance="banded")


def test_covariance_full_needs_a_variational_encoder():
    # a plain autoencoder's code has no posterior: covariance="full" would be ignored
    with pytest.raises(ValueError, match="covariance.*variational|variational.*covariance"):
        builders.mlp_encoder(6, 3, variational=False, covariance="full")

import math

import keras
import numpy as np
import pytest

from helpers.evaluation import likelihood
from helpers.infra import config
from helpers.models import autoencoders, builders, losses


def _data(n=64, dim=12, seed=0):
    return np.random.default_rng(seed).random((n, dim)).astype(np.float32)


def _vae(dim=12, latent_dim=2, **kwargs):
    return autoencoders.VAE(builders.mlp_encoder(dim, latent_dim, hidden=(16,)),
                      builders.mlp_decoder(latent_dim, dim, hidden=(16,)), **kwargs)


def _ae(dim=12, latent_dim=2, **kwargs):
    return autoencoders.Autoencoder(builders.mlp_encoder(dim, latent_dim, hidden=(16,),
                                                   variational=False),
                              builders.mlp_decoder(latent_dim, dim, hidden=(16,)), **kwargs)


def test_vae_loss_is_reconstruction_plus_beta_kl():
    x = _data()
    vae = _vae(beta=0.3, seed=1)
    terms = vae.compute_terms(x, x)
    np.testing.assert_allclose(terms["loss"], terms["reconstruction"] + 0.3 * terms["kl"],
                               rtol=1e-6)
    # the KL uses the encoder's outputs in closed form
    z_mean, z_log_var = vae.encoder(x)
    np.testing.assert_allclose(terms["kl"], losses.gaussian_kl(z_mean, z_log_var),
                               rtol=1e-6)


def test_changing_beta_after_compiling_takes_effect():
    x = _data()
    vae = _vae(beta=1.0, seed=1)
    vae.compile(optimizer="adam")
    vae.fit(x, epochs=1, verbose=0)  # traces the train step with beta = 1
    vae.beta = 0.0
    assert vae.beta == 0.0
    result = vae.evaluate(x, verbose=0, return_dict=True)
    assert result["loss"] == pytest.approx(result["reconstruction"], rel=1e-6)
    assert result["kl"] > 0
    with pytest.raises(ValueError, match="beta"):
        vae.beta = -0.5


def test_trackers_report_batch_means_and_fit_lowers_the_loss():
    config.set_seed(0)
    x = _data(256)
    vae = _vae(seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = vae.fit(x, epochs=8, batch_size=64, verbose=0, validation_data=(x,))
    assert {"loss", "reconstruction", "kl", "val_loss", "val_kl"} <= set(history.history)
    assert history.history["loss"][-1] < history.history["loss"][0]
    result = vae.evaluate(x, batch_size=256, verbose=0, return_dict=True)
    assert result["loss"] == pytest.approx(result["reconstruction"] + result["kl"], rel=1e-5)


def test_gaussian_likelihood_uses_sigma_and_can_learn_it():
    config.set_seed(0)
    rng = np.random.default_rng(0)
    x = (0.5 + 0.2 * rng.standard_normal((512, 4))).astype(np.float32)  # unpredictable noise
    ae = autoencoders.Autoencoder(builders.mlp_encoder(4, 1, hidden=(8,), variational=False),
                            builders.mlp_decoder(1, 4, hidden=(8,), output_activation=None),
                            likelihood="gaussian", sigma=1.0, learn_sigma=True)
    ae.compile(optimizer=keras.optimizers.Adam(2e-2))
    ae.fit(x, epochs=60, batch_size=128, verbose=0)
    residual = x - ae.predict(x, verbose=0)
    # the maximum-likelihood scale is the root-mean-square residual
    rms = float(np.sqrt(np.mean(residual**2)))
    assert math.exp(float(ae.log_sigma.numpy())) == pytest.approx(rms, rel=0.05)
    assert 0.1 < rms < 0.25
    fixed = autoencoders.VAE(builders.mlp_encoder(4, 1), builders.mlp_decoder(1, 4),
                       likelihood="gaussian", sigma=0.5)
    assert not fixed.log_sigma.trainable
    assert float(fixed.log_sigma.numpy()) == pytest.approx(math.log(0.5))


@pytest.mark.parametrize("make", [_vae, _ae])
def test_keras_file_round_trip_gives_identical_outputs(tmp_path, make):
    x = _data(8)
    model = make(seed=5) if make is _vae else make()
    model.compile(optimizer="adam")
    model.fit(x, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    assert loaded.likelihood == model.likelihood
    a, b = model.encode(x), loaded.encode(x)
    for u, v in zip(np.atleast_3d(a), np.atleast_3d(b), strict=True):
        np.testing.assert_array_equal(u, v)
    z = np.linspace(-2, 2, 6, dtype=np.float32).reshape(3, 2)
    np.testing.assert_array_equal(model.decode(z), loaded.decode(z))
    if make is _vae:  # the sampling stream restarts from the seed: two loads draw alike
        again = keras.saving.load_model(path)
        np.testing.assert_array_equal(loaded(x), again(x))


def test_weights_file_round_trip(tmp_path):
    x = _data(8)
    model, other = _vae(seed=1), _vae(seed=1)
    model.compile(optimizer="adam")
    model.fit(x, epochs=1, verbose=0)
    model.save_weights(tmp_path / "vae.weights.h5")
    other.load_weights(tmp_path / "vae.weights.h5")
    np.testing.assert_array_equal(model.encode(x), other.encode(x))


def test_same_seed_gives_the_same_training():
    def train():
        config.set_seed(11)
        vae = _vae(seed=11)
        vae.compile(optimizer=keras.optimizers.Adam(1e-2))
        loss = vae.fit(_data(128), epochs=2, batch_size=32, verbose=0).history["loss"]
        return loss, vae.encoder.get_weights()

    (loss_a, w_a), (loss_b, w_b) = train(), train()
    assert loss_a == loss_b
    for u, v in zip(w_a, w_b, strict=True):
        np.testing.assert_array_equal(u, v)


def test_generate_and_decode_shapes():
    vae = _vae(latent_dim=3)
    assert vae.generate(5).shape == (5, 12)
    with pytest.raises(ValueError, match="z must have shape"):
        vae.decode(np.zeros((2, 2)))


# ---- bad input ----
def test_unknown_likelihood():
    with pytest.raises(ValueError, match="likelihood"):
        _vae(likelihood="poisson")


@pytest.mark.parametrize("kwargs, match", [({"beta": -1}, "beta"), ({"sigma": 0}, "sigma"),
                                           ({"beta": float("nan")}, "beta")])
def test_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _vae(**kwargs)


def test_encoder_outputs_must_match_the_model():
    with pytest.raises(ValueError, match="two tensors"):
        autoencoders.VAE(builders.mlp_encoder(4, 2, variational=False), builders.mlp_decoder(2, 4))
    with pytest.raises(ValueError, match="one tensor"):
        autoencoders.Autoencoder(builders.mlp_encoder(4, 2), builders.mlp_decoder(2, 4))


@pytest.mark.parametrize("bad, match", [
    (np.full((4, 12), np.nan, dtype=np.float32), "NaN or inf"),
    (np.full((4, 12), np.inf, dtype=np.float32), "NaN or inf"),
    (np.zeros((4, 11), dtype=np.float32), r"shape \(n, 12\)"),
    (np.zeros(12, dtype=np.float32), r"shape \(n, 12\)"),
    (np.full((4, 12), 1.5, dtype=np.float32), r"\[0, 1\]"),
    (np.full((4, 12), -0.1, dtype=np.float32), r"\[0, 1\]"),
])
def test_fit_rejects_bad_data(bad, match):
    vae = _vae()
    vae.compile(optimizer="adam")
    with pytest.raises(ValueError, match=f"^x.*{match}|{match}"):
        vae.fit(bad, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="validation_data"):
        vae.fit(_data(), epochs=1, verbose=0, validation_data=(bad,))


def test_gaussian_likelihood_accepts_values_outside_the_unit_interval():
    x = np.linspace(-2.0, 3.0, 48, dtype=np.float32).reshape(4, 12)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):  # the Bernoulli model refuses them
        _ae().evaluate(x, verbose=0)
    ae = _ae(likelihood="gaussian", sigma=0.5)
    ae.compile(optimizer="adam")
    ae.fit(x, epochs=1, verbose=0)
    # the reconstruction term is the Gaussian negative log-likelihood, written out by hand
    x_hat = ae.predict(x, verbose=0)
    nll = np.sum((x - x_hat) ** 2 / (2 * 0.5**2) + math.log(0.5) + 0.5 * math.log(2 * math.pi),
                 axis=1)
    result = ae.evaluate(x, batch_size=4, verbose=0, return_dict=True)
    assert result["reconstruction"] == pytest.approx(nll.mean(), rel=1e-5)


def test_sample_weight_is_refused():
    vae = _vae()
    vae.compile(optimizer="adam")
    with pytest.raises(ValueError, match="sample_weight"):
        vae.fit(_data(), sample_weight=np.ones(64), epochs=1, verbose=0)


def test_fit_checks_tf_data_batches_too():
    import tensorflow as tf

    vae = _vae()
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    pixels = tf.data.Dataset.from_tensor_slices(255 * _data()).batch(16)  # unscaled
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[0, 1\]"):
        vae.fit(pixels, epochs=1, verbose=0)
    broken = _data()
    broken[3, 3] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN"):
        vae.fit(tf.data.Dataset.from_tensor_slices(broken).batch(16), epochs=1, verbose=0)


def test_a_loss_that_becomes_nan_is_reported():
    import tensorflow as tf

    vae = _vae(likelihood="gaussian")
    vae.compile(optimizer=keras.optimizers.SGD(1e6))  # diverges at once
    with pytest.raises(tf.errors.InvalidArgumentError, match="loss became NaN or inf"):
        vae.fit(1e3 * _data(), epochs=5, batch_size=16, verbose=0)


def test_decoder_must_fit_the_encoder():
    with pytest.raises(ValueError, match="decoder outputs shape"):
        autoencoders.VAE(builders.mlp_encoder(12, 2), builders.mlp_decoder(2, 10))
    with pytest.raises(ValueError, match="latent vectors of size 3"):
        autoencoders.Autoencoder(builders.mlp_encoder(12, 2, variational=False),
                           builders.mlp_decoder(3, 12))
    with pytest.raises(TypeError, match="decoder must be a keras.Model"):
        autoencoders.VAE(builders.mlp_encoder(12, 2), "decoder")


def test_importance_sampling_needs_a_diagonal_vae():
    with pytest.raises(TypeError, match="vae must be an autoencoders.VAE.*Autoencoder"):
        likelihood.importance_log_likelihood(_ae(), _data(4), n_samples=2)
    full = autoencoders.FullCovVAE(builders.mlp_encoder(12, 2, covariance="full"),
                             builders.mlp_decoder(2, 12))
    with pytest.raises(TypeError, match="FullCovVAE"):
        likelihood.importance_log_likelihood(full, _data(4), n_samples=2)


def test_encode_returns_one_array_for_every_model():
    x = _data(5)
    vae, ae = _vae(), _ae()
    np.testing.assert_array_equal(vae.encode(x), vae.posterior(x)[0])
    assert vae.encode(x).shape == ae.encode(x).shape == (5, 2)


def test_posterior_draws_are_the_reparameterisation_with_numpy_noise():
    vae = _vae()
    z_mean = np.array([[0.0, 1.0], [2.0, -1.0]], np.float32)
    z_log_var = np.array([[0.0, np.log(4.0)], [np.log(0.25), 0.0]], np.float32)
    eps = np.random.default_rng(7).standard_normal((2, 2))
    expected = z_mean + np.array([[1.0, 2.0], [0.5, 1.0]]) * eps  # sigma = exp(log_var / 2)
    np.testing.assert_allclose(vae.posterior_draws(z_mean, z_log_var, 7), expected, rtol=1e-6)
    # a Generator continues its own stream
    rng = np.random.default_rng(7)
    first = vae.posterior_draws(z_mean, z_log_var, rng)
    second = vae.posterior_draws(z_mean, z_log_var, rng)
    np.testing.assert_allclose(first, expected, rtol=1e-6)
    assert not np.allclose(first, second)
    many = vae.posterior_draws(z_mean, z_log_var, 0, n_draws=20_000)
    assert many.shape == (2, 20_000, 2)
    np.testing.assert_allclose(many.std(axis=1), [[1.0, 2.0], [0.5, 1.0]], rtol=0.03)


def test_full_covariance_draws_have_covariance_l_l_transpose():
    vae = autoencoders.FullCovVAE(builders.mlp_encoder(12, 2, covariance="full"),
                                  builders.mlp_decoder(2, 12))
    z_mean = np.array([[1.0, -1.0]], np.float32)
    chol = np.array([[[1.0, 0.0], [0.8, 0.6]]], np.float32)  # covariance [[1, .8], [.8, 1]]
    draws = vae.posterior_draws(z_mean, chol, 3, n_draws=50_000)[0]
    np.testing.assert_allclose(draws.mean(axis=0), [1.0, -1.0], atol=0.02)
    np.testing.assert_allclose(np.cov(draws, rowvar=False), [[1.0, 0.8], [0.8, 1.0]], atol=0.02)


# ---- bad input to fit, evaluate and the analysis methods, of every accepted type ----
@pytest.mark.parametrize("batch_size", [0, -1, 2.5, "32"])
def test_fit_and_evaluate_refuse_a_bad_batch_size(batch_size):
    vae = _vae()
    vae.compile(optimizer="adam")
    with pytest.raises(ValueError, match="batch_size"):
        vae.fit(_data(), batch_size=batch_size, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="batch_size"):
        vae.evaluate(_data(), batch_size=batch_size, verbose=0)
    with pytest.raises(ValueError, match="batch_size"):
        vae.encode(_data(), batch_size=batch_size)


@pytest.mark.parametrize("validation_data, match", [
    ([], "validation_data must be x, \\(x,\\) or \\(x, y\\).*0 items"),
    ((), "validation_data must be x, \\(x,\\) or \\(x, y\\).*0 items"),
    (_data().tolist(), "validation_data must be x, \\(x,\\) or \\(x, y\\).*64 items"),
    ((_data(), _data(), np.ones(64)), "validation_data holds sample weights"),
    ((_data()[:, :5],), r"validation_data must have shape \(n, 12\)"),
    ((_data(), _data()[:10]), "validation_data target must have one row per example"),
])
def test_fit_refuses_malformed_validation_data(validation_data, match):
    vae = _vae()
    vae.compile(optimizer="adam")
    with pytest.raises(ValueError, match=match):
        vae.fit(_data(), epochs=1, verbose=0, validation_data=validation_data)


def test_fit_refuses_validation_data_of_the_wrong_type():
    vae = _vae()
    vae.compile(optimizer="adam")
    with pytest.raises(TypeError, match="validation_data must be an array"):
        vae.fit(_data(), epochs=1, verbose=0, validation_data="val.npy")


@pytest.mark.parametrize("kwargs, error, match", [
    ({"x": None}, ValueError, "x is required"),
    ({"x": [[0.1, 0.2], [0.3]]}, ValueError, "x must be an array.*rows differ in length"),
    ({"x": _data(), "y": _data()[:10]}, ValueError, "x target must have one row per example"),
    ({"x": _data(), "epochs": -1}, ValueError, "epochs"),
    ({"x": _data(), "validation_split": 1.5}, ValueError, "validation_split"),
])
def test_fit_names_the_bad_argument(kwargs, error, match):
    vae = _vae()
    vae.compile(optimizer="adam")
    with pytest.raises(error, match=match):
        vae.fit(**{"epochs": 1, "verbose": 0, **kwargs})


def test_tf_data_shapes_are_checked_before_training():
    import tensorflow as tf

    vae = _vae()
    vae.compile(optimizer="adam")
    narrow = tf.data.Dataset.from_tensor_slices(_data()[:, :5]).batch(16)
    with pytest.raises(ValueError, match=r"x must yield batches of shape \(batch, 12\)"):
        vae.fit(narrow, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"x must yield batches of shape \(batch, 12\)"):
        vae.evaluate(narrow, verbose=0)
    with pytest.raises(ValueError, match="validation_data must yield batches"):
        vae.fit(_data(), epochs=1, verbose=0, validation_data=narrow)
    unbatched = tf.data.Dataset.from_tensor_slices(_data())
    with pytest.raises(ValueError, match=r"not batched: call \.batch"):
        vae.fit(unbatched, epochs=1, verbose=0)
    wrong_target = tf.data.Dataset.from_tensor_slices((_data(), _data()[:, :5])).batch(16)
    with pytest.raises(ValueError, match="x target must yield batches"):
        vae.fit(wrong_target, epochs=1, verbose=0)
    weighted = tf.data.Dataset.from_tensor_slices((_data(), _data(), np.ones(64))).batch(16)
    with pytest.raises(ValueError, match="sample weights are not supported"):
        vae.fit(weighted, epochs=1, verbose=0)
    # a well-formed pipeline trains
    vae.fit(tf.data.Dataset.from_tensor_slices(_data()).batch(16), epochs=1, verbose=0)


def test_predict_checks_its_input_like_evaluate():
    vae = _vae()
    with pytest.raises(ValueError, match=r"x must have shape \(n, 12\)"):
        vae.predict(_data()[:, :5], verbose=0)
    broken = _data()
    broken[0, 0] = np.nan
    with pytest.raises(ValueError, match="x contains NaN"):
        vae.predict(broken, verbose=0)


def test_encode_refuses_a_data_stream_by_name():
    import tensorflow as tf

    with pytest.raises(TypeError, match=r"x must be an array of shape \(n, 12\).*_?Dataset"):
        _vae().encode(tf.data.Dataset.from_tensor_slices(_data()).batch(16))


@pytest.mark.parametrize("kwargs, error, match", [
    ({"z_log_var": np.zeros((4, 2))}, ValueError, "z_log_var must have the shape of z_mean"),
    ({"z_mean": np.zeros((3, 5)), "z_log_var": np.zeros((3, 5))}, ValueError,
     r"z_mean must have shape \(n, 2\)"),
    ({"n_draws": 0}, ValueError, "n_draws"),
    ({"n_draws": 2.5}, ValueError, "n_draws"),
    ({"seed": -1}, ValueError, "seed"),
    ({"seed": "a"}, ValueError, "seed"),
])
def test_posterior_draws_name_the_bad_argument(kwargs, error, match):
    args = {"z_mean": np.zeros((3, 2)), "z_log_var": np.zeros((3, 2)), **kwargs}
    with pytest.raises(error, match=match):
        _vae().posterior_draws(**args)


@pytest.mark.parametrize("chol", [np.zeros((3, 3, 3)), np.zeros((4, 2, 2)), np.zeros((3, 2, 3))])
def test_full_covariance_draws_check_the_factor_shape(chol):
    vae = autoencoders.FullCovVAE(builders.mlp_encoder(12, 2, covariance="full"),
                                  builders.mlp_decoder(2, 12))
    with pytest.raises(ValueError, match=r"chol must hold one .* shape \(3, 2, 2\)"):
        vae.posterior_draws(np.zeros((3, 2)), chol)


def test_a_vae_refuses_a_full_covariance_encoder():
    with pytest.raises(ValueError, match="z_log_var.*FullCovVAE"):
        autoencoders.VAE(builders.mlp_encoder(12, 2, covariance="full"),
                         builders.mlp_decoder(2, 12))


@pytest.mark.parametrize("seed", [-1, 1.5, "a"])
def test_vae_seed_must_be_a_non_negative_integer(seed):
    with pytest.raises(ValueError, match="seed"):
        _vae(seed=seed)


def test_learn_sigma_needs_a_gaussian_likelihood():
    with pytest.raises(ValueError, match="learn_sigma.*gaussian"):
        _vae(learn_sigma=True)  # Bernoulli by default: there is no scale to learn
    with pytest.raises(ValueError, match="learn_sigma.*gaussian"):
        _ae(learn_sigma=True)

import keras
import numpy as np
import pytest

from helpers import builders, config, models, training


def _model(seed=0, sampling_seed=0):
    config.set_seed(seed)  # initial weights
    vae = models.VAE(builders.mlp_encoder(6, 2, hidden=(8,)),
                     builders.mlp_decoder(2, 6, hidden=(8,)), seed=sampling_seed)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    return vae


X = np.random.default_rng(0).random((64, 6)).astype(np.float32)


def _count_fits(monkeypatch):
    calls = []
    original = keras.Model.fit

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", counting)
    return calls


def test_second_call_loads_instead_of_training(monkeypatch):
    calls = _count_fits(monkeypatch)
    first = _model()
    h1 = training.fit_or_load(first, X, name="t", settings={"seed": 0}, epochs=2, verbose=0)
    second = _model(seed=1)  # different initial weights, same architecture
    h2 = training.fit_or_load(second, X, name="t", settings={"seed": 0}, epochs=2, verbose=0)
    assert len(calls) == 1 and h1 == h2 and len(h1["loss"]) == 2
    np.testing.assert_array_equal(first.encode(X)[0], second.encode(X)[0])
    files = sorted(p.name for p in config.data_dir("models").iterdir())
    assert len(files) == 2 and files[0].endswith(".history.json")


def test_key_changes_with_settings_data_fit_and_architecture():
    base = training.cache_key(_model(), {"seed": 0}, X, None, {"epochs": 2})
    assert base == training.cache_key(_model(seed=3), {"seed": 0}, X, None, {"epochs": 2})
    assert base == training.cache_key(_model(), {"seed": 0}, X, None,
                                      {"epochs": 2, "verbose": 0})
    assert base != training.cache_key(_model(), {"seed": 1}, X, None, {"epochs": 2})
    assert base != training.cache_key(_model(sampling_seed=1), {"seed": 0}, X, None,
                                      {"epochs": 2})
    assert base != training.cache_key(_model(), {"seed": 0}, X[:10], None, {"epochs": 2})
    assert base != training.cache_key(_model(), {"seed": 0}, X, None, {"epochs": 3})
    wider = models.VAE(builders.mlp_encoder(6, 2, hidden=(9,)), builders.mlp_decoder(2, 6))
    wider.compile(optimizer=keras.optimizers.Adam(1e-2))
    assert base != training.cache_key(wider, {"seed": 0}, X, None, {"epochs": 2})


def test_retrain_flag_and_fast_mode_bypass_the_cache(monkeypatch):
    calls = _count_fits(monkeypatch)
    training.fit_or_load(_model(), X, name="t", epochs=1, verbose=0)
    training.fit_or_load(_model(), X, name="t", epochs=1, verbose=0, retrain=True)
    monkeypatch.setenv("RETRAIN", "1")
    training.fit_or_load(_model(), X, name="t", epochs=1, verbose=0)
    monkeypatch.delenv("RETRAIN")
    monkeypatch.setenv("NOTEBOOK_FAST", "1")
    training.fit_or_load(_model(), X, name="fast", epochs=1, verbose=0)
    assert len(calls) == 4
    assert not list(config.data_dir("models").glob("fast-*"))


def test_corrupt_cache_is_detected_and_rebuilt(monkeypatch):
    training.fit_or_load(_model(), X, name="t", epochs=1, verbose=0)
    (weights,) = config.data_dir("models").glob("t-*.weights.h5")
    weights.write_bytes(b"not an HDF5 file")
    calls = _count_fits(monkeypatch)
    with pytest.warns(UserWarning, match="unusable"):
        training.fit_or_load(_model(), X, name="t", epochs=1, verbose=0)
    assert len(calls) == 1
    restored = _model(seed=5)
    restored(X[:1])
    restored.optimizer.build(restored.trainable_variables)
    restored.load_weights(weights)  # the rebuilt file is a valid weights file again


def test_bad_name():
    with pytest.raises(ValueError, match="name"):
        training.fit_or_load(_model(), X, name="", epochs=1)


def test_key_tells_data_streams_and_validation_sets_apart():
    from helpers.mnist import DynamicBinarization

    x = np.random.default_rng(1).random((40, 6)).astype(np.float32)
    model = _model()
    stream = DynamicBinarization(x, batch_size=10, seed=0)
    key = training.cache_key(model, {}, stream, None, {"epochs": 2})
    assert key == training.cache_key(model, {}, DynamicBinarization(x, batch_size=10, seed=0),
                                     None, {"epochs": 2})
    other = x.copy()
    other[0, 0] = 0.5  # one pixel differs
    assert key != training.cache_key(model, {}, DynamicBinarization(other, batch_size=10,
                                                                    seed=0), None, {"epochs": 2})
    assert key != training.cache_key(model, {}, DynamicBinarization(x, batch_size=10, seed=1),
                                     None, {"epochs": 2})
    with_val = training.cache_key(model, {}, stream, None, {"validation_data": (x,)})
    assert with_val != training.cache_key(model, {}, stream, None,
                                          {"validation_data": (other,)})

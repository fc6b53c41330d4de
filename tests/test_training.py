import keras
import numpy as np
import pytest

from helpers import training
from helpers.infra import config
from helpers.models import autoencoders, builders


def _model(seed=0, sampling_seed=0):
    config.set_seed(seed)  # initial weights
    vae = autoencoders.VAE(builders.mlp_encoder(6, 2, hidden=(8,)),
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
    np.testing.assert_array_equal(first.encode(X), second.encode(X))
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
    wider = autoencoders.VAE(builders.mlp_encoder(6, 2, hidden=(9,)), builders.mlp_decoder(2, 6))
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
    from helpers.data.mnist import DynamicBinarization

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


def test_retrain_variable_overrides_an_explicit_false(monkeypatch, capsys):
    # notebooks pass retrain=RETRAIN with RETRAIN = False; RETRAIN=1 must still retrain
    training.fit_or_load(_model(), X, name="t", epochs=1, verbose=0, retrain=False)
    calls = _count_fits(monkeypatch)
    monkeypatch.setenv("RETRAIN", "1")
    training.fit_or_load(_model(), X, name="t", epochs=1, verbose=0, retrain=False)
    assert len(calls) == 1 and "Loaded cached weights" not in capsys.readouterr().out
    monkeypatch.setenv("RETRAIN", "maybe")
    with pytest.raises(ValueError, match="RETRAIN"):
        training.fit_or_load(_model(), X, name="t", epochs=1, verbose=0)


def test_corrupt_history_retrains_from_the_initial_state():
    # 64 examples in batches of 16: one epoch is 4 updates
    training.fit_or_load(_model(), X, name="t", epochs=1, batch_size=16, verbose=0,
                         shuffle=False)
    (history,) = config.data_dir("models").glob("t-*.history.json")
    history.write_text("{not json")
    fresh = _model()
    initial = [v.numpy() for v in fresh.trainable_variables]
    reference = _model()
    reference.fit(X, epochs=1, batch_size=16, verbose=0, shuffle=False)
    with pytest.warns(UserWarning, match="unusable"):
        training.fit_or_load(fresh, X, name="t", epochs=1, batch_size=16, verbose=0,
                             shuffle=False)
    assert int(fresh.optimizer.iterations.numpy()) == 4  # not 8: no cached state kept
    assert not np.allclose(initial[0], fresh.trainable_variables[0].numpy())
    np.testing.assert_allclose(fresh.encode(X), reference.encode(X), rtol=1e-5,
                               atol=1e-6)


def test_a_cache_that_cannot_be_written_warns_and_keeps_the_result(monkeypatch):
    def refuse(self, *args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(keras.Model, "save_weights", refuse)
    with pytest.warns(UserWarning, match="Could not write the weight cache"):
        history = training.fit_or_load(_model(), X, name="t", epochs=2, verbose=0)
    assert len(history["loss"]) == 2
    assert not list(config.data_dir("models").glob("t-*"))  # no half cache left behind


def test_tf_data_input_hits_the_cache_and_is_told_apart_by_content(monkeypatch, capsys):
    import tensorflow as tf

    def dataset(x):
        return tf.data.Dataset.from_tensor_slices(x).batch(16)

    training.fit_or_load(_model(), dataset(X), name="t", epochs=1, verbose=0)
    calls = _count_fits(monkeypatch)
    training.fit_or_load(_model(), dataset(X), name="t", epochs=1, verbose=0)
    assert not calls and "Loaded cached weights" in capsys.readouterr().out
    other = X.copy()
    other[3, 2] = 0.5
    training.fit_or_load(_model(), dataset(other), name="t", epochs=1, verbose=0)
    assert len(calls) == 1  # other data: a new key, trained


@pytest.mark.parametrize("updates, n, batch, expected", [
    (18_900, 4_000, 64, (300, 63)),    # 63 batches an epoch: 300 whole epochs
    (18_900, 60_000, 64, (21, 938)),   # 938 an epoch: 21 epochs, 19,698 updates
    (120, 60_000, 64, (1, 120)),       # shorter than an epoch: one cut epoch
    (100, 100, 100, (100, 1))])
def test_update_budget(updates, n, batch, expected):
    budget = training.update_budget(updates, n, batch)
    assert (budget["epochs"], budget["steps_per_epoch"]) == expected
    assert 0 <= budget["epochs"] * budget["steps_per_epoch"] - updates < budget["steps_per_epoch"]
    with pytest.raises(ValueError, match="batch_size"):
        training.update_budget(10, 100, 0)


def test_update_budget_keeps_a_minimum_number_of_epochs():
    # fast mode on 60,000 images: 320 updates as 8 epochs of 40, as on 4,000
    assert training.update_budget(320, 60_000, 100, min_epochs=8) == {
        "epochs": 8, "steps_per_epoch": 40}
    assert training.update_budget(320, 4_000, 100, min_epochs=8) == {
        "epochs": 8, "steps_per_epoch": 40}
    assert training.update_budget(12_000, 60_000, 100, min_epochs=8) == {
        "epochs": 20, "steps_per_epoch": 600}


def test_a_cut_epoch_runs_exactly_the_budget():
    vae = _model()
    training.fit_or_load(vae, X, name="t", batch_size=4, verbose=0,
                         **training.update_budget(5, len(X), 4))
    assert int(vae.optimizer.iterations.numpy()) == 5


def test_run_directory_is_keyed_by_settings_and_emptied_on_retrain(monkeypatch):
    first = training.run_directory("dcgan", {"seed": 0, "data": "keras-mnist"})
    assert first == training.run_directory("dcgan", {"data": "keras-mnist", "seed": 0})
    assert first != training.run_directory("dcgan", {"seed": 1, "data": "keras-mnist"})
    (first / "epoch-0001.weights.h5").write_text("x")
    training.run_directory("dcgan", {"seed": 0, "data": "keras-mnist"})
    assert (first / "epoch-0001.weights.h5").exists()  # kept: training resumes from it
    monkeypatch.setenv("RETRAIN", "1")
    training.run_directory("dcgan", {"seed": 0, "data": "keras-mnist"})
    assert not list(first.iterdir())
    monkeypatch.delenv("RETRAIN")
    monkeypatch.setenv("NOTEBOOK_FAST", "1")
    assert training.run_directory("dcgan", {"seed": 0, "data": "keras-mnist"}).name.endswith(
        "-fast")


def test_epoch_history_continues_across_a_resume(tmp_path):
    log = training.EpochHistory(tmp_path)
    for epoch in range(3):  # epochs 1, 2, 3
        log.on_epoch_end(epoch, {"loss": 10.0 - epoch})
    for epoch in (2, 3):  # resumed from the checkpoint after epoch 2: 3 again, then 4
        log.on_epoch_end(epoch, {"loss": 5.0 - epoch})
    assert training.read_epoch_history(tmp_path) == {"epoch": [1, 2, 3, 4],
                                                     "loss": [10.0, 9.0, 3.0, 2.0]}
    assert training.read_epoch_history(tmp_path / "none") == {}


@pytest.mark.parametrize("passes, at_most, expected", [
    (50, 20, (10, 5)),  # rounding 50 / 20 to 2 epochs of 20 would run 40 passes, not 50
    (100, 20, (20, 5)), (7, 20, (7, 1)), (53, 20, (1, 53)), (5, 1, (1, 5)), (30, 4, (3, 10)),
])
def test_split_passes_keeps_the_exact_number_of_passes(passes, at_most, expected):
    per_epoch, epochs = training.split_passes(passes, at_most)
    assert (per_epoch, epochs) == expected and per_epoch * epochs == passes
    assert per_epoch <= at_most


def test_split_passes_names_bad_arguments():
    with pytest.raises(ValueError, match="passes"):
        training.split_passes(0, 20)
    with pytest.raises((TypeError, ValueError), match="at_most"):
        training.split_passes(50, 2.5)


def test_a_silent_training_shows_one_bar_over_its_epochs(capsys):
    training.fit_or_load(_model(), X, name="bar", epochs=3, verbose=0)
    out = capsys.readouterr().out
    final = out.split("\r")[-1]  # what the screen shows last
    assert final.startswith("bar: 100%") and "3/3" in final and "loss=" in final
    training.fit_or_load(_model(), X, name="loud", epochs=1, verbose=2)
    assert "loud:" not in capsys.readouterr().out  # Keras prints its own log instead


def test_epoch_progress_counts_epochs_of_a_resumed_training(capsys):
    _model().fit(X, epochs=4, initial_epoch=2, verbose=0,
                 callbacks=[training.EpochProgress("resumed")])
    final = capsys.readouterr().out.split("\r")[-1]
    assert "4/4" in final and "100%" in final

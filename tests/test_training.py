import json
import tempfile
import warnings
from pathlib import Path

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
    assert len(files) == 3 and [f.split(".", 1)[1] for f in files] == [
        "history.json", "key.json", "weights.h5"]
    record = json.loads((config.data_dir("models") / files[1]).read_text())
    assert record["name"] == "t" and files[1] == f"t-{record['key']}.key.json"
    assert "helpers.models.autoencoders" in record["code"]


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


class _Epochs(keras.utils.PyDataset):
    # 16 batches an epoch of X; records which (epoch, batch) Keras asks for
    def __init__(self):
        super().__init__()
        self.epoch, self.served = 0, []

    def __len__(self):
        return 16

    def __getitem__(self, index):
        self.served.append((self.epoch, index))
        return X[4 * index:4 * index + 4]

    def on_epoch_end(self):
        self.epoch += 1


def test_cut_epochs_of_a_stream_run_every_update_of_the_budget():
    # 20 updates in at least 8 epochs: 10 epochs of 2 batches (Keras alone stops early, its
    # iterator running on across cut epochs until it reports "ran out of data")
    budget = training.update_budget(20, len(X), 4, min_epochs=8)
    assert budget == {"epochs": 10, "steps_per_epoch": 2}
    stream, vae = _Epochs(), _model()
    vae.compile(optimizer=keras.optimizers.Adam(1e-2), steps_per_execution=2)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*ran out of data")
        training.fit_or_load(vae, stream, name="t", cache=False, verbose=0, **budget)
    assert int(vae.optimizer.iterations.numpy()) == 20
    # each epoch two batches of a fresh epoch of the stream, in any order (its epoch 0 is
    # read for the cache key)
    assert stream.epoch == 11
    assert sorted(s for s in stream.served if s[0] > 0) == [(e, i) for e in range(1, 11)
                                                            for i in range(2)]


def test_cut_epochs_of_arrays_are_refused_naming_steps_per_epoch():
    with pytest.raises(ValueError, match="steps_per_epoch"):
        training.fit_or_load(_model(), X, name="t", cache=False, batch_size=4, verbose=0,
                             **training.update_budget(20, len(X), 4, min_epochs=8))


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


# ---------------------------------------------------------------- the code in the cache key
_MODULE = '''
import keras

from helpers.models import autoencoders


class EditedVAE(autoencoders.VAE):
    def train_step(self, data):
        return super().train_step(data){edit}
'''


def _edited_model(tmp_path, module_name, edit=""):
    import importlib.util
    import sys

    path = tmp_path / f"{module_name.rsplit('.', 1)[-1]}.py"
    path.write_text(_MODULE.format(edit=edit))
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    config.set_seed(0)
    vae = module.EditedVAE(builders.mlp_encoder(6, 2, hidden=(8,)),
                           builders.mlp_decoder(2, 6, hidden=(8,)))
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    return vae


@pytest.mark.parametrize("module_name", ["helpers.models._edited_for_test", "notebook_models"])
def test_editing_a_models_train_step_misses_the_cache(tmp_path, monkeypatch, module_name):
    # a model class of the helpers (its module's source) and one from elsewhere, such as a
    # notebook (its methods' source)
    import sys

    monkeypatch.delitem(sys.modules, module_name, raising=False)
    calls = _count_fits(monkeypatch)
    train = dict(name="edited", settings={"seed": 0}, epochs=1, verbose=0)
    training.fit_or_load(_edited_model(tmp_path, module_name), X, **train)
    training.fit_or_load(_edited_model(tmp_path, module_name), X, **train)
    assert len(calls) == 1  # the same code: reloaded
    edited = _edited_model(tmp_path, module_name, edit="  # now different")
    training.fit_or_load(edited, X, **train)
    assert len(calls) == 2  # edited code: trained again
    assert len(list(config.data_dir("models").glob("edited-*.weights.h5"))) == 2


def test_the_code_fingerprint_covers_the_helpers_that_train_a_model():
    import inspect

    from helpers.models import losses

    vae = _model()
    fingerprint = training.code_fingerprint(vae)
    assert fingerprint == training.code_fingerprint(_model(seed=4))
    covered = training._training_modules({"helpers.models.autoencoders"})
    assert {"helpers.models.autoencoders", "helpers.models.losses"} <= covered
    assert "helpers.infra.config" not in covered  # paths and flags do not decide weights
    assert inspect.getsource(losses)  # the source that is hashed can be read


def test_a_py_dataset_hits_the_cache_and_is_told_apart_by_content(monkeypatch):
    class Batches(keras.utils.PyDataset):
        def __init__(self, x):
            super().__init__()
            self.x_data = x

        def __len__(self):
            return 4

        def __getitem__(self, index):
            return self.x_data[16 * index:16 * (index + 1)]

    calls = _count_fits(monkeypatch)
    for data in (Batches(X), Batches(X), Batches(X[::-1].copy())):
        training.fit_or_load(_model(), data, name="stream", epochs=1, verbose=0)
    assert len(calls) == 2  # a new object of the same content reloads; other content trains
    assert len(list(config.data_dir("models").glob("stream-*.weights.h5"))) == 2


def test_settings_known_only_by_a_memory_address_are_refused_and_optimizers_are_keyed():
    with pytest.raises(TypeError, match=r"settings\['thing'\].*memory address"):
        training.cache_key(_model(), {"thing": object()}, X)
    adam = {"opt": keras.optimizers.Adam(1e-3)}
    assert training.cache_key(_model(), adam, X) == training.cache_key(
        _model(), {"opt": keras.optimizers.Adam(1e-3)}, X)
    assert training.cache_key(_model(), adam, X) != training.cache_key(
        _model(), {"opt": keras.optimizers.Adam(1e-4)}, X)
    folder = training.run_directory("gan", {"opt": keras.optimizers.Adam(1e-3)})
    assert folder == training.run_directory("gan", {"opt": keras.optimizers.Adam(1e-3)})


def test_run_directory_keys_on_the_models_code_when_given(tmp_path, monkeypatch):
    import sys

    monkeypatch.delitem(sys.modules, "notebook_models", raising=False)
    same = training.run_directory("r", {"seed": 0},
                                  model=_edited_model(tmp_path, "notebook_models"))
    assert same == training.run_directory("r", {"seed": 0},
                                          model=_edited_model(tmp_path, "notebook_models"))
    assert same != training.run_directory("r", {"seed": 0}, model=_edited_model(
        tmp_path, "notebook_models", edit="  # edited"))
    with pytest.raises(TypeError, match="model must be a Keras model"):
        training.run_directory("r", {"seed": 0}, model="vae")


def test_run_directory_refuses_a_foreign_sub_folder_before_deleting_anything(monkeypatch):
    folder = training.run_directory("dcgan", {"seed": 0})
    (folder / "epoch-0001.weights.h5").write_text("x")
    (folder / "notes").mkdir()
    (folder / "notes" / "mine.txt").write_text("a user's file")
    monkeypatch.setenv("RETRAIN", "1")
    with pytest.raises(ValueError, match="notes"):
        training.run_directory("dcgan", {"seed": 0})
    assert (folder / "epoch-0001.weights.h5").exists()
    assert (folder / "notes" / "mine.txt").read_text() == "a user's file"


# ---------------------------------------------------------------- a finished training is kept
def test_cache_false_touches_no_folder(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GENERATIVE_DATA_DIR", str(blocker / "data"))  # cannot be created
    history = training.fit_or_load(_model(), X, name="t", cache=False, epochs=1, verbose=0)
    assert len(history["loss"]) == 1 and blocker.read_text() == "not a folder"


def _check_spare_copy(caught, epochs):
    import re

    (message,) = [str(w.message) for w in caught if "weight cache" in str(w.message)]
    spare = Path(re.search(r"saved to (\S+) instead", message).group(1))
    assert spare.parent == Path(tempfile.gettempdir())  # the test's own, not the system's
    (weights,) = spare.glob("t-*.weights.h5")
    reloaded = _model(seed=9)
    reloaded(X[:2])
    reloaded.load_weights(weights)
    history = json.loads(next(spare.glob("t-*.history.json")).read_text())
    assert len(history["loss"]) == epochs
    return reloaded


def test_a_data_folder_that_cannot_be_made_keeps_the_training_in_a_temporary_folder(
        tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # spare copies go there
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GENERATIVE_DATA_DIR", str(blocker / "data"))
    model = _model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        training.fit_or_load(model, X, name="t", epochs=2, verbose=0)
    reloaded = _check_spare_copy(caught, epochs=2)
    np.testing.assert_array_equal(reloaded.encode(X), model.encode(X))


def test_a_read_only_cache_folder_keeps_the_training_in_a_temporary_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # spare copies go there
    # every write into data/ fails as on a read-only file system, unlink included
    import errno

    from helpers.infra import files

    cache_dir = str(config.data_dir("models"))
    real_mkstemp, real_unlink = files.tempfile.mkstemp, Path.unlink

    def read_only(error_path):
        return OSError(errno.EROFS, "Read-only file system", str(error_path))

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and str(dir).startswith(cache_dir):
            raise read_only(dir)
        return real_mkstemp(*args, dir=dir, **kwargs)

    def unlink(self, missing_ok=False):
        if str(self).startswith(cache_dir):
            raise read_only(self)
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(files.tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(Path, "unlink", unlink)
    model = _model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        training.fit_or_load(model, X, name="t", epochs=3, verbose=0)
    monkeypatch.setattr(Path, "unlink", real_unlink)
    reloaded = _check_spare_copy(caught, epochs=3)
    np.testing.assert_array_equal(reloaded.encode(X), model.encode(X))
    assert not list(config.data_dir("models").iterdir())


def test_a_cut_off_history_file_is_named_in_the_error(tmp_path):
    (tmp_path / training.HISTORY_FILE).write_text('{"epoch": [1, 2')
    with pytest.raises(ValueError, match=f"{tmp_path.name}.*history.json.*not valid JSON"):
        training.read_epoch_history(tmp_path)


# ---------------------------------------------------------------- GAN checkpoints
def _gan(seed=0, optimizer=keras.optimizers.Adam, compiled=True):
    from helpers.models import gan

    keras.utils.set_random_seed(seed)
    model = gan.GAN(gan.build_generator(8, width=8), gan.build_discriminator(width=8), seed=seed)
    if compiled:
        model.compile(d_optimizer=optimizer(1e-3), g_optimizer=optimizer(1e-3))
    model.generator(np.zeros((1, 8), np.float32))
    model.discriminator(np.zeros((1, 28, 28, 1), np.float32))
    return model


def test_a_refused_checkpoint_leaves_the_model_exactly_as_it_was(tmp_path):
    training.save_checkpoint(_gan(), tmp_path, 3)  # Adam: moment slots
    other = _gan(seed=5, optimizer=keras.optimizers.SGD)  # no slots: only partly loadable
    other.fit(np.zeros((4, 28, 28, 1), np.float32), batch_size=4, epochs=1, verbose=0)
    variables = [*other.variables, *other.d_optimizer.variables, *other.g_optimizer.variables]
    before = [v.numpy().copy() for v in variables]
    with pytest.raises(ValueError, match="partly loaded"):
        training.restore_latest(other, tmp_path)
    for variable, value in zip(variables, before, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value)
    for path in tmp_path.iterdir():  # deleted as the message says: nothing left to resume
        path.unlink()
    assert training.restore_latest(other, tmp_path) == 0
    for variable, value in zip(variables, before, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value)


def test_restore_latest_given_a_checkpoint_file_names_the_folder_it_wants(tmp_path):
    path = training.save_checkpoint(_gan(), tmp_path, 2)
    with pytest.raises(ValueError, match="directory must be the folder"):
        training.restore_latest(_gan(), path)


def test_checkpoints_of_an_uncompiled_gan_say_to_compile_it(tmp_path):
    with pytest.raises(ValueError, match="gan must be compiled"):
        training.save_checkpoint(_gan(compiled=False), tmp_path, 1)
    training.save_checkpoint(_gan(), tmp_path, 1)
    with pytest.raises(ValueError, match="gan must be compiled"):
        training.restore_latest(_gan(compiled=False), tmp_path)


def test_steps_per_execution_leaves_training_bit_for_bit_the_same():
    # the notebooks run several updates per call to cut Keras's per-step overhead; the
    # updates, their order and their numbers must be those of one update per call
    x = np.random.default_rng(3).random((96, 6)).astype(np.float32)

    def train(steps_per_execution):
        config.set_seed(0)
        vae = autoencoders.VAE(builders.mlp_encoder(6, 2, hidden=(8,)),
                               builders.mlp_decoder(2, 6, hidden=(8,)), seed=0)
        vae.compile(optimizer=keras.optimizers.Adam(1e-2),
                    steps_per_execution=steps_per_execution)
        history = vae.fit(x, epochs=3, batch_size=16, verbose=0, validation_data=(x[:32],))
        return vae.get_weights(), history.history

    weights_one, history_one = train(1)
    for steps in (4, 7):  # a divisor of the 6 batches per epoch, and one that is not
        weights, history = train(steps)
        assert history == history_one
        for a, b in zip(weights, weights_one, strict=True):
            np.testing.assert_array_equal(a, b)


def test_steps_per_execution_leaves_gan_training_bit_for_bit_the_same():
    # the GAN draws its noise inside train_step from a seed generator: running several
    # updates per call must draw the same noise in the same order, and use_ema's average too
    from helpers.models import gan

    x = np.random.default_rng(4).uniform(-1, 1, (40, 28, 28, 1)).astype(np.float32)

    def train(steps_per_execution):
        config.set_seed(0)
        model = gan.GAN(gan.build_generator(8, width=8), gan.build_discriminator(width=8),
                        seed=0)
        model.compile(d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
                      g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5, use_ema=True,
                                                        ema_momentum=0.9),
                      steps_per_execution=steps_per_execution)
        history = model.fit(x, epochs=2, batch_size=8, verbose=0, shuffle=True)
        averaged = gan.averaged_generator(model, seed=0)
        return model.get_weights() + averaged.get_weights(), history.history

    weights_one, history_one = train(1)
    weights, history = train(3)  # 5 batches per epoch: not a multiple of 3
    assert history == history_one
    for a, b in zip(weights, weights_one, strict=True):
        np.testing.assert_array_equal(a, b)


def test_restore_latest_never_loads_a_checkpoint_past_the_training_asked_for(tmp_path):
    # a run asked for fewer epochs than the folder holds must not report the longer training
    first, second = _gan(seed=1), _gan(seed=2)
    training.save_checkpoint(first, tmp_path, 10)
    training.save_checkpoint(second, tmp_path, 20)
    model = _gan(seed=3)
    assert training.restore_latest(model, tmp_path, max_epoch=15) == 10
    for mine, theirs in zip(model.get_weights(), first.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert training.restore_latest(model, tmp_path, max_epoch=20) == 20
    for mine, theirs in zip(model.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    untouched = _gan(seed=4)
    before = untouched.get_weights()
    with pytest.raises(ValueError, match=r"epoch 10 on.*max_epoch=5.*retrain"):
        training.restore_latest(untouched, tmp_path, max_epoch=5)
    for mine, theirs in zip(untouched.get_weights(), before, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    with pytest.raises(ValueError, match="max_epoch"):
        training.restore_latest(untouched, tmp_path, max_epoch=0)


def test_random_draws_after_training_and_after_reloading_are_the_same():
    """A model's stochastic evaluations (here the VAE's sampled loss) give the same numbers
    whether fit_or_load trained it or reloaded it from the cache: an archive of trained
    weights reproduces the run that made it."""
    trained = _model()
    training.fit_or_load(trained, X, name="t", settings={"seed": 0}, epochs=3, verbose=0)
    loaded = _model(seed=1)
    training.fit_or_load(loaded, X, name="t", settings={"seed": 0}, epochs=3, verbose=0)
    np.testing.assert_array_equal(trained.encode(X), loaded.encode(X))
    first = [trained.evaluate(X, verbose=0, return_dict=True)["loss"] for _ in range(2)]
    second = [loaded.evaluate(X, verbose=0, return_dict=True)["loss"] for _ in range(2)]
    assert first == second and first[0] != first[1]  # still random, from the same start


def test_a_quiet_call_prints_nothing_when_it_trains_or_loads(capsys):
    """Many small models (the S-curve notebook's table) are cached without a progress bar
    or a message each."""
    first = training.fit_or_load(_model(), X, name="q", epochs=2, verbose=0, quiet=True)
    second = training.fit_or_load(_model(seed=1), X, name="q", epochs=2, verbose=0, quiet=True)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "" and first == second
    with pytest.raises(TypeError, match="quiet"):
        training.fit_or_load(_model(), X, name="q", epochs=2, verbose=0, quiet="yes")

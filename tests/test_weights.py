"""The weights archive: pack the weight cache, unpack it into an empty one, and the next
training reloads the very same weights; damaged archives, archives of other code and
unreachable URLs are refused with messages that say why."""

import hashlib
import io
import json
import tarfile

import keras
import numpy as np
import pytest

from helpers import training
from helpers.infra import config, weights
from helpers.models import autoencoders, builders

X = np.random.default_rng(1).random((32, 6)).astype(np.float32)


def _model(seed=0):
    config.set_seed(seed)
    vae = autoencoders.VAE(builders.mlp_encoder(6, 2, hidden=(8,)),
                           builders.mlp_decoder(2, 6, hidden=(8,)))
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    return vae


def _train(monkeypatch=None):
    calls = []
    if monkeypatch is not None:
        original = keras.Model.fit

        def counting(self, *args, **kwargs):
            calls.append(1)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(keras.Model, "fit", counting)
    model = _model()
    history = training.fit_or_load(model, X, name="small", settings={"seed": 0}, epochs=2,
                                   batch_size=8, verbose=0)
    return model, history, calls


def _switch_data_dir(tmp_path, monkeypatch, name):
    monkeypatch.setenv("GENERATIVE_DATA_DIR", str(tmp_path / name))
    return config.data_dir()


def test_an_unpacked_archive_is_reloaded_instead_of_trained(tmp_path, monkeypatch):
    trained, history, _ = _train()
    run = training.run_directory("gan", {"seed": 0}, model=_model())
    (run / "epoch-0001.weights.h5").write_bytes(b"checkpoint bytes")
    archive = weights.pack(tmp_path / "w.tar.gz")
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
        names = sorted(tar.getnames())
    stem = next(iter(p for p in manifest["files"] if p.endswith(".weights.h5")))
    assert manifest["files"][stem]["sha256"] == hashlib.sha256(
        (config.data_dir() / stem).read_bytes()).hexdigest()
    assert {"tensorflow", "keras", "commit"} <= set(manifest)
    assert "runs/" + run.name + "/epoch-0001.weights.h5" in names
    assert {record["name"] for record in manifest["models"].values()} == {"small", "gan"}
    record = next(r for r in manifest["models"].values() if r["name"] == "small")
    assert "helpers.models.autoencoders" in record["code"]

    fresh_root = _switch_data_dir(tmp_path, monkeypatch, "fresh")
    assert weights.unpack(str(archive))["added"] == len(manifest["files"])
    reloaded, history_again, calls = _train(monkeypatch)
    assert calls == [] and history_again == history  # loaded, not trained
    np.testing.assert_array_equal(reloaded.encode(X), trained.encode(X))
    assert (fresh_root / "runs" / run.name / "epoch-0001.weights.h5").read_bytes() == \
        b"checkpoint bytes"
    assert weights.unpack(str(archive)) == {"added": 0, "kept": len(manifest["files"]),
                                            "models": 2}  # nothing replaced


def _rewrite(archive, out, change):
    with tarfile.open(archive) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    change(members)
    with tarfile.open(out, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def test_a_damaged_archive_is_refused_and_nothing_is_unpacked(tmp_path, monkeypatch):
    _train()
    archive = weights.pack(tmp_path / "w.tar.gz")

    def damage(members):
        name = next(n for n in members if n.endswith(".weights.h5"))
        members[name] = members[name][:-10] + b"0123456789"

    damaged = _rewrite(archive, tmp_path / "damaged.tar.gz", damage)
    root = _switch_data_dir(tmp_path, monkeypatch, "fresh")
    with pytest.raises(SystemExit, match="SHA-256 .* damaged, nothing was unpacked"):
        weights.unpack(damaged)
    assert not list(root.rglob("*.h5"))

    def escape(members):
        members["../outside.txt"] = b"x"

    with pytest.raises(SystemExit, match="not one of its model files"):
        weights.unpack(_rewrite(archive, tmp_path / "escape.tar.gz", escape))
    assert not (tmp_path / "outside.txt").exists()


def test_an_archive_of_other_code_names_the_models_and_modules_that_differ(tmp_path,
                                                                          monkeypatch):
    _train()
    archive = weights.pack(tmp_path / "w.tar.gz")

    def other_code(members):
        manifest = json.loads(members["manifest.json"])
        for record in manifest["models"].values():
            record["code"]["helpers.models.losses"] = "0" * 16  # trained by another version
        members["manifest.json"] = json.dumps(manifest).encode()

    root = _switch_data_dir(tmp_path, monkeypatch, "fresh")
    with pytest.raises(SystemExit, match=r"other code[\s\S]*small: helpers.models.losses"):
        weights.unpack(_rewrite(archive, tmp_path / "other.tar.gz", other_code))
    assert not list(root.rglob("*.h5"))


def test_a_url_is_downloaded_and_an_unreachable_one_fails_fast_with_a_message(tmp_path):
    _train()
    archive = weights.pack(tmp_path / "w.tar.gz")
    assert weights.fetch(archive.as_uri()).read_bytes() == archive.read_bytes()
    with pytest.raises(SystemExit, match="could not download it .*offline"):
        weights.fetch("http://127.0.0.1:9/generative-weights.tar.gz", timeout=5)
    with pytest.raises(SystemExit, match="no such file"):
        weights.fetch(str(tmp_path / "missing.tar.gz"))


def test_packing_an_empty_cache_says_what_to_do():
    with pytest.raises(SystemExit, match="make run"):
        weights.pack()


def test_module_fingerprints_follow_the_source():
    import inspect

    from helpers.models import losses

    expected = hashlib.sha256(inspect.getsource(losses).encode()).hexdigest()[:16]
    assert weights.module_fingerprints(["helpers.models.losses", "helpers.nothing"]) == {
        "helpers.models.losses": expected, "helpers.nothing": "missing"}


def test_make_unpacks_the_weights_before_running_or_starting_jupyterlab():
    import subprocess

    root = config.REPO_ROOT
    stamp = ["-o", ".venv/.installed"]  # print the commands without installing anything
    for target in ("run", "lab"):
        lines = subprocess.run(["make", "-n", *stamp, target, "WEIGHTS=w.tar.gz"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.splitlines()
        unpack = [i for i, line in enumerate(lines) if "weights unpack 'w.tar.gz'" in line]
        start = [i for i, line in enumerate(lines) if "runner" in line or "jupyter" in line]
        assert unpack and start and unpack[0] < start[0]
    plain = subprocess.run(["make", "-n", *stamp, "run"], cwd=root, capture_output=True,
                           text=True, check=True).stdout
    assert "unpack" not in plain


def test_the_command_line_unpacks_without_tensorflow_start_up_chatter(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys

    _switch_data_dir(tmp_path, monkeypatch, "packed")
    _train()
    archive = weights.pack(tmp_path / "w.tar.gz")
    env = {**os.environ, "GENERATIVE_DATA_DIR": str(tmp_path / "fresh")}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    done = subprocess.run([sys.executable, "-m", "helpers.infra.weights", "unpack",
                           str(archive)], cwd=config.REPO_ROOT, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0 and "Unpacked 1 trained model" in done.stdout, done.stderr
    for chatter in ("oneDNN", "absl", "cuda", "I0000", "E0000"):
        assert chatter not in done.stderr, done.stderr


def test_unpack_reads_the_compressed_archive_front_to_back(tmp_path, monkeypatch):
    # a gzip stream cannot seek back: every backward step decompresses from the start again,
    # which made unpacking the course's archive (589 files) take 110 s instead of 10
    _switch_data_dir(tmp_path, monkeypatch, "packed")
    _train()
    for epoch in range(1, 6):
        run = training.run_directory("gan", {"seed": 0}, model=_model())
        (run / f"epoch-{epoch:04d}.weights.h5").write_bytes(bytes([epoch]) * 100)
    archive = weights.pack(tmp_path / "w.tar.gz")
    offsets = []
    original = tarfile.TarFile.extractfile

    def recording(self, member):
        offsets.append(member.offset)
        return original(self, member)

    monkeypatch.setattr(tarfile.TarFile, "extractfile", recording)
    _switch_data_dir(tmp_path, monkeypatch, "fresh")
    weights.unpack(str(archive))
    with tarfile.open(archive) as tar:
        files = len([m for m in tar.getmembers() if m.name != "manifest.json"])
    assert len(offsets) == files + 1  # the manifest, then every file once
    assert offsets[1:] == sorted(offsets[1:])

"""The checkerboard decoder is a normalised autoregressive distribution: checked by enumeration."""

import numpy as np
import pytest
from scipy import stats

from helpers.models import builders, checkerboard


def all_configurations(L):
    codes = np.arange(2 ** (L * L))
    bits = (codes[:, None] >> np.arange(L * L)) & 1
    return bits.astype("float32").reshape(-1, L, L, 1)


@pytest.mark.parametrize("L, base", [(2, 2), (4, 2), (8, 4), (40, 8)])
def test_stages_partition_the_lattice(L, base):
    stages = checkerboard.stage_masks(L, base)
    count = sum(mask.astype(int) for _, mask in stages)
    assert np.all(count == 1)
    assert stages[0][1].sum() == (L // base) ** 2
    assert len(stages) == 1 + 2 * int(np.log2(base))
    # the last stage's sites have all four nearest neighbours in earlier stages
    last = stages[-1][1]
    earlier = ~last
    for shift in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        assert np.all(np.roll(earlier, shift, axis=(0, 1))[last])


def test_stage_masks_bad_input():
    with pytest.raises(ValueError, match="base_stride"):
        checkerboard.stage_masks(40, 3)
    with pytest.raises(ValueError, match="base_stride"):
        checkerboard.stage_masks(12, 8)


@pytest.mark.parametrize("L, base", [(2, 2), (4, 2)])
def test_decoder_is_normalised(L, base):
    decoder = checkerboard.CheckerboardDecoder(L, latent_dim=2, base_stride=base, channels=4)
    rng = np.random.default_rng(0)
    for weights in decoder.weights:  # random, not small, weights: a non-trivial distribution
        weights.assign(rng.normal(0, 0.7, weights.shape).astype("float32"))
    x = all_configurations(L)
    for z0 in ([0.0, 0.0], [1.5, -0.7]):
        z = np.tile(np.array(z0, dtype="float32"), (len(x), 1))
        log_p = -np.asarray(decoder.nll(z, x))
        assert np.exp(log_p).sum() == pytest.approx(1.0, abs=1e-4)


def test_samples_follow_the_decoder_distribution():
    L = 2
    decoder = checkerboard.CheckerboardDecoder(L, latent_dim=1, base_stride=2, channels=4)
    rng = np.random.default_rng(1)
    for weights in decoder.weights:
        weights.assign(rng.normal(0, 0.7, weights.shape).astype("float32"))
    x = all_configurations(L)
    p = np.exp(-np.asarray(decoder.nll(np.full((len(x), 1), 0.3, "float32"), x), dtype=float))
    n = 20_000
    draws = decoder.sample(np.full((n, 1), 0.3, "float32"), seed=2)[..., 0]
    codes = (draws.reshape(n, -1).astype(int) << np.arange(L * L)).sum(axis=1)
    observed = np.bincount(codes, minlength=2 ** (L * L))
    assert p.sum() == pytest.approx(1.0, abs=1e-5)
    assert stats.chisquare(observed, p / p.sum() * observed.sum()).pvalue > 1e-3
    assert np.array_equal(draws, decoder.sample(np.full((n, 1), 0.3, "float32"), seed=2)[..., 0])


def test_vae_trains_and_reloads(tmp_path):
    import keras

    L = 8
    x = (np.random.default_rng(0).random((64, L, L, 1)) < 0.5).astype("float32")
    encoder = builders.conv_encoder((L, L, 1), 2, filters=(4,), dense=8)
    decoder = checkerboard.CheckerboardDecoder(L, 2, base_stride=4, channels=4)
    vae = checkerboard.CheckerboardVAE(encoder, decoder, seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = vae.fit(x, epochs=5, batch_size=32, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))
    assert history["reconstruction"][-1] < history["reconstruction"][0]
    vae.save_weights(tmp_path / "vae.weights.h5")
    other = checkerboard.CheckerboardVAE(
        builders.conv_encoder((L, L, 1), 2, filters=(4,), dense=8),
        checkerboard.CheckerboardDecoder(L, 2, base_stride=4, channels=4), seed=0)
    other.load_weights(tmp_path / "vae.weights.h5")
    z = np.zeros((3, 2), "float32")
    assert np.array_equal(vae.decode(z, seed=5), other.decode(z, seed=5))
    assert vae.decode(z).shape == (3, L, L, 1)
    with pytest.raises(TypeError, match="decoder"):
        checkerboard.CheckerboardVAE(encoder, builders.conv_decoder(2, (L, L, 1), filters=(4,)))

"""The checkerboard decoder is a normalised autoregressive distribution: checked by enumeration."""

import numpy as np
import pytest
import tensorflow as tf
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


@pytest.mark.parametrize("L, base", [(4, 2), (8, 4), (40, 8)])
def test_split_centres_draws_no_two_centres_that_share_an_edge_site_together(L, base):
    plain = checkerboard.stage_masks(L, base)
    split = checkerboard.stage_masks(L, base, split_centres=True)
    assert np.all(sum(mask.astype(int) for _, mask in split) == 1)
    assert len(split) == 1 + 3 * int(np.log2(base))
    for (s, centres), (_, first), (_, second) in zip(plain[1::2], split[1::3], split[2::3],
                                                     strict=True):
        assert np.array_equal(first | second, centres)
        assert abs(int(first.sum()) - int(second.sum())) <= 1
        if (L // (2 * s)) % 2 == 0:  # an even number of centres per row: no seam
            for shift in ((0, 2 * s), (2 * s, 0)):  # the centres across each edge site
                assert not np.any(np.roll(first, shift, axis=(0, 1)) & first)
                assert not np.any(np.roll(second, shift, axis=(0, 1)) & second)


def ising_stage_energy(L, stages, temperature):
    """Mean energy per spin of a model that draws the first stage from its exact marginal
    (as the latent code would fix the coarse grid) and the sites of each later stage
    independently, each from its exact Ising conditional given all earlier stages
    (enumeration of all states); and the exact mean energy."""
    spins = 2 * all_configurations(L)[..., 0].astype(int) - 1
    energy = -(spins * np.roll(spins, 1, 1) + spins * np.roll(spins, 1, 2)).sum(axis=(1, 2))
    p = np.exp(-energy / temperature)
    p /= p.sum()
    flat = (spins.reshape(len(spins), -1) > 0).astype(np.int64)

    def marginal(mask):  # p(x_mask) for every state
        code = flat[:, mask] @ (1 << np.arange(mask.sum()))
        table = np.bincount(code, weights=p, minlength=1 << mask.sum())
        return table[code]

    known = stages[0][1].ravel().copy()
    q = marginal(known)
    for _, mask in stages[1:]:
        for site in np.flatnonzero(mask.ravel()):
            with_site = known.copy()
            with_site[site] = True
            q *= marginal(with_site) / marginal(known)
        known |= mask.ravel()
    assert q.sum() == pytest.approx(1.0)
    return (q * energy).sum() / L**2, (p * energy).sum() / L**2


@pytest.mark.parametrize("temperature", [3.0, 4.0])
def test_split_centres_removes_the_energy_bias_of_independent_centres(temperature):
    # exact conditionals, 4 x 4 torus: only the factorisation into stages can bias the energy
    plain, exact = ising_stage_energy(4, checkerboard.stage_masks(4, 2), temperature)
    split, _ = ising_stage_energy(4, checkerboard.stage_masks(4, 2, True), temperature)
    assert plain > exact * (1 - 0.015)  # too disordered by more than 1.5%
    assert split == pytest.approx(exact, rel=0.002)


def test_stage_masks_bad_input():
    with pytest.raises(ValueError, match="base_stride"):
        checkerboard.stage_masks(40, 3)
    with pytest.raises(ValueError, match="base_stride"):
        checkerboard.stage_masks(12, 8)
    with pytest.raises(TypeError, match="split_centres"):
        checkerboard.stage_masks(8, 4, split_centres="yes")


@pytest.mark.parametrize("L, base, split", [(2, 2, False), (4, 2, False), (4, 2, True)])
def test_decoder_is_normalised(L, base, split):
    decoder = checkerboard.CheckerboardDecoder(L, latent_dim=2, base_stride=base, channels=4,
                                               split_centres=split)
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

    keras.utils.set_random_seed(0)
    L = 8
    # ordered configurations (all up or all down), which the decoder can learn to predict
    x = np.repeat(np.random.default_rng(0).random((64, 1, 1, 1)) < 0.5, L, axis=1)
    x = np.repeat(x, L, axis=2).astype("float32")
    encoder = builders.conv_encoder((L, L, 1), 2, filters=(4,), dense=8)
    decoder = checkerboard.CheckerboardDecoder(L, 2, base_stride=4, channels=4)
    vae = checkerboard.CheckerboardVAE(encoder, decoder, seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = vae.fit(x, epochs=40, batch_size=32, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))
    # 8 x 8 ordered spins: log(2) nats for the up-or-down choice, against 64 log(2) at the start
    assert history["reconstruction"][-1] < history["reconstruction"][0] / 4
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


@pytest.fixture
def memory_optimizer_on():
    """Seeded as the notebooks are, but with TensorFlow's memory optimiser back on."""
    from helpers.infra.config import set_memory_optimizer, set_seed

    set_seed(0)
    set_memory_optimizer(True)
    yield
    set_memory_optimizer(False)


def test_graph_mode_gradients_are_bitwise_reproducible(memory_optimizer_on):
    """The latent code feeds every stage; in a compiled step TensorFlow's memory optimiser
    may turn the sum of its many gradient contributions into an accumulation in arrival
    order, which differs from call to call. ``config.set_seed`` switches that optimiser off,
    but the decoder must not need it: with the optimiser on, the same step on the same data
    must still give the same bits every time (the decoder before ``fan_out`` failed this)."""
    import hashlib

    import keras
    import tensorflow as tf

    L = 40
    x = (np.random.default_rng(0).random((100, L, L, 1)) < 0.5).astype("float32")
    encoder = builders.conv_encoder((L, L, 1), 2, filters=(16, 32), dense=64)
    decoder = checkerboard.CheckerboardDecoder(L, 2, base_stride=8, channels=16,
                                               split_centres=True)
    variables = encoder.trainable_variables + decoder.trainable_variables

    def gradients():
        with tf.GradientTape() as tape:
            loss = keras.ops.mean(decoder.nll(encoder(x)[0], x))
        return tape.gradient(loss, variables)

    def digest(grads):
        return hashlib.sha256(b"".join(g.numpy().tobytes() for g in grads
                                       if g is not None)).hexdigest()

    compiled = tf.function(gradients)
    first = compiled()
    # the encoder's gradients, reached through z, are the ones that varied
    assert first[0] is not None and float(tf.reduce_max(tf.abs(first[0]))) > 0
    assert {digest(compiled()) for _ in range(24)} == {digest(first)}


@pytest.mark.parametrize("height, width", [(4, 4), (3, 5), (1, 2)])
def test_periodic_pad_matches_numpy_wrap_at_every_width(height, width):
    # a pad wider than the lattice wraps around it more than once
    x = np.random.default_rng(0).normal(size=(2, height, width, 3)).astype("float32")
    for pad in range(1, 10):
        expected = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="wrap")
        got = np.asarray(checkerboard.PeriodicPad2D(pad)(x))
        np.testing.assert_array_equal(got, expected)


def test_periodic_pad_bad_input():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="pad"):
            checkerboard.PeriodicPad2D(bad)
    with pytest.raises(ValueError, match=r"\(batch, height, width, channels\)"):
        checkerboard.PeriodicPad2D(1)(np.zeros((4, 4), "float32"))


def test_decoder_and_vae_bad_input():
    import keras

    decoder = checkerboard.CheckerboardDecoder(4, latent_dim=2, base_stride=2, channels=2)
    z, x = np.zeros((3, 2)), np.zeros((3, 4, 4, 1))
    for kwargs, match in [({"batch_size": 0}, "batch_size"), ({"batch_size": 1.5}, "batch_size"),
                          ({"seed": -1}, "seed"), ({"seed": None}, "seed")]:
        with pytest.raises((ValueError, TypeError), match=match):
            decoder.sample(z, **kwargs)
    with pytest.raises(ValueError, match=r"z must have shape \(n, 2\)"):
        decoder.nll(np.zeros((3, 3)), x)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 4, 4, 1\)"):
        decoder.nll(z, np.zeros((3, 5, 5, 1)))
    with pytest.raises(ValueError, match="channels"):
        checkerboard.CheckerboardDecoder(4, 2, base_stride=2, channels=True)
    encoder = builders.conv_encoder((4, 4, 1), 2, filters=(2,), dense=4)
    with pytest.raises(ValueError, match="latent_dim"):
        checkerboard.CheckerboardVAE(builders.conv_encoder((4, 4, 1), 3, filters=(2,), dense=4),
                                     decoder)
    with pytest.raises(ValueError, match=r"encoder.*\(4, 4, 1\)"):
        checkerboard.CheckerboardVAE(builders.conv_encoder((8, 8, 1), 2, filters=(2,), dense=4),
                                     decoder)
    vae = checkerboard.CheckerboardVAE(encoder, decoder, seed=0)
    for kwargs, match in [({"seed": None}, "seed"), ({"seed": -1}, "seed"), ({"n": 0}, "n")]:
        with pytest.raises((ValueError, TypeError), match=match):
            vae.generate(**{"n": 2, **kwargs})
    # spins are 0 or 1: grey values have no autoregressive meaning
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    with pytest.raises(ValueError, match="x must be binary"):
        vae.fit(np.full((4, 4, 4, 1), 0.5, "float32"), epochs=1, verbose=0)


def test_nll_takes_lists_and_float64_like_float32():
    decoder = checkerboard.CheckerboardDecoder(2, latent_dim=1, base_stride=2, channels=2)
    x = all_configurations(2)
    z = np.full((len(x), 1), 0.3, "float32")
    expected = np.asarray(decoder.nll(z, x))
    np.testing.assert_array_equal(np.asarray(decoder.nll(z.astype("float64").tolist(),
                                                         x.astype("float64"))), expected)


def _numpy_conv3x3_periodic(h, kernel, bias):
    """3x3 convolution of (n, g, g, c) with wrap-around padding, in NumPy."""
    padded = np.pad(h, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="wrap")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))
    return np.einsum("nijcuv,uvcd->nijd", windows, kernel) + bias


def _numpy_nll(decoder, z, x, values=None):
    """-log p(x | z) from the decoder's weights in NumPy (float64), every stage network
    written out on its whole grid: an independent reference for the teacher-forced pass.
    ``values`` maps a variable's path to float64 values to use instead of its own."""
    values = values or {}

    def w(layer):
        return [np.asarray(values.get(v.path, v), dtype=np.float64)
                for v in (layer.kernel, layer.bias)]

    def bce(target, logits):
        return np.logaddexp(0.0, logits) - target * logits

    x01 = x[..., 0].astype(np.float64)
    b = decoder.base_stride
    k, c = w(decoder.base_hidden)
    k2, c2 = w(decoder.base_logits)
    n0 = decoder.L // b
    base = (np.maximum(z @ k + c, 0) @ k2 + c2).reshape(-1, n0, n0)
    total = bce(x01[:, ::b, ::b], base).sum(axis=(1, 2))
    known = decoder.stages[0][1].copy()
    for net, (s, mask) in zip(decoder.nets, decoder.stages[1:], strict=True):
        y = x01[:, ::s, ::s]
        known_grid = known[::s, ::s].astype(np.float64)
        inputs = np.stack([(2 * y - 1) * known_grid, np.broadcast_to(known_grid, y.shape)], -1)
        film_k, film_c = w(net.film)
        scale, shift = np.split((z @ film_k + film_c)[:, None, None, :], 2, axis=-1)
        h = _numpy_conv3x3_periodic(inputs, *w(net.conv1)) * (1 + scale) + shift
        h = np.maximum(_numpy_conv3x3_periodic(np.maximum(h, 0), *w(net.conv2)), 0)
        out_k, out_c = w(net.out)
        gain_k, gain_c = w(net.gain)
        logits = (h @ out_k[0, 0] + out_c)[..., 0] * np.exp(z @ gain_k + gain_c)[:, :, None]
        total = total + (bce(y, logits) * mask[::s, ::s]).sum(axis=(1, 2))
        known |= mask
    return total


def _random_decoder_and_batch(L, base, split, n, rng):
    """A decoder with random weights N(0, 0.5^2), ``n`` fair-coin configurations, their z."""
    decoder = checkerboard.CheckerboardDecoder(L, latent_dim=2, base_stride=base, channels=4,
                                               split_centres=split)
    for weights in decoder.weights:
        weights.assign(rng.normal(0, 0.5, weights.shape).astype("float32"))
    x = (rng.random((n, L, L, 1)) < 0.5).astype("float32")
    return decoder, x, rng.normal(size=(n, 2)).astype("float32")


@pytest.mark.parametrize("L, base, split", [(8, 4, False), (8, 4, True), (16, 8, True),
                                            (12, 4, True)])
def test_nll_matches_every_stage_evaluated_on_its_whole_grid(L, base, split):
    decoder, x, z = _random_decoder_and_batch(L, base, split, 6, np.random.default_rng(3))
    np.testing.assert_allclose(np.asarray(decoder.nll(z, x)), _numpy_nll(decoder, z, x),
                               rtol=1e-5)


@pytest.mark.parametrize("L, base, split", [(8, 4, True), (12, 4, True)])
def test_nll_gradient_matches_central_differences_of_the_whole_grid_reference(L, base, split):
    # the stage networks pad their input once and take the second convolution's periodic
    # border from the first; the gradient must still count each site once, as the reference
    # that pads before every convolution does
    rng = np.random.default_rng(5)
    decoder, x, z = _random_decoder_and_batch(L, base, split, 4, rng)
    variables = decoder.trainable_weights
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(decoder.nll(z, x))
    gradients = tape.gradient(loss, variables)
    start = [np.asarray(v, dtype=np.float64) for v in variables]
    eps = 1e-6  # float64 weights: small enough that no ReLU changes side
    for _ in range(3):
        direction = [rng.normal(size=w.shape) for w in start]
        sides = [_numpy_nll(decoder, z, x, values={
            v.path: w + sign * eps * d for v, w, d in zip(variables, start, direction,
                                                           strict=True)}).sum()
            for sign in (1, -1)]
        numeric = (sides[0] - sides[1]) / (2 * eps)
        analytic = sum(float(np.sum(np.asarray(g) * d))
                       for g, d in zip(gradients, direction, strict=True))
        assert analytic == pytest.approx(numeric, rel=1e-4)

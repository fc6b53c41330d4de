"""DCGAN: shapes and ranges, the losses against hand-computed values, one training step,
and a checkpoint round trip that resumes where it stopped."""

import math

import keras
import numpy as np
import pytest

from helpers import training
from helpers.infra import config
from helpers.models import gan


def make_gan(seed=0):
    keras.utils.set_random_seed(seed)
    model = gan.GAN(gan.build_generator(100), gan.build_discriminator(), seed=seed)
    model.compile(d_optimizer=keras.optimizers.Adam(1e-4), g_optimizer=keras.optimizers.Adam(1e-4))
    return model


def test_generator_and_discriminator_shapes_and_ranges():
    generator, discriminator = gan.build_generator(100), gan.build_discriminator()
    z = np.random.default_rng(0).standard_normal((7, 100)).astype(np.float32) * 10
    images = np.asarray(generator(z, training=False))
    assert images.shape == (7, 28, 28, 1)
    assert images.min() >= -1 and images.max() <= 1
    logits = np.asarray(discriminator(images, training=False))
    assert logits.shape == (7, 1)
    assert generator.get_layer(index=1).units == 7 * 7 * 256
    with pytest.raises(ValueError, match="latent_dim"):
        gan.build_generator(0)


def test_widths_set_every_layer_and_bad_widths_are_named():
    generator = gan.build_generator(8, width=16)
    channels = [layer.filters for layer in generator.layers if hasattr(layer, "filters")]
    assert generator.get_layer(index=1).units == 7 * 7 * 16 and channels == [8, 4, 1]
    discriminator = gan.build_discriminator(width=8)
    assert [layer.filters for layer in discriminator.layers if hasattr(layer, "filters")] == [8, 16]
    with pytest.raises(ValueError, match="multiple of 4"):
        gan.build_generator(8, width=6)
    for bad in (0, -4, 2.5, "64"):
        with pytest.raises((ValueError, TypeError), match="width"):
            gan.build_generator(8, width=bad)
        with pytest.raises((ValueError, TypeError), match="width"):
            gan.build_discriminator(width=bad)


def test_losses_against_hand_computed_values():
    real = np.array([[2.0], [0.0]], dtype=np.float32)
    fake = np.array([[-1.0], [3.0]], dtype=np.float32)
    # -log sigmoid(2) = log(1 + e^-2); -log sigmoid(0) = log 2; -log(1 - sigmoid(x)) = log(1 + e^x)
    d_expected = (math.log1p(math.exp(-2)) + math.log(2)) / 2 \
        + (math.log1p(math.exp(-1)) + math.log1p(math.exp(3))) / 2
    g_expected = (math.log1p(math.exp(1)) + math.log1p(math.exp(-3))) / 2
    assert float(gan.discriminator_loss(real, fake)) == pytest.approx(d_expected, rel=1e-6)
    assert float(gan.generator_loss(fake)) == pytest.approx(g_expected, rel=1e-6)
    # a discriminator that cannot tell: both halves cost log 2
    zeros = np.zeros((4, 1), dtype=np.float32)
    assert float(gan.discriminator_loss(zeros, zeros)) == pytest.approx(2 * math.log(2))


def test_train_step_reports_losses_and_scores():
    model = make_gan()
    x = np.random.default_rng(1).uniform(-1, 1, (64, 28, 28, 1)).astype(np.float32)
    logs = model.fit(x, batch_size=32, epochs=1, verbose=0).history
    assert set(logs) == {"d_loss", "g_loss", "real_score", "fake_score"}
    assert 0 < logs["real_score"][0] < 1 and 0 < logs["fake_score"][0] < 1
    assert logs["d_loss"][0] > 0 and logs["g_loss"][0] > 0
    out = model.generate(5, seed=3)
    assert out.shape == (5, 28, 28, 1)
    np.testing.assert_array_equal(out, model.generate(5, seed=3))


def test_checkpoint_round_trip_resumes_training(tmp_path):
    x = np.random.default_rng(2).uniform(-1, 1, (64, 28, 28, 1)).astype(np.float32)
    model = make_gan()
    callback = training.CheckpointEvery(tmp_path, every=2, keep=2)
    model.fit(x, batch_size=32, epochs=3, verbose=0, callbacks=[callback])
    assert [p.name for p in sorted(tmp_path.glob("epoch-*"))] == \
        ["epoch-0002.weights.h5", "epoch-0003.weights.h5"]
    assert training.latest_checkpoint(tmp_path)[0] == 3

    fresh = make_gan(seed=5)
    fresh.generator(np.zeros((1, 100), np.float32))
    fresh.discriminator(np.zeros((1, 28, 28, 1), np.float32))
    assert training.restore_latest(fresh, tmp_path) == 3
    for a, b in zip(model.weights, fresh.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(fresh.d_optimizer.iterations) == int(model.d_optimizer.iterations) == 6
    for a, b in zip(model.g_optimizer.variables, fresh.g_optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    # resuming continues the epoch count and the optimizer steps
    fresh.fit(x, batch_size=32, epochs=5, initial_epoch=3, verbose=0,
              callbacks=[training.CheckpointEvery(tmp_path, every=2, keep=2)])
    assert training.latest_checkpoint(tmp_path)[0] == 5
    assert int(fresh.g_optimizer.iterations) == 10


def test_restore_without_checkpoint_and_from_a_corrupt_file(tmp_path):
    model = make_gan()
    model.generator(np.zeros((1, 100), np.float32))
    model.discriminator(np.zeros((1, 28, 28, 1), np.float32))
    assert training.restore_latest(model, tmp_path) == 0
    (tmp_path / "epoch-0004.weights.h5").write_bytes(b"not an hdf5 file")
    with pytest.raises(ValueError, match="epoch-0004"):
        training.restore_latest(model, tmp_path)


def test_checkpoints_sort_by_epoch_number_past_9999(tmp_path):
    model = make_gan()
    model.generator(np.zeros((1, 100), np.float32))
    model.discriminator(np.zeros((1, 28, 28, 1), np.float32))
    for epoch in (9_998, 9_999, 10_000):
        training.save_checkpoint(model, tmp_path, epoch)
    assert training.latest_checkpoint(tmp_path)[0] == 10_000
    saver = training.CheckpointEvery(tmp_path, every=1, keep=2)
    saver.set_model(model)
    saver._save(10_001)
    assert [e for e, _ in training.checkpoints(tmp_path)] == [10_000, 10_001]


def test_a_checkpoint_whose_optimizer_state_is_skipped_raises(tmp_path):
    model = make_gan()
    model.generator(np.zeros((1, 100), np.float32))
    model.discriminator(np.zeros((1, 28, 28, 1), np.float32))
    path = training.save_checkpoint(model, tmp_path, 3)
    other = make_gan()  # a different optimizer: plain SGD has no moment slots
    other.compile(d_optimizer=keras.optimizers.SGD(1e-3), g_optimizer=keras.optimizers.SGD(1e-3))
    other.generator(np.zeros((1, 100), np.float32))
    other.discriminator(np.zeros((1, 28, 28, 1), np.float32))
    with pytest.raises(ValueError, match=f"{path.name}.*partly loaded"):
        training.restore_latest(other, tmp_path)


@pytest.mark.parametrize("scale, match", [(255.0, r"\[-1, 1\]"), (float("nan"), "NaN")])
def test_fit_checks_the_images_of_every_input_type(scale, match):
    import tensorflow as tf

    model = make_gan()
    images = np.full((8, 28, 28, 1), scale, np.float32)
    for data in (images, tf.data.Dataset.from_tensor_slices(images).batch(4)):
        with pytest.raises(tf.errors.InvalidArgumentError, match=match):
            model.fit(data, batch_size=None if not isinstance(data, np.ndarray) else 4,
                      epochs=1, verbose=0)


def test_averaged_generator_holds_the_moving_average_and_fresh_batch_statistics():
    keras.utils.set_random_seed(0)
    model = gan.GAN(gan.build_generator(8, width=16), gan.build_discriminator(width=8), seed=0)
    model.compile(d_optimizer=keras.optimizers.Adam(1e-2),
                  g_optimizer=keras.optimizers.Adam(1e-2))
    with pytest.raises(ValueError, match="use_ema"):  # no average kept
        gan.averaged_generator(model)
    model.compile(d_optimizer=keras.optimizers.Adam(1e-2),
                  g_optimizer=keras.optimizers.Adam(1e-2, use_ema=True, ema_momentum=0.9))
    untrained = gan.averaged_generator(model, noise=64)  # no update yet: the weights themselves
    for want, got in zip(model.generator.get_weights(), untrained.get_weights()[:1], strict=False):
        np.testing.assert_array_equal(got, want)
    images = np.random.default_rng(0).uniform(-1, 1, (16, 28, 28, 1)).astype(np.float32)
    steps = []  # the generator's weights after each update
    for _ in range(4):
        model.train_on_batch(images)
        steps.append([v.numpy().copy() for v in model.generator.trainable_variables])
    # by hand: the first update's weights, then average <- 0.9 average + 0.1 weights
    expected = steps[0]
    for weights in steps[1:]:
        expected = [0.9 * a + 0.1 * w for a, w in zip(expected, weights, strict=True)]
    averaged = gan.averaged_generator(model, noise=512, seed=3)
    for want, got in zip(expected, averaged.trainable_variables, strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
    for raw, now in zip(steps[-1], model.generator.trainable_variables, strict=True):
        np.testing.assert_array_equal(raw, now.numpy())  # the trained generator is untouched
    # the first batch normalisation's statistics are those of the averaged dense layer's
    # output over the same 512 noise vectors, computed here with NumPy
    z = np.random.default_rng(3).standard_normal((512, 8)).astype(np.float32)
    dense = averaged.get_layer(index=1)
    h = z @ dense.kernel.numpy()
    norm = next(layer for layer in averaged.layers
                if isinstance(layer, keras.layers.BatchNormalization))
    np.testing.assert_allclose(norm.moving_mean.numpy(), h.mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(norm.moving_variance.numpy(), h.var(axis=0), rtol=1e-4, atol=1e-5)
    assert norm.momentum == 0.99  # restored after the pass
    with pytest.raises((ValueError, TypeError), match="noise"):
        gan.averaged_generator(model, noise=0)
    with pytest.raises((ValueError, TypeError), match="seed"):
        gan.averaged_generator(model, seed=-1)
    with pytest.raises(ValueError, match="model"):
        gan.averaged_generator(model.generator)


def test_keeping_the_average_leaves_the_training_bit_for_bit_the_same():
    # the notebook's last generator is the one trained without the average
    def trained(use_ema):
        config.set_seed(0)
        model = gan.GAN(gan.build_generator(8, width=16), gan.build_discriminator(width=8),
                        seed=0)
        model.compile(d_optimizer=keras.optimizers.Adam(1e-3),
                      g_optimizer=keras.optimizers.Adam(1e-3, use_ema=use_ema,
                                                        ema_momentum=0.9))
        images = np.random.default_rng(0).uniform(-1, 1, (64, 28, 28, 1)).astype(np.float32)
        model.fit(images, batch_size=16, epochs=3, shuffle=True, verbose=0)
        return model.generator.get_weights() + model.discriminator.get_weights()

    for plain, averaged in zip(trained(False), trained(True), strict=True):
        np.testing.assert_array_equal(plain, averaged)


def _small_ema_gan():
    keras.utils.set_random_seed(0)
    model = gan.GAN(gan.build_generator(8, width=16), gan.build_discriminator(width=8), seed=0)
    model.compile(d_optimizer=keras.optimizers.Adam(1e-2),
                  g_optimizer=keras.optimizers.Adam(1e-2, use_ema=True, ema_momentum=0.9))
    model.generator(np.zeros((1, 8), np.float32))
    model.discriminator(np.zeros((1, 28, 28, 1), np.float32))
    return model


@pytest.mark.parametrize("save_first", [False, True])
def test_averaged_generator_before_any_update_is_the_generator_bit_for_bit(tmp_path, save_first):
    # save_checkpoint builds the optimizer before any update, and Keras creates the average
    # slots as zeros: they hold the weights only from the first update on
    model = _small_ema_gan()
    if save_first:
        training.save_checkpoint(model, tmp_path, 1)
        assert model.g_optimizer.built and int(model.g_optimizer.iterations) == 0
    averaged = gan.averaged_generator(model, noise=64)
    for want, got in zip(model.generator.trainable_variables, averaged.trainable_variables,
                         strict=True):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    # saved before training, then trained: the average is the first update's weights
    images = np.random.default_rng(0).uniform(-1, 1, (16, 28, 28, 1)).astype(np.float32)
    model.train_on_batch(images)
    first = [v.numpy().copy() for v in model.generator.trainable_variables]
    averaged = gan.averaged_generator(model, noise=64)
    for want, got in zip(first, averaged.trainable_variables, strict=True):
        np.testing.assert_array_equal(got.numpy(), want)


def test_gan_rejects_parts_and_seeds_it_cannot_use():
    generator, discriminator = gan.build_generator(8, width=16), gan.build_discriminator(width=8)
    with pytest.raises(TypeError, match="generator must be a keras.Model"):
        gan.GAN("generator", discriminator)
    with pytest.raises(TypeError, match="discriminator must be a keras.Model"):
        gan.GAN(generator, None)
    # a discriminator in the generator's place: its (n, 1) logits are not (28, 28, 1) images
    with pytest.raises(ValueError, match=r"generator must map noise.*\(n, 28, 28, 1\)"):
        gan.GAN(gan.build_discriminator(width=8), discriminator)
    for bad in (-1, 1.5, True):
        with pytest.raises((ValueError, TypeError), match="seed"):
            gan.GAN(generator, discriminator, seed=bad)


def test_compile_takes_two_separate_optimizers_or_their_names():
    model = gan.GAN(gan.build_generator(8, width=16), gan.build_discriminator(width=8), seed=0)
    for bad in (None, 3, "no-such-optimizer"):
        with pytest.raises(TypeError, match="d_optimizer"):
            model.compile(d_optimizer=bad, g_optimizer=keras.optimizers.Adam(1e-3))
        with pytest.raises(TypeError, match="g_optimizer"):
            model.compile(d_optimizer=keras.optimizers.Adam(1e-3), g_optimizer=bad)
    shared = keras.optimizers.Adam(1e-3)
    with pytest.raises(ValueError, match="two optimizers"):
        model.compile(d_optimizer=shared, g_optimizer=shared)
    model.compile(d_optimizer="adam", g_optimizer="sgd")
    assert isinstance(model.d_optimizer, keras.optimizers.Adam)
    assert isinstance(model.g_optimizer, keras.optimizers.SGD)


def test_generate_checks_seed_and_batch_size():
    model = gan.GAN(gan.build_generator(8, width=16), gan.build_discriminator(width=8), seed=0)
    for kwargs, match in [({"seed": -1}, "seed"), ({"seed": 1.5}, "seed"),
                          ({"seed": None}, "seed"), ({"batch_size": 0}, "batch_size"),
                          ({"batch_size": 2.5}, "batch_size")]:
        with pytest.raises((ValueError, TypeError), match=match):
            model.generate(3, **kwargs)


def test_losses_take_lists_and_integer_logits():
    # the hand-computed values of test_losses_against_hand_computed_values, as lists
    d_expected = (math.log1p(math.exp(-2)) + math.log(2)) / 2 \
        + (math.log1p(math.exp(-1)) + math.log1p(math.exp(3))) / 2
    assert float(gan.discriminator_loss([[2.0], [0.0]], [[-1.0], [3.0]])) == pytest.approx(
        d_expected, rel=1e-6)
    assert float(gan.generator_loss(np.array([[1], [-3]]))) == pytest.approx(
        (math.log1p(math.exp(-1)) + math.log1p(math.exp(3))) / 2, rel=1e-6)
    with pytest.raises(ValueError, match="fake_logits"):
        gan.generator_loss(np.zeros((0, 1), np.float32))

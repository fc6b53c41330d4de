import numpy as np
import pytest

from helpers.models import builders


def test_mlp_pair_shapes():
    enc = builders.mlp_encoder((28, 28), 2, hidden=(64, 32))
    dec = builders.mlp_decoder(2, (28, 28), hidden=(64, 32))
    z_mean, z_log_var = enc(np.zeros((3, 28, 28), dtype=np.float32))
    assert z_mean.shape == z_log_var.shape == (3, 2)
    out = dec(z_mean)
    assert out.shape == (3, 28, 28)
    assert np.all((out.numpy() >= 0) & (out.numpy() <= 1))  # sigmoid output
    # the decoder mirrors the encoder's widths
    assert [layer.units for layer in dec.layers[1:3]] == [32, 64]


def test_deterministic_encoder_has_one_output():
    enc = builders.mlp_encoder(10, 3, variational=False)
    assert enc(np.zeros((2, 10), dtype=np.float32)).shape == (2, 3)


def test_dropout_layers_are_added():
    enc = builders.mlp_encoder(10, 2, hidden=(8, 8), dropout=0.2)
    assert sum(type(layer).__name__ == "Dropout" for layer in enc.layers) == 2


def test_conv_pair_shapes():
    enc = builders.conv_encoder((36, 36, 1), 3, filters=(16, 32))
    dec = builders.conv_decoder(3, (36, 36, 1), filters=(32, 16))
    z_mean, _ = enc(np.zeros((2, 36, 36, 1), dtype=np.float32))
    assert z_mean.shape == (2, 3)
    assert dec(z_mean).shape == (2, 36, 36, 1)


@pytest.mark.parametrize("call, match", [
    (lambda: builders.mlp_encoder(784, 0), "latent_dim"),
    (lambda: builders.mlp_decoder(-2, 784), "latent_dim"),
    (lambda: builders.conv_encoder((28, 28, 1), 0), "latent_dim"),
    (lambda: builders.mlp_encoder(784, 2.5), "latent_dim"),
    (lambda: builders.mlp_encoder(784, 2, hidden=(0,)), "hidden"),
    (lambda: builders.mlp_encoder(784, 2, dropout=1.0), "dropout"),
    (lambda: builders.mlp_encoder((), 2), "input_shape"),
    (lambda: builders.conv_encoder((28, 28), 2), "input_shape"),
    (lambda: builders.conv_decoder(2, (30, 30, 1), filters=(8, 8)), "divisible by 4"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("call, match", [
    (lambda: builders.mlp_encoder(784, 2, hidden=256), "hidden must be a sequence"),
    (lambda: builders.mlp_decoder(2, 784, hidden="256"), "hidden must be a sequence"),
    (lambda: builders.mlp_encoder(784, 2, hidden=(256, 0)), "each entry of hidden"),
    (lambda: builders.conv_decoder(2, (28, 28, 1), filters=()), "filters must hold at least"),
    (lambda: builders.conv_encoder((28, 28, 1), 2, filters=32), "filters must be a sequence")])
def test_bad_widths_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("call, match", [
    (lambda: builders.mlp_encoder(6, 2, dropout="a"), "dropout"),
    (lambda: builders.mlp_decoder(2, None), "output_shape")])
def test_bad_scalars_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_numpy_integers_are_integers():
    enc = builders.mlp_encoder(np.int64(10), np.int64(2), hidden=np.array([4, 3]))
    assert enc.input_shape == (None, 10)
    assert [layer.units for layer in enc.layers[1:3]] == [4, 3]
    dec = builders.conv_decoder(np.int32(2), np.array([8, 8, 1]), filters=np.array([4]))
    assert dec.output_shape == (None, 8, 8, 1)


@pytest.mark.parametrize("call, error, match", [
    (lambda: builders.mlp_encoder(10, 2, activation="nope"), ValueError, "activation"),
    (lambda: builders.mlp_decoder(2, 10, output_activation="nah"), ValueError,
     "output_activation"),
    (lambda: builders.conv_decoder(2, (8, 8, 1), output_activation=3), ValueError,
     "output_activation"),
    (lambda: builders.mlp_encoder(10, 2, variational="no"), TypeError, "variational"),
    (lambda: builders.conv_encoder((8, 8, 1), 2, variational=None), TypeError, "variational"),
    (lambda: builders.conv_encoder((8, 8, 1), 2, kernel_size=True), ValueError, "kernel_size"),
    (lambda: builders.conv_decoder(2, (8, 8, 1), filters=(4,), kernel_size=0), ValueError,
     "kernel_size"),
    (lambda: builders.mlp_encoder(10, 2, dropout=True), TypeError, "dropout"),
    (lambda: builders.latent_head(builders.keras.Input((3,)), 0, True), ValueError,
     "latent_dim"),
])
def test_bad_options_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_integer_dropout_and_kernel_tuples_are_accepted():
    enc = builders.mlp_encoder(10, 2, hidden=(8,), dropout=0)
    assert not any(type(layer).__name__ == "Dropout" for layer in enc.layers)
    enc = builders.conv_encoder((8, 8, 1), 2, filters=(4,), kernel_size=(3, 1))
    assert enc.layers[1].kernel_size == (3, 1)

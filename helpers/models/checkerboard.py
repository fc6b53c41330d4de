"""A multiscale checkerboard decoder for lattice spin configurations, and the VAE that uses
it. Used by the Ising notebook.

The decoder factorises p(x | z) autoregressively over nested sub-lattices. Sites on the
coarsest grid (every ``base_stride``-th site in both directions) are independent given z.
Then, at strides s = base_stride / 2, ..., 1, two stages refine the grid of spacing 2s to
spacing s: first the centres of its plaquettes, then the remaining (edge) sites; every site
belongs to exactly one stage, and each stage is conditionally independent given z and all
earlier stages. On the finest grid the edge sites' nearest neighbours are all known, which
is exactly where the Ising model's own conditionals factorise. The plaquette centres are not
so lucky: two centres that share an edge site stay coupled through it, and drawing them
independently loses that coupling (too little order above the critical temperature). With
``split_centres`` each centre stage is drawn in two interleaved halves, so that no two
centres sharing an edge site are drawn together (on a periodic grid with an odd number of
centres per row, the pairs across the seam are the exception). Each stage is a small periodic
convolutional network whose channels z scales and shifts (FiLM). Teacher forcing makes
training one parallel pass; sampling runs the stages in order.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from helpers.infra.checks import as_finite_array, check_bool, check_positive_int, check_seed
from helpers.models.autoencoders import VAE


def stage_masks(L: int, base_stride: int = 8,
                split_centres: bool = False) -> list[tuple[int, np.ndarray]]:
    """The decoder's stages, in sampling order, as (stride, boolean L x L mask of the sites
    it predicts). The masks partition the lattice. With ``split_centres`` every stage of
    plaquette centres becomes two, alternating like the squares of a chessboard."""
    L = check_positive_int(L, "L", minimum=2)
    base_stride = check_positive_int(base_stride, "base_stride")
    check_bool(split_centres, "split_centres")
    if base_stride & (base_stride - 1) or L % base_stride:
        raise ValueError(f"base_stride must be a power of 2 dividing L={L}, got {base_stride}")
    i, j = np.indices((L, L))
    stages = [(base_stride, (i % base_stride == 0) & (j % base_stride == 0))]
    s = base_stride // 2
    while s >= 1:
        on_grid = (i % s == 0) & (j % s == 0)
        odd_i, odd_j = (i // s) % 2 == 1, (j // s) % 2 == 1
        centres = on_grid & odd_i & odd_j
        if split_centres:
            half = (i // (2 * s) + j // (2 * s)) % 2 == 0
            stages += [(s, centres & half), (s, centres & ~half)]
        else:
            stages.append((s, centres))
        stages.append((s, on_grid & (odd_i ^ odd_j)))
        s //= 2
    return stages


def fan_out(z, n: int) -> list:
    """``n`` copies of ``z``, one per layer that reads it. Their gradients are summed by one
    op in a fixed order; handing ``z`` itself to many layers leaves TensorFlow's graph
    optimiser free to sum the gradient contributions in the order they arrive, which
    changes the last bits from one training step to the next (and from run to run).
    ``config.set_seed`` also switches that rewrite off, for every model; the copies keep
    this decoder reproducible without it."""
    return ops.unstack(ops.repeat(ops.expand_dims(z, 1), n, axis=1), n, axis=1)


def _wrap(x, p, axis):
    """``x`` with ``p`` sites of periodic padding on each side of ``axis``."""
    def part(start=None, stop=None):
        return x[(slice(None),) * axis + (slice(start, stop),)]

    n = x.shape[axis]
    if n is not None and p > n:  # the pad wraps more than once: repeat the lattice first
        copies = -(-p // n)
        x = ops.concatenate([x] * (2 * copies + 1), axis=axis)
        return part(copies * n - p, (copies + 1) * n + p)
    return ops.concatenate([part(-p), x, part(stop=p)], axis=axis)


@keras.saving.register_keras_serializable(package="helpers")
class PeriodicPad2D(layers.Layer):
    """Pad height and width by wrapping around (periodic boundaries), as NumPy's
    ``np.pad(x, ..., mode="wrap")``: a pad wider than the lattice wraps around it again."""

    def __init__(self, pad=1, **kwargs):
        super().__init__(**kwargs)
        self.pad = check_positive_int(pad, "pad")

    def call(self, x):
        if len(x.shape) != 4:
            raise ValueError("PeriodicPad2D: the input must have shape (batch, height, width, "
                             f"channels), got {tuple(x.shape)}")
        for axis in (1, 2):
            x = _wrap(x, self.pad, axis)
        return x

    def get_config(self):
        return {**super().get_config(), "pad": self.pad}


@keras.saving.register_keras_serializable(package="helpers")
class _StageNet(layers.Layer):
    """Periodic 3x3 conv, scaled and shifted per channel by z (FiLM) -> ReLU -> periodic
    3x3 conv -> ReLU -> 1x1 conv, times a z-dependent gain exp(g(z)): an inverse
    temperature can then scale the coupling to the known neighbours directly.

    Both convolutions are periodic, but only the input is padded, by two sites: the first
    convolution then already yields its output with the one-site periodic border that the
    second needs (a periodic convolution commutes with periodic padding). The same function
    as padding before each convolution, without copying the wide hidden layer into a padded
    one (and its gradient back out of it)."""

    def __init__(self, channels=16, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.pad = PeriodicPad2D(2)
        self.conv1 = layers.Conv2D(channels, 3)
        self.film = layers.Dense(2 * channels)
        self.conv2 = layers.Conv2D(channels, 3, activation="relu")
        self.out = layers.Conv2D(1, 1)
        self.gain = layers.Dense(1)

    def call(self, y, z, z_gain=None):
        """Logits for ``y`` given ``z``; ``z_gain``, a copy of ``z`` for the gain (see
        :func:`fan_out`), defaults to ``z``."""
        scale, shift = ops.split(self.film(z)[:, None, None, :], 2, axis=-1)
        h = self.conv1(self.pad(y)) * (1.0 + scale) + shift  # (n + 2) x (n + 2): bordered
        h = self.conv2(ops.relu(h))
        gain = self.gain(z if z_gain is None else z_gain)
        return self.out(h)[..., 0] * ops.exp(gain)[:, :, None]

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@keras.saving.register_keras_serializable(package="helpers")
class CheckerboardDecoder(keras.Model):
    """p(x | z) for L x L configurations x in {0, 1} (shape (L, L, 1)); see the module text.
    ``nll(z, x)`` is -log p(x | z) per example; ``sample(z, seed)`` draws configurations."""

    def __init__(self, L=40, latent_dim=2, base_stride=8, channels=16, split_centres=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.L = check_positive_int(L, "L", minimum=2)
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        self.base_stride = base_stride
        self.channels = check_positive_int(channels, "channels")
        self.split_centres = split_centres
        self.stages = stage_masks(L, base_stride, split_centres)
        n0 = L // base_stride
        self.base_hidden = layers.Dense(4 * channels, activation="relu")
        self.base_logits = layers.Dense(n0 * n0)
        self.nets = [_StageNet(channels, name=f"stage_{k}") for k in range(1, len(self.stages))]
        # per stage, on its stride-s grid: the sites known before it and the sites it predicts
        self._grids = []
        known = self.stages[0][1].copy()
        for s, mask in self.stages[1:]:
            self._grids.append((s, known[::s, ::s].astype("float32"),
                                mask[::s, ::s].astype("float32")))
            known |= mask
        self.build_all()

    def build_all(self):
        z = ops.zeros((1, self.latent_dim))
        self.nll(z, ops.zeros((1, self.L, self.L, 1)))
        self.built = True

    def _stage_inputs(self, spins_pm, known):
        """Known spins as +-1 (0 where unknown) and the known mask, as two channels."""
        known_b = ops.broadcast_to(ops.convert_to_tensor(known)[None], ops.shape(spins_pm))
        return ops.stack([spins_pm * known_b, known_b], axis=-1)

    def base(self, z):
        n0 = self.L // self.base_stride
        return ops.reshape(self.base_logits(self.base_hidden(z)), (-1, n0, n0))

    def nll(self, z, x):
        """-log p(x | z) in nats per example, all stages in one teacher-forced pass."""
        z = ops.cast(ops.convert_to_tensor(z), self.compute_dtype)
        x = ops.cast(ops.convert_to_tensor(x), self.compute_dtype)
        for name, value, shape in (("z", z, (self.latent_dim,)),
                                   ("x", x, (self.L, self.L, 1))):
            if len(value.shape) != 1 + len(shape) or any(
                    got is not None and got != want
                    for got, want in zip(value.shape[1:], shape, strict=True)):
                raise ValueError(f"{name} must have shape (n, {', '.join(map(str, shape))}), "
                                 f"got {tuple(value.shape)}")
        x01 = x[..., 0]
        b = self.base_stride
        zs = fan_out(z, 1 + 2 * len(self.nets))  # the base, then each stage's FiLM and gain
        total = ops.sum(ops.binary_crossentropy(x01[:, ::b, ::b], self.base(zs[0]),
                                                from_logits=True), axis=(1, 2))
        for k, (net, (s, known, target)) in enumerate(zip(self.nets, self._grids,
                                                           strict=True)):
            y = x01[:, ::s, ::s]
            logits = net(self._stage_inputs(2.0 * y - 1.0, known), zs[1 + 2 * k],
                         zs[2 + 2 * k])
            bce = ops.binary_crossentropy(y[..., None], logits[..., None], from_logits=True)
            total = total + ops.sum(bce[..., 0] * target, axis=(1, 2))
        return total

    def call(self, inputs):
        z, x = inputs
        return self.nll(z, x)

    def sample(self, z, seed=0, batch_size=1000):
        """Draw one configuration in {0, 1}, shape (n, L, L, 1), per row of ``z``."""
        z = as_finite_array(z, "z", ndim=2)
        if z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (n, {self.latent_dim}), got {z.shape}")
        batch_size = check_positive_int(batch_size, "batch_size")
        rng = np.random.default_rng(check_seed(seed, allow_none=False))
        out = np.zeros((len(z), self.L, self.L), dtype=np.float32)
        for start in range(0, len(z), batch_size):
            zb = z[start:start + batch_size]
            canvas = np.zeros((len(zb), self.L, self.L), dtype=np.float32)
            b = self.base_stride
            p = ops.convert_to_numpy(ops.sigmoid(self.base(zb)))
            canvas[:, ::b, ::b] = rng.random(p.shape) < p
            for net, (s, known, target) in zip(self.nets, self._grids, strict=True):
                y = canvas[:, ::s, ::s]
                logits = net(self._stage_inputs(ops.convert_to_tensor(2 * y - 1), known), zb)
                p = ops.convert_to_numpy(ops.sigmoid(logits))
                draw = (rng.random(p.shape) < p).astype(np.float32)
                canvas[:, ::s, ::s] = np.where(target > 0, draw, y)
            out[start:start + len(zb)] = canvas
        return out[..., None]

    def get_config(self):
        return {**super().get_config(), "L": self.L, "latent_dim": self.latent_dim,
                "base_stride": self.base_stride, "channels": self.channels,
                "split_centres": self.split_centres}


@keras.saving.register_keras_serializable(package="helpers")
class CheckerboardVAE(VAE):
    """VAE whose decoder is a :class:`CheckerboardDecoder`: the reconstruction term is the
    decoder's exact autoregressive -log p(x | z), and decoding samples the stages in turn."""

    def __init__(self, encoder, decoder, beta=1.0, seed=None, **kwargs):
        if not isinstance(decoder, CheckerboardDecoder):
            raise TypeError(f"decoder must be a CheckerboardDecoder, got {type(decoder).__name__}")
        kwargs.pop("likelihood", None)
        super().__init__(encoder, decoder, likelihood="bernoulli", beta=beta, seed=seed,
                         **kwargs)
        if self.latent_dim != decoder.latent_dim:
            raise ValueError(f"the encoder's latent_dim ({self.latent_dim}) must be the "
                             f"decoder's ({decoder.latent_dim})")
        lattice = (decoder.L, decoder.L, 1)
        if tuple(encoder.input_shape[1:]) != lattice:
            raise ValueError(f"encoder must take the decoder's configurations {lattice}, got "
                             f"input shape {tuple(encoder.input_shape[1:])}")

    def check_data(self, x, name="x") -> np.ndarray:
        """Return ``x`` as float32 after the VAE's checks; spins must be 0 or 1."""
        arr = super().check_data(x, name)
        if not np.isin(arr, (0.0, 1.0)).all():
            raise ValueError(f"{name} must be binary (0/1 spins) for the checkerboard decoder, "
                             f"got values in [{arr.min():.4g}, {arr.max():.4g}]")
        return arr

    def reconstruction_term(self, z, target, training=False):
        """The decoder's exact -log p(target | z), all stages in one teacher-forced pass."""
        return self.decoder.nll(z, target)

    def call(self, x, training=False):
        """-log p(x | z) for one posterior draw z (the decoder has no single output image)."""
        z_mean, z_log_var = self.encoder(x, training=training)
        return self.reconstruction_term(self.sample_latent(z_mean, z_log_var), x)

    def decode(self, z, batch_size=1000, seed=0):
        """Sampled configurations in {0, 1} for latent points ``z`` (the decoder is
        autoregressive, so it has no single mean image)."""
        return self.decoder.sample(z, seed=seed, batch_size=batch_size)

    def generate(self, n, seed=0):
        seed = check_seed(seed, allow_none=False)
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((check_positive_int(n, "n"), self.latent_dim))
        return self.decode(z.astype(np.float32), seed=seed + 1)


__all__ = ["CheckerboardDecoder", "CheckerboardVAE", "PeriodicPad2D", "stage_masks"]

"""Denoising diffusion models: DDPM (Ho, Jain & Abbeel 2020, arXiv:2006.11239) trained with
the "simple" noise-prediction loss or with Min-SNR weights (Hang et al. 2023), sampled by
ancestral DDPM steps or by DDIM (Song, Meng & Ermon 2020, arXiv:2010.02502), for 28 x 28 x 1
images in [-1, 1] (a small U-Net) and for 2-D points (an MLP), with a Gaussian mixture whose
noised density and score are known in closed form. Used by the diffusion notebook.

Index convention. The paper numbers the steps t = 1..T; the code numbers them t = 0..T-1,
so that ``betas[t]`` is the paper's beta_{t+1} and ``alpha_bar[t]`` is the paper's
alpha_bar_{t+1} = prod_{s <= t} (1 - betas[s]). "x_t" in the code is the input of step t
(the paper's x_{t+1}): step t maps it to the paper's x_t, ``x_{t-1}`` in the code's words;
the last step, t = 0, returns the sample x_0 and ``alpha_bar_prev[0]`` = 1 (no noise).
The forward marginal is x_t = sqrt(alpha_bar[t]) x_0 + sqrt(1 - alpha_bar[t]) eps.
"""

from __future__ import annotations

import math
import weakref

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from helpers.infra.checks import (
    as_finite_array,
    check_finite,
    check_positive,
    check_positive_array,
    check_positive_int,
    check_seed,
)
from helpers.infra.config import require_tensorflow_backend

require_tensorflow_backend(__name__)

VARIANCES = ("beta", "beta_tilde")


# ---------------------------------------------------------------- input checks
def _is_tensor(x) -> bool:
    return tf.is_tensor(x) or isinstance(x, (keras.Variable, keras.KerasTensor))


def _check_schedule(schedule, name: str = "schedule") -> NoiseSchedule:
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"{name} must be a NoiseSchedule (e.g. diffusion.linear_schedule()), "
                        f"got {type(schedule).__name__}")
    return schedule


def _check_steps_array(t, T: int, name: str = "t", minimum: int = 0) -> np.ndarray:
    """``t`` (an integer or a 1-D array of integers, one per example) as an int64 array, every
    value in [minimum, T - 1]."""
    if isinstance(t, bool) or isinstance(t, (np.bool_,)):
        raise TypeError(f"{name} must be an integer step or an array of them, got {t!r}")
    try:
        arr = np.asarray(t)
    except ValueError:
        raise ValueError(f"{name} must be an integer or a 1-D array of integers, got a "
                         "ragged sequence") from None
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integer steps (0 .. T-1), got dtype {arr.dtype}")
    if arr.ndim > 1:
        raise ValueError(f"{name} must be an integer or a 1-D array (one step per example), "
                         f"got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if arr.min() < minimum or arr.max() > T - 1:
        raise ValueError(f"{name} must lie in [{minimum}, {T - 1}] (code steps, T = {T}), got "
                         f"values in [{arr.min()}, {arr.max()}]")
    return arr.astype(np.int64)


def _check_batch(x, name: str, batch: int | None = None) -> np.ndarray:
    arr = as_finite_array(x, name, dtype=np.float64)
    if arr.ndim < 1:
        raise ValueError(f"{name} must be a batch (n, ...), got a scalar")
    if batch is not None and batch != 1 and arr.shape[0] != batch:
        raise ValueError(f"{name} must have one row per step in t ({batch}), got shape "
                         f"{arr.shape}")
    return arr


def _check_same_shape(arrays: dict) -> None:
    shapes = {name: np.shape(a) for name, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        got = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"{' and '.join(shapes)} must have the same shape, got {got}")


def _check_variance(variance) -> str:
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {VARIANCES}, got {variance!r}")
    return variance


def _check_eta(eta) -> float:
    eta = check_finite(eta, "eta")
    if not 0 <= eta <= 1:
        # above 1, sigma^2 can exceed 1 - alpha_bar_prev and the step no longer keeps the
        # forward marginals
        raise ValueError(f"eta must lie in [0, 1] (0: deterministic DDIM, 1: DDPM-like), got "
                         f"{eta}")
    return eta


def _check_shape(shape) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) or not isinstance(shape, (tuple, list)) or not shape:
        raise TypeError(f"shape must be a tuple (n, *data_shape), e.g. (16, 28, 28, 1), got "
                        f"{shape!r}")
    return tuple(check_positive_int(s, "shape") for s in shape)


def _check_network(network, name: str = "network"):
    if not callable(network):
        raise TypeError(f"{name} must be a keras.Model (or a callable) mapping [x_t, t] to the "
                        f"predicted noise, got {type(network).__name__}")
    return network


# ---------------------------------------------------------------- the noise schedule
class NoiseSchedule:
    """The forward (noising) process of DDPM from its variances ``betas`` (1-D, every value in
    (0, 1), one per step; T = len(betas)), with everything precomputed in float64 NumPy
    (read-only arrays of length T, indexed by the code step t = 0..T-1, see the module
    docstring):

    - ``betas``, ``alphas`` = 1 - betas, ``alpha_bar`` (cumulative product of ``alphas``),
      ``alpha_bar_prev`` (alpha_bar[t-1], 1 at t = 0);
    - ``sqrt_alpha_bar``, ``sqrt_one_minus_alpha_bar``;
    - ``posterior_variance`` beta_tilde[t] = (1 - alpha_bar_prev) / (1 - alpha_bar) * beta
      (0 at t = 0), the variance of q(x_{t-1} | x_t, x_0);
    - ``posterior_mean_coef_x0`` = beta sqrt(alpha_bar_prev) / (1 - alpha_bar) and
      ``posterior_mean_coef_xt`` = (1 - alpha_bar_prev) sqrt(alpha) / (1 - alpha_bar), so
      that its mean is coef_x0 x_0 + coef_xt x_t.

    The methods take NumPy arrays (computed in float64) or tensors (computed in the tensor's
    dtype, for use inside a training step) with ``t`` an integer or an integer array of one
    step per example.
    """

    def __init__(self, betas):
        betas = check_positive_array(betas, "betas", ndim=1)
        if np.any(betas >= 1):
            raise ValueError(f"betas must lie in (0, 1), got a maximum of {betas.max():.4g}")
        self.T = len(betas)
        alphas = 1.0 - betas
        alpha_bar = np.cumprod(alphas)
        alpha_bar_prev = np.concatenate([[1.0], alpha_bar[:-1]])
        self.betas = betas
        self.alphas = alphas
        self.alpha_bar = alpha_bar
        self.alpha_bar_prev = alpha_bar_prev
        self.sqrt_alpha_bar = np.sqrt(alpha_bar)
        self.sqrt_one_minus_alpha_bar = np.sqrt(1.0 - alpha_bar)
        self.posterior_variance = (1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * betas
        self.posterior_mean_coef_x0 = betas * np.sqrt(alpha_bar_prev) / (1.0 - alpha_bar)
        self.posterior_mean_coef_xt = (1.0 - alpha_bar_prev) * np.sqrt(alphas) / (1.0 - alpha_bar)
        for name in ("betas", "alphas", "alpha_bar", "alpha_bar_prev", "sqrt_alpha_bar",
                     "sqrt_one_minus_alpha_bar", "posterior_variance",
                     "posterior_mean_coef_x0", "posterior_mean_coef_xt"):
            getattr(self, name).setflags(write=False)

    def __repr__(self):
        return (f"NoiseSchedule(T={self.T}, betas in [{self.betas.min():.3g}, "
                f"{self.betas.max():.3g}], alpha_bar[-1]={self.alpha_bar[-1]:.3g})")

    # ---- coefficient look-up, for NumPy arrays and tensors alike
    def _numpy(self, arrays: dict, t):
        """Check NumPy inputs: the arrays as float64 of one shape, ``t`` as int64 (scalar or
        one per row)."""
        t = _check_steps_array(t, self.T)
        checked = {name: _check_batch(a, name, batch=t.size) for name, a in arrays.items()}
        _check_same_shape(checked)
        return checked, t

    @staticmethod
    def _take(table, t, like):
        """table[t] shaped to broadcast against ``like``: (batch, 1, ..., 1) for per-example
        steps, a scalar for one step."""
        if _is_tensor(like):
            values = ops.take(ops.convert_to_tensor(table, dtype=like.dtype), t)
            if len(values.shape) == 0:
                return values
            return ops.reshape(values, (-1,) + (1,) * (len(like.shape) - 1))
        values = table[t]
        return values if np.ndim(values) == 0 else values.reshape((-1,) + (1,) * (like.ndim - 1))

    def _inputs(self, arrays: dict, t):
        """Arrays and steps ready for arithmetic: tensors pass (their rank is checked), NumPy
        inputs are checked and converted to float64."""
        if any(_is_tensor(a) for a in arrays.values()):
            dtype = next(a.dtype for a in arrays.values() if _is_tensor(a))
            tensors = {name: ops.convert_to_tensor(a, dtype=dtype) for name, a in arrays.items()}
            ranks = {name: len(a.shape) for name, a in tensors.items()}
            if len(set(ranks.values())) > 1 or min(ranks.values()) < 1:
                raise ValueError(f"{' and '.join(arrays)} must be batches of one rank, got "
                                 f"ranks {ranks}")
            if not _is_tensor(t):
                t = _check_steps_array(t, self.T)
            t = ops.cast(t, "int32")
            if len(t.shape) > 1:
                raise ValueError(f"t must be an integer or a 1-D tensor, got shape {t.shape}")
            return tensors, t
        return self._numpy(arrays, t)

    def q_sample(self, x0, t, noise):
        """Draw from the forward marginal q(x_t | x_0) in closed form:
        x_t = sqrt(alpha_bar[t]) x0 + sqrt(1 - alpha_bar[t]) noise (``noise`` standard normal,
        same shape as ``x0``; ``t`` one code step per example, or one for all)."""
        arrays, t = self._inputs({"x0": x0, "noise": noise}, t)
        x0, noise = arrays["x0"], arrays["noise"]
        return (self._take(self.sqrt_alpha_bar, t, x0) * x0
                + self._take(self.sqrt_one_minus_alpha_bar, t, x0) * noise)

    def posterior_mean_variance(self, x0, xt, t):
        """Mean and variance of the posterior q(x_{t-1} | x_t, x_0) =
        N(coef_x0 x0 + coef_xt xt, beta_tilde[t]): returns ``(mean, variance)``, the mean of
        the inputs' shape and the variance shaped (batch, 1, ..., 1) to broadcast against it
        (a scalar for a single ``t``). At t = 0 the variance is 0 and the mean is x0."""
        arrays, t = self._inputs({"x0": x0, "xt": xt}, t)
        x0, xt = arrays["x0"], arrays["xt"]
        mean = (self._take(self.posterior_mean_coef_x0, t, x0) * x0
                + self._take(self.posterior_mean_coef_xt, t, x0) * xt)
        return mean, self._take(self.posterior_variance, t, x0)

    def predict_x0(self, xt, t, eps):
        """The clean input implied by a noise prediction ``eps``:
        x0 = (xt - sqrt(1 - alpha_bar[t]) eps) / sqrt(alpha_bar[t])."""
        arrays, t = self._inputs({"xt": xt, "eps": eps}, t)
        xt, eps = arrays["xt"], arrays["eps"]
        return ((xt - self._take(self.sqrt_one_minus_alpha_bar, t, xt) * eps)
                / self._take(self.sqrt_alpha_bar, t, xt))


def linear_schedule(T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02) -> NoiseSchedule:
    """DDPM's schedule: betas rising linearly from ``beta_1`` to ``beta_T`` over ``T`` steps."""
    T = check_positive_int(T, "T")
    beta_1, beta_T = check_positive(beta_1, "beta_1"), check_positive(beta_T, "beta_T")
    for name, value in (("beta_1", beta_1), ("beta_T", beta_T)):
        if value >= 1:
            raise ValueError(f"{name} must lie in (0, 1), got {value}")
    return NoiseSchedule(np.linspace(beta_1, beta_T, T))


def cosine_schedule(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> NoiseSchedule:
    """Nichol & Dhariwal's (2021, arXiv:2102.09672) schedule: alpha_bar follows
    f(u) / f(0) with f(u) = cos((u / T + s) / (1 + s) * pi / 2)^2 for the paper's steps
    u = 1..T (code step t is u = t + 1), through betas[t] = 1 - f(t + 1) / f(t) clipped at
    ``max_beta`` (the last steps, where f reaches 0)."""
    T = check_positive_int(T, "T")
    s = check_positive(s, "s")
    max_beta = check_positive(max_beta, "max_beta")
    if max_beta >= 1:
        raise ValueError(f"max_beta must lie in (0, 1), got {max_beta}")
    u = np.arange(T + 1, dtype=np.float64)
    f = np.cos((u / T + s) / (1 + s) * np.pi / 2) ** 2
    return NoiseSchedule(np.minimum(1.0 - f[1:] / f[:-1], max_beta))


# ---------------------------------------------------------------- time embedding
def _check_even_dim(value, name: str) -> int:
    """An embedding width: a positive even integer (half sines, half cosines)."""
    value = check_positive_int(value, name, minimum=2)
    if value % 2:
        raise ValueError(f"{name} must be even (sines and cosines), got {value}")
    return value


def sinusoidal_embedding(t, dim: int):
    """DDPM's (transformer-style) embedding of the steps ``t`` (shape (batch,), integers or
    floats, NumPy or tensors): [sin(t w_k), cos(t w_k)] for the ``dim // 2`` frequencies
    w_k = 10000^(-k / (dim/2 - 1)), k = 0..dim/2 - 1; a float32 tensor (batch, dim). ``dim``
    must be even."""
    dim = _check_even_dim(dim, "dim")
    if not _is_tensor(t):
        t = as_finite_array(t, "t", ndim=1)
    elif len(t.shape) != 1:
        raise ValueError(f"t must be a 1-D batch of steps, got shape {tuple(t.shape)}")
    half = dim // 2
    frequencies = np.exp(-math.log(10000.0) * np.arange(half) / max(half - 1, 1))
    args = ops.cast(t, "float32")[:, None] * ops.convert_to_tensor(frequencies[None, :],
                                                                   dtype="float32")
    return ops.concatenate([ops.sin(args), ops.cos(args)], axis=-1)


@keras.saving.register_keras_serializable(package="helpers")
class SinusoidalEmbedding(layers.Layer):
    """:func:`sinusoidal_embedding` as a layer: integer steps (batch,) -> (batch, dim)."""

    def __init__(self, dim, **kwargs):
        super().__init__(**kwargs)
        self.dim = _check_even_dim(dim, "dim")

    def call(self, t):
        return sinusoidal_embedding(t, self.dim)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dim)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim}


def _time_mlp(t, time_dim: int):
    """Steps -> sinusoidal embedding (time_dim) -> Dense swish -> Dense: (batch, time_dim)."""
    h = SinusoidalEmbedding(time_dim, name="time_embedding")(t)
    h = layers.Dense(time_dim, activation="swish", name="time_dense_1")(h)
    return layers.Dense(time_dim, name="time_dense_2")(h)


def _check_gamma(gamma, name: str = "min_snr_gamma") -> float | None:
    if gamma is None:
        return None
    if isinstance(gamma, (bool, np.bool_, str, bytes)):
        raise TypeError(f"{name} must be None or a positive number, got {gamma!r}")
    return check_positive(gamma, name)


def min_snr_weights(schedule, gamma) -> np.ndarray:
    """Per-step weights of the noise-prediction loss that cap the signal-to-noise ratio
    SNR_t = alpha_bar[t] / (1 - alpha_bar[t]) at ``gamma`` (Min-SNR, Hang et al. 2023,
    arXiv:2303.09556): w_t = min(SNR_t, gamma) / SNR_t, shape (T,). Since the clean image's
    error is ||x_0 - x0_hat||^2 = ||eps - eps_hat||^2 / SNR_t, the weighted noise loss is the
    clean-image error weighted by min(SNR_t, gamma): 1 on the noisy steps (SNR_t <= gamma),
    gamma / SNR_t on the nearly clean ones, whose large noise error changes little of the
    image."""
    schedule = _check_schedule(schedule)
    gamma = _check_gamma(gamma, "gamma")
    if gamma is None:
        raise TypeError("gamma must be a positive number, got None")
    snr = schedule.alpha_bar / (1.0 - schedule.alpha_bar)
    return np.minimum(snr, gamma) / snr


# ---------------------------------------------------------------- networks
@keras.saving.register_keras_serializable(package="helpers")
class ImageGroupNorm(layers.GroupNormalization):
    """Keras's ``GroupNormalization`` (same weights, same function) for images (batch, height,
    width, channels), groups over the last axis: each group's mean and variance over
    height, width and its channels, computed as per-channel means over the image that are
    then averaged over the group's channels (two passes: the mean, then the mean squared
    deviation from it). Keras reduces over three axes of a five-dimensional reshape instead,
    whose reductions and their gradients are slower on CPU; the results agree to rounding."""

    def build(self, input_shape):
        if len(input_shape) != 4 or self.axis not in (-1, 3):
            raise ValueError("ImageGroupNorm takes images (batch, height, width, channels) "
                             f"normalised over the last axis, got shape {tuple(input_shape)} "
                             f"and axis {self.axis}")
        super().build(input_shape)

    def call(self, inputs):
        channels = int(inputs.shape[-1])
        width = channels // self.groups

        def per_group(values):  # (batch, channels) -> (batch, 1, 1, channels), group means
            values = ops.mean(ops.reshape(values, (-1, self.groups, width)), axis=-1,
                              keepdims=True)
            return ops.reshape(ops.repeat(values, width, axis=-1), (-1, 1, 1, channels))

        x = ops.cast(inputs, "float32")
        deviation = x - per_group(ops.mean(x, axis=(1, 2)))
        inverse = ops.rsqrt(per_group(ops.mean(ops.square(deviation), axis=(1, 2)))
                            + self.epsilon)
        if self.scale:
            inverse = inverse * ops.cast(self.gamma, "float32")
        out = deviation * inverse
        if self.center:
            out = out + ops.cast(self.beta, "float32")
        return ops.cast(out, self.compute_dtype)


def _groups(channels: int) -> int:
    return math.gcd(channels, 8)


def _residual_block(x, temb, channels: int, name: str):
    """GroupNorm -> swish -> conv 3x3 -> + Dense(swish(temb)) per channel -> GroupNorm ->
    swish -> conv 3x3, added to the input (through a 1x1 conv when the width changes)."""
    h = ImageGroupNorm(_groups(int(x.shape[-1])), name=f"{name}_norm_1")(x)
    h = layers.Conv2D(channels, 3, padding="same", name=f"{name}_conv_1")(ops.swish(h))
    t = layers.Dense(channels, name=f"{name}_time")(ops.swish(temb))
    h = h + layers.Reshape((1, 1, channels), name=f"{name}_time_reshape")(t)
    h = ImageGroupNorm(_groups(channels), name=f"{name}_norm_2")(h)
    h = layers.Conv2D(channels, 3, padding="same", name=f"{name}_conv_2")(ops.swish(h))
    skip = x if int(x.shape[-1]) == channels else layers.Conv2D(
        channels, 1, name=f"{name}_skip")(x)
    return skip + h


def build_unet(image_size: int = 28, channels: int = 1, base: int = 32,
               multipliers=(1, 2), time_dim: int = 128) -> keras.Model:
    """A small U-Net noise predictor, sized for CPU: inputs ``[x_t, t]`` (images
    (image_size, image_size, channels), integer steps (batch,)), output the predicted noise,
    of x_t's shape.

    Steps -> sinusoidal embedding -> MLP (``time_dim``). Conv 3x3 to ``base`` channels; one
    residual block per level with ``base * multipliers[i]`` channels (the time embedding
    added per channel inside), each level but the last followed by a stride-2 conv 3x3;
    a residual block in the middle; going up, each level concatenates its skip connection,
    applies a residual block and (but the top one) upsamples by UpSampling2D + conv 3x3;
    GroupNorm, swish and a conv 3x3 to ``channels``. ``image_size`` must be divisible by
    2**(len(multipliers) - 1) (28: one or two downsamplings, 14 and 7)."""
    image_size = check_positive_int(image_size, "image_size")
    channels = check_positive_int(channels, "channels")
    base = check_positive_int(base, "base")
    time_dim = _check_even_dim(time_dim, "time_dim")
    if isinstance(multipliers, (str, bytes)) or not isinstance(multipliers, (tuple, list)) \
            or not multipliers:
        raise TypeError(f"multipliers must be a non-empty tuple of positive integers, e.g. "
                        f"(1, 2), got {multipliers!r}")
    multipliers = tuple(check_positive_int(m, "multipliers") for m in multipliers)
    factor = 2 ** (len(multipliers) - 1)
    if image_size % factor:
        raise ValueError(f"image_size ({image_size}) must be divisible by {factor} for "
                         f"{len(multipliers)} levels (multipliers={multipliers})")
    x_in = keras.Input(shape=(image_size, image_size, channels), name="x_t")
    t_in = keras.Input(shape=(), dtype="int32", name="t")
    temb = _time_mlp(t_in, time_dim)
    h = layers.Conv2D(base, 3, padding="same", name="stem")(x_in)
    skips = []
    for level, mult in enumerate(multipliers):
        h = _residual_block(h, temb, base * mult, f"down_{level}")
        skips.append(h)
        if level < len(multipliers) - 1:
            h = layers.Conv2D(base * mult, 3, strides=2, padding="same",
                              name=f"downsample_{level}")(h)
    h = _residual_block(h, temb, base * multipliers[-1], "middle")
    for level in reversed(range(len(multipliers))):
        h = layers.Concatenate(name=f"concat_{level}")([h, skips[level]])
        h = _residual_block(h, temb, base * multipliers[level], f"up_{level}")
        if level > 0:
            h = layers.UpSampling2D(2, name=f"upsample_{level}")(h)
            h = layers.Conv2D(base * multipliers[level - 1], 3, padding="same",
                              name=f"upsample_conv_{level}")(h)
    h = ImageGroupNorm(_groups(int(h.shape[-1])), name="out_norm")(h)
    out = layers.Conv2D(channels, 3, padding="same", name="eps")(ops.swish(h))
    return keras.Model([x_in, t_in], out, name="unet")


def build_mlp_denoiser(dim: int = 2, width: int = 128, depth: int = 3,
                       time_dim: int = 64) -> keras.Model:
    """A noise predictor for points in R^dim: inputs ``[x_t, t]`` ((batch, dim) and integer
    steps (batch,)), ``depth`` hidden layers h <- swish(Dense(h) + Dense(temb)) of ``width``
    units (the time embedding, an MLP on the sinusoidal one, enters every layer), then
    Dense(dim): the predicted noise."""
    dim = check_positive_int(dim, "dim")
    width = check_positive_int(width, "width")
    depth = check_positive_int(depth, "depth")
    time_dim = _check_even_dim(time_dim, "time_dim")
    x_in = keras.Input(shape=(dim,), name="x_t")
    t_in = keras.Input(shape=(), dtype="int32", name="t")
    temb = _time_mlp(t_in, time_dim)
    h = x_in
    for k in range(depth):
        h = layers.Dense(width, name=f"dense_{k}")(h) + layers.Dense(width, name=f"time_{k}")(temb)
        h = ops.swish(h)
    return keras.Model([x_in, t_in], layers.Dense(dim, name="eps")(h), name="mlp_denoiser")


# ---------------------------------------------------------------- training
@keras.saving.register_keras_serializable(package="helpers")
class DiffusionModel(keras.Model):
    """A noise-prediction network trained with DDPM's "simple" loss, or with Min-SNR weights.

    ``DiffusionModel(network, schedule, seed=None, min_snr_gamma=None)``: ``network`` maps
    ``[x_t, t]`` to the predicted noise (e.g. :func:`build_unet`, :func:`build_mlp_denoiser`),
    ``schedule`` a :class:`NoiseSchedule`. Each ``train_step`` draws t uniformly in 0..T-1 and
    standard normal noise per example from the model's SeedGenerator, forms x_t with
    :meth:`NoiseSchedule.q_sample` and minimises mean((noise - network([x_t, t]))^2), or,
    with ``min_snr_gamma``, the mean over examples of w_t times each example's mean squared
    error, w = :func:`min_snr_weights`; ``fit`` on clean data x_0 (images in [-1, 1],
    points) reports ``loss``; ``evaluate`` computes the same loss without updating.
    ``call([x_t, t])`` is the network.
    """

    def __init__(self, network, schedule, seed=None, min_snr_gamma=None, **kwargs):
        if not isinstance(network, keras.Model) or len(getattr(network, "inputs", None)
                                                       or []) != 2:
            raise TypeError(f"network must be a keras.Model with two inputs [x_t, t] (e.g. "
                            f"diffusion.build_unet()), got {type(network).__name__}")
        x_shape, out_shape = tuple(network.inputs[0].shape), tuple(network.outputs[0].shape)
        if x_shape != out_shape:
            raise ValueError(f"network must predict noise of x_t's shape, got {x_shape} -> "
                             f"{out_shape}")
        schedule = _check_schedule(schedule)
        seed = check_seed(seed)
        min_snr_gamma = _check_gamma(min_snr_gamma)
        super().__init__(**kwargs)
        self.network, self.schedule, self.seed = network, schedule, seed
        self.min_snr_gamma = min_snr_gamma
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.built = network.built

    @property
    def metrics(self):
        return [self.loss_tracker]

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    def _noised(self, data):
        x0, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        x0 = ops.convert_to_tensor(x0, dtype=keras.config.floatx())
        t = keras.random.randint((ops.shape(x0)[0],), 0, self.schedule.T,
                                 seed=self.seed_generator, dtype="int32")
        noise = keras.random.normal(ops.shape(x0), seed=self.seed_generator, dtype=x0.dtype)
        return self.schedule.q_sample(x0, t, noise), t, noise

    def _loss(self, noise, predicted, t):
        squared = ops.square(noise - predicted)
        if self.min_snr_gamma is None:
            return ops.mean(squared)
        table = ops.convert_to_tensor(min_snr_weights(self.schedule, self.min_snr_gamma),
                                      squared.dtype)
        per_example = ops.mean(ops.reshape(squared, (ops.shape(squared)[0], -1)), axis=1)
        return ops.mean(ops.take(table, t) * per_example)

    def train_step(self, data):
        xt, t, noise = self._noised(data)
        with tf.GradientTape() as tape:
            loss = self._loss(noise, self.network([xt, t], training=True), t)
        weights = self.network.trainable_weights
        self.optimizer.apply(tape.gradient(loss, weights), weights)
        self.loss_tracker.update_state(loss)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        xt, t, noise = self._noised(data)
        loss = self._loss(noise, self.network([xt, t], training=False), t)
        self.loss_tracker.update_state(loss)
        return {m.name: m.result() for m in self.metrics}

    def get_config(self):
        return {"name": self.name, "seed": self.seed, "min_snr_gamma": self.min_snr_gamma,
                "network": keras.saving.serialize_keras_object(self.network),
                "betas": self.schedule.betas.tolist()}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        network = keras.saving.deserialize_keras_object(config.pop("network"))
        return cls(network, NoiseSchedule(config.pop("betas")), **config)


# ---------------------------------------------------------------- sampling
def _step_inputs(schedule, xt, t, eps_hat, noise):
    schedule = _check_schedule(schedule)
    t = _check_steps_array(t, schedule.T)
    if t.ndim:
        raise ValueError(f"t must be a single integer step (the whole batch takes the same "
                         f"step), got shape {t.shape}")
    arrays = {"xt": as_finite_array(xt, "xt", dtype=np.float64),
              "eps_hat": as_finite_array(eps_hat, "eps_hat", dtype=np.float64),
              "noise": as_finite_array(noise, "noise", dtype=np.float64)}
    _check_same_shape(arrays)
    return schedule, int(t), arrays["xt"], arrays["eps_hat"], arrays["noise"]


def ddpm_step(schedule, xt, t, eps_hat, noise, variance: str = "beta") -> np.ndarray:
    """One ancestral DDPM step (Ho et al. eq. 11, Algorithm 2) from x_t at code step ``t``
    (one integer for the batch), in float64: x_{t-1} = mu + sigma noise with
    mu = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_t), ``eps_hat`` the
    predicted noise and ``noise`` standard normal; sigma^2 = beta_t (``variance="beta"``) or
    beta_tilde_t, the posterior variance (``"beta_tilde"``). No noise at the last step
    (t = 0), which returns mu."""
    schedule, t, xt, eps_hat, noise = _step_inputs(schedule, xt, t, eps_hat, noise)
    variance = _check_variance(variance)
    mean = (xt - schedule.betas[t] / schedule.sqrt_one_minus_alpha_bar[t] * eps_hat) \
        / math.sqrt(schedule.alphas[t])
    if t == 0:
        return mean
    var = schedule.betas[t] if variance == "beta" else schedule.posterior_variance[t]
    return mean + math.sqrt(var) * noise


def ddim_sigma(schedule, t, t_prev, eta: float) -> float:
    """DDIM's noise level of the step t -> t_prev (Song et al. eq. 16):
    sigma = eta sqrt((1 - ab_prev) / (1 - ab_t)) sqrt(1 - ab_t / ab_prev), with ab_prev = 1
    for t_prev = -1 (the last step, then sigma = 0)."""
    schedule = _check_schedule(schedule)
    t, t_prev = _check_pair(schedule, t, t_prev)
    eta = _check_eta(eta)
    ab = schedule.alpha_bar[t]
    ab_prev = 1.0 if t_prev < 0 else schedule.alpha_bar[t_prev]
    return eta * math.sqrt((1 - ab_prev) / (1 - ab)) * math.sqrt(1 - ab / ab_prev)


def _check_pair(schedule, t, t_prev) -> tuple[int, int]:
    t = int(_check_steps_array(t, schedule.T))
    t_prev = _check_steps_array(t_prev, schedule.T, name="t_prev", minimum=-1)
    if t_prev.ndim or t_prev >= t:
        raise ValueError(f"t_prev must be a single step below t ({t}), or -1 for the last "
                         f"step, got {t_prev}")
    return t, int(t_prev)


def ddim_step(schedule, xt, t, t_prev, eps_hat, noise, eta: float = 0.0) -> np.ndarray:
    """One DDIM step (Song et al. eq. 12) from x_t at code step ``t`` to step ``t_prev``
    (< t; -1 for the last step, which returns the predicted x_0), in float64:
    x_prev = sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev - sigma^2) eps_hat + sigma noise,
    x0_hat = (x_t - sqrt(1 - ab_t) eps_hat) / sqrt(ab_t), sigma = :func:`ddim_sigma`.
    ``eta=0`` is deterministic; ``eta=1`` with t_prev = t - 1 is DDPM's step with
    sigma^2 = beta_tilde_t."""
    schedule, t, xt, eps_hat, noise = _step_inputs(schedule, xt, t, eps_hat, noise)
    t, t_prev = _check_pair(schedule, t, t_prev)
    sigma = ddim_sigma(schedule, t, t_prev, eta)
    ab = schedule.alpha_bar[t]
    ab_prev = 1.0 if t_prev < 0 else schedule.alpha_bar[t_prev]
    x0_hat = (xt - math.sqrt(1 - ab) * eps_hat) / math.sqrt(ab)
    direction = math.sqrt(max(1 - ab_prev - sigma**2, 0.0))
    return math.sqrt(ab_prev) * x0_hat + direction * eps_hat + sigma * noise


def ddim_timesteps(T: int, steps: int) -> np.ndarray:
    """The ``steps`` code steps DDIM visits, evenly spaced from T - 1 down to 0 (rounded),
    in decreasing order; ``steps=T`` gives every step."""
    T = check_positive_int(T, "T")
    steps = check_positive_int(steps, "steps")
    if steps > T:
        raise ValueError(f"steps must be <= T ({T}), got {steps}")
    return np.round(np.linspace(T - 1, 0, steps)).astype(np.int64)


_COMPILED = weakref.WeakKeyDictionary()


def _compiled(network: keras.Model):
    """``network([x, t])`` as one tf.function per network, kept for the network's lifetime, so
    that every sampler call after the first reuses its traced graph."""
    if network not in _COMPILED:
        # through a weak reference: a function that held the network would keep its own key
        # alive, and the network would never be freed
        ref = weakref.ref(network)
        _COMPILED[network] = tf.function(lambda x, t: ref()([x, t], training=False),
                                         reduce_retracing=True)
    return _COMPILED[network]


def _predictor(network, batch_size):
    """A function (x float64 array, t int) -> predicted noise as float64, calling
    ``network([x_t, t])`` in chunks of ``batch_size`` with int32 steps: a keras.Model through
    its tf.function (:func:`_compiled`) on float32 inputs, a plain callable as it is on float64
    NumPy arrays."""
    call = _compiled(network) if isinstance(network, keras.Model) else network

    def predict(x, t):
        parts = []
        for start in range(0, len(x), batch_size):
            chunk = x[start:start + batch_size]
            steps = np.full(len(chunk), t, dtype=np.int32)
            if isinstance(network, keras.Model):
                out = call(ops.convert_to_tensor(chunk.astype(np.float32)),
                           ops.convert_to_tensor(steps))
            else:
                out = call([chunk, steps])
            out = np.asarray(ops.convert_to_numpy(out) if _is_tensor(out) else out,
                             dtype=np.float64)
            if out.shape != chunk.shape:
                raise ValueError(f"network must return noise of x_t's shape {chunk.shape}, "
                                 f"got {out.shape}")
            parts.append(out)
        return np.concatenate(parts)

    return predict


def _check_return_steps(return_steps, T: int) -> set[int]:
    if return_steps is None:
        return set()
    if isinstance(return_steps, (int, np.integer)):
        return_steps = [return_steps]
    return {int(s) for s in _check_steps_array(np.asarray(list(return_steps)), T,
                                               name="return_steps")}


def ddpm_sample(network, schedule, shape, seed, return_steps=None, variance: str = "beta",
                batch_size: int | None = None):
    """Ancestral DDPM sampling (Ho et al. Algorithm 2): x_{T-1} ~ N(0, I) of ``shape``
    (n, *data_shape), then :func:`ddpm_step` for t = T-1 .. 0 with the network's noise
    prediction (``network([x_t, t])``, a keras.Model, or a callable that takes float64 NumPy
    arrays, e.g. :meth:`GaussianMixture2D.noise_predictor`; called in chunks of
    ``batch_size``, default all n) and standard normal noise, all drawn from NumPy's
    generator seeded with ``seed``. Returns the samples as a float32 array; with
    ``return_steps`` (code steps), also a dict {t: x_t}, the input of each listed step
    (t = T - 1: the initial noise)."""
    network = _check_network(network)
    schedule = _check_schedule(schedule)
    shape = _check_shape(shape)
    seed = check_seed(seed, allow_none=False)
    variance = _check_variance(variance)
    wanted = _check_return_steps(return_steps, schedule.T)
    batch_size = shape[0] if batch_size is None else check_positive_int(batch_size, "batch_size")
    predict = _predictor(network, batch_size)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    trajectory = {}
    for t in range(schedule.T - 1, -1, -1):
        if t in wanted:
            trajectory[t] = x.astype(np.float32)
        noise = rng.standard_normal(shape) if t > 0 else np.zeros(shape)
        x = ddpm_step(schedule, x, t, predict(x, t), noise, variance=variance)
    x = x.astype(np.float32)
    return x if return_steps is None else (x, trajectory)


def ddim_sample(network, schedule, shape, steps, eta: float = 0.0, seed=None,
                return_steps=None, batch_size: int | None = None):
    """DDIM sampling (Song et al. eq. 12) over the ``steps`` code steps of
    :func:`ddim_timesteps` (from T - 1 down to 0, then to the clean sample): x ~ N(0, I) of
    ``shape`` (n, *data_shape), then :func:`ddim_step` between consecutive steps with
    ``eta`` (0: deterministic, the same initial noise gives the same samples; 1: ancestral).
    Noise from NumPy's generator seeded with ``seed`` (``None``: fresh entropy). Returns
    float32 samples; with ``return_steps`` (a subset of the visited steps) also {t: x_t}."""
    network = _check_network(network)
    schedule = _check_schedule(schedule)
    shape = _check_shape(shape)
    steps = check_positive_int(steps, "steps")
    if steps > schedule.T:
        raise ValueError(f"steps must be <= T ({schedule.T}), got {steps}")
    eta = _check_eta(eta)
    seed = check_seed(seed)
    wanted = _check_return_steps(return_steps, schedule.T)
    timesteps = ddim_timesteps(schedule.T, steps)
    missing = wanted - set(timesteps.tolist())
    if missing:
        raise ValueError(f"return_steps must be steps that DDIM visits "
                         f"(ddim_timesteps(T, steps)), not {sorted(missing)}")
    batch_size = shape[0] if batch_size is None else check_positive_int(batch_size, "batch_size")
    predict = _predictor(network, batch_size)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    trajectory = {}
    for t, t_prev in zip(timesteps, [*timesteps[1:], -1], strict=True):
        t, t_prev = int(t), int(t_prev)
        if t in wanted:
            trajectory[t] = x.astype(np.float32)
        noise = rng.standard_normal(shape) if eta > 0 and t_prev >= 0 else np.zeros(shape)
        x = ddim_step(schedule, x, t, t_prev, predict(x, t), noise, eta=eta)
    x = x.astype(np.float32)
    return x if return_steps is None else (x, trajectory)


# ---------------------------------------------------------------- a 2-D mixture, in closed form
def _alpha_bar_at(t, schedule) -> float | np.ndarray:
    """alpha_bar at ``t``; ``t=None`` means the clean data (alpha_bar = 1)."""
    if t is None:
        return 1.0
    schedule = _check_schedule(schedule)
    return schedule.alpha_bar[_check_steps_array(t, schedule.T)]  # a scalar for a scalar t


class GaussianMixture2D:
    """A mixture of isotropic Gaussians N(means[k], stds[k]^2 I) in the plane with
    ``weights`` (positive, normalised to sum 1). The forward process maps component k to
    N(sqrt(ab) means[k], (ab stds[k]^2 + 1 - ab) I) at a step with alpha_bar = ab, so the
    noised distribution is the mixture of those with the same weights: its ``log_density``
    and ``score`` (gradient of the log density in x) are exact, in float64. ``t=None``
    means the data themselves."""

    def __init__(self, means, stds, weights=None):
        means = as_finite_array(means, "means", ndim=2, dtype=np.float64)
        if means.shape[1] != 2:
            raise ValueError(f"means must have shape (components, 2), got {means.shape}")
        k = len(means)
        stds = check_positive_array(np.broadcast_to(stds, (k,)) if np.ndim(stds) == 0
                                    else stds, "stds", ndim=1)
        weights = np.full(k, 1.0 / k) if weights is None else check_positive_array(
            weights, "weights", ndim=1)
        for name, arr in (("stds", stds), ("weights", weights)):
            if len(arr) != k:
                raise ValueError(f"{name} must have one value per component ({k}), got "
                                 f"{len(arr)}")
        self.means, self.stds = means, stds
        self.weights = weights / weights.sum()

    def __repr__(self):
        return f"GaussianMixture2D({len(self.means)} components)"

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` points (n, 2) as float32, drawn with NumPy ``seed``."""
        n = check_positive_int(n, "n")
        rng = np.random.default_rng(check_seed(seed, allow_none=False))
        k = rng.choice(len(self.weights), size=n, p=self.weights)
        points = self.means[k] + self.stds[k, None] * rng.standard_normal((n, 2))
        return points.astype(np.float32)

    def _noised(self, x, t, schedule):
        x = as_finite_array(x, "x", ndim=2, dtype=np.float64)
        if x.shape[1] != 2:
            raise ValueError(f"x must have shape (n, 2), got {x.shape}")
        ab = _alpha_bar_at(t, schedule)
        if np.ndim(ab):
            if len(ab) not in (1, len(x)):
                raise ValueError(f"t must be one step or one per point ({len(x)}), got "
                                 f"{len(ab)}")
            ab = ab[:, None]  # (n, 1) against components (1, K)
        means = np.sqrt(ab)[..., None] * self.means if np.ndim(ab) else math.sqrt(ab) * self.means
        variances = ab * self.stds**2 + 1.0 - ab  # (K,) or (n, K)
        diff = x[:, None, :] - means  # (n, K, 2)
        log_terms = (np.log(self.weights) - np.log(2 * np.pi * variances)
                     - 0.5 * np.sum(diff**2, axis=-1) / variances)  # (n, K)
        return diff, variances, log_terms

    def log_density(self, x, t=None, schedule=None) -> np.ndarray:
        """ln p_t(x) of each point of ``x`` (n, 2) under the noised mixture at code step ``t``
        (an integer, or one per point) of ``schedule``; the data's density for ``t=None``."""
        _, _, log_terms = self._noised(x, t, schedule)
        top = log_terms.max(axis=1, keepdims=True)
        return (top + np.log(np.exp(log_terms - top).sum(axis=1, keepdims=True)))[:, 0]

    def score(self, x, t=None, schedule=None) -> np.ndarray:
        """The score grad_x ln p_t(x) (n, 2): sum_k r_k(x) (sqrt(ab) means[k] - x) / v_k, with
        r_k the components' posterior probabilities and v_k their noised variances."""
        diff, variances, log_terms = self._noised(x, t, schedule)
        r = np.exp(log_terms - log_terms.max(axis=1, keepdims=True))
        r /= r.sum(axis=1, keepdims=True)
        v = variances[..., None] if np.ndim(variances) == 2 else variances[None, :, None]
        return -np.sum(r[..., None] * diff / v, axis=1)

    def noise_predictor(self, schedule):
        """The ideal noise prediction as a network-like callable for the samplers:
        ``[x_t, t] -> -sqrt(1 - alpha_bar[t]) score(x_t, t)`` (per-example steps)."""
        schedule = _check_schedule(schedule)

        def predict(inputs):
            x, t = inputs
            t = np.asarray(t)
            return -schedule.sqrt_one_minus_alpha_bar[t][:, None] * self.score(x, t, schedule)

        return predict


def score_from_noise(eps_hat, t, schedule) -> np.ndarray:
    """The score implied by a noise prediction: -eps_hat / sqrt(1 - alpha_bar[t]) (float64;
    ``t`` one step or one per row of ``eps_hat``)."""
    schedule = _check_schedule(schedule)
    t = _check_steps_array(t, schedule.T)
    eps_hat = _check_batch(eps_hat, "eps_hat", batch=t.size)
    return -eps_hat / NoiseSchedule._take(schedule.sqrt_one_minus_alpha_bar, t, eps_hat)


__all__ = ["DiffusionModel", "GaussianMixture2D", "ImageGroupNorm", "NoiseSchedule",
           "SinusoidalEmbedding",
           "build_mlp_denoiser", "build_unet", "cosine_schedule", "ddim_sample", "ddim_sigma",
           "ddim_step", "ddim_timesteps", "ddpm_sample", "ddpm_step", "linear_schedule",
           "min_snr_weights", "score_from_noise", "sinusoidal_embedding"]

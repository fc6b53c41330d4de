"""A variational autoregressive network (VAN; Wu, Wang & Zhang, PRL 122, 080602 (2019),
arXiv:1809.10606) for the 2-D ferromagnetic Ising model on a periodic L x L lattice (J = 1,
no field, spins +-1): a MADE-style masked dense network (Germain et al. 2015,
arXiv:1502.03509) gives q(s) = prod_i q(s_i | s_<i) over the sites in raster order; it is
trained without data by minimising the variational free energy
F_q = E_q[E(s) + T ln q(s)] >= F with the score-function (REINFORCE) gradient, and gives
importance-sampling estimates of ln Z. Used by the autoregressive Ising notebook.

Energy convention (as ``helpers.data.ising``): E(s) = -sum_i s_i (s_right(i) + s_down(i)),
each nearest-neighbour bond once (on a 2 x 2 torus the doubled bond counts twice), so the
ground state has E = -2 L^2.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf
from keras import ops
from scipy.special import logsumexp

from helpers.infra.checks import (
    as_finite_array,
    check_bool,
    check_positive,
    check_positive_int,
    check_seed,
)
from helpers.infra.config import require_tensorflow_backend

require_tensorflow_backend(__name__)


# ---------------------------------------------------------------- input checks
def _check_L(L) -> int:
    return check_positive_int(L, "L", minimum=2)


def _check_spins(spins, name: str = "spins", L: int | None = None) -> np.ndarray:
    """``spins`` (lists, arrays, eager tensors) as a float32 array of shape (batch, L, L)
    holding only -1 and +1; with ``L``, the lattice must have that size."""
    if tf.is_tensor(spins) or isinstance(spins, keras.Variable):
        spins = ops.convert_to_numpy(spins)
    try:
        arr = np.asarray(spins)
    except ValueError:
        raise ValueError(f"{name} must be a rectangular array of shape (batch, L, L), got a "
                         "ragged sequence") from None
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must be a numeric array of +-1, got dtype {arr.dtype}")
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2] or arr.shape[1] < 2:
        raise ValueError(f"{name} must have shape (batch, L, L) with L >= 2, got {arr.shape}")
    if L is not None and arr.shape[1] != L:
        raise ValueError(f"{name} must be {L} x {L} lattices (the model's L), got shape "
                         f"{arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if not np.isin(arr, (-1, 1)).all():
        raise ValueError(f"{name} must hold only -1 and +1 (convert 0/1 bits with "
                         "2 * bits - 1)")
    return arr.astype(np.float32)


def _check_van(model, name: str = "model") -> VAN:
    if not isinstance(model, VAN):
        raise TypeError(f"{name} must be a VAN (autoregressive.VAN(L)), got "
                        f"{type(model).__name__}")
    return model


# ---------------------------------------------------------------- energy
def _energy(spins):
    """Total energy of each lattice of a (batch, L, L) tensor, no checks (used in graphs)."""
    right = ops.roll(spins, -1, axis=2)
    down = ops.roll(spins, -1, axis=1)
    return -ops.sum(spins * (right + down), axis=(1, 2))


def ising_energy(spins):
    """Total energy E(s) = -sum_<ij> s_i s_j of each configuration of ``spins`` (shape
    (batch, L, L), values +-1, periodic boundaries), as a float32 tensor of shape (batch,).
    Not per spin: divide by L**2 for the energy per spin."""
    return _energy(ops.convert_to_tensor(_check_spins(spins)))


# ---------------------------------------------------------------- masked layer
def autoregressive_mask(fan_in: int, units: int, n_sites: int, exclusive: bool) -> np.ndarray:
    """The (fan_in, units) 0/1 mask of a MADE layer on ``n_sites`` sites: input unit v has
    degree v % n_sites, output unit u degree u % n_sites (units are channel-major blocks of
    n_sites); the mask keeps v -> u where deg(u) > deg(v) (``exclusive``) or >=."""
    n_sites = check_positive_int(n_sites, "n_sites")
    fan_in = check_positive_int(fan_in, "fan_in")
    units = check_positive_int(units, "units")
    if fan_in % n_sites or units % n_sites:
        raise ValueError(f"fan_in ({fan_in}) and units ({units}) must be multiples of "
                         f"n_sites ({n_sites})")
    deg_in = np.arange(fan_in) % n_sites
    deg_out = np.arange(units) % n_sites
    keep = deg_out[None, :] > deg_in[:, None] if exclusive else deg_out[None, :] >= deg_in[:, None]
    return keep.astype(np.float32)


@keras.saving.register_keras_serializable(package="helpers")
class MaskedDense(keras.layers.Layer):
    """A dense layer whose kernel is multiplied by MADE's fixed autoregressive mask on
    ``n_sites`` sites (raster order): ``channels * n_sites`` outputs, unit (c, i) at index
    c * n_sites + i with degree i; the input width must be a multiple of n_sites, input unit
    v having degree v % n_sites. ``exclusive=True`` (the first layer): output i sees inputs
    of sites < i; ``exclusive=False`` (later layers): sites <= i. The kernel starts
    variance-scaled on the unmasked inputs (uniform, variance 1 / (kept inputs per unit)),
    the bias at 0."""

    def __init__(self, n_sites, channels=1, exclusive=False, use_bias=True, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.n_sites = check_positive_int(n_sites, "n_sites")
        self.channels = check_positive_int(channels, "channels")
        self.exclusive = check_bool(exclusive, "exclusive")
        self.use_bias = check_bool(use_bias, "use_bias")
        self.seed = check_seed(seed)
        self.units = self.channels * self.n_sites

    def build(self, input_shape):
        fan_in = input_shape[-1]
        if fan_in is None or fan_in % self.n_sites:
            raise ValueError(f"MaskedDense: the input width must be a multiple of n_sites "
                             f"({self.n_sites}), got input shape {tuple(input_shape)}")
        self._mask = autoregressive_mask(int(fan_in), self.units, self.n_sites, self.exclusive)
        kept = float(self._mask.sum())
        scale = self._mask.size / kept if kept else 1.0  # fan_in counts only kept inputs
        self.kernel = self.add_weight(
            shape=(int(fan_in), self.units), name="kernel",
            initializer=keras.initializers.VarianceScaling(
                scale=scale, mode="fan_in", distribution="uniform", seed=self.seed))
        self.bias = (self.add_weight(shape=(self.units,), name="bias", initializer="zeros")
                     if self.use_bias else None)

    @property
    def mask(self) -> np.ndarray:
        """The (fan_in, units) 0/1 mask (after build)."""
        return self._mask

    def call(self, inputs):
        mask = ops.convert_to_tensor(self._mask, dtype=self.kernel.dtype)
        out = ops.matmul(inputs, self.kernel * mask)
        return out + self.bias if self.use_bias else out

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape)[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "n_sites": self.n_sites, "channels": self.channels,
                "exclusive": self.exclusive, "use_bias": self.use_bias, "seed": self.seed}


# ---------------------------------------------------------------- the model
@keras.saving.register_keras_serializable(package="helpers")
class VAN(keras.Model):
    """Variational autoregressive network on an L x L Ising lattice (the VAN paper's dense
    architecture): ``depth`` masked dense layers, hidden ones ``channels * L**2`` units wide,
    PReLU (slope 0.5 at start) between them; the first layer is exclusive, so the logit of
    site i depends only on sites < i (raster order).

    ``call(spins)``: logits of q(s_i = +1 | s_<i), shape (batch, L, L). ``log_prob(spins)``:
    exact ln q(s). ``sample(n, seed)``: exact ancestral samples. With ``symmetric=True`` the
    model is q_sym(s) = (q(s) + q(-s)) / 2 (spin-flip symmetric).

    Training needs no data: ``beta`` (a non-trainable variable, 1.0 at start) is the inverse
    temperature; each ``train_step`` draws a batch from q (its size is that of the dummy
    batch ``fit`` passes; see :func:`train_van`), computes f = beta E(s) + ln q(s) and
    minimises mean((f - mean f) ln q(s)) (f held fixed), whose gradient is that of
    beta F_q. It reports ``free_energy`` (F_q / N = mean f / (beta N)), ``energy`` and
    ``entropy`` (-mean ln q / N) per spin.
    """

    def __init__(self, L, depth=2, channels=1, symmetric=False, seed=None, **kwargs):
        L = _check_L(L)
        depth = check_positive_int(depth, "depth")
        channels = check_positive_int(channels, "channels")
        symmetric = check_bool(symmetric, "symmetric")
        seed = check_seed(seed)
        super().__init__(**kwargs)
        self.L, self.depth, self.channels = L, depth, channels
        self.symmetric, self.seed = symmetric, seed
        self.n_sites = n = L * L
        self.masked_layers, self.prelus = [], []
        width = n
        for k in range(depth):
            last = k == depth - 1
            layer = MaskedDense(n, 1 if last else channels, exclusive=k == 0,
                                seed=None if seed is None else seed + k, name=f"masked_{k}")
            layer.build((None, width))
            self.masked_layers.append(layer)
            width = layer.units
            if not last:
                prelu = keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(0.5),
                                           name=f"prelu_{k}")
                prelu.build((None, width))
                self.prelus.append(prelu)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.beta_variable = self.add_weight(shape=(), name="beta", trainable=False,
                                             initializer=keras.initializers.Constant(1.0))
        self.trackers = [keras.metrics.Mean(name=m)
                         for m in ("free_energy", "energy", "entropy")]
        self.built = True

    # ---- beta
    @property
    def beta(self) -> float:
        """The inverse temperature that ``train_step`` uses (settable, > 0)."""
        return float(ops.convert_to_numpy(self.beta_variable))

    @beta.setter
    def beta(self, value):
        self.beta_variable.assign(check_positive(value, "beta"))

    @property
    def metrics(self):
        return self.trackers

    # ---- the network, on flat (batch, N) spins
    def _logits(self, flat):
        h = flat
        for k, layer in enumerate(self.masked_layers):
            if k:
                h = self.prelus[k - 1](h)
            h = layer(h)
        return h

    def _log_q(self, flat):
        return ops.sum(ops.log_sigmoid(flat * self._logits(flat)), axis=-1)

    def log_prob_flat(self, flat):
        """ln q(s) of flat configurations (batch, N) of +-1, as a tensor, without input
        checks (for use inside a training step; :meth:`log_prob` checks its input)."""
        if not self.symmetric:
            return self._log_q(flat)
        return ops.logaddexp(self._log_q(flat), self._log_q(-flat)) - math.log(2.0)

    def draw(self, n, seed_generator, u=None):
        """(n, N) exact ancestral samples as a tensor of +-1 (inside a training step;
        :meth:`sample` returns lattices), one site per forward pass, in raster order: site i
        of sample b is +1 where u[b, i] < q(s_i = +1 | s_<i), ``u`` (n, N) uniforms drawn
        from ``seed_generator`` unless given; a symmetric model then flips each sample's
        sign with probability 1/2."""
        N = self.n_sites
        if u is None:
            u = keras.random.uniform((n, N), seed=seed_generator)
        coin = keras.random.uniform((n, 1), seed=seed_generator) if self.symmetric else None

        def body(i, s):
            p = ops.sigmoid(ops.take(self._logits(s), i, axis=1))
            value = ops.where(ops.take(u, i, axis=1) < p, 1.0, -1.0)
            return s + ops.expand_dims(ops.one_hot(i, N), 0) * ops.expand_dims(value, 1)

        s = ops.fori_loop(0, N, body, ops.zeros((n, N)))
        if coin is not None:
            s = ops.where(coin < 0.5, -s, s)
        return s

    # ---- public
    def call(self, spins):
        if len(spins.shape) != 3 or tuple(spins.shape[1:]) != (self.L, self.L):
            raise ValueError(f"spins must have shape (batch, {self.L}, {self.L}), got "
                             f"{tuple(spins.shape)}")
        flat = ops.reshape(ops.cast(spins, "float32"), (-1, self.n_sites))
        return ops.reshape(self._logits(flat), (-1, self.L, self.L))

    def log_prob(self, spins):
        """Exact ln q(s) of each configuration of ``spins`` (batch, L, L) of +-1, a float32
        tensor of shape (batch,); for a symmetric model ln((q(s) + q(-s)) / 2)."""
        s = _check_spins(spins, L=self.L)
        return self.log_prob_flat(ops.convert_to_tensor(s.reshape(-1, self.n_sites)))

    def sample(self, n, seed=None, batch_size=None, uniforms=None) -> np.ndarray:
        """``n`` exact samples of q as a float32 array (n, L, L) of +-1, drawn one site at a
        time in raster order (L**2 forward passes per batch of ``batch_size``, default all n
        at once): site i is +1 where its uniform number is below q(s_i = +1 | s_<i). With
        ``seed`` the draws come from a new SeedGenerator(seed) and repeat exactly; without,
        from the model's own generator (which advances). ``uniforms``, an (n, L, L) array in
        [0, 1), supplies those numbers instead (for a model that is not symmetric), so that
        another implementation of the sampler can be checked against this one exactly."""
        n = check_positive_int(n, "n")
        seed = check_seed(seed)
        batch_size = n if batch_size is None else check_positive_int(batch_size, "batch_size")
        generator = self.seed_generator if seed is None else keras.random.SeedGenerator(seed)
        if uniforms is not None:
            if self.symmetric:
                raise ValueError("uniforms: a symmetric model also draws a sign per sample; "
                                 "give uniforms to a model with symmetric=False")
            uniforms = as_finite_array(uniforms, "uniforms").astype(np.float32)
            if uniforms.shape != (n, self.L, self.L) or uniforms.min() < 0 or uniforms.max() >= 1:
                raise ValueError(f"uniforms must be an array of shape ({n}, {self.L}, {self.L}) "
                                 f"in [0, 1), got shape {uniforms.shape}")
            uniforms = uniforms.reshape(n, self.n_sites)
        parts = [ops.convert_to_numpy(self.draw(
                     min(batch_size, n - start), generator,
                     None if uniforms is None else uniforms[start:start + batch_size]))
                 for start in range(0, n, batch_size)]
        return np.concatenate(parts).reshape(n, self.L, self.L).astype(np.float32)

    # ---- training
    def train_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        n = ops.shape(x)[0]
        flat = ops.stop_gradient(self.draw(n, self.seed_generator))
        beta = ops.convert_to_tensor(self.beta_variable)
        energy = _energy(ops.reshape(flat, (-1, self.L, self.L)))
        with tf.GradientTape() as tape:
            log_q = self.log_prob_flat(flat)
            f = ops.stop_gradient(beta * energy + log_q)
            loss = ops.mean((f - ops.mean(f)) * log_q)
        weights = self.trainable_weights
        self.optimizer.apply(tape.gradient(loss, weights), weights)
        N = float(self.n_sites)
        for tracker, value in zip(self.trackers, (f / (beta * N), energy / N, -log_q / N),
                                  strict=True):
            tracker.update_state(value)
        return {m.name: m.result() for m in self.trackers}

    def get_config(self):
        return {"name": self.name, "L": self.L, "depth": self.depth, "channels": self.channels,
                "symmetric": self.symmetric, "seed": self.seed}


class BetaAnnealing(keras.callbacks.Callback):
    """Anneal the model's inverse temperature as in the VAN paper: before update k
    (k = 0, 1, ... counted by the optimizer), beta = beta_final * (1 - decay**(k + 1)), which
    starts near beta_final * (1 - decay) (high temperature) and reaches 95% of beta_final
    after about 3 / (1 - decay) updates. At the end of training beta is set to beta_final.
    ``betas`` records the value used at each update."""

    def __init__(self, beta, decay=0.99):
        super().__init__()
        self.beta_final = check_positive(beta, "beta")
        decay = check_positive(decay, "decay")
        if decay >= 1:
            raise ValueError(f"decay must lie in (0, 1), got {decay!r}")
        self.decay = decay
        self.betas: list[float] = []

    def on_train_batch_begin(self, batch, logs=None):
        step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        beta = self.beta_final * (1.0 - self.decay ** (step + 1))
        self.model.beta = beta
        self.betas.append(beta)

    def on_train_end(self, logs=None):
        self.model.beta = self.beta_final


def train_van(model, beta, steps, batch_size=1000, learning_rate=1e-3, seed=None,
              anneal=None, callbacks=None) -> dict:
    """Train ``model`` for ``steps`` updates at inverse temperature ``beta`` with a fresh
    Adam(``learning_rate``), ``batch_size`` samples per update, through ``model.fit`` on a
    dummy batch (one update per Keras epoch, so the history holds one value per update).
    ``seed`` restarts the model's sampling generator (deterministic on CPU); ``anneal``, a
    decay in (0, 1), adds :class:`BetaAnnealing`. Returns the history dict
    (``free_energy``, ``energy``, ``entropy``; with annealing also ``beta``)."""
    model = _check_van(model)
    beta = check_positive(beta, "beta")
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    learning_rate = check_positive(learning_rate, "learning_rate")
    seed = check_seed(seed)
    callbacks = list(callbacks or [])
    if seed is not None:
        model.seed_generator.state.assign(keras.random.SeedGenerator(seed).state.value)
    model.beta = beta
    annealing = None if anneal is None else BetaAnnealing(beta, decay=anneal)
    if annealing is not None:
        callbacks.append(annealing)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    dummy = tf.data.Dataset.from_tensors(np.zeros((batch_size, 1), np.float32)).repeat()
    history = model.fit(dummy, epochs=steps, steps_per_epoch=1, shuffle=False, verbose=0,
                        callbacks=callbacks).history
    history = {k: [float(v) for v in vals] for k, vals in history.items()}
    if annealing is not None:
        history["beta"] = list(annealing.betas)
    return history


# ---------------------------------------------------------------- estimates
class FreeEnergyEstimates(NamedTuple):
    """Estimates at one inverse temperature from ``n_samples`` samples of q (per spin where
    named so; N = L**2):

    - ``free_energy_q``: the variational free energy F_q / N = mean(E + T ln q) / N, an upper
      bound on F / N; ``free_energy_q_se`` its Monte Carlo standard error;
    - ``log_z``: importance-sampling ln Z = ln mean(w), w = exp(-beta E) / q (Z's estimate
      exp(log_z) is unbiased); ``log_z_se``: the standard error of that mean over the mean
      (delta method), about the standard error of ``log_z``;
    - ``free_energy``: -log_z / (beta N);
    - ``ess``: the effective sample size (sum w)^2 / sum w^2 as a fraction of n_samples;
    - ``energy_weighted``: the importance-weighted energy per spin, sum w E / sum w / N;
    - ``energy``: the plain mean energy per spin of q's samples."""

    beta: float
    n_samples: int
    free_energy_q: float
    free_energy_q_se: float
    log_z: float
    log_z_se: float
    free_energy: float
    ess: float
    energy_weighted: float
    energy: float


def free_energy_estimates(model, beta, n_samples=10_000, seed=0,
                          batch_size=10_000) -> FreeEnergyEstimates:
    """Variational and importance-sampling estimates of the free energy of the Ising model
    at inverse temperature ``beta`` from ``n_samples`` samples of ``model`` (drawn in batches
    of ``batch_size`` from SeedGenerator(``seed``)); everything in log space. See
    :class:`FreeEnergyEstimates`."""
    model = _check_van(model)
    beta = check_positive(beta, "beta")
    n_samples = check_positive_int(n_samples, "n_samples")
    seed = check_seed(seed)
    batch_size = check_positive_int(batch_size, "batch_size")
    generator = keras.random.SeedGenerator(seed)
    energies, log_qs = [], []
    for start in range(0, n_samples, batch_size):
        flat = model.draw(min(batch_size, n_samples - start), generator)
        energies.append(ops.convert_to_numpy(_energy(ops.reshape(flat, (-1, model.L, model.L)))))
        log_qs.append(ops.convert_to_numpy(model.log_prob_flat(flat)))
    energy = np.concatenate(energies).astype(np.float64)
    log_q = np.concatenate(log_qs).astype(np.float64)
    N = model.n_sites
    f = beta * energy + log_q
    se_f = float(np.std(f, ddof=1) / math.sqrt(n_samples)) if n_samples > 1 else math.inf
    log_w = -f
    lse = logsumexp(log_w)
    log_z = lse - math.log(n_samples)
    weights = np.exp(log_w - lse)  # normalised importance weights
    ess = float(math.exp(2 * lse - logsumexp(2 * log_w)) / n_samples)
    w_scaled = np.exp(log_w - float(np.max(log_w)))
    log_z_se = (float(np.std(w_scaled, ddof=1) / math.sqrt(n_samples) / np.mean(w_scaled))
                if n_samples > 1 else math.inf)
    return FreeEnergyEstimates(
        beta=beta, n_samples=n_samples,
        free_energy_q=float(np.mean(f) / (beta * N)), free_energy_q_se=se_f / (beta * N),
        log_z=log_z, log_z_se=log_z_se, free_energy=-log_z / (beta * N),
        ess=min(ess, 1.0), energy_weighted=float(np.sum(weights * energy) / N),
        energy=float(np.mean(energy) / N))


__all__ = ["VAN", "BetaAnnealing", "FreeEnergyEstimates", "MaskedDense", "autoregressive_mask",
           "free_energy_estimates", "ising_energy", "train_van"]

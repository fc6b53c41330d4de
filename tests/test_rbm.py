import math

import keras
import numpy as np
import pytest
from scipy import special, stats

from helpers.evaluation import partition
from helpers.infra import config
from helpers.models import rbm as rbm_lib


def _tiny(n_visible=10, n_hidden=6, scale=1.0, seed=0):
    model = rbm_lib.RBM(n_visible=n_visible, n_hidden=n_hidden, seed=seed)
    rng = np.random.default_rng(seed)
    model.W.assign(rng.normal(0, scale, (n_visible, n_hidden)).astype("float32"))
    model.b.assign(rng.normal(0, 1, n_visible).astype("float32"))
    model.c.assign(rng.normal(0, 1, n_hidden).astype("float32"))
    return model


def _all_states(n):
    return ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(np.float64)


def _brute_force(model):
    """log of exp(-E(v, h)) for every joint state: rows v, columns h."""
    W, b, c = (np.asarray(t.numpy(), np.float64) for t in (model.W, model.b, model.c))
    v, h = _all_states(model.n_visible), _all_states(model.n_hidden)
    return v, (v @ b)[:, None] + (h @ c)[None, :] + v @ W @ h.T


def test_exact_log_partition_matches_brute_force_enumeration():
    model = _tiny()
    _, neg_energy = _brute_force(model)
    assert partition.exact_log_partition(model) == pytest.approx(
        np.logaddexp.reduce(neg_energy.ravel()), abs=1e-9)


def test_free_energy_matches_its_definition():
    model = _tiny()
    v, neg_energy = _brute_force(model)
    expected = -np.logaddexp.reduce(neg_energy, axis=1)  # F(v) = -log sum_h exp(-E(v, h))
    np.testing.assert_allclose(model.free_energy(v.astype(np.float32)), expected, rtol=1e-5)


def test_conditionals_hand_computed():
    model = rbm_lib.RBM(n_visible=2, n_hidden=2, seed=0)
    model.W.assign(np.array([[1.0, -2.0], [0.5, 0.0]], np.float32))
    model.b.assign(np.array([0.1, -0.3], np.float32))
    model.c.assign(np.array([-1.0, 0.25], np.float32))
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    # v = (1, 1): hidden inputs c + v W = (-1 + 1 + 0.5, 0.25 - 2) = (0.5, -1.75)
    np.testing.assert_allclose(model.hidden_probs(np.array([[1.0, 1.0]], np.float32)),
                               [[sig(0.5), sig(-1.75)]], rtol=1e-6)
    # h = (0, 1): visible inputs b + W h = (0.1 - 2, -0.3 + 0) = (-1.9, -0.3)
    np.testing.assert_allclose(model.visible_probs(np.array([[0.0, 1.0]], np.float32)),
                               [[sig(-1.9), sig(-0.3)]], rtol=1e-6)


def test_ais_agrees_with_the_exact_partition_function():
    model = _tiny(n_visible=20, n_hidden=12, scale=0.7, seed=3)
    exact = partition.exact_log_partition(model)
    estimate, std = partition.ais_log_partition(model, np.zeros(20), n_runs=200, n_betas=3000,
                                              seed=1)
    assert abs(estimate - exact) < 0.1
    assert 0 < std < 0.1


def test_gibbs_chains_sample_the_model_distribution():
    # 6 visible units: 64 states; long chains must visit them with the exact frequencies
    model = _tiny(n_visible=6, n_hidden=4, scale=0.8, seed=5)
    v, neg_energy = _brute_force(model)
    p_exact = np.exp(np.logaddexp.reduce(neg_energy, axis=1) - partition.exact_log_partition(model))
    config.set_seed(0)
    chains = np.zeros((4000, 6), np.float32)
    for _ in range(30):  # burn-in, then collect the states of every chain
        chains = model.gibbs_step(chains)[0]
    counts = np.zeros(64)
    for _ in range(10):
        for _ in range(5):
            chains = model.gibbs_step(chains)[0]
        codes = (np.asarray(chains) * (1 << np.arange(6))).sum(axis=1).astype(int)
        counts += np.bincount(codes, minlength=64)
    expected = p_exact * counts.sum()
    keep = expected > 5
    chi2 = ((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    # the 10 snapshots of a chain are correlated; a generous p-value threshold allows for it
    assert stats.chi2.sf(chi2 / 10, keep.sum() - 1) > 1e-3


def test_pseudo_log_likelihood_is_n_times_the_exact_conditional():
    model = _tiny()
    v_all, neg_energy = _brute_force(model)
    log_p = np.logaddexp.reduce(neg_energy, axis=1)  # unnormalised log p(v)
    rng = np.random.default_rng(0)
    v = rng.integers(0, 2, (5, 10)).astype(np.float32)
    idx = rng.integers(0, 10, 5)
    got = model.pseudo_log_likelihood(v, indices=idx)
    code = lambda x: int((x * (1 << np.arange(10))).sum())  # noqa: E731
    for row, i, value in zip(v, idx, got, strict=True):
        flipped = row.copy()
        flipped[i] = 1 - flipped[i]
        a, b = log_p[code(row)], log_p[code(flipped)]
        assert value == pytest.approx(10 * (a - np.logaddexp(a, b)), rel=1e-4)


def test_training_lowers_reconstruction_error_cd_and_pcd():
    rng = np.random.default_rng(0)
    prototypes = rng.integers(0, 2, (4, 30))
    x = prototypes[rng.integers(0, 4, 400)].astype(np.float32)
    for persistent in (False, True):
        config.set_seed(0)
        model = rbm_lib.RBM(n_visible=30, n_hidden=8, k=2, persistent=persistent,
                            n_chains=20, seed=0)
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.5))
        h = model.fit(x, epochs=15, batch_size=20, verbose=0).history
        assert h["reconstruction_error"][-1] < 0.5 * h["reconstruction_error"][0]
        # a uniform model has pseudo-log-likelihood 30 log(1/2) = -20.8; learning raises it
        assert h["pseudo_loglik"][0] < 0 and h["pseudo_loglik"][-1] > h["pseudo_loglik"][0] + 5
    assert set(model.evaluate(x, verbose=0, return_dict=True)) == {
        "reconstruction_error", "pseudo_loglik"}
    # the learned model prefers the training patterns to random ones
    random = rng.integers(0, 2, (400, 30)).astype(np.float32)
    assert np.mean(model.free_energy(x)) < np.mean(model.free_energy(random)) - 5


def test_round_trip(tmp_path):
    model = _tiny()
    model.compile(optimizer="sgd")
    model.save(tmp_path / "rbm.keras")
    loaded = keras.saving.load_model(tmp_path / "rbm.keras")
    v = np.eye(10, dtype=np.float32)
    np.testing.assert_array_equal(model.free_energy(v), loaded.free_energy(v))


def test_ais_schedule():
    betas = partition.ais_schedule(14_500)
    assert len(betas) == 14_500 and betas[0] == 0 and betas[-1] == 1
    assert np.all(np.diff(betas) > 0)
    assert np.sum(betas >= 0.9) == 10_000


@pytest.mark.parametrize("call, match", [
    (lambda m: m.fit(np.full((4, 10), 0.5, np.float32), verbose=0), "binarize=True"),
    (lambda m: m.fit(np.zeros((4, 9), np.float32), verbose=0), r"shape \(n, 10\)"),
    (lambda m: m.pseudo_log_likelihood(np.full((2, 10), np.nan)), "NaN"),
    (lambda m: partition.exact_log_partition(rbm_lib.RBM(10, 30)), "max_hidden"),
    (lambda m: partition.ais_log_partition(m, np.zeros(9)), "base_bias"),
    (lambda m: rbm_lib.RBM(0, 5), "n_visible"),
    (lambda m: rbm_lib.RBM(10, 5, k=0), "k must"),
    (lambda m: rbm_lib.RBM(10, 5, weight_decay=-1.0), "weight_decay"),
])
def test_bad_inputs(call, match):
    model = _tiny()
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match=match):
        call(model)


def test_binarize_on_request():
    # each pixel i of every row has intensity p_i: binarised, it is on with frequency p_i
    model = _tiny()
    p = np.linspace(0.0, 1.0, 10)
    binary = model.check_binary(np.tile(p, (4000, 1)), binarize=True, seed=0)
    assert set(np.unique(binary)) <= {0.0, 1.0}
    assert binary[:, 0].sum() == 0 and binary[:, -1].all()  # 0 and 1 are kept as they are
    sigma = np.sqrt(p * (1 - p) / 4000)
    assert np.all(np.abs(binary.mean(axis=0) - p) <= 4 * sigma + 1e-12)
    # fit binarises grey data on request (without it the step's binary check would fail)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    history = model.fit(np.full((20, 10), 0.5, np.float32), binarize=True, epochs=1,
                        verbose=0).history
    assert np.isfinite(history["free_energy_gap"][0])
    with pytest.raises(TypeError, match="binarize"):
        model.fit(np.full((20, 10), 0.5, np.float32), binarize="yes", epochs=1, verbose=0)


def test_log_partition_floor_never_exceeds_the_exact_value():
    for seed in range(5):
        model = _tiny(scale=2.0, seed=seed)
        exact = partition.exact_log_partition(model)
        b = np.asarray(model.b.numpy(), np.float64)
        assert partition.log_partition_lower_bound(model) == pytest.approx(
            np.logaddexp(0, b).sum(), rel=1e-12)
        v = _all_states(10).astype(np.float32)
        floor = partition.log_partition_lower_bound(model, v)
        assert floor <= exact
        # with every state given, the floor is the largest single term exp(-F(v))
        assert floor == pytest.approx(float(np.max(-model.free_energy(v).numpy())), rel=1e-6)


def test_fit_refuses_non_binary_tf_data():
    import tensorflow as tf

    model = rbm_lib.RBM(n_visible=10, n_hidden=4, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    grey = np.random.default_rng(0).random((32, 10)).astype(np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="binary"):
        model.fit(tf.data.Dataset.from_tensor_slices(255 * grey).batch(8), epochs=1, verbose=0)


@pytest.mark.parametrize("indices, match", [
    ([10_000] * 3, r"\[0, 10\)"), ([-1, 0, 1], r"\[0, 10\)"), ([0, 1], "shape"),
    ([0.5, 1, 2], "integer")])
def test_pseudo_log_likelihood_checks_its_indices(indices, match):
    v = np.random.default_rng(0).integers(0, 2, (3, 10)).astype(np.float32)
    with pytest.raises(ValueError, match=match):
        _tiny().pseudo_log_likelihood(v, indices=indices)


def test_free_energy_of_numpy_input_keeps_the_gradient_of_every_weight():
    # numpy * variable would be computed by numpy, as a constant: dF/db must still be -v
    import tensorflow as tf

    model = rbm_lib.RBM(n_visible=6, n_hidden=3, seed=0)
    v = np.array([[1, 0, 1, 1, 0, 0], [0, 1, 1, 0, 0, 1]], dtype=np.float64)
    with tf.GradientTape() as tape:
        mean_f = tf.reduce_mean(model.free_energy(v))
    grad_b = tape.gradient(mean_f, model.b)
    assert grad_b is not None
    np.testing.assert_allclose(grad_b.numpy(), -v.mean(axis=0), rtol=1e-6)


def test_training_reports_the_pseudo_log_likelihood_of_each_batch():
    # every visible unit alike (equal rows of W, equal biases b) and every example all ones or
    # all zeros: flipping any pixel gives the same conditional, so whichever pixels the step
    # draws, it must report the batch mean of n log p(v_i | v_-i), here by enumeration, for
    # the weights the step starts from
    model = rbm_lib.RBM(n_visible=8, n_hidden=3, seed=0)
    rng = np.random.default_rng(1)
    model.W.assign(np.tile(rng.normal(0, 1, (1, 3)), (8, 1)).astype("float32"))
    model.b.assign(np.full(8, 0.4, np.float32))
    model.c.assign(rng.normal(0, 1, 3).astype("float32"))
    _, neg_energy = _brute_force(model)
    log_p = np.logaddexp.reduce(neg_energy, axis=1)  # unnormalised log p(v), v coded in binary
    ones, zeros = 2**8 - 1, 0
    one_pixel = {ones: ones - 1, zeros: 1}  # the same example with pixel 0 flipped
    v = np.array([[1] * 8, [0] * 8, [1] * 8, [1] * 8], np.float32)
    codes = [ones, zeros, ones, ones]
    expected = np.mean([8 * (log_p[c] - np.logaddexp(log_p[c], log_p[one_pixel[c]]))
                        for c in codes])
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    logs = model.train_on_batch(v, return_dict=True)
    assert logs["pseudo_loglik"] == pytest.approx(expected, rel=1e-5)
    assert logs["pseudo_loglik"] != model.train_on_batch(v, return_dict=True)["pseudo_loglik"]


@pytest.mark.parametrize("call, error, match", [
    (lambda: rbm_lib.RBM(10, 5, persistent="no"), TypeError, "persistent"),
    (lambda: rbm_lib.RBM(10, 5, weight_decay=True), TypeError, "weight_decay"),
    (lambda: rbm_lib.RBM(10, 5, seed=-1), ValueError, "seed"),
    (lambda: rbm_lib.RBM(10, 5, seed=1.5), ValueError, "seed"),
    (lambda: _tiny().pseudo_log_likelihood(np.zeros((2, 10)), seed=-1), ValueError, "seed"),
    (lambda: _tiny().pseudo_log_likelihood(np.zeros((2, 10)), seed=1.5), ValueError, "seed"),
    (lambda: _tiny().check_binary(np.full((2, 10), 0.5), binarize=1), TypeError, "binarize"),
    (lambda: _tiny().free_energy(np.zeros((2, 9))), ValueError, r"v must have shape \(n, 10\)"),
])
def test_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_integer_weight_decay_and_list_data_are_accepted():
    assert rbm_lib.RBM(10, 5, weight_decay=0).weight_decay == 0.0
    rows = [[1, 0] * 5, [0, 1] * 5] * 10
    for persistent in (False, True):
        model = rbm_lib.RBM(10, 4, persistent=persistent, n_chains=4, seed=0)
        model.compile(optimizer=keras.optimizers.SGD(0.01))
        history = model.fit(rows, epochs=1, batch_size=5, verbose=0).history
        assert np.isfinite(history["free_energy_gap"][0])


def test_persistent_chains_start_at_training_examples_of_every_input_type():
    import tensorflow as tf

    class Batches(keras.utils.PyDataset):  # yields (x,) tuples, as a data set may
        def __init__(self, x):
            super().__init__()
            self.x = x

        def __len__(self):
            return 2

        def __getitem__(self, index):
            return (self.x[index * 10:(index + 1) * 10],)

    rows = np.array([[1, 0] * 5, [0, 1] * 5] * 10, np.float32)
    allowed = {tuple(r) for r in rows}
    for data in (tf.data.Dataset.from_tensor_slices(rows).batch(10), Batches(rows)):
        model = rbm_lib.RBM(10, 4, persistent=True, n_chains=6, seed=0)
        model.compile(optimizer=keras.optimizers.SGD(0.0), run_eagerly=True)
        starts = []  # the chains as the first step finds them
        model.train_step = lambda batch, model=model, starts=starts, step=model.train_step: (
            starts.append(model.chains.numpy().copy()) or step(batch))
        model.fit(data, epochs=1, verbose=0)
        assert {tuple(r) for r in starts[0]} <= allowed


@pytest.mark.parametrize("call, error, match", [
    (lambda m: partition.exact_log_partition("rbm"), TypeError, "rbm must be"),
    (lambda m: partition.exact_log_partition(m, max_hidden=22.5), ValueError, "max_hidden must"),
    (lambda m: partition.exact_log_partition(m, max_hidden=True), ValueError, "max_hidden must"),
    (lambda m: partition.ais_log_partition(None, np.zeros(10)), TypeError, "rbm must be"),
    (lambda m: partition.ais_log_partition(m, np.zeros(10), n_betas=10, seed=-1), ValueError,
     "seed"),
    (lambda m: partition.ais_log_partition(m, np.zeros(10), n_betas=10, seed=1.5), ValueError,
     "seed"),
    (lambda m: partition.log_partition_lower_bound(m.W), TypeError, "rbm must be"),
    (lambda m: partition.average_log_likelihood(m, np.zeros((2, 10)), True), TypeError,
     "log_z"),
])
def test_partition_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call(_tiny())


def test_average_log_likelihood_takes_an_integer_log_z():
    # with log Z = 3 given as an int: mean(-F(x)) - 3, F by enumeration over h
    model = _tiny()
    v, neg_energy = _brute_force(model)
    x = v[[0, 5, 9]]
    expected = np.mean(np.logaddexp.reduce(neg_energy, axis=1)[[0, 5, 9]]) - 3
    assert partition.average_log_likelihood(model, x, 3) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("k, persistent", [(1, False), (2, False), (1, True)])
def test_a_training_step_follows_the_cd_gradient_and_reports_the_start_weights_metrics(
        k, persistent):
    # one SGD step against NumPy: the negative samples come from a twin with the same seed
    # (the same Gibbs draws); both reported metrics belong to the weights the step starts from
    models = []
    for _ in range(2):  # the model and its twin: the same weights, chains and seed
        rng = np.random.default_rng(3)
        model = rbm_lib.RBM(n_visible=10, n_hidden=6, k=k, persistent=persistent, n_chains=5,
                            weight_decay=0.01, seed=4)
        model.W.assign(rng.normal(0, 1, (10, 6)).astype("float32"))
        model.b.assign(rng.normal(0, 1, 10).astype("float32"))
        model.c.assign(rng.normal(0, 1, 6).astype("float32"))
        model.chains.assign(rng.integers(0, 2, (5, 10)).astype("float32"))
        models.append(model)
    model, twin = models
    v0 = np.random.default_rng(5).integers(0, 2, (8, 10)).astype(np.float32)
    vk = twin.chains.numpy() if persistent else v0
    for _ in range(k):
        vk = twin.gibbs_step(vk)[0].numpy()
    W, b, c = (np.asarray(t.numpy(), np.float64) for t in (model.W, model.b, model.c))
    free_energy = lambda v: -v @ b - np.logaddexp(0, v @ W + c).sum(axis=1)  # noqa: E731
    p0, pk = special.expit(v0 @ W + c), special.expit(vk @ W + c)
    grad_w = -v0.T @ p0 / len(v0) + vk.T @ pk / len(vk) + 0.01 * W
    grad_b = -v0.mean(axis=0) + vk.mean(axis=0)
    grad_c = -p0.mean(axis=0) + pk.mean(axis=0)
    reconstruction = ((v0 - special.expit(p0 @ W.T + b)) ** 2).sum(axis=1).mean()
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    logs = model.train_on_batch(v0, return_dict=True)
    for variable, start, grad in ((model.W, W, grad_w), (model.b, b, grad_b),
                                  (model.c, c, grad_c)):
        np.testing.assert_allclose(variable.numpy(), start - 0.5 * grad, rtol=1e-5, atol=1e-6)
    assert logs["free_energy_gap"] == pytest.approx(
        free_energy(v0).mean() - free_energy(vk).mean(), rel=1e-5)
    assert logs["reconstruction_error"] == pytest.approx(reconstruction, rel=1e-5)
    if persistent:
        np.testing.assert_array_equal(model.chains.numpy(), vk)

"""Covariance heatmaps: densities against scipy, symmetries, the t extension, the data set
and its split, image statistics, the two backbones, and bad input."""

import numpy as np
import pytest
from scipy import stats

from helpers.data import heatmaps
from helpers.evaluation import distances
from helpers.models import backbones

SYMMETRIC_GRID = heatmaps.grid_points(36, start=-2.975, step=0.17)  # -2.975, ..., 2.975


def test_grid_and_parameters_follow_the_study():
    grid = heatmaps.grid_points()
    assert grid.size == 36
    assert grid[0] == -3.0 and np.isclose(grid[-1], 2.95)
    np.testing.assert_allclose(np.diff(grid), 0.17)
    params = heatmaps.parameter_grid()
    assert params.shape == (11875, 3)
    assert len(np.unique(params, axis=0)) == 11875
    np.testing.assert_allclose(np.unique(params[:, 0]), np.arange(25) * 0.2 + 0.1)
    np.testing.assert_allclose(np.unique(params[:, 2]), np.arange(19) * 0.1 - 0.95)


def test_normal_density_matches_scipy():
    grid = heatmaps.grid_points()
    for vx, vy, r in [(0.3, 2.1, -0.55), (4.9, 0.1, 0.85), (1.0, 1.0, 0.0)]:
        cov = [[vx, r * np.sqrt(vx * vy)], [r * np.sqrt(vx * vy), vy]]
        x, y = np.meshgrid(grid, grid, indexing="ij")
        ref = stats.multivariate_normal(mean=[0, 0], cov=cov).pdf(np.dstack([x, y]))
        np.testing.assert_allclose(heatmaps.normal_density(vx, vy, r)[0], ref, rtol=1e-10)
        np.testing.assert_allclose(heatmaps.normal_heatmaps(vx, vy, r)[0], ref / ref.max(),
                                   rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("df", [2.0, 5.0, 200.0])
def test_t_density_matches_scipy(df):
    grid = heatmaps.grid_points()
    vx, vy, r = 2.3, 0.7, 0.45
    cov = [[vx, r * np.sqrt(vx * vy)], [r * np.sqrt(vx * vy), vy]]
    x, y = np.meshgrid(grid, grid, indexing="ij")
    ref = stats.multivariate_t(loc=[0, 0], shape=cov, df=df).pdf(np.dstack([x, y]))
    np.testing.assert_allclose(heatmaps.t_density(vx, vy, r, df)[0], ref, rtol=1e-9)
    np.testing.assert_allclose(heatmaps.t_heatmaps(vx, vy, r, df)[0], ref / ref.max(),
                               rtol=1e-5, atol=1e-7)


def test_every_heatmap_peaks_at_one():
    params = heatmaps.parameter_grid()
    images = heatmaps.normal_heatmaps(*params.T)
    assert images.dtype == np.float32 and images.shape == (11875, 36, 36)
    np.testing.assert_array_equal(images.max(axis=(1, 2)), 1.0)
    assert images.min() >= 0.0
    df = np.where(np.arange(len(params)) % 2, 2.0, 200.0)
    np.testing.assert_array_equal(heatmaps.t_heatmaps(*params.T, df).max(axis=(1, 2)), 1.0)


def test_swapping_the_variances_transposes_the_image():
    a = heatmaps.normal_heatmaps([0.5, 4.1], [3.3, 0.9], [0.35, -0.75])
    b = heatmaps.normal_heatmaps([3.3, 0.9], [0.5, 4.1], [0.35, -0.75])
    np.testing.assert_allclose(b, a.transpose(0, 2, 1), atol=1e-6)
    t = heatmaps.t_heatmaps(0.5, 3.3, 0.35, 2.0)
    np.testing.assert_allclose(heatmaps.t_heatmaps(3.3, 0.5, 0.35, 2.0), t.transpose(0, 2, 1),
                               atol=1e-6)


def test_flipping_the_correlation_mirrors_the_image_on_a_symmetric_grid():
    np.testing.assert_allclose(SYMMETRIC_GRID, -SYMMETRIC_GRID[::-1], atol=1e-12)
    a = heatmaps.normal_heatmaps(1.7, 0.9, 0.65, grid=SYMMETRIC_GRID)[0]
    b = heatmaps.normal_heatmaps(1.7, 0.9, -0.65, grid=SYMMETRIC_GRID)[0]
    np.testing.assert_allclose(b, a[:, ::-1], atol=1e-6)
    np.testing.assert_allclose(b, a[::-1, :], atol=1e-6)
    assert np.abs(a - b).max() > 0.5  # the mirror is a real change, not a no-op


def test_t_with_200_degrees_of_freedom_is_within_1e_2_of_the_normal():
    params = heatmaps.parameter_grid()
    t = heatmaps.t_heatmaps(*params.T, 200.0)
    normal = heatmaps.normal_heatmaps(*params.T)
    assert np.abs(t - normal).max() < 1e-2
    heavy = heatmaps.t_heatmaps(*params.T, 2.0)
    assert np.abs(heavy - normal).max() > 0.1  # while df = 2 differs visibly


@pytest.mark.parametrize("df", [2.0, 200.0])
def test_t_density_integrates_to_one(df):
    step = 0.05 if df > 10 else 0.1
    grid = heatmaps.grid_points(int(240 / step), start=-120.0, step=step)
    # df = 2 leaves mass 1 / (1 + 120^2 / (2 * 2.6)) ~ 4e-4 outside the largest circle
    mass = heatmaps.t_density(1.3, 0.6, -0.4, df, grid=grid)[0].sum() * step**2
    assert abs(mass - 1.0) < 1e-3


def test_normal_density_integrates_to_one():
    grid = heatmaps.grid_points(400, start=-10.0, step=0.05)
    assert abs(heatmaps.normal_density(2.0, 1.5, 0.8, grid=grid)[0].sum() * 0.05**2 - 1) < 1e-6


def test_heavy_tail_rule_and_its_probability():
    vx = np.repeat(heatmaps.VARIANCES, 25)
    vy = np.tile(heatmaps.VARIANCES, 25)
    s2 = (vx + vy) ** 2
    draws = np.stack([heatmaps.heavy_tail_rule(vx, vy, seed=s) for s in range(400)])
    assert set(np.unique(draws)) == {2.0, 200.0}
    assert np.all(draws[:, s2 > 30] == 2.0) and np.all(draws[:, s2 < 20] == 200.0)
    p = heatmaps.heavy_tail_probability(vx, vy)
    middle = (s2 > 20) & (s2 < 30)
    np.testing.assert_allclose(p[middle], (s2[middle] - 20) / 10)
    observed = (draws == 2.0).mean(axis=0)
    assert np.all(np.abs(observed - p) <= 4.5 * np.sqrt(p * (1 - p) / 400) + 1e-12)
    np.testing.assert_array_equal(heatmaps.heavy_tail_rule(vx, vy, seed=3), draws[3])


def test_data_set_split_is_fixed_and_labels_match_images():
    data = heatmaps.load_heatmaps()
    assert data.columns == ("var_x", "var_y", "rho")
    assert data.x_train.shape == (9500, 36, 36, 1) and data.x_test.shape == (2375, 36, 36, 1)
    assert data.x_train.dtype == np.float32
    both = np.vstack([data.y_train, data.y_test])
    assert len(np.unique(both, axis=0)) == 11875  # disjoint and complete
    np.testing.assert_allclose(data.x_test[:50, ..., 0],
                               heatmaps.normal_heatmaps(*data.y_test[:50].T), atol=1e-7)
    again = heatmaps.load_heatmaps()
    np.testing.assert_array_equal(again.y_test, data.y_test)
    other = heatmaps.load_heatmaps(seed=20)
    assert not np.array_equal(other.y_test, data.y_test)


def test_t_data_set_carries_the_degrees_of_freedom():
    data = heatmaps.load_t_heatmaps()
    assert data.columns == ("var_x", "var_y", "rho", "df")
    assert set(np.unique(data.y_train[:, 3])) == {2.0, 200.0}
    assert 0.4 < (data.y_train[:, 3] == 2.0).mean() < 0.6
    np.testing.assert_allclose(data.x_train[:50, ..., 0],
                               heatmaps.t_heatmaps(*data.y_train[:50].T), atol=1e-7)


def test_frobenius_error_against_numpy_norm():
    rng = np.random.default_rng(0)
    a, b = rng.random((4, 36, 36)), rng.random((4, 36, 36))
    np.testing.assert_allclose(distances.frobenius_error(a, b),
                               np.linalg.norm(a - b, axis=(1, 2)), rtol=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        distances.frobenius_error(a, b[:3])


def test_image_moments_recover_the_covariance_on_a_wide_grid():
    grid = heatmaps.grid_points(240, start=-12.0, step=0.1)
    images = heatmaps.normal_heatmaps([0.5, 3.0], [2.0, 1.1], [-0.6, 0.3], grid=grid)
    np.testing.assert_allclose(heatmaps.image_moments(images, grid=grid),
                               [[0.5, 2.0, -0.6], [3.0, 1.1, 0.3]], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"var_x": 0.0, "var_y": 1.0, "rho": 0.0}, "var_x"),
    ({"var_x": 1.0, "var_y": -2.0, "rho": 0.0}, "var_y"),
    ({"var_x": 1.0, "var_y": 1.0, "rho": 1.0}, "rho"),
    ({"var_x": 1.0, "var_y": 1.0, "rho": -1.2}, "rho"),
    ({"var_x": 1.0, "var_y": 1.0, "rho": 0.0, "grid": [0.0]}, "grid"),
    ({"var_x": np.nan, "var_y": 1.0, "rho": 0.0}, "var_x"),
])
def test_bad_parameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        heatmaps.normal_heatmaps(**kwargs)


def test_bad_df_and_grid_size_raise():
    with pytest.raises(ValueError, match="df"):
        heatmaps.t_heatmaps(1.0, 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="df"):
        heatmaps.t_density(1.0, 1.0, 0.0, -3.0)
    with pytest.raises(ValueError, match="size"):
        heatmaps.grid_points(1)
    with pytest.raises(ValueError, match="step"):
        heatmaps.grid_points(10, step=0.0)
    with pytest.raises(ValueError, match="test_fraction"):
        heatmaps.load_heatmaps(test_fraction=1.0)


def test_source_backbone_has_the_original_parameter_counts():
    # counts printed in the original study's model summaries
    encoder, decoder = backbones.source_backbone(3, variational=True)
    assert encoder.count_params() == 232_454 and decoder.count_params() == 96_705
    assert backbones.source_backbone(3, variational=False)[0].count_params() == 232_259
    assert decoder.output_shape == (None, 36, 36, 1)
    with pytest.raises(ValueError, match="size"):
        backbones.source_backbone(3, size=32)


def test_light_backbone_shapes_and_ranges():
    encoder, decoder = backbones.light_backbone(3, variational=True)
    x = heatmaps.load_heatmaps().x_test[:5]
    z_mean, z_log_var = encoder(x)
    assert z_mean.shape == (5, 3) and z_log_var.shape == (5, 3)
    out = np.asarray(decoder(np.asarray(z_mean)))
    assert out.shape == (5, 36, 36, 1) and out.min() >= 0 and out.max() <= 1
    code = backbones.light_backbone(3, variational=False)[0](x)
    assert code.shape == (5, 3)
    with pytest.raises(ValueError, match="size"):
        backbones.light_backbone(3, size=35)
    with pytest.raises(ValueError, match="latent_dim"):
        backbones.light_backbone(0)


def test_light_decoder_shuffles_channels_into_2x2_blocks():
    decoder = backbones.light_backbone(3)[1]
    block = np.arange(18 * 18 * 4, dtype=np.float32).reshape(1, 18, 18, 4)
    out = block
    for layer in decoder.layers[-4:-1]:  # reshape, permute, reshape
        out = layer(out)
    out = np.asarray(out)[0, ..., 0]
    for i, j, a, b in [(0, 0, 0, 1), (5, 7, 1, 0), (17, 17, 1, 1)]:
        assert out[2 * i + a, 2 * j + b] == block[0, i, j, 2 * a + b]


def test_tiny_variances_give_a_point_or_a_clear_error_never_nan():
    images = heatmaps.normal_heatmaps(1e-300, 1e-300, 0.0)
    assert np.all(np.isfinite(images)) and images.max() == 1.0
    with pytest.raises(ValueError, match="too small"):
        heatmaps.normal_heatmaps(1e-320, 1e-320, 0.5)


@pytest.mark.parametrize("call, match", [
    (lambda: heatmaps.heavy_tail_rule(1.0, 1.0, seed=-1), "seed must be >= 0"),
    (lambda: heatmaps.load_t_heatmaps(df_seed=-1), "df_seed must be >= 0"),
    (lambda: heatmaps.load_t_heatmaps(seed=-1), "seed must be >= 0"),
    (lambda: heatmaps.grid_points(5, start="a"), "start must be a finite number"),
    (lambda: heatmaps.grid_points(5, step=float("nan")), "step must be"),
    (lambda: heatmaps.normal_heatmaps([1.0, 2.0, 3.0], [1.0, 2.0], 0.0),
     r"var_x, var_y and rho must broadcast .*got shapes \(3,\), \(2,\), \(1,\)"),
    (lambda: heatmaps.load_heatmaps(test_fraction="a"), "test_fraction must be"),
    (lambda: heatmaps.image_moments(np.ones(36)), "images must have 3 or 4 dimensions"),
    (lambda: heatmaps.image_moments(np.ones((2, 36, 18, 2))), r"images must be \(n, 36, 36\)"),
])
def test_more_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_image_moments_accept_a_channel_axis():
    # one pixel of weight at (x, y) = (grid[0], grid[1]): var_x = x^2, var_y = y^2, rho = 1
    grid = heatmaps.grid_points()
    image = np.zeros((1, 36, 36, 1))
    image[0, 0, 1, 0] = 1.0
    np.testing.assert_allclose(heatmaps.image_moments(image),
                               [[grid[0] ** 2, grid[1] ** 2, 1.0]], rtol=1e-12)

import matplotlib.pyplot as plt
import numpy as np
import pytest

from helpers import plotting


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_inverse_cdf_grid_matches_normal_quantiles():
    # Phi^-1(0.05) = -1.6448536, Phi^-1(0.5) = 0, Phi^-1(0.95) = 1.6448536
    np.testing.assert_allclose(plotting.latent_grid(3), [-1.6448536, 0.0, 1.6448536],
                               atol=1e-6)
    np.testing.assert_allclose(plotting.latent_grid(5, "linear", limits=(-2, 2)),
                               [-2, -1, 0, 1, 2])


@pytest.mark.parametrize("kwargs, match", [({"spacing": "log"}, "spacing"),
                                           ({"quantiles": (0.0, 0.9)}, "quantiles"),
                                           ({"n": 0}, "n must")])
def test_latent_grid_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plotting.latent_grid(**{"n": 4, **kwargs})


def test_manifold_puts_large_z2_on_top_and_large_z1_on_the_right():
    # a decoder whose whole tile is 10 * z1 + z2: the mosaic must increase rightwards
    # along columns and upwards along rows
    def decode(z):
        return np.repeat((10 * z[:, 0] + z[:, 1])[:, None], 4, axis=1)

    ax = plotting.latent_manifold(decode, n=4, spacing="linear", image_shape=(2, 2),
                                  limits=(-1.5, 1.5))
    mosaic = ax.get_images()[0].get_array()
    corners = mosaic[0, 0], mosaic[0, -1], mosaic[-1, 0], mosaic[-1, -1]
    assert corners == pytest.approx((-15 + 1.5, 15 + 1.5, -15 - 1.5, 15 - 1.5))


def test_manifold_of_a_larger_latent_is_the_slice_through_the_prior_mean():
    seen = []

    def decode(z):
        seen.append(z)
        return np.repeat((10 * z[:, 2] + z[:, 0])[:, None], 4, axis=1)

    ax = plotting.latent_manifold(decode, n=3, spacing="linear", image_shape=(2, 2),
                                  limits=(-1.0, 1.0), latent_dim=4, dims=(2, 0))
    z = seen[0]
    assert z.shape == (9, 4) and not z[:, [1, 3]].any()  # the other coordinates at 0
    mosaic = ax.get_images()[0].get_array()
    assert (mosaic[0, 0], mosaic[-1, -1]) == pytest.approx((-10 + 1, 10 - 1))
    assert ax.get_xlabel() == "$z_3$" and ax.get_ylabel() == "$z_1$"
    with pytest.raises(ValueError, match="dims"):
        plotting.latent_manifold(decode, n=3, latent_dim=3, dims=(0, 3))


def test_manifold_and_scatter_of_a_one_dimensional_latent():
    seen = []

    def decode(z):
        seen.append(z)
        return np.repeat(z, 4, axis=1)

    ax = plotting.latent_manifold(decode, n=5, spacing="linear", image_shape=(2, 2),
                                  limits=(-2.0, 2.0), latent_dim=1)
    np.testing.assert_allclose(seen[0][:, 0], np.linspace(-2, 2, 5))
    assert ax.get_images()[0].get_array().shape == (2, 10)  # one row of five tiles
    z = np.linspace(-1, 1, 20)[:, None]
    ax = plotting.latent_scatter(z, labels=np.arange(20) % 3)
    offsets = ax.collections[0].get_offsets()
    np.testing.assert_allclose(offsets[:, 0], z[:, 0])
    assert np.all(np.abs(offsets[:, 1] - np.arange(20) % 3) <= 0.3)


def test_image_grid_layout_and_checks():
    fig = plotting.image_grid(np.zeros((7, 16)), ncols=3, image_shape=(4, 4),
                              titles=list("abcdefg"))
    assert len(fig.axes) == 9 and sum(bool(ax.images) for ax in fig.axes) == 7
    with pytest.raises(ValueError, match="images must have shape"):
        plotting.image_grid(np.zeros((7, 16)))
    with pytest.raises(ValueError, match="NaN"):
        plotting.image_grid(np.full((2, 3, 3), np.nan))


def test_latent_scatter_and_its_checks():
    z = np.random.default_rng(0).normal(size=(50, 3))
    ax = plotting.latent_scatter(z, labels=np.arange(50) % 10, dims=(0, 2))
    np.testing.assert_allclose(ax.collections[0].get_offsets(), z[:, [0, 2]])
    with pytest.raises(ValueError, match="dims"):
        plotting.latent_scatter(z, dims=(0, 3))


def test_plot_history_panels_and_missing_keys():
    history = {"loss": [3, 2, 1], "val_loss": [4, 3, 2], "kl": [1, 1, 1]}
    fig = plotting.plot_history(history)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "kl"]
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[1].lines) == 1
    with pytest.raises(ValueError, match="reconstruction"):
        plotting.plot_history(history, keys=["reconstruction"])


def test_plotly_renderer_embeds_figures():
    import plotly.graph_objects as go
    import plotly.io as pio

    assert plotting.use_embedded_plotly() is None  # a setup cell ending with it shows nothing
    assert pio.renderers.default == "plotly_mimetype+notebook"
    bundle = pio.renderers._build_mime_bundle(go.Figure(go.Scatter(y=[1, 2])).to_dict())
    assert "application/vnd.plotly.v1+json" in bundle and "text/html" in bundle


def test_mosaic_places_image_i_at_row_i_div_ncols_and_column_i_mod_ncols():
    images = np.arange(5 * 2 * 3).reshape(5, 2, 3)  # five 2 x 3 images
    picture = plotting.mosaic(images, ncols=2)
    assert picture.shape == (3 * 2, 2 * 3)
    for i in range(5):
        r, c = divmod(i, 2)
        np.testing.assert_array_equal(picture[2 * r:2 * r + 2, 3 * c:3 * c + 3], images[i])
    np.testing.assert_array_equal(picture[4:, 3:], 0)  # the sixth tile is empty
    square = plotting.mosaic(images[:4, ..., None])  # (n, h, w, 1), square by default
    np.testing.assert_array_equal(square, np.block([[images[0], images[1]],
                                                    [images[2], images[3]]]))
    with pytest.raises(ValueError, match="ncols is needed"):
        plotting.mosaic(images)


def test_polyline_walks_each_segment_in_equal_steps():
    path = plotting.polyline([[0, 0], [1, 0], [1, 2]], steps=2)
    np.testing.assert_allclose(path, [[0, 0], [0.5, 0], [1, 0], [1, 1], [1, 2]])
    assert plotting.polyline(np.eye(3), steps=5).shape == (11, 3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(points=[[0, 0]]), "points must hold at least 2"),
    (dict(points=[[0, 0], [np.nan, 1]]), "points contains NaN"),
    (dict(points=[[0, 0], [1, 1]], steps=0), "steps"),
])
def test_polyline_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plotting.polyline(**kwargs)


def test_latent_explorer_steps_move_the_marker_and_show_each_image():
    path = plotting.polyline([[0, 0], [2, 0], [2, 1]], steps=3)
    rng = np.random.default_rng(0)
    images = rng.random((len(path), 4, 5))
    codes = rng.normal(size=(30, 2))
    fig = plotting.latent_explorer(path, images, background_xy=codes, colour=codes[:, 0],
                                   colour_name="T", labels=[f"p{k}" for k in range(len(path))])
    steps = fig.layout.sliders[0].steps
    assert len(steps) == len(path)
    marker, heatmap = len(fig.data) - 2, len(fig.data) - 1
    np.testing.assert_allclose(np.array(fig.data[heatmap].z), images[0], atol=5e-4)
    np.testing.assert_allclose([fig.data[marker].x[0], fig.data[marker].y[0]], path[0])
    for k, step in enumerate(steps):
        update, traces = step.args
        assert step.method == "restyle" and list(traces) == [marker, heatmap]
        assert step.label == f"p{k}"
        np.testing.assert_allclose([update["x"][0][0], update["y"][0][0]], path[k])
        np.testing.assert_allclose(update["z"][1], images[k], atol=5e-4)  # three decimals
        assert update["z"][0] is None  # the marker has no image
        # the heatmap keeps its pixel coordinates
        assert list(update["x"][1]) == list(range(5)) and list(update["y"][1]) == list(range(4))
    np.testing.assert_allclose(fig.data[0].x, codes[:, 0])  # background codes drawn first


@pytest.mark.parametrize("kwargs, match", [
    (dict(path_xy=np.zeros((3, 3)), images=np.zeros((3, 2, 2))), "path_xy must have shape"),
    (dict(path_xy=np.zeros((3, 2)), images=np.zeros((2, 2, 2))), "images must hold one image"),
    (dict(path_xy=np.zeros((3, 2)), images=np.zeros((3, 4))), "images must have 3"),
    (dict(path_xy=np.zeros((3, 2)), images=np.zeros((3, 2, 2)), labels=["a"]), "labels must"),
    (dict(path_xy=np.zeros((3, 2)), images=np.zeros((3, 2, 2)), background_xy=np.zeros((4, 2)),
          colour=np.zeros(3)), "colour must hold one value"),
    (dict(path_xy=np.zeros((3, 2)), images=np.zeros((3, 2, 2)), background_xy=np.zeros(4)),
     "background_xy must have 2"),
])
def test_latent_explorer_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plotting.latent_explorer(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"spacing": "linear", "limits": (np.nan, 1.0)}, "limits must be a finite number"),
    ({"spacing": "linear", "limits": (-1.0, np.inf)}, "limits must be a finite number"),
    ({"spacing": "linear", "limits": (1.0, -1.0)}, "limits must be .* low < high"),
    ({"spacing": "linear", "limits": (-1.0, 0.0, 1.0)}, "limits must be a pair"),
    ({"quantiles": (0.1, 0.5, 0.9)}, "quantiles must be a pair"),
    ({"quantiles": (0.1, np.nan)}, "quantiles must be a finite number"),
])
def test_latent_grid_rejects_bad_limits_and_quantiles(kwargs, match):
    # limits=(nan, 1) used to return [nan, nan, 1]; (1, -1) a grid running backwards
    with pytest.raises(ValueError, match=match):
        plotting.latent_grid(**{"n": 3, **kwargs})


@pytest.mark.parametrize("call, error, match", [
    (lambda: plotting.image_grid(np.zeros((7, 16)), image_shape=(4, 5)), ValueError,
     r"image_shape \(4, 5\) does not fit images of shape \(7, 16\)"),
    (lambda: plotting.image_grid(np.zeros((3, 4, 4)), titles=["a"]), ValueError,
     "titles must hold one title per image"),
    (lambda: plotting.image_grid(np.zeros((3, 4, 4)), scale=-1), ValueError, "scale must be"),
    (lambda: plotting.latent_scatter(np.zeros((5, 2)), labels=[1, 2]), ValueError,
     r"labels must hold one value per row of z \(5\), got 2"),
    (lambda: plotting.latent_scatter(np.zeros((5, 3)), dims=(0, -1)), ValueError, "dims"),
    (lambda: plotting.latent_scatter(np.zeros((5, 3)), dims=(1, 1)), ValueError, "dims"),
    (lambda: plotting.plot_history({}), ValueError, "history has no metrics"),
    (lambda: plotting.plot_history({"loss": [1, 2]}, keys="loss"), TypeError,
     "keys must be a list"),
    (lambda: plotting.latent_manifold(lambda z: np.zeros((len(z), 5)), n=3, image_shape=(2, 2)),
     ValueError, r"decode returned .*\(9, 5\).*image_shape \(2, 2\)"),
])
def test_plots_name_their_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_latent_scatter_labels_its_axes_by_the_coordinates_drawn():
    z = np.arange(15.0).reshape(5, 3)
    ax = plotting.latent_scatter(z, dims=(2, 0))
    np.testing.assert_allclose(ax.collections[0].get_offsets(), z[:, [2, 0]])
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("$z_3$", "$z_1$")


def test_mosaic_names_images_of_different_sizes():
    # used to be NumPy's "inhomogeneous shape" message, which does not say which argument
    with pytest.raises(ValueError, match="images must be"):
        plotting.mosaic([np.zeros((2, 2)), np.zeros((3, 3))], ncols=2)

"""Plots shared by the notebooks: image grids, latent scatters, decoded latent manifolds,
training curves, and the Plotly renderer that keeps figures in executed notebooks."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import norm

from helpers.infra.checks import as_finite_array, check_positive, check_positive_int, check_range

SPACINGS = ("linear", "inverse_cdf")


def mosaic(images, ncols: int | None = None) -> np.ndarray:
    """Tile images (n, h, w) or (n, h, w, 1) into one (rows * h, ncols * w) array, row by row:
    image i lands in row i // ncols, column i % ncols; tiles left over in the last row are
    zero. ``ncols`` defaults to a square layout, for which n must be a perfect square."""
    try:
        images = np.asarray(images)
    except ValueError:
        raise ValueError("images must be images of one size, stacked as (n, h, w); got a "
                         "sequence of differently shaped arrays") from None
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or len(images) == 0:
        raise ValueError(f"images must have shape (n, h, w) or (n, h, w, 1) with n >= 1, "
                         f"got {images.shape}")
    n, h, w = images.shape
    if ncols is None:
        ncols = int(np.sqrt(n))
        if ncols * ncols != n:
            raise ValueError(f"ncols is needed unless the number of images is a square, got {n}")
    ncols = check_positive_int(ncols, "ncols")
    nrows = -(-n // ncols)
    tiles = np.zeros((nrows * ncols, h, w), dtype=images.dtype)
    tiles[:n] = images
    return tiles.reshape(nrows, ncols, h, w).transpose(0, 2, 1, 3).reshape(nrows * h, ncols * w)


def image_grid(images, ncols: int = 10, image_shape=None, titles=None, cmap="gray_r",
               vmin=0.0, vmax=1.0, scale: float = 1.0, suptitle=None):
    """Show images (n, h, w) or flat (n, h*w) with ``image_shape`` in a grid; return the figure."""
    images = as_finite_array(images, "images")
    if image_shape is not None:
        shape = tuple(image_shape)
        if images.ndim < 1 or math.prod(shape) * len(images) != images.size:
            raise ValueError(f"image_shape {shape} does not fit images of shape {images.shape}: "
                             "each image must hold prod(image_shape) values")
        images = images.reshape(len(images), *shape)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3:
        raise ValueError(f"images must have shape (n, h, w) or come with image_shape, "
                         f"got {images.shape}")
    ncols = min(check_positive_int(ncols, "ncols"), len(images))
    scale = check_positive(scale, "scale")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"titles must hold one title per image ({len(images)}), "
                         f"got {len(titles)}")
    nrows = -(-len(images) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, scale * nrows),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], cmap=cmap, vmin=vmin, vmax=vmax)
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def latent_scatter(z, labels=None, ax=None, dims=(0, 1), cmap="tab10", s=4, alpha=0.7,
                   label_name="label"):
    """Scatter two latent coordinates, coloured by ``labels``; return the axes. A
    one-dimensional latent is drawn against the labels (or on one line without them)."""
    z = as_finite_array(z, "z", ndim=2)
    if labels is not None and len(labels) != len(z):
        raise ValueError(f"labels must hold one value per row of z ({len(z)}), "
                         f"got {len(labels)}")
    dims = tuple(dims)
    if z.shape[1] > 1 and (len(dims) != 2 or dims[0] == dims[1]
                           or not all(0 <= d < z.shape[1] for d in dims)):
        raise ValueError(f"dims must be two different column indices of z, in 0..{z.shape[1] - 1},"
                         f" got {dims}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5))
    cmap = None if labels is None else cmap  # without colours a colormap is only a warning
    if z.shape[1] == 1:
        y = np.zeros(len(z)) if labels is None else np.asarray(labels, dtype=float)
        jitter = np.random.default_rng(0).uniform(-0.3, 0.3, len(z))  # only spreads the dots
        points = ax.scatter(z[:, 0], y + jitter, c=labels, cmap=cmap, s=s, alpha=alpha)
        ax.set_xlabel("$z_1$")
        ax.set_ylabel(label_name if labels is not None else "")
        return ax
    points = ax.scatter(z[:, dims[0]], z[:, dims[1]], c=labels, cmap=cmap, s=s, alpha=alpha)
    if labels is not None:
        bar = ax.figure.colorbar(points, ax=ax)
        bar.set_label(label_name)
    ax.set_xlabel(f"$z_{dims[0] + 1}$")
    ax.set_ylabel(f"$z_{dims[1] + 1}$")
    return ax


def latent_grid(n: int, spacing: str = "inverse_cdf", quantiles=(0.05, 0.95),
                limits=(-3.0, 3.0)) -> np.ndarray:
    """``n`` latent coordinates along one axis: evenly spaced in ``limits`` ("linear"), or
    standard-normal quantiles evenly spaced in ``quantiles`` ("inverse_cdf"), so each cell
    holds equal prior mass."""
    n = check_positive_int(n, "n")
    if spacing == "linear":
        return np.linspace(*check_range(limits, "limits"), n)
    if spacing == "inverse_cdf":
        lo, hi = check_range(quantiles, "quantiles")
        if not 0.0 < lo < hi < 1.0:
            raise ValueError(f"quantiles must satisfy 0 < lo < hi < 1, got {quantiles}")
        return norm.ppf(np.linspace(lo, hi, n))
    raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}")


def latent_manifold(decode, n: int = 15, spacing: str = "inverse_cdf", image_shape=(28, 28),
                    ax=None, cmap="gray_r", latent_dim: int = 2, dims=(0, 1), **grid_kwargs):
    """Decode an n x n grid of two latent coordinates into one mosaic image and show it.

    ``decode`` maps (m, latent_dim) latent points to (m, h*w) images. With more than two
    latent dimensions the grid is the slice through the prior mean: coordinates ``dims``
    vary, every other one is 0. With one latent dimension it is a single row along z_1.
    Up in the mosaic is up in the second coordinate and right is right in the first, so it
    lines up with a latent scatter. Returns the axes.
    """
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    dims = tuple(dims)[: min(2, latent_dim)]
    if len(set(dims)) != len(dims) or not all(0 <= d < latent_dim for d in dims):
        raise ValueError(f"dims must be two different coordinates below latent_dim="
                         f"{latent_dim}, got {dims}")
    coords = latent_grid(n, spacing, **grid_kwargs)
    rows = n if latent_dim > 1 else 1
    z = np.zeros((rows * n, latent_dim), dtype=np.float32)
    if latent_dim > 1:
        z1, z2 = np.meshgrid(coords, coords[::-1])  # first row holds the largest z_2
        z[:, dims[0]], z[:, dims[1]] = z1.ravel(), z2.ravel()
    else:
        z[:, 0] = coords
    h, w = image_shape
    decoded = np.asarray(decode(z))
    if decoded.size != rows * n * h * w:
        raise ValueError(f"decode returned an array of shape {decoded.shape} for {rows * n} "
                         f"latent points, which does not fit image_shape {tuple(image_shape)}")
    picture = mosaic(decoded.reshape(rows * n, h, w), ncols=n)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 8 * rows / n))
    names = [f"$z_{d + 1}$" for d in dims]
    if spacing == "linear" and rows > 1:
        ax.imshow(picture, cmap=cmap, extent=(coords[0], coords[-1], coords[0], coords[-1]))
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        return ax
    ax.imshow(picture, cmap=cmap)
    labels = [f"{round(c, 1) + 0.0:.1f}" for c in coords]  # + 0.0 turns -0.0 into 0.0
    ax.set_xticks((np.arange(n) + 0.5) * w, labels, fontsize=7)
    quantiles = " (standard-normal quantiles)" if spacing == "inverse_cdf" else ""
    ax.set_xlabel(names[0] + quantiles)
    if rows > 1:
        ax.set_yticks((np.arange(n) + 0.5) * h, labels[::-1], fontsize=7)
        ax.set_ylabel(names[1])
    else:
        ax.set_yticks([])
    return ax


def plot_history(history, keys=None, logy=False):
    """One panel per training metric (train and, where present, validation); return figure."""
    history = getattr(history, "history", history)
    if isinstance(keys, str):
        raise TypeError(f"keys must be a list of metric names, got the string {keys!r}; "
                        f"use keys=[{keys!r}]")
    keys = keys or [k for k in history if not k.startswith("val_")]
    if not keys:
        raise ValueError(f"history has no metrics to plot (keys: {sorted(history)})")
    missing = [k for k in keys if k not in history]
    if missing:
        raise ValueError(f"keys {missing} not in history (has {sorted(history)})")
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=True):
        epochs = np.arange(1, len(history[key]) + 1)
        ax.plot(epochs, history[key], label="train")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], label="validation")
        ax.set_title(key)
        ax.set_xlabel("epoch")
        if logy:
            ax.set_yscale("log")
        ax.legend()
    fig.tight_layout()
    return fig


def use_embedded_plotly() -> None:
    """Make Plotly figures carry their own data and plotly.js, so they show in JupyterLab,
    in notebooks executed by nbclient or papermill, and in their HTML export, offline.
    Returns nothing, so that a setup cell ending with it shows nothing."""
    import plotly.io as pio

    pio.renderers.default = "plotly_mimetype+notebook"


def polyline(points, steps: int = 8) -> np.ndarray:
    """Points ``steps`` apart on the straight segments joining ``points`` (k, d) in order:
    (steps * (k - 1) + 1, d), starting at the first point and ending at the last."""
    points = as_finite_array(points, "points", ndim=2, dtype=np.float64)
    if len(points) < 2:
        raise ValueError(f"points must hold at least 2 rows, got {len(points)}")
    steps = check_positive_int(steps, "steps")
    t = np.linspace(0.0, 1.0, steps, endpoint=False)[:, None]
    legs = [a + t * (b - a) for a, b in zip(points[:-1], points[1:], strict=True)]
    return np.concatenate([*legs, points[-1:]])


def latent_explorer(path_xy, images, background_xy=None, colour=None, colour_name="",
                    labels=None, slider_prefix="point ", title="", image_title="decoded",
                    axis_titles=("z1", "z2"), zmin=0.0, zmax=1.0, colorscale="Greys",
                    reversescale=False):
    """A Plotly figure that walks along a path in a latent space without a kernel: a slider
    moves a marker over the codes on the left and shows, on the right,
    the image decoded at that point. Everything is precomputed, so it works in JupyterLab
    and on a static page alike.

    path_xy: (n, 2) where the path's points are drawn on the left; images: (n, h, w), the
    decoder's output at those points; background_xy: (m, 2) codes drawn under the path,
    coloured by ``colour`` (m,) named ``colour_name``; labels: (n,) slider labels,
    shown after ``slider_prefix``. Images are stored to three decimals. The image
    is drawn with the Plotly ``colorscale`` between ``zmin`` and ``zmax`` ("Greys" puts
    white at ``zmin`` and black at ``zmax``, like matplotlib's "gray_r")."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    path_xy = as_finite_array(path_xy, "path_xy", ndim=2, dtype=np.float64)
    # three decimals are plenty for a picture and keep the page small
    images = np.round(as_finite_array(images, "images", ndim=3, dtype=np.float64), 3)
    if path_xy.shape[1] != 2:
        raise ValueError(f"path_xy must have shape (n, 2), got {path_xy.shape}")
    if len(images) != len(path_xy):
        raise ValueError(f"images must hold one image per point of path_xy ({len(path_xy)}), "
                         f"got {len(images)}")
    n = len(path_xy)
    labels = [str(k) for k in range(n)] if labels is None else [str(s) for s in labels]
    if len(labels) != n:
        raise ValueError(f"labels must hold {n} entries, one per point, got {len(labels)}")
    fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45],
                        subplot_titles=("latent space", image_title))
    if background_xy is not None:
        background_xy = as_finite_array(background_xy, "background_xy", ndim=2,
                                        dtype=np.float64)
        if background_xy.shape[1] != 2:
            raise ValueError(f"background_xy must have shape (m, 2), got {background_xy.shape}")
        marker = dict(size=4, opacity=0.5)
        if colour is not None:
            colour = as_finite_array(colour, "colour", ndim=1, dtype=np.float64)
            if len(colour) != len(background_xy):
                raise ValueError(f"colour must hold one value per row of background_xy "
                                 f"({len(background_xy)}), got {len(colour)}")
            marker.update(color=colour, colorscale="Viridis", showscale=True,
                          colorbar=dict(title=colour_name, x=0.5, len=0.8))
        fig.add_trace(go.Scatter(x=background_xy[:, 0], y=background_xy[:, 1], mode="markers",
                                   marker=marker, name="codes", hoverinfo="skip"), 1, 1)
    fig.add_trace(go.Scatter(x=path_xy[:, 0], y=path_xy[:, 1], mode="lines", name="path",
                             line=dict(color="black", width=1)), 1, 1)
    fig.add_trace(go.Scatter(x=path_xy[:1, 0], y=path_xy[:1, 1], mode="markers", name="here",
                             marker=dict(color="red", size=14, symbol="x")), 1, 1)
    fig.add_trace(go.Heatmap(z=images[0], zmin=zmin, zmax=zmax, colorscale=colorscale,
                             reversescale=reversescale, showscale=False), 1, 2)
    # each slider step restyles two traces: the marker moves, the image is replaced (no
    # animation frames: plotly.js rejects a promise when one animation interrupts another)
    moving = [len(fig.data) - 2, len(fig.data) - 1]
    h, w = images.shape[1:]
    steps = [dict(method="restyle", label=labels[k],
                  args=[{"x": [path_xy[k:k + 1, 0], np.arange(w)],
                         "y": [path_xy[k:k + 1, 1], np.arange(h)],
                         "z": [None, images[k]]}, moving]) for k in range(n)]
    fig.data[-1].update(x=np.arange(w), y=np.arange(h))
    fig.update_layout(title=title, height=460, showlegend=False,
                      sliders=[dict(active=0, pad=dict(t=40), steps=steps,
                                    # the current label above the slider, none under each step
                                    currentvalue=dict(prefix=slider_prefix,
                                                      font=dict(color="#444")),
                                    font=dict(color="rgba(0,0,0,0)"))])
    fig.update_xaxes(title_text=axis_titles[0], row=1, col=1)
    fig.update_yaxes(title_text=axis_titles[1], row=1, col=1)
    fig.update_xaxes(visible=False, row=1, col=2)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x2", row=1, col=2)
    return fig

"""Progress bars that read well everywhere (used by the Ising simulator and the training
helpers): live in JupyterLab and in a terminal, and one final line in an executed notebook
once :func:`tidy_outputs` has resolved the carriage returns of its redraws. Bars write to
stdout, so a notebook does not show them as error output."""

from __future__ import annotations

import sys


def progress(iterable=None, *, desc: str, unit: str = "it", total: int | None = None,
             disable: bool = False):
    """A tqdm bar over ``iterable`` (or a manual one of ``total`` steps) on stdout."""
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, unit=unit, total=total, disable=disable, file=sys.stdout,
                mininterval=0.5, ncols=100)


def tidy_outputs(nb):
    """Merge each code cell's consecutive stream outputs and keep what a screen shows after
    carriage returns (a progress bar's last state), as nbconvert's CoalesceStreams does;
    return the notebook, changed in place."""
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor

    CoalesceStreamsPreprocessor().preprocess(nb, {})
    return nb

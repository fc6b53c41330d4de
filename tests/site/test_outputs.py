"""What a reader sees in each executed notebook of this run (those the site is built from):
every figure once, and no value that nobody meant to print."""

import nbformat
import pytest

from helpers.infra.config import build_dir
from helpers.infra.outputs import output_problems
from helpers.infra.site import course_notebooks


@pytest.mark.parametrize("name", [nb.name for nb in course_notebooks()])
def test_every_figure_once_and_no_leaked_values(name):
    path = build_dir("notebooks") / name
    if not path.exists():
        pytest.fail(f"No executed copy of {name} in {path.parent}: run the notebooks first")
    problems = output_problems(nbformat.read(path, as_version=4))
    assert not problems, f"{name}:\n" + "\n".join(problems)

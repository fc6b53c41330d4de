"""The check of what a reader sees, on small notebooks executed here: a figure shown twice
and leaked values are found, a figure shown once and printed text are not."""

import nbformat
import pytest
from nbclient import NotebookClient

from helpers.infra.outputs import output_problems

SETUP = "import matplotlib\nmatplotlib.use('module://matplotlib_inline.backend_inline')\n" \
        "import matplotlib.pyplot as plt\n%matplotlib inline"


def _run(*sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in (SETUP, *sources)]
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    return nb


@pytest.fixture(scope="module")
def executed():
    return _run(
        "fig, ax = plt.subplots()\nax.plot([1, 2])\nfig",          # 1: the figure twice
        "fig, ax = plt.subplots()\nax.plot([1, 2]);",              # 2: once
        "fig, ax = plt.subplots()\nax.set_title('a title')",       # 3: Text(...) leaked
        "fig, ax = plt.subplots()\nax.plot([1, 2])\nax.legend(['x'])",  # 4: Legend leaked
        "'plotly_mimetype+notebook'",                              # 5: a bare string
        "print('a sentence the reader should see')\n1 + 1",        # 6: fine
    )


def test_a_figure_shown_twice_and_leaked_values_are_found(executed):
    problems = output_problems(executed)
    cells = sorted({int(p.split(":")[0].split()[1]) for p in problems})
    assert cells == [1, 3, 4, 5], problems
    assert any(p.startswith("cell 1: the same figure twice") for p in problems)
    assert any(p.startswith("cell 3: a leaked value") and "Text(0.5" in p for p in problems)

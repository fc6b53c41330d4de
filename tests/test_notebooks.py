"""Committed notebooks are clean, follow the house layout, and the runner reports failures."""

from pathlib import Path

import nbformat
import pytest

from helpers import runner

NOTEBOOKS = sorted(Path(__file__).resolve().parent.parent.glob("notebooks/*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found in notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_has_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; strip them (nbstripout)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_a_parameters_cell_and_records_metrics(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    assert "fast_mode()" in tagged[0].source
    source = "\n".join(c.source for c in nb.cells)
    assert f'MetricsRecorder("{path.stem}"' in source
    assert "/work/" not in source and "/home/" not in source  # no absolute paths


def _notebook(tmp_path, name, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


def test_runner_executes_in_the_notebook_folder_and_writes_html(tmp_path):
    path = _notebook(tmp_path, "01_ok.ipynb", "import os\nprint(os.getcwd())")
    runner.execute(path, timeout=60)
    executed = nbformat.read(tmp_path / "build" / "notebooks" / "01_ok.ipynb", as_version=4)
    assert executed.cells[0].outputs[0].text.strip() == str(tmp_path)
    assert (tmp_path / "build" / "html" / "01_ok.html").stat().st_size > 1000


def test_runner_names_the_failing_cell(tmp_path):
    path = _notebook(tmp_path, "02_bad.ipynb", "x = 1", "raise RuntimeError('boom 42')")
    with pytest.raises(Exception, match="boom 42"):
        runner.execute(path, timeout=60)
    assert (tmp_path / "build" / "html" / "02_bad.html").exists()  # kept for inspection


def test_select_notebooks_by_prefix(tmp_path):
    for name in ("01_a.ipynb", "05_b.ipynb", "notes.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in runner.select_notebooks(["05"], tmp_path)] == ["05_b.ipynb"]
    assert len(runner.select_notebooks(None, tmp_path)) == 2
    with pytest.raises(SystemExit, match="No notebook matches"):
        runner.select_notebooks(["09"], tmp_path)


def test_summary_table_lists_status_time_and_metrics():
    table = runner.summary_table({"05_mnist_vae": {
        "status": "ok", "seconds": 12.34, "data": "keras-mnist",
        "metrics": {"test_loss_2d": 152.123456, "importance_samples": 1000}}})
    assert "05_mnist_vae" in table and "12.3s" in table
    assert "test_loss_2d=152.1" in table and "importance_samples=1000" in table

"""Keep what nbval executes: `make test` runs every notebook under nbval in fast mode, and
this plugin writes each fully passed notebook, with its outputs, to build/notebooks/ (of
GENERATIVE_BUILD_DIR) and stamps its recorded metrics as the runner does (wall time, date,
versions). The site check that follows builds from these runs instead of executing every
notebook a second time."""

from __future__ import annotations

from pathlib import Path

import pytest

_runs: dict[str, dict] = {}  # notebook path -> outputs by code-cell number, time, failures


def pytest_configure(config):
    """Run each cell as JupyterLab and the runner do, with ``store_history=True``: nbval sends
    ``False``, and IPython then reads the trailing ';' that hides a cell's value from the
    previous stored cell instead of this one, so figures showed twice and ``Text(...)``
    values leaked into the executed copies the site is built from."""
    try:
        from nbval.kernel import RunningKernel
    except ImportError:  # nbval not installed: nothing to adjust
        return

    def execute_cell_input(self, cell_input, allow_stdin=None):
        return self.kc.execute(cell_input, store_history=True, allow_stdin=allow_stdin,
                               stop_on_error=False)

    RunningKernel.execute_cell_input = execute_cell_input


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if type(item).__name__ != "IPyNbCell" or report.when not in ("setup", "call"):
        return
    run = _runs.setdefault(str(item.parent.path), {"outputs": {}, "seconds": 0.0,
                                                  "failed": False})
    run["failed"] |= report.failed
    if report.when == "call":
        run["outputs"][item.cell_num] = list(item.test_outputs or [])
        run["seconds"] += call.duration


def pytest_sessionfinish(session):
    import nbformat

    from helpers.infra.config import build_dir
    from helpers.infra.files import write_json_atomic
    from helpers.infra.metrics import read_record, stamp_run
    from helpers.infra.progress import tidy_outputs

    for path, run in _runs.items():
        nb = nbformat.read(path, as_version=4)
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        if run["failed"] or len(run["outputs"]) != len(code):
            continue  # only complete, passing runs
        for number, cell in enumerate(code):
            cell.outputs = run["outputs"][number]
            cell.execution_count = number + 1
            for output in cell.outputs:
                if output.get("output_type") == "execute_result":
                    output["execution_count"] = number + 1
        stem = Path(path).stem
        nbformat.write(tidy_outputs(nb), build_dir("notebooks") / f"{stem}.ipynb")
        metrics = build_dir("metrics") / f"{stem}.json"
        record = read_record(metrics)
        if record:
            write_json_atomic(metrics, stamp_run(record, run["seconds"]))

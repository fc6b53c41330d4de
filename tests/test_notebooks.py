"""Committed notebooks are clean, follow the house layout, and the runner reports failures."""

import json
from pathlib import Path

import nbformat
import pytest

from helpers.infra import runner

NOTEBOOKS = sorted(Path(__file__).resolve().parent.parent.glob("notebooks/*.ipynb"))


def test_the_front_page_and_the_readme_list_exactly_the_notebooks_in_reading_order():
    import re

    root = Path(__file__).resolve().parent.parent
    names = [p.stem for p in NOTEBOOKS]
    front = re.findall(r"\]\((\d\d_\w+)\.ipynb\)", (root / "notebooks" / "index.md").read_text())
    readme = re.findall(r"^\| `(\d\d_\w+)` \|", (root / "README.md").read_text(), re.MULTILINE)
    assert front == names, "notebooks/index.md must link every notebook once, in order"
    assert readme == names, "the README's table must list every notebook once, in order"
    assert names == sorted(names) and len(set(n[:2] for n in names)) == len(names)


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
    assert (tmp_path / "build" / "html" / "02_bad.failed.html").exists()  # for inspection
    assert not (tmp_path / "build" / "notebooks" / "02_bad.ipynb").exists()


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


def test_parse_overrides_reads_literals_and_strings():
    assert runner.parse_overrides(["SEED=1 EPOCHS=5", "NAME=fashion_mnist",
                                   "RATE=1e-3 FLAG=True SIZES=(8,4) TEXT='a b'"]) == {
        "SEED": 1, "EPOCHS": 5, "NAME": "fashion_mnist", "RATE": 1e-3, "FLAG": True,
        "SIZES": (8, 4), "TEXT": "a b"}
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        runner.parse_overrides(["SEED"])
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        runner.parse_overrides(["1X=2"])


def _parameterised(tmp_path, name="03_p.ipynb"):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                 "display_name": "Python 3"}
    params = nbformat.v4.new_code_cell("SEED = 0\nDATASET = 'mnist'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("print(SEED, DATASET)")]
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


def test_overrides_replace_the_parameters_cell_values(tmp_path):
    path = _parameterised(tmp_path)
    runner.execute(path, timeout=60, overrides={"SEED": 3})
    executed = nbformat.read(tmp_path / "build" / "notebooks" / path.name, as_version=4)
    assert executed.cells[-1].outputs[0].text.strip() == "3 mnist"
    with pytest.raises(ValueError, match="has no parameter EPOCHS"):
        runner.execute(path, timeout=60, overrides={"EPOCHS": 3})


def test_a_run_on_another_data_set_keeps_the_default_executed_copy(tmp_path):
    # named like its metrics file, so the site's MNIST page never shows a Fashion-MNIST run
    path = _parameterised(tmp_path)
    runner.execute(path, timeout=60)
    runner.execute(path, timeout=60, overrides={"SEED": 3, "DATASET": "fashion_mnist"})
    build = tmp_path / "build"
    for stem, printed in (("03_p", "0 mnist"), ("03_p-fashion_mnist", "3 fashion_mnist")):
        executed = nbformat.read(build / "notebooks" / f"{stem}.ipynb", as_version=4)
        assert executed.cells[-1].outputs[0].text.strip() == printed
        assert printed in (build / "html" / f"{stem}.html").read_text()


def test_main_records_overrides_under_the_data_set_name(tmp_path, monkeypatch):
    path = _parameterised(tmp_path, "04_q.ipynb")
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        "from helpers.infra.metrics import MetricsRecorder\n"
        "MetricsRecorder('04_q', variant=None if DATASET == 'mnist' else DATASET)"
        ".record('seed', SEED)"))
    nbformat.write(nb, path)
    monkeypatch.setattr(runner, "NOTEBOOK_DIR", tmp_path)
    monkeypatch.setattr(runner, "select_notebooks", lambda patterns: [path])
    (tmp_path / "build" / "metrics").mkdir(parents=True)
    (tmp_path / "build" / "metrics" / "01_other.json").write_text("{broken")  # ignored
    assert runner.main(["--fast", "--set", "SEED=5", "--dataset", "fashion_mnist"]) == 0
    record = json.loads((tmp_path / "build" / "metrics" / "04_q-fashion_mnist.json").read_text())
    assert record["metrics"] == {"seed": 5}
    assert record["overrides"] == {"SEED": 5, "DATASET": "fashion_mnist"}
    assert record["variant"] == "fashion_mnist" and record["wall_seconds"] > 0


def test_main_runs_strict_so_a_missed_target_fails(tmp_path, monkeypatch):
    path = _parameterised(tmp_path, "05_t.ipynb")
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        "from helpers.infra import targets\ntargets.at_least('accuracy', 0.5, 0.9)"))
    nbformat.write(nb, path)
    monkeypatch.setattr(runner, "NOTEBOOK_DIR", tmp_path)
    monkeypatch.setattr(runner, "select_notebooks", lambda patterns: [path])
    monkeypatch.setenv("NOTEBOOK_STRICT", "0")  # make run overrides a lenient shell
    assert runner.main(["--fast"]) == 1


def test_main_shows_where_a_failure_outside_the_notebook_came_from(tmp_path, monkeypatch,
                                                                     capsys):
    # such an error (here an assert with no message, in the kernel's client) names no cell
    path = _notebook(tmp_path, "06_k.ipynb", "x = 1")

    def lost_kernel(*args, **kwargs):
        assert False  # noqa: B011 (an AssertionError with an empty message)

    monkeypatch.setattr(runner, "select_notebooks", lambda patterns: [path])
    monkeypatch.setattr(runner, "execute", lost_kernel)
    assert runner.main(["--fast"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "lost_kernel" in err and "FAILED 06_k.ipynb" in err


def test_make_run_passes_a_cell_timeout_only_when_asked():
    import subprocess

    root = Path(__file__).resolve().parent.parent
    stamp = ["-o", ".venv/.installed"]  # print the commands without installing anything
    given = subprocess.run(["make", "-n", *stamp, "run", "NB=05", "TIMEOUT=7200"], cwd=root,
                           capture_output=True, text=True, check=True).stdout
    default = subprocess.run(["make", "-n", *stamp, "run", "NB=05"], cwd=root,
                             capture_output=True, text=True, check=True).stdout
    assert "--timeout 7200" in given and "--timeout" not in default
    one = subprocess.run(["make", "-n", *stamp, "run", "JOBS=1"], cwd=root,
                         capture_output=True, text=True, check=True).stdout
    assert "--jobs 2" in default and "--jobs 1" in one  # two notebooks at once by default


# ---------------------------------------------------------------- nothing of a good run is lost
@pytest.mark.parametrize("text, expected", [
    ("HIDDEN=(512, 256)", {"HIDDEN": (512, 256)}),
    ("SIZES=[1, 2] NAME='a b' SEED=3", {"SIZES": [1, 2], "NAME": "a b", "SEED": 3}),
    ("DATASET=fashion_mnist RATE=-1e-3", {"DATASET": "fashion_mnist", "RATE": -1e-3}),
])
def test_overrides_split_outside_brackets_and_quotes(text, expected):
    assert runner.parse_overrides([text]) == expected


@pytest.mark.parametrize("text, match", [
    ("NAME='abc", "quote .* is not closed"),
    ("HIDDEN=(512, 256", "bracket is not closed"),
    ("SEED=01", r"SEED=01 is not a Python literal \(leading zeros"),
    ("LEARNING_RATE=1e-3.", r"LEARNING_RATE=1e-3\. is not a Python literal"),
    ("FAST=True", "run with --fast"),
    ("SEED=1 SEED=2", "SEED is given twice"),
])
def test_bad_overrides_stop_with_a_message_that_names_them(text, match):
    with pytest.raises(SystemExit, match=match):
        runner.parse_overrides([text])


def _capture_runs(monkeypatch, tmp_path, *paths):
    runs = []

    def fake_run(path, timeout, overrides, metrics_dir, **kwargs):
        runs.append((path.name, dict(overrides)))
        return {"status": "ok", "seconds": 0.1, "metrics": {}}

    monkeypatch.setattr(runner, "select_notebooks", lambda patterns: list(paths))
    monkeypatch.setattr(runner, "run_one", fake_run)
    return runs


def test_repeated_set_options_add_up(tmp_path, monkeypatch):
    path = _parameterised(tmp_path)
    runs = _capture_runs(monkeypatch, tmp_path, path)
    assert runner.main(["--fast", "--set", "SEED=1", "--set", "DATASET='fashion_mnist'"]) == 0
    assert runs == [("03_p.ipynb", {"SEED": 1, "DATASET": "fashion_mnist"})]


def test_a_mistyped_override_touches_nothing(tmp_path, monkeypatch):
    path = _parameterised(tmp_path)
    runs = _capture_runs(monkeypatch, tmp_path, path)
    metrics = tmp_path / "build" / "metrics"
    metrics.mkdir(parents=True)
    (metrics / "03_p.json").write_text('{"metrics": {"seed": 0}}')
    (metrics / "03_p.results.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SystemExit, match="has no parameter SEDD"):
        runner.main(["--set", "SEDD=1"])
    assert runs == []
    assert (metrics / "03_p.json").read_text() == '{"metrics": {"seed": 0}}'
    assert (metrics / "03_p.results.csv").read_text() == "a,b\n1,2\n"


def test_a_failing_rerun_keeps_the_last_good_run(tmp_path, monkeypatch, capsys):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("SEED = 0\nFAIL = False")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "import numpy as np\nimport pandas as pd\n"
        "from helpers.infra.metrics import MetricsRecorder\n"
        "recorder = MetricsRecorder('07_r')\nrecorder.record('seed', SEED)\n"
        "recorder.record_table('rows', pd.DataFrame({'seed': [SEED]}))\n"
        "recorder.record_array('draws', np.full(3, SEED))\n"
        "assert not FAIL, 'asked to fail'")]
    path = tmp_path / "07_r.ipynb"
    nbformat.write(nb, path)
    monkeypatch.setattr(runner, "select_notebooks", lambda patterns: [path])
    build = tmp_path / "build"
    assert runner.main(["--fast", "--set", "SEED=4"]) == 0
    good = {p: p.read_bytes() for p in [build / "notebooks" / "07_r.ipynb",
                                        build / "html" / "07_r.html",
                                        build / "metrics" / "07_r.json",
                                        build / "metrics" / "07_r.rows.csv",
                                        build / "metrics" / "07_r.draws.npy"]}
    record = json.loads((build / "metrics" / "07_r.json").read_text())
    assert record["metrics"] == {"seed": 4} and record["cell_seconds"][0]["cell"] == 0
    assert "Most expensive cells" in capsys.readouterr().out

    assert runner.main(["--fast", "--set", "SEED=5 FAIL=True"]) == 1
    for file, content in good.items():
        assert file.read_bytes() == content, f"{file.name} of the good run was replaced"
    failed = nbformat.read(build / "notebooks" / "07_r.failed.ipynb", as_version=4)
    assert "asked to fail" in str([cell.get("outputs") for cell in failed.cells])
    assert (build / "html" / "07_r.failed.html").exists()
    assert json.loads((build / "metrics" / "failed" / "07_r.json").read_text())["metrics"] == \
        {"seed": 5}
    assert "the last good run is kept in" in capsys.readouterr().err
    assert not [p for p in (build / "metrics").iterdir() if p.name.startswith(".run-")]

    assert runner.main(["--fast"]) == 0  # a good run again: the failed copies go
    assert not (build / "notebooks" / "07_r.failed.ipynb").exists()


def test_cell_seconds_from_the_timing_metadata():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# title"), nbformat.v4.new_code_cell("\nfit()")]
    nb.cells[1].metadata["execution"] = {
        "iopub.execute_input": "2026-01-01T10:00:00.500000Z",
        "shell.execute_reply": "2026-01-01T10:02:03.750000Z"}
    assert runner.cell_seconds(nb) == [{"cell": 1, "seconds": 123.25, "source": "fit()"}]
    times = [{"cell": i, "seconds": s, "source": ""} for i, s in enumerate([3, 9, 1, 7, 8])]
    assert [t["cell"] for t in runner.slowest_cells(times)] == [1, 4, 3]


# ------------------------------------------------------------- several notebooks at a time
def _waiting_notebook(tmp_path, name, mine, other):
    """A notebook that says it has started, then waits (up to 60 s) for ``other`` to say so:
    it finishes only when both run at once. It records its number."""
    return _notebook(tmp_path, name, (
        "import time\nfrom pathlib import Path\n"
        f"Path({str(tmp_path / mine)!r}).touch()\n"
        "deadline = time.time() + 60\n"
        f"while not Path({str(tmp_path / other)!r}).exists():\n"
        "    assert time.time() < deadline, 'the other notebook never started'\n"
        "    time.sleep(0.1)\n"
        "import os\nfrom helpers.infra.metrics import MetricsRecorder\n"
        f"recorder = MetricsRecorder({Path(name).stem!r}, data='none')\n"
        f"recorder.record('which', {name[1]})\n"
        "recorder.record('threads', int(os.environ.get('TF_NUM_INTRAOP_THREADS', 0)))"))


def test_jobs_run_notebooks_at_once_each_with_its_own_metrics(tmp_path, monkeypatch):
    first = _waiting_notebook(tmp_path, "01_a.ipynb", "a", "c")
    third = _waiting_notebook(tmp_path, "03_c.ipynb", "c", "a")
    # 02 reads 01's record, so it starts when 01 has finished, and sees its number
    second = _notebook(tmp_path, "02_b.ipynb",
                       "from helpers.infra.metrics import MetricsRecorder, read_metrics\n"
                       "seen = read_metrics()['01_a']['metrics']['which']\n"
                       "MetricsRecorder('02_b', data='none').record('seen', seen)")
    monkeypatch.setattr(runner, "select_notebooks", lambda patterns: [first, second, third])
    for name in runner.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(runner.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4})
    assert runner.main(["--fast", "--jobs", "2"]) == 0
    metrics = tmp_path / "build" / "metrics"
    records = {stem: json.loads((metrics / f"{stem}.json").read_text())
               for stem in ("01_a", "02_b", "03_c")}
    # five cores, two notebooks at once: each kernel's TensorFlow gets two threads
    assert records["01_a"]["metrics"] == {"which": 1, "threads": 2}
    assert records["03_c"]["metrics"] == {"which": 3, "threads": 2}
    assert records["02_b"]["metrics"] == {"seen": 1}
    assert all(r["jobs"] == 2 and r["tensorflow_threads"] == "2" for r in records.values())
    assert not list(metrics.glob(".run-*"))  # every staging folder gone


def test_notebooks_run_at_once_share_the_cores_between_their_thread_pools(monkeypatch):
    for name in runner.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert runner.kernel_threads(1, cores=2) == {}  # alone: TensorFlow's default, all cores
    assert runner.kernel_threads(2, cores=2) == {"TF_NUM_INTRAOP_THREADS": "1",
                                                 "TF_NUM_INTEROP_THREADS": "1"}
    assert runner.kernel_threads(2, cores=7)["TF_NUM_INTRAOP_THREADS"] == "3"
    assert runner.kernel_threads(4, cores=2)["TF_NUM_INTRAOP_THREADS"] == "1"  # at least one
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "2")  # the user's choice is kept
    assert runner.kernel_threads(2, cores=2) == {}


def test_one_job_runs_in_reading_order_one_at_a_time(tmp_path, monkeypatch):
    paths = [_notebook(tmp_path, f"0{i}_x.ipynb", "x = 1") for i in (1, 2, 3)]
    runs = _capture_runs(monkeypatch, tmp_path, *paths)
    assert runner.main(["--fast"]) == 0
    assert [name for name, _ in runs] == ["01_x.ipynb", "02_x.ipynb", "03_x.ipynb"]
    with pytest.raises(SystemExit, match="--jobs must be at least 1, got 0"):
        runner.main(["--fast", "--jobs", "0"])


def test_a_notebook_that_reads_another_s_records_waits_for_it():
    parsed = {p: nbformat.read(p, as_version=4) for p in NOTEBOOKS}
    deps = {p.stem[:2]: {d.stem[:2] for d in ds}
            for p, ds in runner.dependencies(NOTEBOOKS, parsed).items() if ds}
    assert deps == {"09": {"08"}}  # the diffusion study scores the GAN's recorded samples


def test_several_jobs_start_the_longest_notebooks_first(tmp_path, monkeypatch):
    paths = [_notebook(tmp_path, f"0{i}_x.ipynb", "x = 1") for i in (1, 2, 3, 4)]
    metrics = tmp_path / "build" / "metrics"
    metrics.mkdir(parents=True)
    for i, seconds, fast in ((1, 50.0, False), (2, 900.0, False), (3, 300.0, True)):
        (metrics / f"0{i}_x.json").write_text(json.dumps(
            {"metrics": {}, "wall_seconds": seconds, "fast_mode": fast}))
    stems = {p: p.stem for p in paths}
    order = runner.longest_first(paths, stems, metrics, fast=False)
    # 03 ran only in fast mode and 04 never: their full-mode times are unknown, so first
    assert [p.stem for p in order] == ["03_x", "04_x", "02_x", "01_x"]
    runs = _capture_runs(monkeypatch, tmp_path, *paths)
    assert runner.main(["--jobs", "2"]) == 0
    assert sorted(name for name, _ in runs) == [p.name for p in paths]
    assert {name for name, _ in runs[:2]} == {"03_x.ipynb", "04_x.ipynb"}  # main uses that order


def test_a_notebook_others_wait_for_starts_by_the_length_of_its_chain(tmp_path):
    paths = [tmp_path / f"0{i}_x.ipynb" for i in (1, 2, 3, 4)]
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    for i, seconds in ((1, 100.0), (2, 50.0), (3, 80.0)):
        (metrics / f"0{i}_x.json").write_text(json.dumps(
            {"metrics": {}, "wall_seconds": seconds, "fast_mode": False}))
    stems = {p: p.stem for p in paths}
    deps = {paths[2]: {paths[1]}}  # 03 reads 02's records
    # 04: no record, its time from the course page; 02's chain is 50 + 80 = 130
    order = runner.longest_first(paths, stems, metrics, False, deps, {"04_x": 120.0})
    assert [p.stem for p in order] == ["02_x", "04_x", "01_x", "03_x"]
    # without a documented time 04 is unknown, so first; a cycle does not recurse for ever
    cycle = {paths[0]: {paths[1]}, paths[1]: {paths[0]}}
    order = runner.longest_first(paths, stems, metrics, False, cycle, {})
    assert order[0].stem == "04_x" and sorted(order) == sorted(paths)


def test_documented_seconds_read_the_course_page_table(tmp_path):
    page = tmp_path / "index.md"
    page.write_text("| # | notebook | data | fast mode | full mode |\n|---|---|---|---|---|\n"
                    "| 01 | [One](01_a.ipynb) | digits | 46 s | 6 min |\n"
                    "| 02 | [Two](02_b.ipynb) | curves | 1.5 min | 90 s |\n")
    assert runner.documented_seconds(False, page) == {"01_a": 360.0, "02_b": 90.0}
    assert runner.documented_seconds(True, page) == {"01_a": 46.0, "02_b": 90.0}
    assert runner.documented_seconds(False, tmp_path / "missing.md") == {}
    # the real page gives both times of every notebook of the course
    for fast in (False, True):
        documented = runner.documented_seconds(fast)
        assert sorted(documented) == sorted(p.stem for p in NOTEBOOKS)
        assert all(seconds > 0 for seconds in documented.values())


def test_stop_kernels_interrupts_a_notebook_running_on_another_thread(tmp_path):
    # make run's Ctrl-C: the kernels of notebooks run on threads do not see it themselves
    import threading
    import time

    from nbclient.exceptions import CellExecutionError

    path = _notebook(tmp_path, "01_slow.ipynb", "import time\ntime.sleep(120)")
    errors = []

    def run():
        try:
            runner.execute(path, timeout=300)
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.time() + 60
    while not runner._KERNELS and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(2)  # the cell is running
    begin = time.time()
    runner.stop_kernels()
    thread.join(60)
    assert not thread.is_alive() and time.time() - begin < 30
    assert len(errors) == 1 and isinstance(errors[0], CellExecutionError)
    assert "KeyboardInterrupt" in str(errors[0])
    assert (tmp_path / "build" / "notebooks" / "01_slow.failed.ipynb").exists()
    assert not runner._KERNELS

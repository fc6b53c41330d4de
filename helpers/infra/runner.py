"""Execute notebooks, export HTML and summarise their recorded headline numbers.

    python -m helpers.infra.runner [--nb 05] [--fast] [--set SEED=1 EPOCHS=5] [--dataset NAME]
                                   [--jobs 2]

Each notebook runs on this interpreter's kernel with its own folder as working directory;
``--set`` values (Python literals; repeated ``--set`` add up) replace those of the cell
tagged ``parameters`` (papermill injects them after it), and are checked against that
cell before anything runs; ``--dataset`` sets ``DATASET`` and records to
``build/metrics/<notebook>-<dataset>.json``. The executed copy goes to build/notebooks/,
HTML to build/html/, under the same name as the metrics. A run replaces the previous
run's executed copy, HTML and metrics only when it succeeds: a failed run keeps the last
good ones and leaves its partial copy beside them as ``<name>.failed.ipynb`` (and
``.failed.html``, its metrics in build/metrics/failed/). Exits non-zero, naming the
notebook and the failing cell, when a notebook fails. The summary ends with each
notebook's most expensive cells, whose times are recorded with the metrics. ``--jobs N``
runs N notebooks at once, longest first (by their last recorded times, else the course
page's; see ``longest_first``); one that reads another's records starts after it (see
``dependencies``).
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import datetime
from pathlib import Path

from helpers.infra.config import METRICS_DIR_VARIABLE, REPO_ROOT, build_dir
from helpers.infra.files import replace_atomic, write_json_atomic
from helpers.infra.metrics import metrics_stem, read_record, stamp_run
from helpers.infra.progress import tidy_outputs

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
DEFAULT_DATASET = "mnist"
FAILED = ".failed"  # a failed run's copies: <name>.failed.ipynb, <name>.failed.html
_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/]*$")  # a bare value read as text


def split_assignments(text: str) -> list[str]:
    """``"SEED=1 HIDDEN=(512, 256) NAME='a b'"`` -> ``["SEED=1", "HIDDEN=(512, 256)",
    "NAME='a b'"]``: split at white space outside quotes and brackets."""
    words, current, quote, depth = [], [], None, 0
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char.isspace() and depth <= 0:
            if current:
                words.append("".join(current))
            current, depth = [], 0
            continue
        current.append(char)
    if quote:
        raise SystemExit(f"Parameter overrides: a quote ({quote}) is not closed in {text!r}")
    if depth > 0:
        raise SystemExit(f"Parameter overrides: a bracket is not closed in {text!r}")
    if current:
        words.append("".join(current))
    return words


def parse_value(name: str, text: str):
    """``text`` as a Python literal (1, 1e-3, (512, 256), 'abc', True); a bare word such as
    ``fashion_mnist`` is kept as text. Anything else stops with the parse error."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        if _WORD.match(text):
            return text
        reason = exc.msg if isinstance(exc, SyntaxError) and exc.msg else str(exc)
        raise SystemExit(f"Parameter {name}={text} is not a Python literal ({reason}); write "
                         f"a number such as 0.001 or 7, a tuple such as (512, 256), or text "
                         f"in quotes such as {name}='abc'") from None


def parse_overrides(items: list[str] | None) -> dict:
    """``["SEED=1", "EPOCHS=5 NAME=fashion_mnist"]`` -> {"SEED": 1, "EPOCHS": 5, "NAME":
    "fashion_mnist"}: every item adds its assignments; each value is read as a Python
    literal (a bare word as text); a name given twice with two values stops the run, and
    so does ``FAST``, which only the mode (``--fast``) sets."""
    overrides = {}
    for item in items or []:
        for word in split_assignments(item):
            name, sep, text = word.partition("=")
            if not sep or not name.isidentifier():
                raise SystemExit(f"Parameter overrides look like NAME=VALUE, got {word!r}")
            if name == "FAST":
                raise SystemExit("FAST follows the mode: run with --fast (make run FAST=1) "
                                 "instead of setting it, so that the record says which mode ran")
            value = parse_value(name, text)
            if name in overrides and overrides[name] != value:
                raise SystemExit(f"Parameter {name} is given twice, as {overrides[name]!r} "
                                 f"and {value!r}")
            overrides[name] = value
    return overrides


def notebook_parameters(nb) -> set[str]:
    """Names assigned in the notebook's cell tagged ``parameters``."""
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    names = set()
    for cell in cells:
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return names


def check_overrides(path: Path, overrides: dict, nb=None) -> None:
    """Raise ValueError naming the overrides that ``path``'s parameters cell does not set."""
    import nbformat

    nb = nb if nb is not None else nbformat.read(path, as_version=4)
    known = notebook_parameters(nb)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"{path.name} has no parameter {', '.join(unknown)}; its "
                         f"parameters cell sets {', '.join(sorted(known))}")


def result_stem(path: Path, overrides: dict) -> str:
    """Stem of the metrics file a run of ``path`` writes under these overrides."""
    dataset = overrides.get("DATASET", DEFAULT_DATASET)
    return metrics_stem(path.stem, None if dataset == DEFAULT_DATASET else dataset)


def select_notebooks(patterns: list[str] | None, directory: Path = NOTEBOOK_DIR) -> list[Path]:
    """Notebooks whose file name starts with one of ``patterns`` (all when none)."""
    notebooks = sorted(directory.glob("[0-9]*.ipynb"))
    if not patterns:
        return notebooks
    chosen = [nb for nb in notebooks if any(nb.name.startswith(p) for p in patterns)]
    if not chosen:
        names = ", ".join(nb.stem for nb in notebooks)
        raise SystemExit(f"No notebook matches {patterns}; available: {names}")
    return chosen


def output_paths(stem: str, failed: bool = False) -> tuple[Path, Path]:
    """Where a run's executed copy and HTML go: ``<stem>.ipynb`` and ``<stem>.html``, or
    ``<stem>.failed.ipynb`` and ``<stem>.failed.html`` for a failed run."""
    name = stem + (FAILED if failed else "")
    return build_dir("notebooks") / f"{name}.ipynb", build_dir("html") / f"{name}.html"


def execute(path: Path, timeout: int, overrides: dict | None = None,
            env: dict | None = None) -> float:
    """Run one notebook with ``overrides`` of its parameters, write the executed copy and
    its HTML, named like the run's metrics (``<notebook>-<dataset>`` for another data set,
    so that such a run never replaces the default one's copy); return the wall time. Each
    file is replaced only when the run succeeds; a failed run writes ``<name>.failed.ipynb``
    and ``.failed.html`` and leaves the last good ones as they were. ``env``: the kernel's
    environment (default: this process's)."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb = nbformat.read(path, as_version=4)
    if overrides:
        check_overrides(path, overrides, nb)
        nb = parameterize_notebook(load_notebook_node(str(path)), overrides,
                                   kernel_name="python3", language="python")
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.on_notebook_start = lambda notebook: _KERNELS.add(client)
    stem = result_stem(path, overrides or {})
    start, succeeded = time.perf_counter(), False
    try:
        client.execute(**({} if env is None else {"env": env}))
        succeeded = True
    finally:
        _KERNELS.discard(client)
        elapsed = time.perf_counter() - start
        notebook_file, html_file = output_paths(stem, failed=not succeeded)
        tidy_outputs(nb)
        replace_atomic(notebook_file, lambda tmp: nbformat.write(nb, tmp), suffix=".ipynb")
        html, _ = HTMLExporter().from_notebook_node(nb)
        replace_atomic(html_file, lambda tmp: Path(tmp).write_text(html, encoding="utf-8"),
                       suffix=".html")
        if succeeded:  # the failed copies of an earlier run are out of date
            for stale in output_paths(stem, failed=True):
                stale.unlink(missing_ok=True)
    return elapsed


_KERNELS = set()  # the clients of the kernels now running notebooks (see ``stop_kernels``)


def stop_kernels(hard: bool = False) -> None:
    """Interrupt the cell each running kernel is executing, as Ctrl-C in a notebook does (so
    that its run fails and keeps its partial copy), or with ``hard`` kill the kernels.
    Several notebooks run on threads of this process, and Ctrl-C reaches only this one."""
    for client in list(_KERNELS):
        provisioner = getattr(client.km, "provisioner", None)
        if provisioner is not None and provisioner.pid:
            try:
                os.kill(provisioner.pid, signal.SIGKILL if hard else signal.SIGINT)
            except ProcessLookupError:  # it has just ended
                pass


def cell_seconds(nb) -> list[dict]:
    """Each executed code cell's wall time, from the timing metadata that nbclient records:
    ``[{"cell": index, "seconds": ..., "source": first line}, ...]`` in notebook order."""
    times = []
    for index, cell in enumerate(nb.cells):
        timing = cell.get("metadata", {}).get("execution", {})
        begin, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
        if cell.cell_type != "code" or not begin or not end:
            continue
        seconds = (datetime.fromisoformat(end.replace("Z", "+00:00"))
                   - datetime.fromisoformat(begin.replace("Z", "+00:00"))).total_seconds()
        first = next((line for line in cell.source.splitlines() if line.strip()), "")
        times.append({"cell": index, "seconds": round(seconds, 2), "source": first[:60]})
    return times


def slowest_cells(times: list[dict], n: int = 3) -> list[dict]:
    """The ``n`` most expensive cells of :func:`cell_seconds`, slowest first."""
    return sorted(times, key=lambda t: t["seconds"], reverse=True)[:n]


def publish_metrics(staging: Path, metrics_dir: Path, stem: str, extra: dict,
                    failed: bool) -> dict:
    """Move a run's metrics from ``staging`` into place: ``<stem>.json`` (stamped with
    ``extra``) and its tables and arrays replace the previous run's when the run succeeded;
    a failed run's go to ``metrics_dir/failed/`` and the previous ones stay. Returns the
    record."""
    record = read_record(staging / f"{stem}.json")
    target = metrics_dir / "failed" if failed else metrics_dir
    target.mkdir(parents=True, exist_ok=True)
    tables = sorted([*staging.glob(f"{stem}.*.csv"), *staging.glob(f"{stem}.*.npy")])
    if not failed:  # tables the new run no longer writes belonged to the old record
        new = {t.name for t in tables}
        for pattern in (f"{stem}.*.csv", f"{stem}.*.npy"):
            for old in metrics_dir.glob(pattern):
                if old.name not in new:
                    old.unlink()
    for table in tables:
        os.replace(table, target / table.name)
    if record:
        record = {**stamp_run(record, extra["seconds"], extra.get("overrides")),
                  "cell_seconds": extra.get("cell_seconds", []), "jobs": extra.get("jobs", 1),
                  "tensorflow_threads": extra.get("tensorflow_threads", "all cores")}
        write_json_atomic(target / f"{stem}.json", record)
    elif not failed:
        (metrics_dir / f"{stem}.json").unlink(missing_ok=True)
    return record


def summary_table(results: dict[str, dict]) -> str:
    """Plain-text table: notebook, status, wall time, data source and metrics; then each
    notebook's three most expensive cells."""
    lines = [f"{'notebook':<36} {'status':<7} {'time':>8}  {'data':<22} metrics"]
    for stem, res in results.items():
        metrics = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in res.get("metrics", {}).items()) or "-"
        lines.append(f"{stem:<36} {res['status']:<7} {res['seconds']:>7.1f}s  "
                     f"{res.get('data', '-'):<22} {metrics}")
    slow = {stem: slowest_cells(res.get("cell_seconds") or []) for stem, res in results.items()}
    if any(slow.values()):
        lines.append("\nMost expensive cells (seconds, cell number, first line):")
        for stem, cells in slow.items():
            lines.append(f"  {stem}")
            lines += [f"    {c['seconds']:>8.1f}  [{c['cell']}] {c['source']}" for c in cells]
    return "\n".join(lines)


THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def kernel_threads(jobs: int, cores: int | None = None) -> dict[str, str]:
    """TensorFlow's thread pools for a notebook that runs beside ``jobs - 1`` others: an
    equal share of the ``cores`` (default: those this process may use), at least one: two
    pools of all the cores on the same cores wait on each other (measured in CONTRIBUTING).
    Empty for one notebook at a time (TensorFlow's default: all cores) and for a pool size
    the caller set in the environment."""
    if jobs <= 1 or any(name in os.environ for name in THREAD_VARIABLES):
        return {}
    cores = len(os.sched_getaffinity(0)) if cores is None else cores
    share = str(max(1, cores // jobs))
    return {name: share for name in THREAD_VARIABLES}


def run_one(path: Path, timeout: int, overrides: dict, metrics_dir: Path,
            jobs: int = 1) -> dict:
    """Execute ``path`` with its metrics written to a private staging folder, then publish
    them (or keep them apart when the run failed). ``jobs``: how many notebooks run at
    once, kept with the record beside the wall time; each then gets its share of the cores
    (``kernel_threads``), also kept. Returns the summary row."""
    import nbformat

    stem = result_stem(path, overrides)
    staging = Path(tempfile.mkdtemp(prefix=f".run-{stem}-", dir=metrics_dir))
    # the kernel's recorder writes to the staging folder; each kernel gets its own
    env = {**os.environ, METRICS_DIR_VARIABLE: str(staging), **kernel_threads(jobs)}
    threads = env.get(THREAD_VARIABLES[0], "all cores")
    start, error = time.perf_counter(), None
    try:
        seconds = execute(path, timeout, overrides, env=env)
    except Exception as exc:  # report and go on with the next notebook
        seconds, error = time.perf_counter() - start, exc
    try:
        executed = output_paths(stem, failed=error is not None)[0]
        times = cell_seconds(nbformat.read(executed, as_version=4)) if executed.exists() else []
        record = publish_metrics(staging, metrics_dir, stem, {
            "seconds": seconds, "overrides": overrides, "cell_seconds": times, "jobs": jobs,
            "tensorflow_threads": threads},
            failed=error is not None)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    row = {**record, "status": "ok" if error is None else "FAILED", "seconds": seconds,
           "cell_seconds": times}
    if error is not None:
        row["error"] = error
    return row


def dependencies(notebooks: list[Path], parsed: dict) -> dict[Path, set[Path]]:
    """For each of ``notebooks``, the others among them whose records it reads: those whose
    name appears in quotes in its code (09 reads 08's samples through
    ``metrics_stem("08_gan_mnist")``). Such a notebook starts after they have finished."""
    deps = {}
    for path in notebooks:
        code = "\n".join(c.source for c in parsed[path].cells if c.cell_type == "code")
        deps[path] = {other for other in notebooks if other != path and
                      (f'"{other.stem}"' in code or f"'{other.stem}'" in code)}
    return deps


_TABLE_ROW = re.compile(r"^\|\s*\d+\s*\|\s*\[[^\]]*\]\(([^)/]+)\.ipynb\)\s*\|[^|]*\|"
                        r"\s*([\d.]+)\s*(s|min)\s*\|\s*([\d.]+)\s*(s|min)\s*\|\s*$", re.M)


def documented_seconds(fast: bool, front_page: Path | None = None) -> dict[str, float]:
    """Each notebook's wall time in this mode as the course page's reading-order table gives
    it (``| 08 | [title](08_gan_mnist.ipynb) | data | 44 s | 16 min |``), by notebook stem;
    empty when the page is missing."""
    front_page = NOTEBOOK_DIR / "index.md" if front_page is None else front_page
    if not front_page.exists():
        return {}
    seconds = {}
    for stem, fast_value, fast_unit, full_value, full_unit in _TABLE_ROW.findall(
            front_page.read_text(encoding="utf-8")):
        value, unit = (fast_value, fast_unit) if fast else (full_value, full_unit)
        seconds[stem] = float(value) * (60 if unit == "min" else 1)
    return seconds


def longest_first(notebooks: list[Path], stems: dict[Path, str], metrics_dir: Path,
                  fast: bool, deps: dict[Path, set[Path]] | None = None,
                  documented: dict[str, float] | None = None) -> list[Path]:
    """``notebooks`` in the order to start them with several at a time: longest chain first.
    A notebook's chain is its own expected wall time plus the longest chain of the notebooks
    that wait for it (``deps``, from ``dependencies``), so that 08, which 09 waits for, starts
    before notebooks longer than itself, and neither runs alone at the end. Its expected time
    is its last recorded wall time in this mode, else the course page's (``documented``, by
    default ``documented_seconds``), else unknown: those come first of all, in their own
    order."""
    deps = deps or {}
    documented = documented_seconds(fast) if documented is None else documented

    def own(path):
        record = read_record(metrics_dir / f"{stems[path]}.json")
        if record.get("fast_mode") == fast and record.get("wall_seconds"):
            return float(record["wall_seconds"])
        return documented.get(path.stem, float("inf"))

    waiters = {p: [q for q in notebooks if p in deps.get(q, set())] for p in notebooks}
    chains: dict[Path, float] = {}

    def chain(path, seen=()):
        if path not in chains:
            later = [chain(q, (*seen, path)) for q in waiters[path] if q not in seen]
            chains[path] = own(path) + max(later, default=0.0)
        return chains[path]

    return sorted(notebooks, key=chain, reverse=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nb", nargs="*", help="notebook prefixes, e.g. 05 or 01 05")
    parser.add_argument("--fast", action="store_true", help="run in fast mode (NOTEBOOK_FAST=1)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--set", nargs="*", action="extend", dest="overrides",
                        metavar="NAME=VALUE", help="parameter values, e.g. --set SEED=1 "
                        "EPOCHS=5; repeated --set add up")
    parser.add_argument("--dataset", help="value of DATASET (e.g. fashion_mnist), for the "
                        "notebooks that take it")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks run at once, each on "
                        "its own kernel (default 1); a notebook that reads another's records "
                        "starts after it")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        raise SystemExit(f"--jobs must be at least 1, got {args.jobs}")
    overrides = parse_overrides(args.overrides)
    notebooks = select_notebooks(args.nb)
    if args.dataset:
        if overrides.get("DATASET", args.dataset) != args.dataset:
            raise SystemExit(f"--dataset {args.dataset} and DATASET={overrides['DATASET']!r} "
                             "disagree; give one of them")
        overrides["DATASET"] = args.dataset
    import nbformat

    parsed = {path: nbformat.read(path, as_version=4) for path in notebooks}
    if "DATASET" in overrides and not args.nb:  # all notebooks: those that take a data set
        notebooks = [p for p in notebooks if "DATASET" in notebook_parameters(parsed[p])]
    problems = []
    for path in notebooks:  # every override checked before anything runs or is replaced
        try:
            check_overrides(path, overrides, parsed[path])
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise SystemExit("Nothing was run:\n" + "\n".join(problems))
    os.environ["NOTEBOOK_FAST"] = "1" if args.fast else "0"
    os.environ["NOTEBOOK_STRICT"] = "1"  # a missed headline target fails the run
    metrics_dir = build_dir("metrics")
    stems = {path: result_stem(path, overrides) for path in notebooks}
    deps = dependencies(notebooks, parsed)
    pending = (longest_first(notebooks, stems, metrics_dir, args.fast, deps) if args.jobs > 1
               else list(notebooks))
    shown = "".join(f", {k}={v!r}" for k, v in overrides.items())
    results, failures, running, begin = {}, [], {}, time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        def start(path):
            pending.remove(path)
            print(f"--> {path.name} ({'fast' if args.fast else 'full'} mode{shown})",
                  flush=True)
            running[pool.submit(run_one, path, args.timeout, overrides, metrics_dir,
                                jobs=min(args.jobs, len(notebooks)))] = path

        while pending or running:
            for path in list(pending):  # start, in order, those whose sources have run
                if len(running) < args.jobs and not deps[path] & {*pending,
                                                                   *running.values()}:
                    start(path)
            if not running:  # left: notebooks that read each other's records
                start(pending[0])
            try:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:  # the others' kernels do not see Ctrl-C: stop them
                print("\nInterrupted: stopping the running notebooks (Ctrl-C again kills "
                      "their kernels)", file=sys.stderr, flush=True)
                pending.clear()
                try:
                    while running:  # again every few seconds: one may fall between cells
                        stop_kernels()
                        for future in wait(running, timeout=5).done:
                            running.pop(future)
                except KeyboardInterrupt:
                    stop_kernels(hard=True)
                raise
            for future in done:
                path = running.pop(future)
                stem, row = stems[path], future.result()
                error = row.pop("error", None)
                if error is not None:
                    from nbclient.exceptions import CellExecutionError

                    kept = output_paths(stem)[0]
                    failures.append(f"{path.name}: {type(error).__name__}: {error}\n    this "
                                    f"run's partial copy: {output_paths(stem, failed=True)[0]}; "
                                    + (f"the last good run is kept in {kept}" if kept.exists()
                                       else "there is no earlier good run"))
                    if not isinstance(error, CellExecutionError):  # not the notebook's code
                        traceback.print_exception(error)
                results[stem] = row
                print(f"    {path.name}: {row['status']} in {row['seconds']:.1f}s", flush=True)
    results = {stems[p]: results[stems[p]] for p in notebooks}  # the summary in reading order
    print("\n" + summary_table(results))
    if len(results) > 1:
        print(f"\n{len(results)} notebooks in {time.perf_counter() - begin:.0f} s, "
              f"{min(args.jobs, len(results))} at a time")
    print(f"\nExecuted notebooks: {build_dir('notebooks')}\nHTML: {build_dir('html')}")
    for failure in failures:
        print(f"\nFAILED {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Execute notebooks, export HTML and summarise their recorded headline numbers.

    python -m helpers.infra.runner [--nb 05] [--fast] [--set SEED=1 EPOCHS=5] [--dataset NAME]

Each notebook runs on this interpreter's kernel with its own folder as working directory;
``--set`` values replace those of the cell tagged ``parameters`` (papermill injects them
after it), and ``--dataset`` sets ``DATASET`` and records to
``build/metrics/<notebook>-<dataset>.json``. The executed copy goes to build/notebooks/,
HTML to build/html/, under the same name as the metrics. Exits non-zero, naming the
notebook and the failing cell, when a notebook fails.
"""

from __future__ import annotations

import argparse
import ast
import os
import shlex
import sys
import time
import traceback
from pathlib import Path

from helpers.infra.config import REPO_ROOT, build_dir
from helpers.infra.files import write_json_atomic
from helpers.infra.metrics import metrics_stem, read_record, stamp_run
from helpers.infra.progress import tidy_outputs

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
DEFAULT_DATASET = "mnist"


def parse_overrides(items: list[str] | None) -> dict:
    """``["SEED=1", "EPOCHS=5 NAME=fashion_mnist"]`` -> {"SEED": 1, "EPOCHS": 5, "NAME":
    "fashion_mnist"}: each value is read as a Python literal, or kept as a string."""
    overrides = {}
    for item in items or []:
        for word in shlex.split(item):
            name, sep, text = word.partition("=")
            if not sep or not name.isidentifier():
                raise SystemExit(f"Parameter overrides look like NAME=VALUE, got {word!r}")
            try:
                overrides[name] = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                overrides[name] = text
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


def execute(path: Path, timeout: int, overrides: dict | None = None) -> float:
    """Run one notebook with ``overrides`` of its parameters, write the executed copy and
    its HTML, named like the run's metrics (``<notebook>-<dataset>`` for another data set,
    so that such a run never replaces the default one's copy); return the wall time."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb = nbformat.read(path, as_version=4)
    if overrides:
        unknown = sorted(set(overrides) - notebook_parameters(nb))
        if unknown:
            raise ValueError(f"{path.name} has no parameter {', '.join(unknown)}; its "
                             f"parameters cell sets {', '.join(sorted(notebook_parameters(nb)))}")
        nb = parameterize_notebook(load_notebook_node(str(path)), overrides,
                                   kernel_name="python3", language="python")
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    try:
        client.execute()
    finally:
        elapsed = time.perf_counter() - start
        stem = result_stem(path, overrides or {})
        nbformat.write(tidy_outputs(nb), build_dir("notebooks") / f"{stem}.ipynb")
        html, _ = HTMLExporter().from_notebook_node(nb)
        (build_dir("html") / f"{stem}.html").write_text(html, encoding="utf-8")
    return elapsed


def summary_table(results: dict[str, dict]) -> str:
    """Plain-text table: notebook, status, wall time, data source and metrics."""
    lines = [f"{'notebook':<36} {'status':<7} {'time':>8}  {'data':<22} metrics"]
    for stem, res in results.items():
        metrics = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in res.get("metrics", {}).items()) or "-"
        lines.append(f"{stem:<36} {res['status']:<7} {res['seconds']:>7.1f}s  "
                     f"{res.get('data', '-'):<22} {metrics}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nb", nargs="*", help="notebook prefixes, e.g. 05 or 01 05")
    parser.add_argument("--fast", action="store_true", help="run in fast mode (NOTEBOOK_FAST=1)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--set", nargs="*", dest="overrides", metavar="NAME=VALUE",
                        help="parameter values, e.g. --set SEED=1 EPOCHS=5")
    parser.add_argument("--dataset", help="value of DATASET (e.g. fashion_mnist), for the "
                        "notebooks that take it")
    args = parser.parse_args(argv)
    os.environ["NOTEBOOK_FAST"] = "1" if args.fast else "0"
    os.environ["NOTEBOOK_STRICT"] = "1"  # a missed headline target fails the run
    overrides = parse_overrides(args.overrides)
    notebooks = select_notebooks(args.nb)
    if args.dataset:
        overrides["DATASET"] = args.dataset
    if "DATASET" in overrides and not args.nb:  # all notebooks: those that take a data set
        import nbformat

        notebooks = [p for p in notebooks
                     if "DATASET" in notebook_parameters(nbformat.read(p, as_version=4))]
    metrics_dir = build_dir("metrics")
    results, failures = {}, []
    for path in notebooks:
        stem = result_stem(path, overrides)
        shown = "".join(f", {k}={v!r}" for k, v in overrides.items())
        print(f"--> {path.name} ({'fast' if args.fast else 'full'} mode{shown})", flush=True)
        for stale in [metrics_dir / f"{stem}.json", *metrics_dir.glob(f"{stem}.*.csv")]:
            stale.unlink(missing_ok=True)
        start = time.perf_counter()
        try:
            seconds, status = execute(path, args.timeout, overrides), "ok"
        except Exception as exc:  # report and go on with the next notebook
            from nbclient.exceptions import CellExecutionError

            seconds, status = time.perf_counter() - start, "FAILED"
            failures.append(f"{path.name}: {type(exc).__name__}: {exc}")
            if not isinstance(exc, CellExecutionError):  # not the notebook's code: say where
                traceback.print_exc()
        record = read_record(metrics_dir / f"{stem}.json")
        if record:
            record = stamp_run(record, seconds, overrides)
            write_json_atomic(metrics_dir / f"{stem}.json", record)
        results[stem] = {**record, "status": status, "seconds": seconds}
        print(f"    {status} in {seconds:.1f}s", flush=True)
    print("\n" + summary_table(results))
    print(f"\nExecuted notebooks: {build_dir('notebooks')}\nHTML: {build_dir('html')}")
    for failure in failures:
        print(f"\nFAILED {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

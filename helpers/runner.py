"""Execute notebooks, export HTML and summarise their recorded headline numbers.

    python -m helpers.runner [--nb 05] [--fast]

Each notebook runs on this interpreter's kernel with its own folder as working directory;
the executed copy goes to build/notebooks/, HTML to build/html/. Exits non-zero, naming
the notebook and the failing cell, when a notebook fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from helpers.config import REPO_ROOT, build_dir
from helpers.metrics import read_metrics, write_json_atomic

NOTEBOOK_DIR = REPO_ROOT / "notebooks"


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


def execute(path: Path, timeout: int) -> float:
    """Run one notebook, write the executed copy and its HTML; return the wall time."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    try:
        client.execute()
    finally:
        elapsed = time.perf_counter() - start
        nbformat.write(nb, build_dir("notebooks") / path.name)
        html, _ = HTMLExporter().from_notebook_node(nb)
        (build_dir("html") / f"{path.stem}.html").write_text(html, encoding="utf-8")
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
    args = parser.parse_args(argv)
    os.environ["NOTEBOOK_FAST"] = "1" if args.fast else "0"
    notebooks = select_notebooks(args.nb)
    metrics_dir = build_dir("metrics")
    results, failures = {}, []
    for path in notebooks:
        print(f"--> {path.name} ({'fast' if args.fast else 'full'} mode)", flush=True)
        for stale in [metrics_dir / f"{path.stem}.json", *metrics_dir.glob(f"{path.stem}.*.csv")]:
            stale.unlink(missing_ok=True)
        start = time.perf_counter()
        try:
            seconds, status = execute(path, args.timeout), "ok"
        except Exception as exc:  # report and go on with the next notebook
            seconds, status = time.perf_counter() - start, "FAILED"
            failures.append(f"{path.name}: {type(exc).__name__}: {exc}")
        record = read_metrics(metrics_dir).get(path.stem, {})
        if record:
            record["wall_seconds"] = round(seconds, 1)
            write_json_atomic(metrics_dir / f"{path.stem}.json", record)
        results[path.stem] = {**record, "status": status, "seconds": seconds}
        print(f"    {status} in {seconds:.1f}s", flush=True)
    print("\n" + summary_table(results))
    print(f"\nExecuted notebooks: {build_dir('notebooks')}\nHTML: {build_dir('html')}")
    for failure in failures:
        print(f"\nFAILED {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

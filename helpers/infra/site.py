"""Build the course site: the executed notebooks as a static book in build/site/.

    python -m helpers.infra.site          (or: make site)

Takes each notebook's executed copy from build/notebooks/ (written by ``make run``); a
notebook without one is executed first, in fast mode, by the runner. The copies are
prepared in build/site-src/ (a banner from the run's recorded metrics, solution and checks
cells collapsed, Plotly figures pointed at one shared plotly.js instead of an inlined copy
each) and built by Sphinx with myst-nb and the book theme, warnings as errors. MathJax 3 comes
from its npm package (downloaded once into build/vendor/, checked against a pinned hash),
plotly.js from the plotly package, so no page loads anything from another host.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from helpers.infra.config import REPO_ROOT, build_dir
from helpers.infra.metrics import read_record
from helpers.infra.progress import tidy_outputs

SITE_CONFIG = REPO_ROOT / "site"
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
FRONT_PAGE = NOTEBOOK_DIR / "index.md"
MATHJAX_VERSION = "3.2.2"
MATHJAX_SHA256 = "1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09"
# what the pages use of the MathJax package: the TeX-to-HTML component, the TeX extensions
# it loads on demand, and its fonts
MATHJAX_FILES = ("es5/tex-chtml.js", "es5/input/tex/extensions/", "es5/output/chtml/fonts/")
PLOTLY_MIME = "application/vnd.plotly.v1+json"
SITE_MARKER = ".course-site"  # written into every folder the builder makes, and only there


def course_notebooks(directory: Path = NOTEBOOK_DIR) -> list[Path]:
    """The course's notebooks in reading order."""
    return sorted(directory.glob("[0-9]*.ipynb"))


def ensure_executed(notebooks: list[Path], executed_dir: Path) -> list[str]:
    """Execute, in fast mode, the notebooks that have no executed copy; return their names."""
    missing = [nb for nb in notebooks if not (executed_dir / nb.name).exists()]
    if missing:
        from helpers.infra import runner

        prefixes = [nb.name.split("_")[0] for nb in missing]
        print(f"No executed copy of {', '.join(nb.stem for nb in missing)}: running them in "
              "fast mode first", flush=True)
        if runner.main(["--fast", "--nb", *prefixes]) != 0:
            raise SystemExit("The site needs every notebook executed; see the failures above")
    return [nb.name for nb in missing]


def format_seconds(seconds: float) -> str:
    """12.3 -> '12 s', 754 -> '12 min 34 s', 4000 -> '1 h 6 min'."""
    seconds = round(float(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def banner(record: dict, notebook: str) -> str:
    """The MyST admonition at the top of a notebook's page: mode, data source, date, wall
    time and versions of the run that produced it, from its recorded metrics."""
    needed = ("fast_mode", "data", "finished", "wall_seconds", "tensorflow", "keras")
    missing = [key for key in needed if key not in record]
    if missing:
        raise ValueError(f"the metrics of {notebook} lack {', '.join(missing)}: run it again "
                         "with `make run NB=..` (or `make site` with no executed copy)")
    mode = ("fast mode (short training: numbers are not the full results)"
            if record["fast_mode"] else "full mode")
    overrides = record.get("overrides") or {}
    changed = (" Parameters changed: " + ", ".join(f"`{k} = {v!r}`" for k, v in
                                                   overrides.items()) + ".") if overrides else ""
    jobs = record.get("jobs", 1)
    shared = f" ({jobs} notebooks running at a time)" if jobs > 1 else ""
    return ("```{admonition} This run\n:class: tip run-banner\n"
            f"Executed in **{mode}** on data `{record['data']}`, finished "
            f"{record['finished']} after {format_seconds(record['wall_seconds'])}{shared}, with "
            f"TensorFlow {record['tensorflow']} and Keras {record['keras']}.{changed}\n```")


def plotly_html(figure: dict) -> str:
    """A figure's HTML that draws with the page's shared plotly.js (none inlined, no CDN)."""
    import plotly.io as pio

    return pio.to_html(figure, include_plotlyjs=False, include_mathjax=False, full_html=False,
                       config={"responsive": True})


def _is_plotly_loader(output) -> bool:
    # the output that Plotly's notebook renderer adds once to carry plotly.js itself
    html = output.get("data", {}).get("text/html", "")
    return PLOTLY_MIME not in output.get("data", {}) and "plotly.js v" in html[:2000]


# the toggle of a collapsed cell tagged "checks"; myst-nb reads these from its cell metadata
CHECKS_PROMPTS = {"code_prompt_show": "Show the checks", "code_prompt_hide": "Hide the checks"}


def prepare_notebook(nb, record: dict, name: str):
    """The executed notebook as the site shows it: banner after the title, solution and
    checks cells collapsed, Plotly figures re-rendered for the shared plotly.js, progress bars
    as their final line. Changes ``nb`` in place and returns it."""
    import nbformat

    tidy_outputs(nb)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        if {"solution", "checks"} & set(tags) and "hide-cell" not in tags:
            cell.metadata["tags"] = [*tags, "hide-cell"]
        if "checks" in tags:  # its toggle names what it holds (site/conf.py: solutions)
            cell.metadata["mystnb"] = {**cell.metadata.get("mystnb", {}), **CHECKS_PROMPTS}
        outputs = []
        for output in cell.get("outputs", []):
            if output.get("output_type") in ("display_data", "execute_result"):
                if _is_plotly_loader(output):
                    continue
                if PLOTLY_MIME in output.data:
                    output.data = {"text/html": plotly_html(output.data[PLOTLY_MIME])}
            outputs.append(output)
        cell.outputs = outputs
    nb.cells.insert(1, nbformat.v4.new_markdown_cell(banner(record, name)))
    return nb


def front_page(notebooks: list[Path]) -> str:
    """The course front page with the notebooks in the navigation, in reading order."""
    toctree = "\n".join(nb.stem for nb in notebooks)
    return (FRONT_PAGE.read_text(encoding="utf-8").rstrip() +
            f"\n\n```{{toctree}}\n:hidden:\n:maxdepth: 1\n\n{toctree}\n```\n")


def vendor_mathjax(static: Path, cache: Path) -> None:
    """Copy what the pages need of MathJax's npm package into ``static``/mathjax."""
    tarball = cache / f"mathjax-{MATHJAX_VERSION}.tgz"
    if not tarball.exists():
        cache.mkdir(parents=True, exist_ok=True)
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("The site needs MathJax from the npm registry: install Node.js "
                             f"and npm, or put mathjax-{MATHJAX_VERSION}.tgz in {cache}")
        try:
            subprocess.run([npm, "pack", f"mathjax@{MATHJAX_VERSION}", "--silent",
                            "--pack-destination", str(cache)], check=True, timeout=180,
                           stdout=subprocess.DEVNULL)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise SystemExit(f"Could not download mathjax@{MATHJAX_VERSION} with npm "
                             f"({exc})") from exc
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    if digest != MATHJAX_SHA256:
        tarball.unlink()
        raise SystemExit(f"{tarball.name} has SHA-256 {digest}, expected {MATHJAX_SHA256}; "
                         "removed it, run again to download it afresh")
    target = static / "mathjax"
    with tarfile.open(tarball) as archive:
        for member in archive.getmembers():
            path = member.name.removeprefix("package/")
            if member.isfile() and path.startswith(MATHJAX_FILES):
                out = target / path.removeprefix("es5/")
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(archive.extractfile(member).read())


def prepare_sources(executed_dir: Path, source_dir: Path, metrics_dir: Path,
                    vendor_dir: Path) -> list[Path]:
    """Fill ``source_dir`` with the Sphinx project; return the notebooks, in reading order."""
    import nbformat
    import plotly

    notebooks = course_notebooks()
    if source_dir.exists():
        shutil.rmtree(source_dir)
    shutil.copytree(SITE_CONFIG, source_dir)
    (source_dir / "index.md").write_text(front_page(notebooks), encoding="utf-8")
    for path in notebooks:
        nb = nbformat.read(executed_dir / path.name, as_version=4)
        record = read_record(metrics_dir / f"{path.stem}.json")
        nbformat.write(prepare_notebook(nb, record, path.stem), source_dir / path.name)
    static = source_dir / "_static"
    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", static)
    vendor_mathjax(static, vendor_dir)
    return notebooks


def made_by_builder(folder: Path) -> bool:
    """True for a folder this builder made: it holds the marker file, or (a site built before
    the marker existed) Sphinx's build record with this site's MathJax copy."""
    return (folder / SITE_MARKER).is_file() or (
        (folder / ".buildinfo").is_file() and (folder / "_static/mathjax/tex-chtml.js").is_file())


def check_output_folder(out_dir: Path) -> Path:
    """Return ``out_dir`` resolved if the site may be built there: a folder that does not
    exist, an empty one, or one this builder made (it holds the marker file). Never the
    file-system root, a home folder, the repository, the build folder or a folder that
    holds one of them. Anything else stops with a message, before anything is written."""
    out = Path(out_dir).expanduser().resolve()
    protected = {Path(out.anchor), Path.home().resolve(), REPO_ROOT.resolve(),
                 build_dir().resolve()}
    if out in protected or any(out in p.parents for p in protected):
        raise SystemExit(f"--out {out_dir}: the site is never built into {out}, which holds "
                         "other files; name a new folder such as build/site")
    if out.exists() and not out.is_dir():
        raise SystemExit(f"--out {out_dir}: {out} is a file; name a folder")
    if out.is_dir() and any(out.iterdir()) and not made_by_builder(out):
        raise SystemExit(f"--out {out_dir}: {out} is not empty and was not made by the site "
                         "builder, so it is left alone; name a new or empty folder")
    return out


def build(out_dir: Path | None = None) -> Path:
    """Build the site into ``out_dir`` (default build/site); return the path of its index.
    The site is built beside it first and swapped in only when Sphinx succeeds, so a failed
    build keeps the last good site; see :func:`check_output_folder` for the folders it
    accepts."""
    from sphinx.cmd.build import build_main

    out_dir = check_output_folder(out_dir or build_dir("site"))
    executed_dir = build_dir("notebooks")
    ensure_executed(course_notebooks(), executed_dir)
    source_dir = build_dir("site-src")
    prepare_sources(executed_dir, source_dir, build_dir("metrics"), build_dir("vendor"))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.new-", dir=out_dir.parent))
    try:
        status = build_main(["-W", "--keep-going", "-q", "-b", "html", "-d",
                             str(source_dir / ".doctrees"), str(source_dir), str(fresh)])
        if status != 0:
            raise SystemExit(f"Sphinx failed (status {status}); the warnings above say why; "
                             f"the last site in {out_dir} is kept")
        (fresh / SITE_MARKER).write_text("Made by helpers.infra.site; rebuilt in place.\n")
        fresh.chmod(0o755)
        if out_dir.exists():  # ours (checked above): swap the new one in, then remove it
            old = out_dir.with_name(f".{out_dir.name}.old-{fresh.name.rsplit('-', 1)[-1]}")
            out_dir.rename(old)
            fresh.rename(out_dir)
            shutil.rmtree(old)
        else:
            fresh.rename(out_dir)
    finally:
        if fresh.exists():
            shutil.rmtree(fresh)
    return out_dir / "index.html"


def site_report(out_dir: Path) -> dict:
    """Total size of the site and its largest HTML page, in bytes."""
    files = [p for p in out_dir.rglob("*") if p.is_file()]
    pages = sorted((p for p in files if p.suffix == ".html"), key=lambda p: p.stat().st_size)
    return {"total_bytes": sum(p.stat().st_size for p in files),
            "largest_page": str(pages[-1].relative_to(out_dir)),
            "largest_page_bytes": pages[-1].stat().st_size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="output folder (default build/site)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    index = build(args.out)
    report = site_report(index.parent)
    print(f"Site: {index} ({report['total_bytes'] / 2**20:.1f} MB; largest page "
          f"{report['largest_page']}, {report['largest_page_bytes'] / 2**20:.2f} MB) built in "
          f"{time.perf_counter() - start:.0f} s")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

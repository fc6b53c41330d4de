import hashlib
import io
import tarfile
from pathlib import Path

import nbformat
import plotly.graph_objects as go
import pytest

from helpers.infra import site

RECORD = {"fast_mode": False, "data": "keras-mnist", "finished": "2026-11-22 14:56 UTC",
          "wall_seconds": 754.4, "tensorflow": "2.21.0", "keras": "3.15.1", "overrides": {}}


@pytest.mark.parametrize("seconds, text", [(12.3, "12 s"), (59.6, "1 min 0 s"),
                                           (754, "12 min 34 s"), (4000, "1 h 6 min")])
def test_format_seconds(seconds, text):
    assert site.format_seconds(seconds) == text


def test_banner_says_mode_data_date_time_and_versions():
    text = site.banner(RECORD, "01_x")
    assert text.startswith("```{admonition} This run\n:class: tip run-banner\n")
    for part in ("**full mode**", "`keras-mnist`", "2026-11-22 14:56 UTC", "12 min 34 s",
                 "TensorFlow 2.21.0", "Keras 3.15.1"):
        assert part in text
    fast = site.banner({**RECORD, "fast_mode": True, "overrides": {"SEED": 3}}, "01_x")
    assert "fast mode" in fast and "`SEED = 3`" in fast
    assert "at a time" not in text
    shared = site.banner({**RECORD, "jobs": 2}, "01_x")  # its time counts a shared machine
    assert "12 min 34 s (2 notebooks running at a time)" in shared


def test_banner_names_what_the_record_lacks():
    with pytest.raises(ValueError, match="01_x lack finished, tensorflow"):
        site.banner({k: v for k, v in RECORD.items() if k not in ("finished", "tensorflow")},
                    "01_x")


def _executed_notebook():
    fig = go.Figure(go.Scatter(x=[0, 1], y=[1, 0]))
    loader = nbformat.v4.new_output("display_data", data={
        "text/html": "<script>/** plotly.js v3.7.0 */ var big = 1;</script>"})
    figure = nbformat.v4.new_output("display_data", data={
        site.PLOTLY_MIME: fig.to_plotly_json(), "text/html": "<script src='https://cdn'>"})
    plot = nbformat.v4.new_code_cell("fig", outputs=[loader, figure])
    bar = nbformat.v4.new_code_cell("train()", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="\rbar 0%\rbar 100%\n")])
    solution = nbformat.v4.new_code_cell("answer = 42")
    solution.metadata["tags"] = ["solution"]
    checks = nbformat.v4.new_code_cell("# Checks: the answer\nassert answer == 42")
    checks.metadata["tags"] = ["checks"]
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title"), plot,
                                           bar, solution, checks])


def test_prepare_notebook_for_the_site():
    nb = site.prepare_notebook(_executed_notebook(), RECORD, "01_x")
    assert nb.cells[0].source == "# Title" and "run-banner" in nb.cells[1].source
    plot, bar, solution, checks = nb.cells[2:]
    assert len(plot.outputs) == 1  # the inlined copy of plotly.js is gone
    html = plot.outputs[0].data["text/html"]
    assert list(plot.outputs[0].data) == ["text/html"]
    assert "Plotly.newPlot" in html and "plotly-graph-div" in html
    assert "<script src" not in html and "cdn" not in html.lower()
    assert bar.outputs[0].text == "bar 100%\n"
    assert solution.metadata["tags"] == ["solution", "hide-cell"]
    assert checks.metadata["tags"] == ["checks", "hide-cell"]  # collapsed like solutions
    assert checks.metadata["mystnb"]["code_prompt_show"] == "Show the checks"
    assert "mystnb" not in solution.metadata  # the site's default prompt: the worked solution
    assert "hide-cell" not in plot.metadata.get("tags", [])


def test_front_page_lists_the_notebooks_in_order(tmp_path):
    paths = [tmp_path / "02_b.ipynb", tmp_path / "01_a.ipynb"]
    text = site.front_page(sorted(paths))
    assert text.startswith("# ")
    assert text.rstrip().endswith("```{toctree}\n:hidden:\n:maxdepth: 1\n\n01_a\n02_b\n```")


def test_course_notebooks_are_in_reading_order():
    names = [p.name for p in site.course_notebooks()]
    assert names == sorted(names) and names[0].startswith("01_") and len(names) == 9


def test_a_mathjax_download_with_the_wrong_hash_is_refused_and_removed(tmp_path):
    tarball = tmp_path / f"mathjax-{site.MATHJAX_VERSION}.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        info = tarfile.TarInfo("package/es5/tex-chtml.js")
        info.size = 5
        archive.addfile(info, io.BytesIO(b"evil;"))
    with pytest.raises(SystemExit, match="SHA-256"):
        site.vendor_mathjax(tmp_path / "static", tmp_path)
    assert not tarball.exists() and not (tmp_path / "static").exists()


def _local_mathjax(folder):
    """A small stand-in for MathJax's npm package, laid out like it (no network needed)."""
    members = {"package/es5/tex-chtml.js": b"window.MathJax = {};",
               "package/es5/input/tex/extensions/physics.js": b"/* physics */",
               "package/es5/output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff": b"wOFF",
               "package/es5/tex-svg.js": b"/* not used by the pages */",
               "package/README.md": b"MathJax"}
    folder.mkdir(parents=True, exist_ok=True)
    tarball = folder / f"mathjax-{site.MATHJAX_VERSION}.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return hashlib.sha256(tarball.read_bytes()).hexdigest()


def test_mathjax_copies_what_the_pages_use_from_its_package(tmp_path, monkeypatch):
    # the real package is downloaded by the site build (make test checks its pages in
    # Chromium); here a local copy of its layout, so that the unit test needs no network
    monkeypatch.setattr(site, "MATHJAX_SHA256", _local_mathjax(tmp_path / "cache"))
    monkeypatch.setattr(site.shutil, "which", lambda name: None)  # no npm: must not be needed
    site.vendor_mathjax(tmp_path / "static", tmp_path / "cache")
    mathjax = tmp_path / "static" / "mathjax"
    copied = sorted(str(p.relative_to(mathjax)) for p in mathjax.rglob("*") if p.is_file())
    assert copied == ["input/tex/extensions/physics.js",
                      "output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff", "tex-chtml.js"]
    assert (mathjax / "tex-chtml.js").read_bytes() == b"window.MathJax = {};"


# ---------------------------------------------------------------- the output folder
def _fake_sphinx(monkeypatch, status=0):
    import sphinx.cmd.build

    def build_main(argv):
        out = Path(argv[-1])
        (out / "index.html").write_text("<html>new site</html>")
        return status

    monkeypatch.setattr(sphinx.cmd.build, "build_main", build_main)
    monkeypatch.setattr(site, "ensure_executed", lambda notebooks, executed: [])
    monkeypatch.setattr(site, "prepare_sources", lambda *args: [])


@pytest.mark.parametrize("where", ["repository", "build", "home", "parent of repository"])
def test_the_site_is_never_built_into_a_folder_that_holds_other_work(where, tmp_path,
                                                                     monkeypatch):
    # stand-ins for the repository and the home folder, so that a regression deletes only
    # these temporary copies, never the real ones
    from helpers.infra import config

    fake_repo, fake_home = tmp_path / "work" / "repo", tmp_path / "home" / "user"
    for folder in (fake_repo, fake_home):
        folder.mkdir(parents=True)
        (folder / "keep.txt").write_text("a user's file")
    monkeypatch.setattr(site, "REPO_ROOT", fake_repo)
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: fake_home))
    folder = {"repository": fake_repo, "build": config.build_dir(), "home": fake_home,
              "parent of repository": fake_repo.parent}[where]
    _fake_sphinx(monkeypatch)
    with pytest.raises(SystemExit, match="never built into"):
        site.main(["--out", str(folder)])
    assert (fake_repo / "keep.txt").exists() and (fake_home / "keep.txt").exists()


def test_a_users_folder_is_refused_and_left_as_it_was(tmp_path, monkeypatch):
    mine = tmp_path / "my-notes"
    mine.mkdir()
    (mine / "thesis.tex").write_text("a user's file")
    _fake_sphinx(monkeypatch)
    with pytest.raises(SystemExit, match="not made by the site builder"):
        site.main(["--out", str(mine)])
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
    assert (mine / "thesis.tex").read_text() == "a user's file"


def test_a_site_is_rebuilt_in_its_own_folder_and_a_failed_build_keeps_the_last(tmp_path,
                                                                                monkeypatch):
    out = tmp_path / "public"
    _fake_sphinx(monkeypatch)
    site.build(out)  # a new folder
    assert (out / "index.html").read_text() == "<html>new site</html>"
    assert (out / site.SITE_MARKER).exists()
    (out / "index.html").write_text("<html>last good site</html>")
    _fake_sphinx(monkeypatch, status=1)
    with pytest.raises(SystemExit, match="last site .* is kept"):
        site.build(out)
    assert (out / "index.html").read_text() == "<html>last good site</html>"
    _fake_sphinx(monkeypatch)
    site.build(out)  # its own folder: replaced
    assert (out / "index.html").read_text() == "<html>new site</html>"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".public")]  # no leftovers


def test_a_site_built_before_the_marker_existed_is_still_rebuilt(tmp_path, monkeypatch):
    out = tmp_path / "site"
    (out / "_static" / "mathjax").mkdir(parents=True)
    (out / "_static" / "mathjax" / "tex-chtml.js").write_text("x")
    (out / ".buildinfo").write_text("# Sphinx build info version 1")
    _fake_sphinx(monkeypatch)
    site.build(out)
    assert (out / "index.html").read_text() == "<html>new site</html>"


def test_only_the_notebooks_without_an_executed_copy_are_run_in_fast_mode(tmp_path,
                                                                          monkeypatch):
    from helpers.infra import runner

    calls = []
    monkeypatch.setattr(runner, "main", lambda argv: calls.append(argv) or 0)
    (tmp_path / "01_a.ipynb").write_text("{}")
    notebooks = [tmp_path / "src" / name for name in ("01_a.ipynb", "02_b.ipynb", "03_c.ipynb")]
    assert site.ensure_executed(notebooks, tmp_path) == ["02_b.ipynb", "03_c.ipynb"]
    assert calls == [["--fast", "--nb", "02", "03"]]
    calls.clear()
    assert site.ensure_executed(notebooks[:1], tmp_path) == [] and calls == []
    monkeypatch.setattr(runner, "main", lambda argv: 1)
    with pytest.raises(SystemExit, match="every notebook executed"):
        site.ensure_executed(notebooks, tmp_path)

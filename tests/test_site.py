import io
import shutil
import tarfile

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
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title"), plot,
                                           bar, solution])


def test_prepare_notebook_for_the_site():
    nb = site.prepare_notebook(_executed_notebook(), RECORD, "01_x")
    assert nb.cells[0].source == "# Title" and "run-banner" in nb.cells[1].source
    plot, bar, solution = nb.cells[2:]
    assert len(plot.outputs) == 1  # the inlined copy of plotly.js is gone
    html = plot.outputs[0].data["text/html"]
    assert list(plot.outputs[0].data) == ["text/html"]
    assert "Plotly.newPlot" in html and "plotly-graph-div" in html
    assert "<script src" not in html and "cdn" not in html.lower()
    assert bar.outputs[0].text == "bar 100%\n"
    assert solution.metadata["tags"] == ["solution", "hide-cell"]


def test_front_page_lists_the_notebooks_in_order(tmp_path):
    paths = [tmp_path / "02_b.ipynb", tmp_path / "01_a.ipynb"]
    text = site.front_page(sorted(paths))
    assert text.startswith("# ")
    assert text.rstrip().endswith("```{toctree}\n:hidden:\n:maxdepth: 1\n\n01_a\n02_b\n```")


def test_course_notebooks_are_in_reading_order():
    names = [p.name for p in site.course_notebooks()]
    assert names == sorted(names) and names[0].startswith("01_") and len(names) == 7


def test_a_mathjax_download_with_the_wrong_hash_is_refused_and_removed(tmp_path):
    tarball = tmp_path / f"mathjax-{site.MATHJAX_VERSION}.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        info = tarfile.TarInfo("package/es5/tex-chtml.js")
        info.size = 5
        archive.addfile(info, io.BytesIO(b"evil;"))
    with pytest.raises(SystemExit, match="SHA-256"):
        site.vendor_mathjax(tmp_path / "static", tmp_path)
    assert not tarball.exists() and not (tmp_path / "static").exists()


def test_mathjax_comes_from_its_package(tmp_path):
    if shutil.which("npm") is None:
        pytest.skip("npm is needed to fetch MathJax's package")
    site.vendor_mathjax(tmp_path / "static", tmp_path / "cache")
    mathjax = tmp_path / "static" / "mathjax"
    assert (mathjax / "tex-chtml.js").stat().st_size > 500_000
    assert any((mathjax / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    assert (mathjax / "input" / "tex" / "extensions" / "physics.js").exists()


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

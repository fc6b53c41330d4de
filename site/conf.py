"""Sphinx configuration of the course site: the executed notebooks as a static book.

`make site` (helpers.infra.site) copies this file, the course front page and the executed
notebooks into build/site-src/ and builds build/site/ from there. Nothing is executed here
and no page loads anything from another host: MathJax and plotly.js are local copies."""

project = "Deep generative models: a course in nine notebooks"
author = "the course authors"
copyright = "the course authors"

extensions = ["myst_nb"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# notebooks arrive executed (by `make run`, or in fast mode by the site builder)
nb_execution_mode = "off"
nb_merge_streams = True
nb_output_stderr = "show"
nb_ipywidgets_js = {}  # no widget manager from a CDN
nb_code_prompt_show = "Show the worked solution"
nb_code_prompt_hide = "Hide the worked solution"
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# MathJax 3 from the npm package, copied to _static/mathjax by the site builder
mathjax_path = "mathjax/tex-chtml.js"

html_theme = "sphinx_book_theme"
html_title = "Deep generative models"
html_static_path = ["_static"]
html_css_files = ["course.css"]
html_theme_options = {
    "use_download_button": True,
    "use_fullscreen_button": False,
    "show_toc_level": 2,
    "home_page_in_toc": True,
    "navigation_with_keys": False,
}
html_context = {"default_mode": "light"}  # figures are drawn for a light page
html_last_updated_fmt = None
html_show_sphinx = False


def _plotly_on_pages_that_need_it(app, pagename, templatename, context, doctree):
    # one shared plotly.js, loaded by the pages that hold a figure
    if "plotly-graph-div" in context.get("body", ""):
        app.add_js_file("plotly.min.js", priority=400)


def setup(app):
    app.connect("html-page-context", _plotly_on_pages_that_need_it)

"""Every page of the built site in headless Chromium: no console errors, maths typeset, the
Plotly figures and latent explorers drawn and working, the run banner and collapsed
solutions and checks on every notebook page, internal links and images resolving, reading
order and search, and no request leaving 127.0.0.1 (nor, from file://, the disk)."""

import json
import re
from urllib.parse import urldefrag, urlsplit

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from helpers.infra.site import course_notebooks

NOTEBOOKS = [nb.stem for nb in course_notebooks()]
PAGES = ["index", *NOTEBOOKS, "search"]
EXPLORERS = {"01_mnist_vae", "03_covariance_heatmaps_vae_vs_ae", "05_ising_vae"}
RAW_MATH = re.compile(r"\$[^$\n]+\$|\\\(|\\\[")

PROSE_TEXT = """() => {
  const root = (document.querySelector('article') || document.body).cloneNode(true);
  root.querySelectorAll('pre, code, mjx-container, script, style, .cell_output, textarea')
      .forEach(e => e.remove());
  return root.textContent;
}"""

PLOTS_DRAWN = """() => [...document.querySelectorAll('.plotly-graph-div')]
  .every(d => d.querySelector('.main-svg'))"""

EXPLORER_STATE = """() => [...document.querySelectorAll('.plotly-graph-div')]
  .filter(d => d._fullLayout && d._fullLayout.sliders && d._fullLayout.sliders.length)
  .map(d => ({steps: d._fullLayout.sliders[0].steps.length,
              slider: !!d.querySelector('.slider-container')}))"""

# a click near the right end of the slider, as a reader would: the marker and image change
EXPLORER_NOW = """() => {
  const d = [...document.querySelectorAll('.plotly-graph-div')]
      .find(d => d._fullLayout.sliders && d._fullLayout.sliders.length);
  const n = d._fullData.length;
  return {step: d._fullLayout.sliders[0].active, x: d._fullData[n - 2].x[0],
          image: JSON.stringify(Array.from(d._fullData[n - 1].z, row => Array.from(row)))};
}"""


def move_explorer(page):
    rail = page.locator(".slider-rail-touch-rect").first
    rail.scroll_into_view_if_needed()
    before = page.evaluate(EXPLORER_NOW)
    box = rail.bounding_box()
    page.mouse.click(box["x"] + 0.9 * box["width"], box["y"] + box["height"] / 2)
    # the slider's step changes first, the marker and the image when Plotly has redrawn them
    try:
        page.wait_for_function(
            f"""(before) => {{ const now = ({EXPLORER_NOW})();
                return now.step !== before.step && now.x !== before.x
                       && now.image !== before.image; }}""", arg=before, timeout=15_000)
    except PlaywrightTimeout:
        return False
    return True


class Visit:
    """A page opened in a fresh tab, with its console errors and outside requests."""

    def __init__(self, browser, url, allowed_host="127.0.0.1"):
        self.page = browser.new_page()
        self.errors, self.outside = [], []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

        def route(r):
            url = r.request.url
            local = url.startswith(("data:", "blob:")) or (
                urlsplit(url).hostname == allowed_host if allowed_host else
                url.startswith("file://"))
            if local:
                r.continue_()
            else:
                self.outside.append(url)
                r.abort()

        self.page.route("**/*", route)
        self.page.goto(url, wait_until="load")

    def wait_for_maths(self):
        if self.page.locator(".math").count():
            self.page.wait_for_function(
                "() => window.MathJax && MathJax.startup && MathJax.startup.promise")
            self.page.evaluate("() => MathJax.startup.promise")


@pytest.fixture(scope="module")
def checked_urls():
    return {}


@pytest.mark.parametrize("name", PAGES)
def test_page_loads_clean_and_typesets_its_maths(browser, server, name, checked_urls):
    visit = Visit(browser, f"{server}{name}.html")
    page = visit.page
    visit.wait_for_maths()
    maths = page.locator(".math").count()
    if name in NOTEBOOKS or name == "index":
        assert maths > 0, "a course page without maths: was it rendered from LaTeX?"
    assert page.locator(".math:not(:has(mjx-container))").count() == 0, "maths left untypeset"
    leftovers = RAW_MATH.findall(page.evaluate(PROSE_TEXT))
    assert not leftovers, f"raw maths in the text of {name}: {leftovers[:5]}"
    if page.locator(".plotly-graph-div").count():
        page.wait_for_function(PLOTS_DRAWN, timeout=30_000)

    # internal links and images resolve (each URL fetched once per run)
    links = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
    images = page.evaluate("() => [...document.images].map(i => i.src)")
    for url in {urldefrag(u).url for u in links + images if u.startswith(server)}:
        if url not in checked_urls:
            checked_urls[url] = page.request.get(url).status
        assert checked_urls[url] == 200, f"{name} links to {url}: HTTP {checked_urls[url]}"
    broken = page.evaluate("() => [...document.images].filter(i => i.complete && "
                           "i.naturalWidth === 0).map(i => i.src)")
    assert not broken, f"images that do not decode: {broken}"
    page.close()
    assert not visit.outside, f"{name} asked another host for {visit.outside}"
    assert not visit.errors, f"console errors on {name}: {visit.errors}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_page_has_banner_solutions_and_download(browser, server, name):
    visit = Visit(browser, f"{server}{name}.html")
    page = visit.page
    banner = page.locator(".run-banner").inner_text()
    assert re.search(r"Executed in (fast|full) mode", banner), banner
    assert "TensorFlow" in banner and "Keras" in banner and "finished" in banner
    cells = json.loads(next(nb for nb in course_notebooks() if nb.stem == name)
                       .read_text())["cells"]
    tagged = sum("solution" in cell.get("metadata", {}).get("tags", []) for cell in cells)
    checks = sum("checks" in cell.get("metadata", {}).get("tags", []) for cell in cells)
    collapsed = page.locator("details.hide")
    assert tagged >= 2 and collapsed.count() == tagged + checks, \
        "each exercise solution and each checks cell should sit behind its own toggle"
    assert page.locator("details.hide[open]").count() == 0, "a solution or check is shown open"
    assert page.locator(f"a[href$='_sources/{name}.ipynb']").count() >= 1, "no download link"
    page.close()


@pytest.mark.parametrize("name", sorted(EXPLORERS))
def test_latent_explorer_is_drawn_and_moves(browser, server, name):
    visit = Visit(browser, f"{server}{name}.html")
    page = visit.page
    page.wait_for_function(PLOTS_DRAWN, timeout=30_000)
    explorers = page.evaluate(EXPLORER_STATE)
    assert explorers, f"no latent explorer (a Plotly figure with a slider) on {name}"
    assert explorers[0]["steps"] > 10 and explorers[0]["slider"]
    assert move_explorer(page), "the slider moved but the marker or the image did not"
    page.close()
    assert not visit.errors, visit.errors


def test_navigation_follows_the_reading_order(browser, server):
    visit = Visit(browser, f"{server}index.html")
    hrefs = visit.page.evaluate(
        "() => [...document.querySelectorAll('nav.bd-docs-nav a.reference.internal')]"
        ".map(a => a.getAttribute('href'))")
    order = [h.removesuffix(".html") for h in hrefs if h.removesuffix(".html") in NOTEBOOKS]
    assert order == NOTEBOOKS
    visit.page.close()


def test_search_finds_a_notebook(browser, server):
    visit = Visit(browser, f"{server}search.html?q=Ising")
    visit.page.wait_for_selector("#search-results li", timeout=30_000)
    results = visit.page.locator("#search-results li").all_inner_texts()
    assert any("Ising" in text for text in results), results
    visit.page.close()
    assert not visit.outside and not visit.errors, (visit.outside, visit.errors)


def test_pages_work_from_the_disk(browser, site_dir):
    """Opened as files, with nothing served: maths and figures still render."""
    name = "05_ising_vae"
    visit = Visit(browser, (site_dir / f"{name}.html").as_uri(), allowed_host=None)
    visit.wait_for_maths()
    assert visit.page.locator("mjx-container").count() > 0
    visit.page.wait_for_function(PLOTS_DRAWN, timeout=30_000)
    assert visit.page.evaluate(EXPLORER_STATE) and move_explorer(visit.page)
    visit.page.close()
    assert not visit.outside and not visit.errors, (visit.outside, visit.errors)

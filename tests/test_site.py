"""The article site (`python .ci/docs.py html`) in headless Chromium (Debian's `chromium`, driven by Playwright's Python
API): the index and two Parts show the sidebar of `_quarto.yml`, the title as <h1>, no notebook prompts or raw Quarto
syntax, fetch nothing from the network, and search finds a Part. Screenshots (1280x800) go to test-artifacts/site/;
nbs/images/site/ holds copies committed from a run. And `python .ci/docs.py check` fails on a broken site."""
import json
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-artifacts" / "site"
NOTEBOOKS = ["index.ipynb", "04c_server.ipynb", "13a_block_manager.ipynb"]


def docs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, ".ci/docs.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    "The site, built once into a temporary folder."
    out = tmp_path_factory.mktemp("site") / "_site"
    r = docs("html", "--out", str(out))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return out


def sidebar_notebooks() -> list[str]:
    "The notebooks `_quarto.yml`'s sidebar lists, in order: what `.ci/docs.py` builds the sidebar from."
    sys.path.insert(0, str(ROOT / ".ci"))
    from docs import sidebar_pages
    return sidebar_pages()


def title_of(notebook: str) -> str:
    "The notebook's title: its first `# ` heading, backticks dropped (the page shows them as code)."
    cells = json.loads((ROOT / "nbs" / notebook).read_text())["cells"]
    lines = ("".join(c["source"]).splitlines() for c in cells if c["cell_type"] == "markdown")
    return next(l[2:].strip() for ls in lines for l in ls if l.startswith("# ")).replace("`", "")


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_page_in_chromium(site, browser, notebook):
    "Sidebar with every Part and this page highlighted, <h1> = title, no prompts or Quarto syntax, nothing remote."
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors, requested = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requested.append(r.url))
    page.goto((site / "index.html").as_uri())
    href = page.get_attribute(f'.sidebar a[data-source="{notebook}"]', "href")
    page.goto((site / href).as_uri())
    assert page.is_visible(".sidebar nav")
    assert page.eval_on_selector_all(".sidebar nav a", "as => as.map(a => a.dataset.source)") == sidebar_notebooks()
    assert page.is_visible(".sidebar .section-title >> text=Part 13 — Paged memory and CUDA graphs")
    assert page.get_attribute(".sidebar a.current", "data-source") == notebook
    assert page.inner_text("h1") == title_of(notebook) and page.locator("h1").count() == 1
    assert page.is_visible(".title-block .description")
    text = page.inner_text("body")
    for raw in ("{target=", "In [", "Out[", "```"): assert raw not in text, raw
    assert page.locator(".pager a").count() >= 1
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / f"{Path(notebook).stem}.png"
    page.screenshot(path=str(shot))
    page.close()
    assert not errors, errors
    assert all(u.startswith("file://") for u in requested), [u for u in requested if not u.startswith("file://")]
    assert shot.stat().st_size > 20_000


def test_search_finds_a_part(site, browser):
    "Typing in the search box lists matching sections; the block manager's page is among the hits for 'block table'."
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto((site / "index.html").as_uri())
    page.keyboard.press("/")
    page.keyboard.type("copy-on-write block table")
    page.wait_for_selector("#site-search-results a")
    hits = page.eval_on_selector_all("#site-search-results a", "as => as.map(a => a.getAttribute('href'))")
    assert any(h.startswith("block_manager.html") for h in hits), hits
    page.close()


def test_check_fails_on_a_broken_site(tmp_path):
    "The site check reports remote assets, missing pages and anchors, and leaked Quarto syntax; links elsewhere are fine."
    (tmp_path / "index.html").write_text(
        '<html><head><script src="https://cdn.example/require.js"></script><link rel="stylesheet" href="//fonts.example/a.css">'
        '<style>@import url("https://fonts.example/b.css");</style></head><body><h2 id="here">x</h2>'
        '<a href="#here">ok</a><a href="https://github.com/ruvon/ruvon">ok</a><a href="other.html#nowhere">bad anchor</a>'
        '<a href="missing.html">missing</a><img src="http://example.com/a.png"><p>{target="_blank"}</p></body></html>')
    (tmp_path / "other.html").write_text('<html><body><h2 id="somewhere">y</h2></body></html>')
    r = docs("check", str(tmp_path))
    assert r.returncode == 1
    for expected in ("require.js", "fonts.example/a.css", "@import", "'other.html#nowhere'", "'missing.html' does not exist",
                     "http://example.com/a.png", "Quarto attributes"):
        assert expected in r.stderr, expected
    assert "github.com" not in r.stderr and "#here" not in r.stderr

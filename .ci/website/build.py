"""Build the site: every processed notebook -> a page in the sidebar's order, links resolved once all pages' anchors
are known, figures and nbs/ images copied, the search index and the assets written."""
import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat
from bs4 import BeautifulSoup

from . import layout
from .cells import drop_dash_headings, notebook_html
from .links import Linker, assign_heading_ids, translate_quarto_attributes
from .pages import Page, page_of, reading_order, sidebar_tree
from .search import index_script, section_entries


@dataclass
class Rendered:
    "A page being built: its notebook, its body (parsed, so links can be rewritten) and its figures."
    page: Page
    nb: object
    soup: BeautifulSoup
    figures: dict
    dash_headings: list
    notes: list


def render(path: Path) -> Rendered:
    "A processed notebook -> its page, body and figures; headings get their ids, Quarto attributes are translated."
    nb = nbformat.read(path, as_version=4)
    page = page_of(path, nb)
    body, figures, notes = notebook_html(nb, Path(page.href).stem)
    soup = BeautifulSoup(body, "html.parser")
    dashes = [f"{page.source}: '{h}'" for h in drop_dash_headings(soup)]
    assign_heading_ids(soup, reserved=layout.TEMPLATE_IDS)
    translate_quarto_attributes(soup)
    return Rendered(page, nb, soup, figures, dashes, [f"{page.source}: {n}" for n in notes])


def table_of_contents(soup: BeautifulSoup) -> list[tuple[str, str]]:
    "The page's sections (its ## headings) for the 'On this page' list."
    return [(h["id"], h.get_text(" ", strip=True)) for h in soup.find_all("h2") if h.get("id")]


def write_files(out: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)


def empty_output(out: Path) -> None:
    "Empty `out` for a fresh build: only a folder that is empty or holds an earlier build (its site.js) is removed."
    if out.exists() and any(out.iterdir()) and not (out / "site.js").is_file():
        raise SystemExit(f"{out} is neither empty nor an earlier build of the site: not removing it")
    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)


def build_site(out: Path, notebooks: list[Path], quarto: dict, settings: dict, nbs_path: Path, repo_root: Path) -> tuple[list[Rendered], list[str]]:
    "Write the site into `out` (emptied first); return the pages built and notes on links the notebooks should fix."
    rendered = [render(p) for p in notebooks]
    pages = {r.page.source: r.page for r in rendered}
    site = quarto.get("website", {})
    tree = sidebar_tree(site.get("sidebar", {}).get("contents", []), pages)
    order = reading_order(tree)
    order += [p for p in pages.values() if p.href not in {q.href for q in order}]
    position = {p.href: i for i, p in enumerate(order)}
    published = [u.rstrip("/") + "/" for u in (settings.get("doc_host", "") + settings.get("doc_baseurl", ""), site.get("site-url", "")) if u]
    repo_url = site.get("repo-url") or settings["git_url"]
    linker = Linker(nbs_path, repo_root, published, f"{repo_url}/blob/{settings.get('branch', 'main')}/", pages,
                    ids={r.page.href: {t["id"] for t in r.soup.find_all(id=True)} for r in rendered},
                    generated={name for r in rendered for name in r.figures})
    empty_output(out)
    meta = {"title": site.get("title", settings.get("lib_name", "")), "description": site.get("description", ""), "repo_url": repo_url}
    entries = []
    for r in rendered:
        linker.rewrite(r.soup, r.page.source)
        i = position[r.page.href]
        nxt = order[i + 1] if i + 1 < len(order) else None
        html = layout.page_html(r.page, str(r.soup), tree=tree, prev=order[i - 1] if i else None, next=nxt,
                                toc=table_of_contents(r.soup), site=meta)
        (out / r.page.href).write_text(html, encoding="utf-8")
        write_files(out, r.figures)
        entries += section_entries(r.page, r.soup)
    for rel in sorted(linker.copies): write_files(out, {rel: (nbs_path / rel).read_bytes()})
    (out / "search-index.js").write_text(index_script(entries), encoding="utf-8")
    layout.write_assets(out)
    dashes = [n for r in rendered for n in r.dash_headings]
    notes = ([f"headings ending ' -' that share a cell with prose (nbdev hides one only in a cell of its own, so Quarto shows "
              f"these; left out here): {', '.join(dashes)}"] if dashes else []) + [n for r in rendered for n in r.notes] + linker.notes + ([f"{linker.unanchored} of nbdev's links name a symbol without an entry of its own: they open its page"] if linker.unanchored else [])
    return rendered, notes

"""The site's pages, one per processed notebook and named as Quarto names them (nbdev's `output-file`: block_manager.html
for 13a_block_manager.ipynb, so a page has the same address here as on the published site), and the sidebar of
`_quarto.yml` as a tree of pages and sections."""
import re
from dataclasses import dataclass
from pathlib import Path

import yaml


def front_matter(nb) -> dict:
    "Title and description nbdev moved from the first markdown cell into the raw YAML front matter."
    raw = next((c for c in nb.cells if c.cell_type == "raw" and c.source.startswith("---")), None)
    return yaml.safe_load(raw.source.strip().strip("-")) or {} if raw is not None else {}


@dataclass
class Page:
    "One notebook's page: where it comes from, where it goes, what it is called."
    source: str                 # the notebook in nbs/, e.g. 13a_block_manager.ipynb
    href: str                   # the page in the site, e.g. block_manager.html
    title: str
    description: str = ""
    label: str = ""             # the sidebar's name for it: the title without the word "Part"

    def __post_init__(self):
        if not self.label: self.label = "Overview" if self.href == "index.html" else re.sub(r"^Part\s+", "", self.title)


@dataclass
class Section:
    "A heading of the sidebar and the pages under it."
    title: str
    items: list


def page_of(path: Path, nb) -> Page:
    "The page of the processed notebook `nb`, read from `path`."
    fm = front_matter(nb)
    return Page(path.name, fm.get("output-file") or f"{path.stem}.html", str(fm.get("title", path.stem)), str(fm.get("description", "")))


def sidebar_tree(contents: list, pages: dict[str, Page]) -> list:
    "`_quarto.yml`'s sidebar contents, each notebook replaced by its page (names that are no page are left out)."
    tree = []
    for it in contents:
        if isinstance(it, str) and it in pages: tree.append(pages[it])
        elif isinstance(it, dict) and "contents" in it: tree.append(Section(str(it.get("section", "")), sidebar_tree(it["contents"], pages)))
        elif isinstance(it, dict) and it.get("href") in pages:
            p = pages[it["href"]]
            tree.append(Page(p.source, p.href, p.title, p.description, it.get("text", p.label)))
    return tree


def reading_order(tree: list) -> list[Page]:
    "The sidebar's pages, top to bottom: the order of the prev/next links."
    return [q for it in tree for q in (reading_order(it.items) if isinstance(it, Section) else [it])]

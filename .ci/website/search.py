"""The search index: one entry per section of a page (its title, the section's heading and anchor, the section's
prose and API docstrings; code and outputs left out), written as a script so it loads from file:// too."""
import json
import re

from bs4 import BeautifulSoup, NavigableString, Tag

SECTION_HEADINGS = ("h2", "h3")
SKIP = ("pre", "script", "style", "figure", "h1", "h2", "h3", "h4", "h5", "h6")
MAX_TEXT = 4000  # characters of text per section


def section_entries(page, soup: BeautifulSoup) -> list[dict]:
    "Sections of a page: {t: page title, h: heading, u: address with anchor, x: text}."
    entries, current = [], {"t": page.title, "h": "", "u": page.href, "x": []}
    for node in soup.descendants:
        if isinstance(node, Tag) and node.name in SECTION_HEADINGS and node.get("id"):
            entries.append(current)
            current = {"t": page.title, "h": node.get_text(" ", strip=True), "u": f"{page.href}#{node['id']}", "x": []}
        elif type(node) is NavigableString and not (node.find_parent(SKIP) or node.find_parent(class_="api-source")):
            current["x"].append(str(node))  # as written: the whitespace between strings is the text's own
    entries.append(current)
    for e in entries: e["x"] = re.sub(r"\s+", " ", "".join(e["x"])).strip()[:MAX_TEXT]
    if page.description: entries[0]["x"] = f"{page.description} {entries[0]['x']}".strip()
    return [e for e in entries if e["h"] or e["x"] or e is entries[0]]


def index_script(entries: list[dict]) -> str:
    "The index as a script defining `window.SEARCH_INDEX` (fetch() of a JSON file fails on file://)."
    return "window.SEARCH_INDEX = " + json.dumps(entries, ensure_ascii=False, separators=(",", ":")) + ";\n"

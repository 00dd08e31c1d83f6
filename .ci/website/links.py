"""Headings get Pandoc's ids (so an anchor works here as under Quarto), Quarto's attribute syntax (`[x](u){target=...}`,
`## Title {#id .class}`) becomes HTML attributes, and links are pointed at what exists offline: a notebook at its page,
an image in nbs/ at its copy, a repository file at the repository, nbdev's links to the published site at the local page."""
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bs4 import BeautifulSoup, NavigableString

HEADINGS = ["h1", "h2", "h3", "h4", "h5", "h6"]


def pandoc_id(text: str) -> str:
    "Pandoc's auto identifier: keep letters, digits, _-. and spaces; spaces to hyphens; lower case; start at a letter."
    kept = "".join(ch for ch in text if ch.isalnum() or ch in "_-." or ch.isspace())
    ident = re.sub(r"\s+", "-", kept.strip()).lower()
    start = next((i for i, ch in enumerate(ident) if ch.isalpha()), len(ident))
    return ident[start:] or "section"


def assign_heading_ids(soup: BeautifulSoup, reserved: set[str] = frozenset()) -> None:
    "Give every heading without an id Pandoc's, unique on the page (ids in `reserved` included) the way Pandoc does (-1, -2, ...)."
    taken = {t["id"] for t in soup.find_all(id=True)} | set(reserved)
    for h in soup.find_all(HEADINGS):
        if h.get("id"): continue
        base = ident = pandoc_id(h.get_text(" ", strip=True))
        n = 0
        while ident in taken: n += 1; ident = f"{base}-{n}"
        h["id"] = ident
        taken.add(ident)


ATTR = re.compile(r'([.#][\w:-]+)|([\w-]+)=("[^"]*"|\'[^\']*\'|[^\s}]+)')
ATTR_BLOCK = re.compile(r'\{\s*(?:(?:[.#][\w:-]+|[\w-]+=(?:"[^"]*"|\'[^\']*\'|[^\s}]+))\s*)+\}')


def quarto_attributes(text: str) -> dict:
    "`.cls #id key=\"value\"` -> {'class': [...], 'id': ..., key: value}."
    attrs = {}
    for m in ATTR.finditer(text):
        if m[1] and m[1][0] == ".": attrs.setdefault("class", []).append(m[1][1:])
        elif m[1]: attrs["id"] = m[1][1:]
        else: attrs[m[2]] = m[3].strip("\"'")
    return attrs


def apply_attributes(tag, attrs: dict) -> None:
    "Set Quarto's attributes on an element; a new tab gets rel=noopener."
    for key, value in attrs.items():
        if key == "class": tag["class"] = tag.get("class", []) + value
        else: tag[key] = value
    if tag.get("target") == "_blank": tag["rel"] = "noopener"


def translate_quarto_attributes(soup: BeautifulSoup) -> None:
    "`{...}` right after a link, image, span or code, or ending a heading: attributes of that element, no longer text."
    for text in list(soup.find_all(string=ATTR_BLOCK)):
        if text.find_parent(["pre", "code", "script", "style"]): continue
        prev, m = text.previous_sibling, ATTR_BLOCK.match(text)
        if m and prev is not None and getattr(prev, "name", None) in ("a", "img", "span", "code"):
            apply_attributes(prev, quarto_attributes(m[0]))
            text.replace_with(NavigableString(text[m.end():]))
            continue
        m = re.search(r"\s*" + ATTR_BLOCK.pattern + r"\s*\Z", text)
        if m and text.parent.name in HEADINGS and text is text.parent.contents[-1]:
            apply_attributes(text.parent, quarto_attributes(m[0]))
            text.replace_with(NavigableString(text[:m.start()]))


@dataclass
class Linker:
    "Where the links of the site's pages should point, offline."
    nbs_path: Path
    repo_root: Path
    published: list[str]                 # the published site's URL prefixes, e.g. https://ruvon.github.io/ruvon/
    blob_url: str                        # e.g. https://github.com/ruvon/ruvon/blob/main/
    pages: dict                          # notebook name -> Page
    ids: dict = field(default_factory=dict)          # page href -> its element ids
    copies: set = field(default_factory=set)         # files of nbs/ (images) the site must hold
    generated: set = field(default_factory=set)      # files the build writes itself (figures): links to them stay
    notes: list = field(default_factory=list)        # what the notebooks should fix
    unanchored: int = 0                  # nbdev links to a symbol without an entry of its own (they land on the page)

    def __post_init__(self):
        self.by_href = {p.href: p for p in self.pages.values()}
        self.by_stem = {Path(p.source).stem + ".html": p for p in self.pages.values()}

    def published_link(self, rest: str, url: str) -> str:
        "nbdev's link to the published site (a symbol's entry) -> the local page; an anchor the page lacks is dropped."
        path, _, frag = rest.partition("#")
        if path not in self.by_href: return url
        if frag and frag not in self.ids.get(path, set()): self.unanchored += 1; return path
        return rest

    def local_link(self, url: str, where: str) -> str | None:
        "A relative link in a notebook -> its target in the site or the repository; None (unlink) if there is none."
        parts = urlsplit(url)
        frag = f"#{parts.fragment}" if parts.fragment else ""
        target = (self.nbs_path / unquote(parts.path)).resolve()
        if target.parent == self.nbs_path.resolve():
            if target.name in self.pages: return self.pages[target.name].href + frag
            if target.name in self.by_href: return target.name + frag
            if target.name in self.by_stem:
                page = self.by_stem[target.name]
                self.notes.append(f"{where} links {url}: Quarto publishes that page as {page.href}; link {page.source} instead")
                return page.href + frag
        if target.is_file() and target.is_relative_to(self.nbs_path.resolve()):
            rel = target.relative_to(self.nbs_path.resolve()).as_posix()
            self.copies.add(rel)
            return rel + frag
        if target.exists() and target.is_relative_to(self.repo_root.resolve()):
            rel = target.relative_to(self.repo_root.resolve()).as_posix()
            return self.blob_url.replace("/blob/", "/tree/") + rel if target.is_dir() else self.blob_url + rel + frag
        self.notes.append(f"{where} links {url}, which is neither a page nor a file of the repository: shown as text")
        return None

    def rewrite(self, soup: BeautifulSoup, where: str) -> None:
        "Point every link and image of a page where it resolves offline."
        for tag, attr in [(t, "href") for t in soup.find_all("a", href=True)] + [(t, "src") for t in soup.find_all("img", src=True)]:
            url = tag[attr]
            if url in self.generated: continue
            published = next((p for p in self.published if url.startswith(p)), None)
            if published: tag[attr] = self.published_link(url[len(published):], url)
            elif urlsplit(url).scheme or url.startswith(("//", "#")) or not urlsplit(url).path: continue
            elif (new := self.local_link(url, where)) is not None: tag[attr] = new
            elif tag.name == "a": tag.unwrap()

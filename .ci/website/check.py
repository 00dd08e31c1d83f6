"""Check a built site offline: every internal link and anchor resolves, every local asset exists, nothing is loaded
from elsewhere (scripts, stylesheets, images, frames, CSS @import/url()), and no Quarto attribute syntax shows as text.
Ordinary links to other sites (<a href="https://...">) are fine: a reader follows them, the page does not load them."""
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bs4 import BeautifulSoup

REMOTE = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.I)           # http://, https://, //host
ASSETS = [("script", "src"), ("link", "href"), ("img", "src"), ("img", "srcset"), ("source", "src"), ("source", "srcset"),
          ("iframe", "src"), ("video", "src"), ("video", "poster"), ("audio", "src"), ("embed", "src"), ("object", "data"),
          ("track", "src"), ("input", "src"), ("image", "href")]
CSS_REMOTE = re.compile(r"@import\s+(?:url\()?\s*['\"]?\s*(?:[a-z]+:)?//|url\(\s*['\"]?\s*(?:[a-z]+:)?//", re.I)
LEAKED = re.compile(r"\{(?:target|style)=")


def is_external(url: str) -> bool: return bool(urlsplit(url).scheme) or url.startswith("//")


def remote_assets(name: str, soup: BeautifulSoup) -> list[str]:
    "Problems: anything the page would fetch from another host."
    problems = [f"{name}: <{tag} {attr}={t[attr]!r}> loads a remote asset" for tag, attr in ASSETS
                for t in soup.find_all(tag, attrs={attr: True}) if any(REMOTE.match(u.strip()) for u in t[attr].split(","))]
    css = [s.get_text() for s in soup.find_all("style")] + [t["style"] for t in soup.find_all(style=True)]
    problems += [f"{name}: CSS loads a remote asset: {m.group(0)!r}" for text in css for m in CSS_REMOTE.finditer(text)]
    return problems


def target_of(root: Path, page: Path, url: str) -> tuple[Path, str]:
    "The file and fragment a relative URL on `page` points at."
    parts = urlsplit(url)
    path = (page.parent / unquote(parts.path)).resolve() if parts.path else page.resolve()
    if path.is_dir(): path = path / "index.html"
    return path, unquote(parts.fragment)


def broken_links(root: Path, page: Path, soup: BeautifulSoup, ids: dict[Path, set]) -> list[str]:
    "Problems: internal links to missing files or anchors, local assets that do not exist (`root` resolved)."
    name, problems = page.relative_to(root).as_posix(), []
    refs = [("a", t["href"]) for t in soup.find_all(["a", "area"], href=True)]
    refs += [(tag, t[attr]) for tag, attr in ASSETS if attr != "srcset" for t in soup.find_all(tag, attrs={attr: True})]
    for tag, url in refs:
        if is_external(url) or url.startswith("data:") or url in ("#", "#top"): continue
        path, frag = target_of(root, page, url)
        if not path.is_relative_to(root): problems.append(f"{name}: {url!r} points outside the site")
        elif not path.is_file(): problems.append(f"{name}: {url!r} does not exist")
        elif frag and path.suffix == ".html" and frag not in ids.get(path, set()):
            problems.append(f"{name}: {url!r}: no element has id {frag!r} in {path.relative_to(root).as_posix()}")
    return problems


def leaked_markup(name: str, soup: BeautifulSoup) -> list[str]:
    "Problems: Quarto's attribute syntax shown to the reader as text (outside code)."
    return [f"{name}: Quarto attributes shown as text: {s.strip()[:60]!r}" for s in soup.find_all(string=LEAKED)
            if not s.find_parent(["pre", "code", "script", "style"])]


def check_site(root: Path) -> list[str]:
    "Every problem of the site in `root`."
    root = root.resolve()
    if not (root / "index.html").is_file(): return [f"{root}: no index.html (build it with `python .ci/docs.py html --out {root}`)"]
    pages = {p: BeautifulSoup(p.read_text(encoding="utf-8"), "html.parser") for p in sorted(root.rglob("*.html"))}
    ids = {p: {t["id"] for t in s.find_all(id=True)} | {t["name"] for t in s.find_all("a", attrs={"name": True})} for p, s in pages.items()}
    problems = []
    for path, soup in pages.items():
        name = path.relative_to(root).as_posix()
        problems += remote_assets(name, soup) + broken_links(root, path, soup, ids) + leaked_markup(name, soup)
    for css in sorted(root.rglob("*.css")):
        problems += [f"{css.relative_to(root).as_posix()}: loads a remote asset: {m.group(0)!r}" for m in CSS_REMOTE.finditer(css.read_text(encoding="utf-8"))]
    return problems

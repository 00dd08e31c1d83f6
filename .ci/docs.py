"""Render the article site offline, where Quarto can't be installed.

nbdev_docs = nbdev's notebook processing (hide cells, show_doc, front matter) + Quarto. This script runs
the same processing (`nbdev.serve.proc_nbs`) and renders the processed notebooks itself (.ci/website/):

    python .ci/docs.py html [--out DIR]   the article site -> DIR (default _site/): a page per notebook, named
                                           as Quarto names it, with _quarto.yml's sidebar, prev/next, search,
                                           local assets only; fails on any saved error output, missing title,
                                           or a sidebar that does not list the course in reading order
    python .ci/docs.py check DIR          fails if a link or anchor of the built site does not resolve, or a
                                           page loads anything from another host
    python .ci/docs.py readme [--check]   nbs/index.ipynb -> README.md (what nbdev_readme does);
                                           --check fails if README.md is out of date
"""
import argparse
import posixpath
import re
import sys
import time
from pathlib import Path

import nbformat
import yaml
from nbconvert import MarkdownExporter
from nbconvert.preprocessors import TagRemovePreprocessor
from nbdev.config import get_config
from nbdev.serve import proc_nbs

from check_order import course_order  # .ci/check_order.py: the course's reading order
from website.build import build_site
from website.cells import cell_options
from website.check import check_site
from website.pages import front_matter, page_of


def quarto_config() -> dict:
    "`_quarto.yml`, read where nbdev reads it (nbs/_quarto.yml, a link to the top-level file)."
    return yaml.safe_load((get_config().nbs_path / "_quarto.yml").read_text(encoding="utf-8"))


def sidebar_pages() -> list[str]:
    "The pages the site's sidebar lists in `_quarto.yml`, in order, sections flattened."
    def flat(items):
        for it in items:
            if isinstance(it, str): yield it
            elif "contents" in it: yield from flat(it["contents"])
            elif "href" in it: yield it["href"]
    return list(flat(quarto_config()["website"]["sidebar"].get("contents", [])))


def check_sidebar() -> list[str]:
    "Problems with the sidebar: it must list the index, then every notebook of the course in reading order, once."
    nbs = get_config().nbs_path
    want, have = ["index.ipynb"] + [p.relative_to(nbs).as_posix() for p in course_order(nbs)], sidebar_pages()
    if have == want: return []
    problems = [f"_quarto.yml's sidebar lacks {p}" for p in want if p not in have]
    problems += [f"_quarto.yml's sidebar lists {p}, which is not a page of the course" for p in have if p not in want]
    if not problems:
        i = next(i for i, (h, w) in enumerate(zip(have, want)) if h != w)
        problems.append(f"_quarto.yml's sidebar is not in course order: {have[i]} where {want[i]} belongs (place {i + 1})")
    return problems


def processed_notebooks() -> tuple[Path, list[Path]]:
    "Run nbdev's docs processing; return the processed notebooks' folder and files, in the sidebar's order."
    cache = Path(proc_nbs(n_workers=0, force=True))
    pages = sidebar_pages()
    nbs = sorted(cache.glob("*.ipynb"), key=lambda p: (pages.index(p.name) if p.name in pages else len(pages), p.name))
    if not nbs: sys.exit(f"no processed notebooks in {cache}")
    return cache, nbs


QUARTO_TAGS = {"echo": "remove_input", "output": "remove_output", "include": "remove_cell"}  # when the option is false

def as_quarto_shows_it(nb):
    "Drop the front matter and the `#|` cell options, which Quarto consumes; honour echo/output/include: false."
    nb.cells = [c for c in nb.cells if not (c.cell_type == "raw" and c.source.startswith("---"))]
    for c in nb.cells:
        if c.cell_type != "code": continue
        options = cell_options(c)
        c.metadata.setdefault("tags", []).extend(tag for opt, tag in QUARTO_TAGS.items() if options.get(opt) == "false")
        c.source = "\n".join(l for l in c.source.splitlines() if not l.startswith("#|")).strip("\n")
    return nb


def exporter(cls):
    "An nbconvert exporter that removes what the Quarto tags above say to remove."
    ex = cls()
    ex.register_preprocessor(TagRemovePreprocessor(remove_input_tags={"remove_input"}, remove_all_outputs_tags={"remove_output"},
                                                   remove_cell_tags={"remove_cell"}, enabled=True), enabled=True)
    return ex


def check_processed(path: Path, nb) -> list[str]:
    "Problems a reader would see: saved tracebacks, notebooks without a title."
    problems = [f"{path.name} cell {i}: saved error output" for i, c in enumerate(nb.cells)
                if c.cell_type == "code" and any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    if not front_matter(nb).get("title"): problems.append(f"{path.name}: no title (the first markdown cell must be '# Title')")
    return problems


def render_html(out: Path) -> int:
    "Build the article site into `out`; fail on what a reader would see broken."
    start, problems = time.monotonic(), check_sidebar()
    _, nbs = processed_notebooks()
    cfg = get_config()
    rendered, notes = build_site(out, nbs, quarto_config(), dict(cfg.d), cfg.nbs_path, cfg.config_path)
    for r in rendered:
        problems += check_processed(Path(r.page.source), r.nb)
        print(f"{r.page.source:32s} -> {out / r.page.href}  {r.page.title}")
    for n in notes: print("NOTE:", n)
    for p in problems: print("PROBLEM:", p, file=sys.stderr)
    print(f"{len(rendered)} pages in {out} ({time.monotonic() - start:.0f} s)")
    return 1 if problems else 0


def check_html(root: Path) -> int:
    "Check a built site (links, anchors, no remote assets)."
    problems = check_site(root)
    for p in problems: print("PROBLEM:", p, file=sys.stderr)
    print(f"{root}: {len(problems)} problems" if problems else f"{root}: every link and anchor resolves, every asset is local")
    return 1 if problems else 0


def readme_links(text: str, notebooks: list[Path], published: str) -> str:
    "Links that work where the README is read (a clone, or the repository's web page): relative ones from nbs/, and nbdev's links to a page of the published site to its notebook."
    source = {page_of(p, nbformat.read(p, as_version=4)).href: p.name for p in notebooks}
    def to_notebook(m: re.Match) -> str:
        page = m["page"] if m["page"] in source else sys.exit(f"README: {m[0]} names no page of the site")
        return f"](nbs/{source[page]})"
    text = re.sub(r"\]\((?![a-z]+:|/|#)([^)\s]+)", lambda m: f"]({posixpath.normpath('nbs/' + m[1])}", text)  # relative to nbs/, where the index is
    return re.sub(r"\]\(" + re.escape(published) + r"(?P<page>[\w.-]+\.html)(?:#[\w.-]*)?\)", to_notebook, text)


def readme_text() -> str:
    cache, notebooks = processed_notebooks()
    cfg = get_config()
    nb = nbformat.read(cache / cfg.readme_nb, as_version=4)
    fm = front_matter(nb)
    body, _ = exporter(MarkdownExporter).from_notebook_node(as_quarto_shows_it(nb))
    body = readme_links(body, notebooks, f"{cfg.doc_host}{cfg.doc_baseurl}/")
    head = f"# {fm.get('title', cfg.lib_name)}\n\n" + (f"> {fm['description']}\n\n" if fm.get("description") else "")
    note = "<!-- Generated from nbs/index.ipynb by `python .ci/docs.py readme` (nbdev_readme where Quarto exists); do not edit. -->\n\n"
    return head + note + body.strip() + "\n"


def write_readme(check: bool) -> int:
    cfg, text = get_config(), readme_text()
    readme = cfg.config_path / "README.md"
    if missing := [t for t in re.findall(r"\]\((nbs/[^)#\s]+)", text) if not (cfg.config_path / t).exists()]:
        print(f"README.md would link to files that do not exist: {', '.join(missing)}", file=sys.stderr)
        return 1
    if check:
        if readme.read_text(encoding="utf-8") != text:
            print("README.md is out of date with nbs/index.ipynb: run `python .ci/docs.py readme`", file=sys.stderr)
            return 1
        print("README.md is up to date")
        return 0
    readme.write_text(text, encoding="utf-8")
    print(f"wrote {readme}")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("html"); h.add_argument("--out", type=Path, default=Path("_site"))
    c = sub.add_parser("check"); c.add_argument("dir", type=Path)
    r = sub.add_parser("readme"); r.add_argument("--check", action="store_true")
    args = p.parse_args()
    if args.cmd == "html": sys.exit(render_html(args.out))
    sys.exit(check_html(args.dir) if args.cmd == "check" else write_readme(args.check))


if __name__ == "__main__":
    main()

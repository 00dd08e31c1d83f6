"""The page template (templates/page.html: sidebar, title and summary, article, table of contents, prev/next) and
the assets every page loads: one stylesheet (assets/style.css after Pygments' colours) and one script (search)."""
import html
import re
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from pygments.formatters import HtmlFormatter

HERE = Path(__file__).parent
PYGMENTS_STYLE = "friendly"
TEMPLATE_IDS = {"site-main", "site-search", "site-search-results"}  # ids page.html uses: no heading may take them
env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)


def inline_code(text: str) -> Markup:
    "A title for HTML: escaped, `backticks` as <code>."
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text)))


def plain(text: str) -> str: return text.replace("`", "")


env.filters.update(inline_code=inline_code, plain=plain)


def page_html(page, content: str, *, tree: list, prev, next, toc: list[tuple[str, str]], site: dict) -> str:
    "A whole page: the template around a notebook's rendered body."
    return env.get_template("page.html").render(page=page, content=Markup(content), tree=tree, prev=prev, next=next, toc=toc, site=site)


def stylesheet() -> str:
    "Pygments' colours for highlighted code, then the site's own style (which wins where both speak)."
    colours = HtmlFormatter(style=PYGMENTS_STYLE).get_style_defs("pre.code")
    return f"/* Code colours: Pygments' {PYGMENTS_STYLE!r} style */\n{colours}\n\n{(HERE / 'assets' / 'style.css').read_text(encoding='utf-8')}"


def write_assets(out: Path) -> None:
    "style.css and site.js into the site."
    (out / "style.css").write_text(stylesheet(), encoding="utf-8")
    (out / "site.js").write_text((HERE / "assets" / "site.js").read_text(encoding="utf-8"), encoding="utf-8")

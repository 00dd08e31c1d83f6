"""A processed notebook's cells -> HTML, as Quarto shows them: markdown rendered, code highlighted, the `#|` options
honoured (echo/output/include: false), each output in its richest format, nbdev's API entries (show_doc) as cards."""
import base64
import html
import re

import mistune
from nbconvert.filters import strip_ansi
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound

from .links import quarto_attributes
from .widgets import widget_html, widget_state

PYGMENTS = HtmlFormatter(nowrap=True)
WIDGET = "application/vnd.jupyter.widget-view+json"


def hanging_lines(code: str, coloured: str) -> str:
    "Each line as a span that knows its indent, so a wrapped line continues under its own code (style.css: .line)."
    lines = coloured.rstrip("\n").split("\n")  # Pygments closes every span at the end of its line
    indents = [len(l) - len(l.lstrip(" ")) for l in code.split("\n")] + [0] * len(lines)
    return "".join(f'<span class="line" style="--indent:{n}">{l}\n</span>' if n else f'<span class="line">{l}\n</span>'
                   for l, n in zip(lines, indents))


def highlighted(code: str, language: str = "python") -> str:
    "Code as HTML coloured by Pygments (the classes are styled in style.css)."
    code = code.strip("\n")  # as Pygments does, so its lines and ours are the same
    try: lexer = get_lexer_by_name(language)
    except ClassNotFound: lexer, language = TextLexer(), "text"
    return f'<pre class="code"><code class="language-{language}">{hanging_lines(code, highlight(code, lexer, PYGMENTS))}</code></pre>'


class Renderer(mistune.HTMLRenderer):
    "mistune's HTML, with fenced code highlighted like code cells."
    def block_code(self, code: str, info: str | None = None) -> str:
        return highlighted(code, (info or "text").split()[0].strip("{}") or "text")


markdown = mistune.create_markdown(renderer=Renderer(escape=False), plugins=["table", "strikethrough", "footnotes"])


def cell_options(cell) -> dict[str, str]:
    "A code cell's `#| key: value` options, which Quarto consumes."
    opts = {}
    for line in cell.source.splitlines():
        if line.startswith("#|"):
            key, _, value = line[2:].partition(":")
            opts[key.strip()] = value.strip()
    return opts


def code_without_options(source: str) -> str: return "\n".join(l for l in source.splitlines() if not l.startswith("#|")).strip("\n")


SHOW_DOC = re.compile(r"\A\s*---\s*\n+(?:\[source\]\((?P<url>[^)\s]+)\)(?:\{(?P<attrs>[^}]*)\})?\s*\n+)?(?P<heading>#{1,6} [^\n]*)\n(?P<rest>.*)\Z", re.S)

def api_entry(md: str) -> str | None:
    "nbdev's show_doc markdown (rule, source link, heading, signature, docstring) as a card; None if `md` is not one."
    m = SHOW_DOC.match(md)
    if not m: return None
    source = ""
    if m["url"]:
        target = ' target="_blank" rel="noopener"' if "target" in quarto_attributes(m["attrs"] or "") else ""
        source = f'<a class="api-source" href="{html.escape(m["url"])}"{target}>source</a>'
    return f'<section class="api">\n<div class="api-head">{markdown(m["heading"])}{source}</div>\n{markdown(m["rest"])}</section>\n'


class Resources:
    "What a page's outputs need besides HTML: their images (saved as files under figures/, not inlined), the saved widget state."
    def __init__(self, stem: str, widgets: dict | None = None): self.stem, self.files, self.widgets, self.notes = stem, {}, widgets or {}, []

    def add(self, b64: str, ext: str) -> str:
        name = f"figures/{self.stem}-{len(self.files) + 1}.{ext}"
        self.files[name] = base64.b64decode(b64 if isinstance(b64, str) else "".join(b64))
        return name


def output_html(out, res: Resources) -> str:
    "One output as Quarto shows it in HTML: images, then HTML, then markdown, then plain text; errors and widgets not."
    kind = out.get("output_type")
    if kind == "stream":
        return f'<pre class="output{" stderr" if out.get("name") == "stderr" else ""}">{html.escape(strip_ansi(out.get("text", "")))}</pre>'
    data = out.get("data", {})
    if kind == "error" or not data: return ""
    if WIDGET in data:
        model_id = data[WIDGET].get("model_id", "")
        if drawn := widget_html(model_id, res.widgets): return f'<div class="output widgets">{drawn}</div>'
        res.notes.append(f"widget {model_id} is not in the notebook's saved widget state (Quarto cannot draw it either): re-run and save")
        return '<p class="output widget-note">An interactive widget shows here when the notebook runs.</p>'
    for mime, ext in (("image/png", "png"), ("image/jpeg", "jpg")):
        if mime in data: return f'<figure class="output"><img src="{res.add(data[mime], ext)}" alt="a figure drawn by the code above" loading="lazy"></figure>'
    if "image/svg+xml" in data: return f'<figure class="output">{data["image/svg+xml"]}</figure>'
    if "text/html" in data: return f'<div class="output html">{data["text/html"]}</div>'
    if "text/markdown" in data:
        md = data["text/markdown"]
        return api_entry(md) or f'<div class="output markdown">{markdown(md)}</div>'
    if "text/plain" in data: return f'<pre class="output">{html.escape(strip_ansi(data["text/plain"]))}</pre>'
    return ""


def code_cell_html(cell, res: Resources) -> str:
    "A code cell: its source unless `echo: false`, its outputs unless `output: false`, nothing if `include: false`."
    opts = cell_options(cell)
    if opts.get("include") == "false": return ""
    source = code_without_options(cell.source)
    parts = [highlighted(source)] if source and opts.get("echo") != "false" else []
    if opts.get("output") != "false": parts += [output_html(o, res) for o in cell.get("outputs", [])]
    parts = [p for p in parts if p]
    if not parts: return ""
    return "\n".join(parts) + "\n" if opts.get("echo") == "false" else f'<div class="cell">\n{"".join(parts)}\n</div>\n'


def raw_cell_html(cell) -> str:
    "A raw cell passes through only when it is HTML (Quarto drops the front matter and other formats)."
    fmt = cell.metadata.get("format") or cell.metadata.get("raw_mimetype") or ""
    return cell.source if fmt in ("text/html", "html") else ""


def drop_dash_headings(soup) -> list[str]:
    "Remove headings that end with ' -' (nbdev hides them, but only when the heading is a cell of its own); return them."
    found = [h for h in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6"]) if h.get_text().rstrip().endswith(" -")]
    texts = [h.get_text().strip() for h in found]
    for h in found: h.decompose()
    return texts


def notebook_html(nb, stem: str) -> tuple[str, dict[str, bytes], list[str]]:
    "A processed notebook's body as HTML, the image files it refers to, and notes on what the notebook should fix."
    res, parts = Resources(stem, widget_state(nb)), []
    for cell in nb.cells:
        if cell.cell_type == "markdown": parts.append(markdown(cell.source))
        elif cell.cell_type == "code": parts.append(code_cell_html(cell, res))
        elif cell.cell_type == "raw": parts.append(raw_cell_html(cell))
    return "".join(parts), res.files, res.notes

"""ipywidgets outputs drawn from the notebook's saved widget state, as static HTML: what Quarto shows with the widget
manager's JavaScript (from a CDN), without it. HTML and Label widgets, boxes and grids, progress bars (tqdm's)."""
import html

BOXES = {"HBoxModel": "display:flex;gap:.5rem;align-items:center", "VBoxModel": "display:flex;flex-direction:column",
         "BoxModel": "display:flex;gap:.5rem", "GridBoxModel": "display:grid;gap:.5rem"}
LAYOUT_CSS = {"width": "width", "height": "height", "grid_template_columns": "grid-template-columns",
              "grid_template_rows": "grid-template-rows", "grid_gap": "gap"}


def widget_state(nb) -> dict:
    "The notebook's saved widget models, by id (empty if it saved none)."
    return nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})


def model(ref: str, state: dict) -> dict:
    "A widget model's state, from its id or an `IPY_MODEL_<id>` reference."
    return state.get(ref.removeprefix("IPY_MODEL_"), {}).get("state", {})


def layout_style(m: dict, state: dict) -> str:
    "The CSS of a widget's layout model (the properties the course uses)."
    layout = model(m.get("layout") or "", state)
    return ";".join(f"{css}:{layout[key]}" for key, css in LAYOUT_CSS.items() if layout.get(key))


def widget_html(ref: str, state: dict) -> str:
    "One widget and its children as static HTML; '' for a kind not drawn here."
    entry = state.get(ref.removeprefix("IPY_MODEL_"))
    if not entry: return ""
    kind, m = entry.get("model_name", ""), entry.get("state", {})
    style = layout_style(m, state)
    attr = f' style="{style}"' if style else ""
    if kind in ("HTMLModel", "HTMLMathModel"): return f'<div class="widget"{attr}>{m.get("value", "")}</div>'
    if kind == "LabelModel": return f'<div class="widget"{attr}>{html.escape(m.get("value", ""))}</div>'
    if kind in BOXES:
        children = "".join(widget_html(c, state) for c in m.get("children", []))
        return f'<div class="widget-box" style="{";".join(filter(None, [BOXES[kind], style]))}">{children}</div>'
    if kind in ("FloatProgressModel", "IntProgressModel"):
        return f'<progress class="widget {m.get("bar_style", "")}" max="{m.get("max", 100)}" value="{m.get("value", 0)}"></progress>'
    return ""

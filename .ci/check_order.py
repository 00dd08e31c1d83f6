"""Reading order = import order: no notebook may import a module owned by a later notebook.

The course order is the notebooks' filename order in nbs/ (01a < 01b < 02 < ... < 19); tool pages without a
number (bench, cli) come after every Part; index.ipynb and `_`-prefixed scratch notebooks are ignored. A
notebook owns the module(s) it exports (`#| default_exp`, `#| export MODULE`). It imports every `ruvon.X`
named in any of its code cells (exported or not: demos and tests count) and in its generated modules
(relative imports included). A *forward import* is an import of a module owned by a later notebook.

    python .ci/check_order.py                   print the forward imports; fail on one that is not in
                                                .ci/forward_imports.txt, or on one listed there that is gone
    python .ci/check_order.py --write-baseline  rewrite .ci/forward_imports.txt from what is found
"""
import argparse
import ast
import configparser
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / ".ci" / "forward_imports.txt"
DIRECTIVE = re.compile(r"^\s*#\s*\|\s*(default_exp|exporti?|exports)\b[ \t]*([\w.]*)")
PART = re.compile(r"^(\d+)([a-z]*)_")


def part_key(nb: Path) -> tuple:
    "Sort key of the course: numbered Parts by number then letter (12 < 12b < 13a), then tool pages by name."
    m = PART.match(nb.name)
    return (0, int(m[1]), m[2], nb.name) if m else (1, 0, "", nb.name)


def course_order(nbs: Path) -> list[Path]:
    "The notebooks of the course in reading order: Parts, then tool pages; no index, no `_` scratch notebooks."
    nbs_ = [p for p in nbs.rglob("*.ipynb") if p.name != "index.ipynb"
            and not any(part.startswith(("_", ".")) for part in p.relative_to(nbs).parts)]
    return sorted(nbs_, key=part_key)


def code_cells(nb: Path) -> list[str]:
    "The source of every code cell."
    cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def exported_modules(nb: Path) -> set[str]:
    "Modules this notebook exports to: its `#| default_exp` and any `#| export MODULE`."
    mods = set()
    for src in code_cells(nb):
        for line in src.splitlines():
            if (m := DIRECTIVE.match(line)) and m[2]: mods.add(m[2])
    return mods


def python_source(src: str) -> str:
    "A cell as plain Python: IPython magics and shell lines become blank lines."
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in src.splitlines())


def imported_modules(src: str, lib: str, package: str = "", reexports: dict[str, str] | None = None) -> set[str]:
    "Dotted names of `lib` modules that `src` imports (`package`: the importing module's package, for relative imports)."
    found = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import): found |= {a.name for a in node.names if a.name.startswith(lib + ".")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from .x import y, inside package `package`
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(p for p in [*parts, base] if p)
            if base == lib:  # from ruvon import x: a module, or a name the package re-exports from one
                found |= {f"{lib}.{a.name}" if a.name not in (reexports or {}) else reexports[a.name] for a in node.names}
            elif base.startswith(lib + "."): found.add(base)
    return found


def package_reexports(root: Path, lib: str) -> dict[str, str]:
    "Names `lib/__init__.py` re-exports, and the module each comes from (`from .engine import LLM` or a lazy `_LAZY = {'LLM': 'engine'}`: LLM -> ruvon.engine)."
    init = root / lib / "__init__.py"
    if not init.exists(): return {}
    out = {}
    for node in ast.walk(ast.parse(init.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            out |= {a.asname or a.name: f"{lib}.{node.module}" for a in node.names}
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets):
            out |= {name: f"{lib}.{module}" for name, module in ast.literal_eval(node.value).items()}  # PEP 562 lazy names
    return out


def notebook_imports(nb: Path, lib: str, reexports: dict[str, str] | None = None) -> set[str]:
    "Every `lib` module imported by any code cell of `nb`; a cell Python can't parse is read line by line."
    found = set()
    for src in code_cells(nb):
        src = python_source(src)
        try: found |= imported_modules(src, lib, reexports=reexports)
        except SyntaxError:
            for line in src.splitlines():
                try: found |= imported_modules(line.strip(), lib, reexports=reexports)
                except SyntaxError: pass
    return found


def resolve(name: str, owners: dict[str, Path]) -> str | None:
    "The owned module `name` refers to: itself, or its longest owned prefix (ruvon.a.b -> ruvon.a); None if unowned."
    parts = name.split(".")
    return next((".".join(parts[:i]) for i in range(len(parts), 1, -1) if ".".join(parts[:i]) in owners), None)


@dataclass(frozen=True, order=True)
class ForwardImport:
    importer: str  # nbs/08b_engine.ipynb
    module: str    # ruvon.paged_cache
    owner: str     # nbs/13b_paged_cache.ipynb
    def __str__(self): return f"{self.importer} imports {self.module} ({self.owner})"


def read_paths(root: Path) -> tuple[Path, str]:
    "The notebooks' folder and the library's name, from settings.ini (nbs and ruvon if it has none)."
    cfg = configparser.ConfigParser()
    cfg.read(root / "settings.ini")
    d = cfg["DEFAULT"]
    return root / d.get("nbs_path", "nbs"), d.get("lib_path", "ruvon")


def forward_imports(root: Path, nbs: Path | None = None, lib: str | None = None) -> list[ForwardImport]:
    "Every import, by a notebook or its generated module, of a module owned by a later notebook."
    default_nbs, default_lib = read_paths(root)
    nbs, lib = nbs or default_nbs, lib or default_lib
    order = course_order(nbs)
    owns = {nb: {f"{lib}.{m}" for m in exported_modules(nb)} for nb in order}
    owners: dict[str, Path] = {}
    for nb, mods in owns.items():
        for m in mods:
            if m in owners: sys.exit(f"{m} is exported by two notebooks, {owners[m].name} and {nb.name}: one module has one owner")
            owners[m] = nb
    reexports = package_reexports(root, lib)
    rank, found = {nb: i for i, nb in enumerate(order)}, set()
    for nb in order:
        imports = notebook_imports(nb, lib, reexports)
        for m in owns[nb]:
            py = root / lib / (m.split(".", 1)[1].replace(".", "/") + ".py")
            if py.exists(): imports |= imported_modules(py.read_text(encoding="utf-8"), lib, m.rsplit(".", 1)[0], reexports)
        for name in imports:
            m = resolve(name, owners)
            if m is not None and rank[owners[m]] > rank[nb]:
                found.add(ForwardImport(nb.relative_to(root).as_posix(), m, owners[m].relative_to(root).as_posix()))
    return sorted(found)


def read_baseline(path: Path) -> list[str]:
    "The known forward imports: one per line; blank lines and `#` comments are ignored."
    if not path.exists(): return []
    return [l.strip() for l in path.read_text(encoding="utf-8").splitlines() if l.strip() and not l.startswith("#")]


HEADER = """\
# Known forward imports: a notebook importing a module owned by a later notebook (.ci/check_order.py).
# This list may only shrink. CI fails on a forward import missing here, and on a line here that is no longer true.
"""


def compare(found: list[str], baseline: list[str]) -> tuple[list[str], list[str]]:
    "(forward imports not in the baseline, baseline lines no longer found)."
    return sorted(set(found) - set(baseline)), sorted(set(baseline) - set(found))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=ROOT, help="the repository (settings.ini names nbs/ and the library)")
    p.add_argument("--baseline", type=Path, default=None, help="the known forward imports (default: ROOT/.ci/forward_imports.txt)")
    p.add_argument("--write-baseline", action="store_true", help="write the forward imports found to the baseline and exit")
    args = p.parse_args(argv)
    baseline = args.baseline or args.root / ".ci" / "forward_imports.txt"
    found = [str(f) for f in forward_imports(args.root.resolve())]
    for line in found: print(line)
    if args.write_baseline:
        baseline.write_text(HEADER + "".join(l + "\n" for l in found), encoding="utf-8")
        print(f"wrote {len(found)} forward imports to {baseline}")
        return 0
    new, gone = compare(found, read_baseline(baseline))
    for line in new: print(f"NEW forward import: {line}", file=sys.stderr)
    if new: print("A notebook may import only from notebooks of earlier Parts (STYLE.md: reading order = import order). "
                  "Move the code to the Part that owns it, or let the earlier Part define a seam the later one plugs into. "
                  f"Do not add the line to {baseline.name}.", file=sys.stderr)
    for line in gone: print(f"FIXED, still listed: {line}", file=sys.stderr)
    if gone: print(f"Good: that forward import is gone. Delete its line from {baseline} "
                   "(or run `python .ci/check_order.py --write-baseline` once nothing is NEW).", file=sys.stderr)
    if new or gone: return 1
    print(f"{len(found)} forward imports, all known ({baseline.name}: the list may only shrink)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

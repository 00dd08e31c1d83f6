"""CI's course-order check (.ci/check_order.py) on a tiny fake repository: it finds a forward import (a notebook
importing a later notebook's module, from a demo cell or a generated module's relative import), never a backward
one, and fails when its baseline is out of date in either direction. It is CI tooling, not `ruvon`, so it is
loaded from its file."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("check_order", ROOT / ".ci" / "check_order.py")
check_order = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_order)


def notebook(path: Path, *cells: str) -> None:
    "Write a notebook of code cells."
    nb = {"cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "outputs": [], "execution_count": None, "source": src}
                    for i, src in enumerate(cells)], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb), encoding="utf-8")


@pytest.fixture
def repo(tmp_path) -> Path:
    "Parts 1a (alpha), 1b (beta), 2 (gamma), a tool page and pages the check ignores."
    (tmp_path / "settings.ini").write_text("[DEFAULT]\nnbs_path = nbs\nlib_path = ruvon\n")
    nbs, lib = tmp_path / "nbs", tmp_path / "ruvon"
    nbs.mkdir(); lib.mkdir()
    notebook(nbs / "01a_alpha.ipynb", "#| default_exp alpha", "#| export\ndef a(): return 1",
             "from ruvon.gamma import g  # a demo borrowing from Part 2: forward", "%timeit a()\n!ruvon --help")
    notebook(nbs / "01b_beta.ipynb", "#| default_exp beta", "#| export\nfrom ruvon.alpha import a  # backward: fine")
    (lib / "beta.py").write_text("from .alpha import a\nfrom .tool import t  # only in the generated module: forward\n")
    notebook(nbs / "02_gamma.ipynb", "#|default_exp gamma", "#| export\nimport ruvon.beta as beta\ndef g(): return beta")
    notebook(nbs / "tool.ipynb", "#| default_exp tool", "#| export\nfrom ruvon import gamma\ndef t(): return gamma.g()")
    notebook(nbs / "index.ipynb", "from ruvon.tool import t")
    notebook(nbs / "_scratch.ipynb", "from ruvon.tool import t")
    return tmp_path


def test_course_order():
    names = ["cli.ipynb", "13a_x.ipynb", "12b_x.ipynb", "bench.ipynb", "12_x.ipynb", "01b_x.ipynb", "01a_x.ipynb", "02_x.ipynb"]
    ordered = sorted((Path(n) for n in names), key=check_order.part_key)
    assert [p.name for p in ordered] == ["01a_x.ipynb", "01b_x.ipynb", "02_x.ipynb", "12_x.ipynb", "12b_x.ipynb", "13a_x.ipynb",
                                      "bench.ipynb", "cli.ipynb"]


def test_ignored_pages_and_owners(repo):
    order = check_order.course_order(repo / "nbs")
    assert [p.name for p in order] == ["01a_alpha.ipynb", "01b_beta.ipynb", "02_gamma.ipynb", "tool.ipynb"]
    assert [check_order.exported_modules(p) for p in order] == [{"alpha"}, {"beta"}, {"gamma"}, {"tool"}]


def test_forward_found_backward_not(repo):
    found = [str(f) for f in check_order.forward_imports(repo)]
    assert found == ["nbs/01a_alpha.ipynb imports ruvon.gamma (nbs/02_gamma.ipynb)",  # a demo cell counts
                     "nbs/01b_beta.ipynb imports ruvon.tool (nbs/tool.ipynb)"]        # a relative import in ruvon/beta.py counts
    # backward imports (beta -> alpha, gamma -> beta, tool -> gamma) and the ignored pages' imports are not reported


def test_baseline_only_shrinks(repo, capsys):
    baseline = repo / "known.txt"
    args = ["--root", str(repo), "--baseline", str(baseline)]
    assert check_order.main(args) == 1                                       # no baseline: both are new
    assert "NEW forward import: nbs/01a_alpha.ipynb" in capsys.readouterr().err
    assert check_order.main([*args, "--write-baseline"]) == 0
    assert check_order.main(args) == 0                                       # all known
    notebook(repo / "nbs" / "01a_alpha.ipynb", "#| default_exp alpha", "#| export\ndef a(): return 1")
    assert check_order.main(args) == 1                                       # fixed, but still listed
    assert "FIXED, still listed: nbs/01a_alpha.ipynb imports ruvon.gamma" in capsys.readouterr().err


def test_lazy_package_names_count(repo):
    "`from ruvon import X` where `ruvon/__init__.py` loads X lazily (PEP 562 `_LAZY`) is an import of X's module."
    (repo / "ruvon" / "__init__.py").write_text('_LAZY = {"g": "gamma"}\ndef __getattr__(name): ...\n')
    notebook(repo / "nbs" / "01b_beta.ipynb", "#| default_exp beta", "from ruvon import g  # lazy: forward to Part 2")
    assert "nbs/01b_beta.ipynb imports ruvon.gamma (nbs/02_gamma.ipynb)" in [str(f) for f in check_order.forward_imports(repo)]

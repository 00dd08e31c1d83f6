"""What importing a piece of ruvon costs: each check runs in a fresh interpreter and inspects `sys.modules`."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def loaded_after(code: str, env: dict | None = None) -> set[str]:
    "The modules a fresh Python holds after running `code`."
    probe = code + "\nimport json, sys; print(json.dumps(sorted(sys.modules)))"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    return set(json.loads(r.stdout.splitlines()[-1]))


def heavy(modules: set[str]) -> set[str]:
    "The torch, Triton and engine modules among `modules`."
    return {m for m in modules if m.split(".")[0] in ("torch", "triton") or m in ("ruvon.engine", "ruvon.kernels")}


@pytest.mark.parametrize("module", ["ruvon", "ruvon.stats", "ruvon.loadtest", "ruvon.tokenizer", "ruvon.cli"])
def test_light_modules_import_no_torch_triton_or_engine(module):
    assert heavy(loaded_after(f"import {module}")) == set()


def test_package_entry_points_load_on_first_use():
    mods = loaded_after("import ruvon; assert ruvon.__version__; from ruvon import LLM, SamplingParams, load_model, load_tokenizer")
    assert {"ruvon.engine", "ruvon.sampling", "ruvon.loading"} <= mods


def test_the_engine_knows_nothing_of_http_or_the_fast_paths():
    "Issue #11: the engine (Part 8b) imports no serving layer and none of the later Parts' device paths; the runner it is handed brings those."
    mods = loaded_after("import ruvon.engine")
    assert mods & {"ruvon.serving", "ruvon.server", "pydantic", "fastapi", "ruvon.cuda_graphs", "ruvon.fused", "ruvon.attention",
                   "ruvon.kernels", "ruvon.paged_cache", "ruvon.block_manager", "ruvon.logprobs", "triton"} == set()


def test_version_matches_settings():
    version = re.search(r"^version\s*=\s*(\S+)", (ROOT / "settings.ini").read_text(), re.M).group(1)
    exe = os.path.join(os.path.dirname(sys.executable), "ruvon")
    r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout) == (0, f"ruvon {version}\n"), r.stderr


def test_every_triton_import_goes_through_the_one_decision():
    "Each module that imports triton first calls Part 12's `interpret_triton_without_cuda` (and nothing else sets TRITON_INTERPRET)."
    users = [p for p in (ROOT / "ruvon").glob("*.py") if re.search(r"^import triton", p.read_text(), re.M)]
    assert {p.name for p in users} >= {"kernels.py", "fused.py"}
    for p in users:
        src = p.read_text()
        assert src.find("\ninterpret_triton_without_cuda()") < src.find("\nimport triton"), p.name
    assert [p.name for p in (ROOT / "ruvon").glob("*.py") if 'environ.setdefault("TRITON_INTERPRET"' in p.read_text()] == ["kernels.py"]


TRITON_FIRST = """
from transformers import GPT2LMHeadModel  # imports triton, with no TRITON_INTERPRET in the environment
import sys, torch
assert "triton.language" in sys.modules
from ruvon.fused import layer_norm_kernel, linear_kernel, linear_reference
from ruvon.kernels import paged_decode_attention, paged_decode_reference
torch.manual_seed(0)
k, v, q = torch.randn(8, 4, 2, 16), torch.randn(8, 4, 2, 16), torch.randn(2, 2, 16)
tables, lens = torch.arange(8, dtype=torch.int32).view(2, 4), torch.tensor([5, 9], dtype=torch.int32)
torch.testing.assert_close(paged_decode_attention(q, k, v, tables, lens), paged_decode_reference(q, k, v, tables, lens))
x, w, b = torch.randn(3, 32), torch.randn(24, 32), torch.randn(24)
torch.testing.assert_close(linear_kernel(x, w, b, gelu=True), linear_reference(x, w, b, gelu=True), rtol=1e-4, atol=1e-4)
ln_w, ln_b = torch.randn(32), torch.randn(32)
torch.testing.assert_close(layer_norm_kernel(x, ln_w, ln_b, 1e-5), torch.nn.functional.layer_norm(x, (32,), ln_w, ln_b, 1e-5), rtol=1e-4, atol=1e-4)
"""


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a CUDA device Triton compiles: there is no interpret mode to get wrong")
def test_kernels_work_when_triton_was_imported_first():
    "Issue 13's trap: transformers imports triton before ruvon could ask for interpret mode."
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, "-c", TRITON_FIRST], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]

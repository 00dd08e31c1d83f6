"""Part 18a as users reach it: `ruvon serve --lora-modules NAME=DIR --merge-lora` (the same greedy text as the merged model
offline, with --quantization too), and bad adapters or flags refused in one line before the port opens."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import torch
from safetensors.torch import save_file

from ruvon.generate import generate
from ruvon.kv_cache import CachedDecoder
from ruvon.llm import LLM
from ruvon.loading import load_tokenizer
from ruvon.lora import load_lora, load_merged
from ruvon.outputs import SamplingParams

ADAPTERS = Path(__file__).resolve().parents[1] / "adapters"
PROMPTS = ["Our quarterly plan", "The moon over the harbor", "ROMEO:"]
GREEDY = SamplingParams(temperature=0, max_tokens=16, ignore_eos=True)
KV = ("--kv-cache-memory", str(32 << 20))


def ruvon(*args, timeout=300):
    exe = os.path.join(os.path.dirname(sys.executable), "ruvon")
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=os.environ.copy())


def served_texts(url: str, model: str = "standin") -> list[str]:
    body = {"model": model, "prompt": PROMPTS, "max_tokens": 16, "temperature": 0, "ignore_eos": True}
    r = httpx.post(f"{url}/v1/completions", json=body, timeout=120)
    assert r.status_code == 200, r.text
    return [c["text"] for c in sorted(r.json()["choices"], key=lambda c: c["index"])]


def test_served_merged_adapter_matches_the_merged_model_offline(standin_6l, ruvon_server):
    merged = load_merged(str(standin_6l), load_lora(ADAPTERS / "business"), dtype="float32", device="cpu")
    tok = load_tokenizer(str(standin_6l))
    expected = [generate(CachedDecoder(merged), tok, p, 16, ignore_eos=True).text for p in PROMPTS]
    base = [o.outputs[0].text for o in LLM(str(standin_6l), device="cpu", dtype="float32", kv_cache_memory=32 << 20).generate(PROMPTS, GREEDY)]
    assert expected != base  # the adapter changes the text, so the comparison below can fail
    _, url = ruvon_server(standin_6l, *KV, "--dtype", "float32", "--lora-modules", f"business={ADAPTERS / 'business'}", "--merge-lora")
    assert served_texts(url) == expected


def test_merge_lora_checkpoint_and_quantization(tmp_path, standin_6l, ruvon_server):
    out = tmp_path / "business"
    r = ruvon("merge-lora", standin_6l, ADAPTERS / "business", "--out", out, "--dtype", "float32")
    assert r.returncode == 0, r.stderr
    offline = LLM(str(out), device="cpu", kv_cache_memory=32 << 20, quantization="int8")  # the merged checkpoint, quantized at load
    expected = [o.outputs[0].text for o in offline.generate(PROMPTS, GREEDY)]
    # merged at load in float32, then quantized: the same weights as quantizing the merged checkpoint
    _, url = ruvon_server(standin_6l, *KV, "--dtype", "float32", "--quantization", "int8", "--lora-modules", f"business={ADAPTERS / 'business'}", "--merge-lora")
    assert served_texts(url) == expected


def adapter_with(tmp_path: Path, name: str, **changes) -> Path:
    "A copy of the business adapter with some fields of its adapter_config.json changed."
    d = shutil.copytree(ADAPTERS / "business", tmp_path / name)
    cfg = json.loads((d / "adapter_config.json").read_text()) | changes
    (d / "adapter_config.json").write_text(json.dumps(cfg))
    return d


def gpt2_shaped_adapter(tmp_path: Path) -> Path:
    "A PEFT-format adapter for GPT-2 (124M): 768 wide, which the 320-wide stand-in must refuse."
    d = tmp_path / "for-gpt2"; d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["c_attn"]}))
    save_file({"base_model.model.transformer.h.0.attn.c_attn.lora_A.weight": torch.zeros(8, 768),
               "base_model.model.transformer.h.0.attn.c_attn.lora_B.weight": torch.zeros(2304, 8)}, str(d / "adapter_model.safetensors"))
    return d


@pytest.mark.parametrize("case, says", [
    ("dora", "adapter_config.json: use_dora is not supported"),
    ("bias", "adapter_config.json: bias 'all' is not supported"),
    ("modules_to_save", "adapter_config.json: modules_to_save is not supported"),
    ("targets", "adapter_config.json: target_modules ['lm_head'] are not supported: GPT-2's are c_attn, c_proj, c_fc"),
    ("rank", "adapter_config.json: r = 8 is above max_lora_rank = 4 (raise it with --max-lora-rank)"),
    ("gpt2", "h.0.attn.c_attn has lora_A (8, 768) and lora_B (2304, 8), but the base model needs (8, 320) and (960, 8)"),
    ("missing", "LoRA adapter directory '/no/such/adapter' does not exist"),
    ("unmerged", "--lora-modules without --merge-lora would serve adapters unmerged (--enable-lora), which comes in Part 18b"),
    ("two", "--merge-lora merges exactly one adapter, got 2 (business, poetry)"),
    ("syntax", "--lora-modules takes NAME=DIR, got 'business'"),
])
def test_bad_lora_is_one_line_at_startup(tmp_path, standin_6l, case, says):
    business, poetry = f"business={ADAPTERS / 'business'}", f"poetry={ADAPTERS / 'poetry'}"
    args = {"dora": ["--lora-modules", f"x={adapter_with(tmp_path, 'dora', use_dora=True)}", "--merge-lora"],
            "bias": ["--lora-modules", f"x={adapter_with(tmp_path, 'bias', bias='all')}", "--merge-lora"],
            "modules_to_save": ["--lora-modules", f"x={adapter_with(tmp_path, 'mts', modules_to_save=['lm_head'])}", "--merge-lora"],
            "targets": ["--lora-modules", f"x={adapter_with(tmp_path, 'targets', target_modules=['lm_head'])}", "--merge-lora"],
            "rank": ["--lora-modules", business, "--merge-lora", "--max-lora-rank", "4"],
            "gpt2": ["--lora-modules", f"x={gpt2_shaped_adapter(tmp_path)}", "--merge-lora"],
            "missing": ["--lora-modules", "x=/no/such/adapter", "--merge-lora"],
            "unmerged": ["--lora-modules", business],
            "two": ["--lora-modules", business, poetry, "--merge-lora"],
            "syntax": ["--lora-modules", "business", "--merge-lora"]}[case]
    r = ruvon("serve", standin_6l, "--device", "cpu", "--port", "1", *args, timeout=120)  # port 1: never reached
    assert r.returncode == 1 and says in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr

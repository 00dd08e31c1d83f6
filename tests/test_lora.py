"""Part 18 as users reach it: `ruvon serve --lora-modules NAME=DIR --merge-lora` (the same greedy text as the merged model
offline, with --quantization too); `--enable-lora` serving several adapters unmerged, chosen per request, loaded and unloaded at
runtime with `--allow-runtime-lora`; `LLM(enable_lora=True)` with `LoRARequest`; bad adapters or flags refused in one line before
the port opens."""
import asyncio
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
from ruvon.loading import load_model, load_tokenizer
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
    d = tmp_path / "for-gpt2"; d.mkdir(exist_ok=True)
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
    ("unmerged", "--lora-modules needs --merge-lora (one adapter merged into the weights at load) or, with `ruvon serve`, --enable-lora"),
    ("slot-rank", "max_lora_rank (--max-lora-rank) must be one of 8, 16, 32, 64, 128, 256, got 12"),
    ("too-many", "--lora-modules names 2 adapters but --max-loras is 1: raise --max-loras"),
    ("unmerged-gpt2", "--lora-modules x: adapter_model.safetensors: h.0.attn.c_attn has lora_A (8, 768)"),
    ("runtime-alone", "--allow-runtime-lora needs --enable-lora"),
    ("both", "--merge-lora and --enable-lora exclude each other"),
    ("base-name", "--lora-modules: 'standin' is the base model's served name"),
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
            "slot-rank": ["--enable-lora", "--lora-modules", business, "--max-lora-rank", "12"],
            "too-many": ["--enable-lora", "--lora-modules", business, poetry],
            "unmerged-gpt2": ["--enable-lora", "--lora-modules", f"x={gpt2_shaped_adapter(tmp_path)}"],
            "runtime-alone": ["--allow-runtime-lora"],
            "both": ["--enable-lora", "--merge-lora", "--lora-modules", business],
            "base-name": ["--enable-lora", "--served-model-name", "standin", "--lora-modules", f"standin={ADAPTERS / 'business'}"],
            "two": ["--lora-modules", business, poetry, "--merge-lora"],
            "syntax": ["--lora-modules", "business", "--merge-lora"]}[case]
    r = ruvon("serve", standin_6l, "--device", "cpu", "--port", "1", *args, timeout=120)  # port 1: never reached
    assert r.returncode == 1 and says in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def offline_texts(standin_6l, merged_with: str | None) -> list[str]:
    "Greedy texts of PROMPTS from the base, or from the base with one adapter merged (Part 18a, checked against PEFT)."
    model = (load_merged(str(standin_6l), load_lora(ADAPTERS / merged_with), dtype="float32", device="cpu") if merged_with
             else load_model(str(standin_6l), dtype="float32", device="cpu"))
    tok = load_tokenizer(str(standin_6l))
    return [generate(CachedDecoder(model), tok, p, 16, ignore_eos=True).text for p in PROMPTS]


def test_enable_lora_serves_each_adapter_by_model(standin_6l, ruvon_server):
    expected = {m: offline_texts(standin_6l, a) for m, a in [("standin", None), ("business", "business"), ("poetry", "poetry")]}
    assert len({tuple(v) for v in expected.values()}) == 3  # three different texts: a mix-up cannot pass
    _, url = ruvon_server(standin_6l, *KV, "--dtype", "float32", "--enable-lora", "--max-loras", "2",
                          "--lora-modules", f"business={ADAPTERS / 'business'}", f"poetry={ADAPTERS / 'poetry'}")
    models = httpx.get(f"{url}/v1/models").json()["data"]
    assert [(m["id"], m["parent"]) for m in models] == [("standin", None), ("business", "standin"), ("poetry", "standin")]
    async def all_at_once():  # the three models' requests in flight together: steps mix adapters
        async with httpx.AsyncClient(timeout=120) as client:
            async def texts(model):
                body = {"model": model, "prompt": PROMPTS, "max_tokens": 16, "temperature": 0, "ignore_eos": True}
                r = await client.post(f"{url}/v1/completions", json=body)
                assert r.status_code == 200 and r.json()["model"] == model, r.text
                return [c["text"] for c in sorted(r.json()["choices"], key=lambda c: c["index"])]
            return dict(zip(expected, await asyncio.gather(*map(texts, expected))))
    assert asyncio.run(all_at_once()) == expected
    r = httpx.post(f"{url}/v1/completions", json={"model": "shakespeare", "prompt": "x"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    info = [l for l in httpx.get(f"{url}/metrics").text.splitlines() if l.startswith("ruvon:lora_requests_info")]
    assert len(info) == 1 and 'max_lora="2"' in info[0] and 'running_lora_adapters=""' in info[0], info
    assert httpx.post(f"{url}/v1/load_lora_adapter", json={"lora_name": "x", "lora_path": str(ADAPTERS / "poetry")}).status_code == 404  # not allowed


def test_runtime_lora_load_and_unload(tmp_path, standin_6l, ruvon_server):
    _, url = ruvon_server(standin_6l, *KV, "--dtype", "float32", "--enable-lora", "--max-loras", "2", "--allow-runtime-lora",
                          "--api-key", "k", "--lora-modules", f"business={ADAPTERS / 'business'}")
    auth = {"Authorization": "Bearer k"}
    post = lambda path, body: httpx.post(f"{url}{path}", json=body, headers=auth, timeout=120)
    assert httpx.post(f"{url}/v1/load_lora_adapter", json={"lora_name": "p", "lora_path": str(ADAPTERS / "poetry")}).status_code == 401
    r = post("/v1/load_lora_adapter", {"lora_name": "poems", "lora_path": str(ADAPTERS / "poetry")})
    assert r.status_code == 200 and "added successfully" in r.text, r.text
    texts = lambda model: [c["text"] for c in sorted(post("/v1/completions", {"model": model, "prompt": PROMPTS, "max_tokens": 16, "temperature": 0,
                                                                                "ignore_eos": True}).json()["choices"], key=lambda c: c["index"])]
    assert texts("poems") == offline_texts(standin_6l, "poetry")
    for body, status, says in [({"lora_name": "x", "lora_path": "/no/such/dir"}, 400, "does not exist"),
                               ({"lora_name": "x", "lora_path": str(gpt2_shaped_adapter(tmp_path))}, 400, "trained for another base model"),
                               ({"lora_name": "x", "lora_path": str(adapter_with(tmp_path, "r32", r=32))}, 400, "r = 32 is above max_lora_rank = 16"),
                               ({"lora_name": "poems", "lora_path": str(ADAPTERS / "poetry")}, 400, "already served")]:
        r = post("/v1/load_lora_adapter", body)
        assert r.status_code == status and says in r.json()["error"]["message"], r.text
    # a third adapter with both slots full: the least recently used idle one (business, never used) is evicted
    r = post("/v1/load_lora_adapter", {"lora_name": "business-2", "lora_path": str(ADAPTERS / "business")})
    assert r.status_code == 200 and "slot of 'business'" in r.text, r.text
    assert [m["id"] for m in httpx.get(f"{url}/v1/models", headers=auth).json()["data"]] == ["standin", "poems", "business-2"]
    assert post("/v1/unload_lora_adapter", {"lora_name": "poems"}).status_code == 200
    r = post("/v1/completions", {"model": "poems", "prompt": "x"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = post("/v1/unload_lora_adapter", {"lora_name": "poems"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_unload_while_requests_run_loses_none(standin_6l, ruvon_server):
    "Streams on an adapter keep going when it is unloaded mid-answer, and end with the text they get alone."
    _, url = ruvon_server(standin_6l, *KV, "--dtype", "float32", "--enable-lora", "--allow-runtime-lora",
                          "--lora-modules", f"poetry={ADAPTERS / 'poetry'}")
    body = {"model": "poetry", "prompt": PROMPTS[1], "max_tokens": 64, "temperature": 0, "ignore_eos": True}
    alone = httpx.post(f"{url}/v1/completions", json=body, timeout=120).json()["choices"][0]["text"]
    async def run():
        async with httpx.AsyncClient(timeout=120) as client:
            started = [asyncio.Event() for _ in range(8)]
            async def stream(started: asyncio.Event):
                text = ""
                async with client.stream("POST", f"{url}/v1/completions", json={**body, "stream": True}) as r:
                    async for line in r.aiter_lines():
                        if line.startswith("data: {"): text += json.loads(line[6:])["choices"][0]["text"]; started.set()
                return text
            tasks = [asyncio.create_task(stream(e)) for e in started]
            for e in started: await e.wait()  # every stream has tokens: all eight are running on the adapter
            r = await client.post(f"{url}/v1/unload_lora_adapter", json={"lora_name": "poetry"})
            assert r.status_code == 200, r.text
            late = await client.post(f"{url}/v1/completions", json=body)
            return r.text, late, await asyncio.gather(*tasks)
    said, late, texts = asyncio.run(run())
    assert "running requests finish on it first" in said, said   # they were in flight when it was unloaded
    assert late.status_code == 404                                # new ones are refused at once
    assert texts == [alone] * 8                                   # and the running ones lost nothing


def test_llm_with_lora_requests(standin_6l):
    from ruvon.multi_lora import LoRARequest
    llm = LLM(str(standin_6l), device="cpu", dtype="float32", kv_cache_memory=32 << 20, enable_lora=True, max_loras=2)
    business, poetry = LoRARequest("business", 1, str(ADAPTERS / "business")), LoRARequest("poetry", 2, str(ADAPTERS / "poetry"))
    outs = llm.generate(PROMPTS * 3, GREEDY, lora_request=[None] * 3 + [business] * 3 + [poetry] * 3)
    got = [o.outputs[0].text for o in outs]
    assert got == offline_texts(standin_6l, None) + offline_texts(standin_6l, "business") + offline_texts(standin_6l, "poetry")
    assert [o.outputs[0].text for o in llm.generate(PROMPTS, GREEDY, lora_request=poetry)] == got[6:]

"""Part 17 as users reach it: `ruvon serve --quantization` (the same greedy text as `LLM(quantization=...)`), a checkpoint from
`ruvon quantize` served as it is, `ruvon bench latency --quantization` (recorded in its JSON), and bad input refused in one line."""
import json
import os
import subprocess
import sys

import httpx
import pytest

from ruvon.llm import LLM
from ruvon.outputs import SamplingParams

PROMPTS = ["ROMEO:", "def fibonacci(n):\n    ", "The cat sat on the"]
GREEDY = SamplingParams(temperature=0, max_tokens=16, ignore_eos=True)


def ruvon(*args, timeout=300):
    exe = os.path.join(os.path.dirname(sys.executable), "ruvon")
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=os.environ.copy())


def served_texts(url: str) -> list[str]:
    body = {"model": "standin", "prompt": PROMPTS, "max_tokens": 16, "temperature": 0, "ignore_eos": True}
    r = httpx.post(f"{url}/v1/completions", json=body, timeout=120)
    assert r.status_code == 200, r.text
    return [c["text"] for c in sorted(r.json()["choices"], key=lambda c: c["index"])]


@pytest.mark.parametrize("method", ["int8", "int4", "bitsandbytes-nf4"])
def test_served_quantized_greedy_matches_offline(standin_2l, ruvon_server, method):
    offline = LLM(str(standin_2l), device="cpu", kv_cache_memory=32 << 20, max_num_seqs=8, quantization=method)
    expected = [o.outputs[0].text for o in offline.generate(PROMPTS, GREEDY)]
    _, url = ruvon_server(standin_2l, "--kv-cache-memory", str(32 << 20), "--quantization", method)
    assert served_texts(url) == expected


def test_quantized_checkpoint_is_served_as_saved(tmp_path, standin_2l, ruvon_server):
    out = tmp_path / "standin-2l-int4"
    r = ruvon("quantize", standin_2l, "--out", out, "--method", "int4", "--quantization-group-size", 32, "--dtype", "float32")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "config.json").read_text())["quantization_config"] == {"quant_method": "ruvon", "format_version": 1, "method": "int4", "bits": 4, "group_size": 32}
    offline = LLM(str(standin_2l), device="cpu", kv_cache_memory=32 << 20, quantization="int4", quantization_group_size=32)
    _, url = ruvon_server(out, "--kv-cache-memory", str(32 << 20))
    assert served_texts(url) == [o.outputs[0].text for o in offline.generate(PROMPTS, GREEDY)]
    r = ruvon("serve", out, "--device", "cpu", "--port", 1, "--quantization", "int8", timeout=120)
    assert r.returncode == 1 and "is already quantized (int4); drop --quantization or ask for int4" in r.stderr, r.stderr


@pytest.mark.parametrize("args, says", [
    (("--quantization", "int3"), "unknown quantization 'int3': use one of int8, int4, bitsandbytes-int8, bitsandbytes-nf4"),
    (("--quantization", "int4", "--quantization-group-size", "100"), "power of two from 16 to 1024, got 100"),
    (("--quantization", "int8", "--quantization-group-size", "64"), "--quantization-group-size applies to --quantization int4 only"),
])
def test_bad_quantization_is_one_line_at_startup(standin_2l, args, says):
    r = ruvon("serve", standin_2l, "--device", "cpu", "--port", "1", *args, timeout=120)  # port 1: never reached
    assert r.returncode == 1 and says in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_bench_latency_records_the_quantization(tmp_path, standin_2l):
    out = tmp_path / "latency.json"
    r = ruvon("bench", "latency", standin_2l, "--device", "cpu", "--batch-size", 2, "--input-len", 16, "--output-len", 8,
              "--num-iters-warmup", 1, "--num-iters", 2, "--kv-cache-memory", 32 << 20, "--quantization", "int8", "--json", out)
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["quantization"] == {"method": "int8", "bits": 8}  # no group size: int8 has none

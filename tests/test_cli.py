"""The `ruvon` executable as users run it: real processes, real exit codes, no tracebacks."""
import json
import os
import subprocess
import sys

import pytest
import torch
from transformers import GPT2LMHeadModel

from ruvon.loading import load_tokenizer


def ruvon(*args, timeout=300):
    exe = os.path.join(os.path.dirname(sys.executable), "ruvon")
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=os.environ.copy())


def hf_greedy_text(path, prompt, n):
    tok = load_tokenizer(path)
    ids = tok.encode(prompt)
    hf = GPT2LMHeadModel.from_pretrained(path, dtype=torch.float32).eval()
    out = hf.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=n, pad_token_id=tok.eos_token_id)[0, len(ids):]
    return tok.decode(out.tolist())


def test_generate_prints_hf_greedy_continuation(standin_6l):
    r = ruvon("generate", standin_6l, "ROMEO:", "--max-tokens", 30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == hf_greedy_text(standin_6l, "ROMEO:", 30) + "\n"


def test_no_cache_and_no_stream_print_the_same(standin_2l):
    args = ("generate", standin_2l, "First Citizen:", "--max-tokens", 20)
    outs = {ruvon(*args, *extra).stdout for extra in ((), ("--no-cache",), ("--no-stream",))}
    assert len(outs) == 1 and outs.pop() == hf_greedy_text(standin_2l, "First Citizen:", 20) + "\n"


def test_stats_go_to_stderr(standin_2l):
    r = ruvon("generate", standin_2l, "hello", "--max-tokens", 5, "--stats", "--ignore-eos")
    assert r.returncode == 0 and "5 generated tokens" in r.stderr and "tokens/s" in r.stderr


def test_dummy_weights_generate():
    r = ruvon("generate", "distilgpt2", "hello", "--max-tokens", 3, "--load-format", "dummy", "--ignore-eos")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("args, message", [
    (("generate", "no-such-org/no-such-model", "hi"), "not found"),
    (("generate", "gpt2", "hi"), "--load-format dummy"),
    (("generate", "STANDIN", "ROMEO: " * 600), "context holds 1024"),
    (("generate", "STANDIN", "hi", "--max-tokens", "-3"), "--max-tokens must be at least 1"),
    (("generate", "STANDIN", "hi", "--dtype", "float7"), "unknown dtype"),
    (("generate", "STANDIN", "hi", "--load-format", "pickle"), "unknown load_format"),
    (("info", "./no/such/dir"), "does not exist"),
    (("serve", "STANDIN", "--block-size", "0"), "block_size (--block-size) must be an integer of at least 1, got 0"),
    (("serve", "STANDIN", "--max-model-len", "0"), "max_model_len (--max-model-len) must be an integer of at least 2"),
    (("serve", "STANDIN", "--max-model-len", "4096", "--max-num-batched-tokens", "4096"), "must be at most the model's context length (n_positions = 1024)"),
    (("serve", "STANDIN", "--attention-backend", "flsh"), "attention_backend (--attention-backend) must be one of"),
    (("bench", "latency", "STANDIN", "--max-model-len", "8", "--input-len", "8", "--output-len", "4"), "exceed the context of 8 tokens (max_model_len, --max-model-len)"),
    (("serve", "STANDIN", "--max-gpu-memory", "0"), "max_gpu_memory (--max-gpu-memory) must be a positive number of bytes, got 0"),
    (("serve", "STANDIN", "--device", "cpu", "--max-gpu-memory", "2GiB"), "max_gpu_memory (--max-gpu-memory) applies to a CUDA device, got cpu"),
    (("generate", "gpt2", "hi", "--load-format", "dummy", "--device", "cpu", "--max-gpu-memory", "2147483648"), "applies to a CUDA device, got cpu"),
    (("bench", "throughput", "STANDIN", "--device", "cpu", "--max-gpu-memory", "512MiB"), "applies to a CUDA device, got cpu"),
])
def test_bad_input_is_one_line(standin_2l, args, message):
    r = ruvon(*[standin_2l if a == "STANDIN" else a for a in args])
    assert r.returncode == 1
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_unparseable_number_is_a_usage_error(standin_2l):
    r = ruvon("generate", standin_2l, "hi", "--max-tokens", "many")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "Error: Invalid value for '--max-tokens'" in r.stderr.splitlines()[-1]


def test_bytes_without_a_binary_unit_is_a_usage_error(standin_2l):
    r = ruvon("serve", standin_2l, "--max-gpu-memory", "2GB")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "Error: Invalid value for '--max-gpu-memory': expected bytes, as 2147483648, 2GiB or 512MiB, got '2GB'" in r.stderr.splitlines()[-1]


def test_info_json():
    r = ruvon("info", "gpt2-xl", "--json")
    facts = json.loads(r.stdout)
    assert facts["parameters"] == 1_557_611_200 and facts["n_layer"] == 48 and facts["weights_available"] is False
    assert facts["kv_cache_bytes_per_token"]["float16/bfloat16"] == 2 * 48 * 1600 * 2


def test_serve_exits_when_the_model_cannot_load(standin_2l):
    "A KV budget too small for one context: `ruvon serve` says why and exits 1, instead of answering 503 forever."
    import socket
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    exe = os.path.join(os.path.dirname(sys.executable), "ruvon")
    r = subprocess.run([exe, "serve", str(standin_2l), "--device", "cpu", "--port", str(port), "--kv-cache-memory", "1000"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "error: model failed to load" in r.stderr and "one 1024-token sequence needs" in r.stderr, r.stderr

"""`ruvon bench` as users run it: real processes on the stand-in checkpoint, tiny CPU workloads, the JSON checked."""
import json
import os
import subprocess
import sys

import pytest

STATS = {"mean", "p50", "p90", "p99"}


def ruvon(*args, timeout=300):
    exe = os.path.join(os.path.dirname(sys.executable), "ruvon")
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=os.environ.copy())


def check_header(result, benchmark):
    assert result["benchmark"] == benchmark and result["command"].startswith(f"ruvon bench {benchmark} ")
    assert result["device"] == "cpu" and result["device_name"].startswith("CPU (") and result["dtype"] == "float32"
    assert result["torch"] and result["transformers"] and result["load_format"] == "auto"
    assert result["peak_memory_kind"].startswith("process peak RSS")


def test_throughput_with_hf_baseline(tmp_path, standin_6l):
    out = tmp_path / "throughput.json"
    r = ruvon("bench", "throughput", standin_6l, "--num-prompts", 4, "--input-len-range", 8, 16, "--output-len", 4,
              "--max-num-seqs", 4, "--device", "cpu", "--baseline", "hf", "--json", out)
    assert r.returncode == 0, r.stderr
    assert "output_tokens_per_s" in r.stdout and "ruvon / hf" in r.stdout
    result = json.loads(out.read_text())
    check_header(result, "throughput")
    assert result["config"]["max_num_seqs"] == 4 and result["config"]["attention_backend"] == "auto"
    assert result["workload"] == {"num_prompts": 4, "input_len": [8, 16], "output_len": [4, 4], "ignore_eos": True, "seed": 0}
    ours, base = result["metrics"], result["baseline"]["metrics"]
    assert set(ours) == set(base)
    for m in (ours, base):
        assert m["num_requests"] == 4 and m["num_output_tokens"] == 4 * 4 and 4 * 8 <= m["num_prompt_tokens"] <= 4 * 16
        assert all(set(m[k]) == STATS for k in ("ttft_ms", "tpot_ms", "e2e_latency_ms"))
        assert 0 < m["ttft_ms"]["mean"] <= m["e2e_latency_ms"]["mean"] <= m["elapsed_s"] * 1e3
        assert m["output_tokens_per_s"] == pytest.approx(16 / m["elapsed_s"]) and m["peak_memory_bytes"] > 0
    assert ours["kv_capacity_tokens"] % 16 == 0 and base["kv_capacity_tokens"] >= ours["kv_capacity_tokens"]
    assert result["baseline"]["token_agreement"] == 1.0  # float32: the same greedy tokens
    assert result["speedup"]["output_tokens_per_s"] == pytest.approx(ours["output_tokens_per_s"] / base["output_tokens_per_s"])


def test_latency_with_hf_baseline(tmp_path, standin_6l):
    out = tmp_path / "latency.json"
    r = ruvon("bench", "latency", standin_6l, "--batch-size", 2, "--input-len", 8, "--output-len", 4,
              "--num-iters-warmup", 1, "--num-iters", 2, "--max-num-seqs", 2, "--device", "cpu", "--baseline", "hf", "--json", out)
    assert r.returncode == 0, r.stderr
    result = json.loads(out.read_text())
    check_header(result, "latency")
    ours, base = result["metrics"], result["baseline"]["metrics"]
    assert set(ours) == set(base)
    for m in (ours, base):
        assert m["num_iters"] == 2 and m["num_output_tokens_per_iter"] == 2 * 4
        assert all(set(m[k]) == STATS for k in ("latency_s", "ttft_ms", "tpot_ms"))
        assert m["ttft_ms"]["mean"] < m["latency_s"]["mean"] * 1e3
        assert m["output_tokens_per_s"] == pytest.approx(8 / m["latency_s"]["mean"])
    assert result["baseline"]["token_agreement"] == 1.0
    assert result["speedup"]["latency"] == pytest.approx(base["latency_s"]["mean"] / ours["latency_s"]["mean"])


@pytest.mark.parametrize("args, message", [
    (("throughput", "--num-prompts", 0), "num_prompts must be at least 1"),
    (("throughput", "--input-len-range", 16, 8), "is empty"),
    (("throughput", "--input-len", 900, "--output-len", 200), "exceed the context of 1024 tokens (max_model_len"),
    (("throughput", "--baseline", "vllm"), "unknown baseline 'vllm'"),
    (("latency", "--input-len", 1000, "--output-len", 100), "exceed the context of 1024 tokens (max_model_len"),
    (("latency", "--attention-backend", "xformers"), "attention_backend (--attention-backend) must be one of auto, eager, sdpa, flash, triton"),
    (("latency", "--attention-backend", "triton", "--device", "cpu"), "the triton attention backend needs a CUDA GPU"),
])
def test_bad_options_are_one_line(standin_2l, args, message):
    r = ruvon("bench", args[0], standin_2l, *args[1:])
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr

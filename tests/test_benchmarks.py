"""The benchmark scripts stay runnable: a tiny CPU run of each writes well-formed JSON (no speed is asserted)."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("script, args", [
    ("kv_cache.py", ["--lengths", "4", "8", "--repeats", "1"]),
    ("prefill_batching.py", ["--batch-sizes", "1", "3", "--repeats", "1", "--max-len", "40"]),
])
def test_benchmark_script_runs(tmp_path, standin_2l, script, args):
    out = tmp_path / "result.json"
    subprocess.run([sys.executable, str(BENCH / script), "--model", str(standin_2l), "--device", "cpu", "--json", str(out), *args],
                   check=True, capture_output=True, text=True, timeout=300)
    result = json.loads(out.read_text())
    assert result["device"] == "cpu" and result["command"].startswith("python") and len(result["rows"]) == 2


def test_attention_backends_script_runs(tmp_path):
    out = tmp_path / "result.json"
    subprocess.run([sys.executable, str(BENCH / "attention_backends.py"), "--device", "cpu", "--out", str(out),
                    "--lengths", "16", "32", "--repeats", "1"], check=True, capture_output=True, text=True, timeout=300)
    result = json.loads(out.read_text())
    assert result["device"] == "cpu" and result["command"].startswith("python") and result["backends"] == ["eager", "sdpa"]
    assert len(result["rows"]) == 2 * 2 and len(result["chunk_rows"]) == 2 * 3
    assert all(r["ms"] > 0 and r["peak_mib"] > 0 for r in result["rows"] + result["chunk_rows"])


def test_cost_sweep_script_runs(tmp_path, standin_2l):
    "A real `ruvon serve`, priced at two levels: each level was charged exactly the tokens its requests received."
    out = tmp_path / "result.json"
    subprocess.run([sys.executable, str(BENCH / "cost_sweep.py"), "--model", str(standin_2l), "--device", "cpu", "--json", str(out),
                    "--concurrency", "1", "2", "--input-len", "8", "--output-len", "4", "--duration", "1"],
                   check=True, capture_output=True, text=True, timeout=300)
    result = json.loads(out.read_text())
    assert result["command"].startswith("python") and result["device_name"].startswith("CPU") and result["gpu_cost_per_hour"] == 2.5
    assert [lv["concurrency"] for lv in result["levels"]] == [1, 2]
    for lv in result["levels"]:
        assert lv["num_errors"] == 0 and lv["output_tokens_charged"] == lv["num_output_tokens"] > 0 and lv["usd_per_1m_output_tokens"] > 0


def test_multi_lora_script_runs(tmp_path, standin_2l):
    "Part 18's benchmark on the 2-layer stand-in: every engine and PEFT measured, the ratios computed from them."
    out = tmp_path / "result.json"
    subprocess.run([sys.executable, str(BENCH / "multi_lora.py"), "--model", str(standin_2l), "--load-format", "auto", "--device", "cpu",
                    "--dtype", "float32", "--num-loras", "3", "--rank", "8", "--num-prompts", "6", "--input-len", "8", "--output-len", "4",
                    "--peft-batch", "3", "--runs", "2", "--max-num-batched-tokens", "16", "--json", str(out)],
                   check=True, capture_output=True, text=True, timeout=300)
    r = json.loads(out.read_text())
    assert r["device"] == "cpu" and r["num_loras"] == 3 and r["pool_bytes"] > 0 and r["runs"] == 2 and r["kv_cache_memory"] > 0
    assert r["max_num_batched_tokens"] == 16 and r["lora"]["steps"]["admission"]["num_steps"] >= 3  # 48 prompt tokens, 16 a step
    for key in ("base", "merged", "lora", "lora_engine_base_requests"):
        runs = r[key]["runs"]  # one number per interleaved round; the median of the two is their mean
        assert r[key]["throughput_tok_s"] == sum(runs["throughput_tok_s"]) / 2 > 0 and r[key]["tpot_s"] == sum(runs["tpot_s"]) / 2 > 0
        assert r[key]["kv_blocks"] == r["base"]["kv_blocks"]  # the same KV pool for every engine
        assert len(r[key]["gc"]["collections_by_generation"]) == 3 and r[key]["gc"]["collections_by_generation"][2] == len(r[key]["gc"]["full_collection_ms"])
    assert r["peft"]["throughput_tok_s"] > 0
    assert r["ratios"]["lora_tpot_over_base"] == r["lora"]["tpot_s"] / r["base"]["tpot_s"]
    refused = subprocess.run([sys.executable, str(BENCH / "multi_lora.py"), "--device", "cpu", "--kernels", "--json", str(out)], capture_output=True, text=True)
    assert refused.returncode == 2 and "--kernels times GPU kernels: it needs a CUDA device" in refused.stderr


def test_multi_lora_profile_runs(tmp_path, standin_2l):
    "Part 18's benchmark with --profile-steps on the 2-layer stand-in: both engines' first steps profiled instead of timed, the host's busiest ops named."
    out = tmp_path / "profile.json"
    subprocess.run([sys.executable, str(BENCH / "multi_lora.py"), "--model", str(standin_2l), "--load-format", "auto", "--device", "cpu",
                    "--dtype", "float32", "--num-loras", "2", "--rank", "8", "--num-prompts", "4", "--input-len", "8", "--output-len", "4",
                    "--profile-steps", "3", "--json", str(out)], check=True, capture_output=True, text=True, timeout=300)
    r = json.loads(out.read_text())
    assert "base" not in r and "ratios" not in r  # profiled, not timed
    for k in ("base", "lora"):
        prof = r[f"{k}_profile"]
        assert prof["steps"] == 3 and prof["admission_steps"] >= 1 and prof["wall_ms"] > 0 and prof["gpu_busy_ms"] == 0  # on a CPU: no GPU
        assert prof["top_host_ops"] and all(op["calls"] > 0 for op in prof["top_host_ops"])


def test_modest_gpu_script_runs(tmp_path, standin_2l):
    "Part 17's demo on the CPU: a real `ruvon serve` sized and load-tested, and a cap refused in one line (a cap needs a GPU)."
    out = tmp_path / "result.json"
    subprocess.run([sys.executable, str(BENCH / "modest_gpu.py"), "--device", "cpu", "--models", str(standin_2l), "--load-format", "auto",
                    "--dtype", "float32", "--quantizations", "none", "--caps", "none,1GiB", "--prompt-words", "50", "--max-tokens", "4",
                    "--duration", "1", "--max-users", "4", "--json", str(out)], check=True, capture_output=True, text=True, timeout=300)
    r = json.loads(out.read_text())
    assert r["command"].startswith("python") and r["device_name"].startswith("CPU") and len(r["cases"]) == 2
    served, capped = r["cases"]
    assert served["fits"] and served["kv_tokens"] == served["num_gpu_blocks"] * served["block_size"] > 0
    assert served["contexts_1024"] == served["kv_tokens"] / 1024 and served["loadtest"]["concurrency"] == 4
    assert served["loadtest"]["num_ok"] > 0 and served["loadtest"]["num_errors"] == 0 and served["loadtest"]["output_tokens_per_s"] > 0
    assert not capped["fits"] and capped["max_gpu_memory"] == 1 << 30
    assert capped["error"] == "error: max_gpu_memory (--max-gpu-memory) applies to a CUDA device, got cpu"
    table = subprocess.run([sys.executable, str(BENCH / "modest_gpu.py"), "--table", str(out)], check=True, capture_output=True, text=True).stdout
    assert table.count("\n") == 4 and "| 1 GiB | ruvon-standin-2l | float32 | no: max_gpu_memory" in table


def test_fused_decode_rows_plumbing():
    "Part 12b's benchmark needs a GPU; on CPU: it parses, refuses bad row flags before touching CUDA, and each few-row tile it sweeps runs right."
    import importlib.util
    spec = importlib.util.spec_from_file_location("fused_decode", BENCH / "fused_decode.py")
    bench = importlib.util.module_from_spec(spec); spec.loader.exec_module(bench)
    for bad in (["--sweep-rows", "2,9"], ["--buckets", "3"], ["--rows", "0"], ["--sweep-models", "gpt2,gpt3"], ["--sweep-models", ","]):
        r = subprocess.run([sys.executable, str(BENCH / "fused_decode.py"), "--json", "x.json", *bad], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and bad[0] in r.stderr
    assert [v[1] for v in bench.step_variants("gpt2-xl", rows_buckets=[1, 2])] == [None, "default", "rows"]
    assert [v[1] for v in bench.step_variants("gpt2", rows_buckets=[1, 2])] == [None, "default"]
    assert bench.rows_config(4, 1600, 6400)["kernel"] == "rows" and bench.linear_config(4, 1600, 6400)["kernel"] == "dot"  # switched on only inside
    g = torch.Generator().manual_seed(0)
    x, w, b, lw, lb = (torch.randn(*s, generator=g) for s in [(3, 600), (40, 600), (40,), (600,), (600,)])
    ref = bench.linear_reference(x, w, bias=b, gelu=True, ln=(lw, lb, 1e-5))
    for c in bench.ROWS_CONFIGS:
        torch.testing.assert_close(bench.linear_kernel(x, w, bias=b, gelu=True, ln=(lw, lb, 1e-5), config=c), ref, atol=1e-4, rtol=1e-4)
    fast, slow = bench.ROWS_CONFIGS[0], bench.ROWS_CONFIGS[1]  # a sweep where the rows kernel wins at 4 rows and loses at 8
    tuned = bench.rows_tuned_config([{"M": 4, "N": 40, "K": 600, "best": fast, "best_ms": 1.0, "dot_ms": 2.0},
                                     {"M": 8, "N": 40, "K": 600, "best": slow, "best_ms": 3.0, "dot_ms": 2.0}])
    assert tuned(3, 40, 600) == fast and tuned(4, 40, 600) == fast                # 3 rows pad to 4: the 4-row tile
    assert tuned(5, 40, 600) == bench.dot_config(40, 600)                          # 8 rows lost to tl.dot
    assert tuned(1, 40, 600)["kernel"] == "gemv" and tuned(9, 40, 600)["kernel"] == "dot" and tuned(2, 40, 64)["kernel"] == "dot"
    saved, bench.ruvon.fused.ROWS_GEMV_MAX_ROWS = bench.ruvon.fused.ROWS_GEMV_MAX_ROWS, 8  # as the "rows_tuned" step captures it
    try: assert tuned(2, 40, 64) == bench.dot_config(40, 64) and tuned(1, 40, 64)["kernel"] == "gemv"  # untimed shape: tl.dot, not the rows kernel
    finally: bench.ruvon.fused.ROWS_GEMV_MAX_ROWS = saved


def quant_speed_module():
    "benchmarks/quant_speed.py as a module (the scripts are not a package)."
    spec = importlib.util.spec_from_file_location("quant_speed", BENCH / "quant_speed.py")
    module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
    return module


def test_quant_speed_keeps_the_exception_line():
    "quant_speed.py records a failed `ruvon bench` by its exception's line, not by the CUDA footer printed after it."
    quant_speed = quant_speed_module()
    stderr = ("Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
              "torch.AcceleratorError: CUDA error: operation not permitted when stream is capturing\n"
              "Search for `cudaErrorStreamCaptureUnsupported' in the CUDA docs.\nCompile with `TORCH_USE_CUDA_DSA` to enable device-side assertions.\n")
    assert quant_speed.error_line(stderr) == "torch.AcceleratorError: CUDA error: operation not permitted when stream is capturing"
    assert quant_speed.error_line("Usage: ruvon bench\nerror: no such option") == "error: no such option"  # no exception named: the last line
    assert quant_speed.error_line("") is None


def test_quant_speed_passes_num_iters(tmp_path, monkeypatch):
    "--num-iters reaches `ruvon bench latency` as its timed runs, a third of them as warm-up; a failed process is recorded, not raised."
    quant_speed, calls = quant_speed_module(), []
    monkeypatch.setattr(quant_speed, "bench", lambda kind, model, method, out, extra: calls.append((kind, method, extra)) or {"error": "no GPU"})
    quant_speed.main(["--json", str(tmp_path / "q.json"), "--methods", "none,int8", "--num-iters", "6"])
    assert [(kind, method) for kind, method, _ in calls] == [("latency", None), ("throughput", None), ("latency", "int8"), ("throughput", "int8")]
    latency = calls[0][2]
    assert latency[latency.index("--num-iters") + 1] == "6" and latency[latency.index("--num-iters-warmup") + 1] == "2"
    runs = json.loads((tmp_path / "q.json").read_text())["runs"]
    assert runs["gpt2-xl/int8"]["summary"] == {"latency_error": "no GPU", "throughput_error": "no GPU"}


def test_quantized_load_phases_script_runs(tmp_path, standin_2l):
    "Part 17's load diagnostic on the 2-layer stand-in, on the CPU: a float load, then each method's host fill and quantization, timed apart."
    out = tmp_path / "result.json"
    subprocess.run([sys.executable, str(BENCH / "quantized_load_phases.py"), "--model", str(standin_2l), "--device", "cpu",
                    "--methods", "int8,int4", "--json", str(out)], check=True, capture_output=True, text=True, timeout=300)
    result = json.loads(out.read_text())
    assert result["device"] == "cpu" and result["command"].startswith("python")
    assert list(result["seconds"]) == ["float16_dummy_fill_on_device", "int8_float16_dummy_fill_on_host", "int8_quantize_onto_device",
                                       "int4_float16_dummy_fill_on_host", "int4_quantize_onto_device"]
    assert all(s >= 0 for s in result["seconds"].values())

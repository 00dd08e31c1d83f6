"""Part 9 benchmark: causal attention with each available backend, across sequence lengths.

At GPT-2 XL's head shape (25 heads of 64), in float32 on CPU and float16 on CUDA. Two kinds of rows:
prefill (T == S, all queries new) and chunk (T = S // 4 new queries over S keys, where the causal mask
is aligned bottom-right; there `sdpa_bool_mask`, SDPA with an explicit boolean mask, is timed next to
`sdpa`'s `causal_lower_right` to justify that choice). Per row: median milliseconds of --repeats calls
after warm-up, and the peak memory one call allocates (its output included). Examples:

    python benchmarks/attention_backends.py --device cpu --out benchmarks/results/attention_backends_cpu.json
    python benchmarks/attention_backends.py --device cuda --out benchmarks/results/attention_backends_gpu.json
"""
import argparse
import json
import statistics
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from common import device_name

from ruvon.attention import ATTENTION_BACKENDS, available_attention_backends

N_HEAD, HEAD_DIM = 25, 64  # GPT-2 XL
TIMING = {"cpu": "median of --repeats calls after 2 warm-up calls, time.perf_counter",
          "cuda": "median of --repeats calls after 2 warm-up calls, CUDA events"}
MEMORY = {"cpu": "peak bytes allocated during one call (output included): torch.profiler with profile_memory, "
                 "the allocator's 'Total Allocated' over the call's [memory] events (allocated, touched or not)",
          "cuda": "peak bytes allocated during one call (output included): torch.cuda.max_memory_allocated after "
                  "reset_peak_memory_stats, minus memory_allocated before"}


def sdpa_bool_mask(q, k, v):
    "SDPA with an explicit bottom-right boolean mask: the alternative `sdpa_attention` did not pick."
    T, S = q.shape[1], k.shape[1]
    mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(diagonal=S - T)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2)


def make_inputs(batch: int, query_len: int, seq_len: int, device, dtype):
    "q (B, T, H, D) and k, v (B, S, H, D) as the model makes them: views into one fused projection."
    g = torch.Generator(device=device).manual_seed(0)
    qkv = torch.randn(batch, seq_len, 3, N_HEAD, HEAD_DIM, device=device, dtype=dtype, generator=g)
    q, k, v = qkv.unbind(2)
    return q[:, seq_len - query_len:], k, v


def time_ms(fn, device: torch.device, repeats: int) -> float:
    "Median milliseconds of `fn()` after two warm-up calls."
    for _ in range(2): fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(); fn(); end.record(); end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            start = time.perf_counter(); fn(); times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def peak_bytes_cuda(fn, device: torch.device) -> int:
    torch.cuda.synchronize(device); torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    out = fn(); torch.cuda.synchronize(device)
    del out
    return torch.cuda.max_memory_allocated(device) - before


def peak_bytes_cpu(fn) -> int:
    "Peak of the CPU allocator's running total during `fn()`, from the profiler's memory events."
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof: out = fn()
    del out
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        prof.export_chrome_trace(f.name)
        events = [e for e in json.load(open(f.name))["traceEvents"] if e.get("name") == "[memory]"]
    if not events: return 0
    events.sort(key=lambda e: e["ts"])
    start = events[0]["args"]["Total Allocated"] - events[0]["args"]["Bytes"]
    return max(e["args"]["Total Allocated"] for e in events) - start


def measure(name: str, batch: int, query_len: int, seq_len: int, device, dtype, repeats: int) -> dict:
    "One row: a backend's median time and peak memory on one shape (None for both if CUDA runs out of memory)."
    fn = sdpa_bool_mask if name == "sdpa_bool_mask" else ATTENTION_BACKENDS[name]
    row = {"backend": name, "batch_size": batch, "query_len": query_len, "seq_len": seq_len,
           "score_matrix_mib": batch * N_HEAD * query_len * seq_len * 4 / 2**20}  # one fp32 (B, H, T, S) tensor, analytic
    q, k, v = make_inputs(batch, query_len, seq_len, device, dtype)
    call = lambda: fn(q, k, v)
    try:
        with torch.no_grad():
            row["ms"] = time_ms(call, device, repeats)
            row["peak_mib"] = (peak_bytes_cuda(call, device) if device.type == "cuda" else peak_bytes_cpu(call)) / 2**20
    except torch.OutOfMemoryError:
        row.update(ms=None, peak_mib=None, oom=True)
        torch.cuda.empty_cache()
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", required=True, help="where to write the JSON result")
    p.add_argument("--lengths", type=int, nargs="+", help="sequence lengths S (default: 128 … 4096 on CPU, … 8192 on CUDA)")
    p.add_argument("--batch-sizes", type=int, nargs="+", help="default: 1 on CPU, 1 and 8 on CUDA")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)

    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    lengths = args.lengths or [128, 256, 512, 1024, 2048, 4096] + ([8192] if device.type == "cuda" else [])
    batch_sizes = args.batch_sizes or ([1, 8] if device.type == "cuda" else [1])
    backends = available_attention_backends(device, dtype)
    rows, chunk_rows = [], []
    for b in batch_sizes:
        for s in lengths:
            for name in backends:
                rows.append(measure(name, b, s, s, device, dtype, args.repeats))
                print("prefill", rows[-1], flush=True)
            for name in [*backends, "sdpa_bool_mask"]:
                chunk_rows.append(measure(name, b, max(1, s // 4), s, device, dtype, args.repeats))
                print("chunk  ", chunk_rows[-1], flush=True)
    result = {"benchmark": "attention_backends", "device": str(device), "device_name": device_name(device),
              "dtype": str(dtype).removeprefix("torch."), "torch": torch.__version__, "command": "python " + " ".join(sys.argv),
              "n_head": N_HEAD, "head_dim": HEAD_DIM, "backends": backends, "repeats": args.repeats,
              "timing": TIMING[device.type], "memory": MEMORY[device.type],
              "score_matrix_mib": "analytic size of one float32 (B, H, T, S) tensor, for reference",
              "rows": rows, "chunk_rows": chunk_rows}
    with open(args.out, "w") as f: json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()

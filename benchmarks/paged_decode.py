"""Part 12 benchmark: the Triton paged decode kernel against the torch reference, the same kernel on a
contiguous cache, SDPA on a contiguous cache, and the GPU's copy bandwidth, over batch x context.

Times come from CUDA-graph replays (triton.testing.do_bench_cudagraph), so they are GPU time without
launch overhead: what the kernel costs inside Part 13c's captured decode step. Example:

    python benchmarks/paged_decode.py --json benchmarks/results/paged_decode_gpu.json
"""
import argparse
import json
import sys

import torch
import torch.nn.functional as F
import triton
from triton.testing import do_bench_cudagraph

from ruvon.kernels import paged_decode_attention, paged_decode_reference

CONFIGS = [(256, 64, 4), (512, 64, 4), (128, 64, 4), (256, 32, 4), (256, 128, 4), (256, 64, 8), (256, 64, 2), (512, 128, 8),
           (64, 64, 4), (64, 32, 4), (64, 64, 2), (128, 32, 4), (128, 64, 2), (32, 32, 2)]


def copy_bandwidth_gbs(nbytes: int = 1 << 30) -> float:
    "Device-to-device copy of `nbytes`: bytes read + written per second, in GB/s."
    src = torch.empty(nbytes // 2, dtype=torch.float16, device="cuda").normal_()
    dst = torch.empty_like(src)
    ms = do_bench_cudagraph(lambda: dst.copy_(src), rep=200, return_mode="median")
    return 2 * nbytes / ms / 1e6


def make_case(batch, context, n_head, head_dim, block_size, contiguous, seed=0):
    "Equal-length contexts; blocks scattered at random over the pool, or consecutive per sequence."
    g = torch.Generator(device="cuda").manual_seed(seed)
    max_blocks = -(-context // block_size)
    num_blocks = batch * max_blocks
    k_cache = torch.randn(num_blocks, block_size, n_head, head_dim, device="cuda", dtype=torch.float16, generator=g)
    v_cache = torch.randn_like(k_cache)
    order = torch.arange(num_blocks, device="cuda") if contiguous else torch.randperm(num_blocks, device="cuda", generator=g)
    tables = order.view(batch, max_blocks).int()
    q = torch.randn(batch, n_head, head_dim, device="cuda", dtype=torch.float16, generator=g)
    lens = torch.full((batch,), context, dtype=torch.int32, device="cuda")
    torch.cuda.synchronize()  # do_bench_cudagraph runs on a side stream that does not wait for these writes
    return q, k_cache, v_cache, tables, lens


def time_ms(fn) -> float: return do_bench_cudagraph(fn, rep=50, return_mode="median")


def tune(points, n_head, head_dim, block_size) -> list[dict]:
    "Time each kernel configuration at a few points (the library's defaults were chosen from this table)."
    rows = []
    for batch, context in points:
        case = make_case(batch, context, n_head, head_dim, block_size, contiguous=False)
        for part, bn, warps in CONFIGS:
            ms = time_ms(lambda: paged_decode_attention(*case, partition_size=part, block_n=bn, num_warps=warps))
            rows.append({"batch": batch, "context": context, "partition_size": part, "block_n": bn, "num_warps": warps, "ms": ms})
    return rows


def sweep_point(batch, context, n_head, head_dim, block_size, copy_bw) -> dict:
    paged = make_case(batch, context, n_head, head_dim, block_size, contiguous=False)
    contig = make_case(batch, context, n_head, head_dim, block_size, contiguous=True)
    kernel = lambda c: paged_decode_attention(*c)  # the library's default configuration
    torch.testing.assert_close(kernel(paged).float(), paged_decode_reference(*paged).float(), atol=2e-3, rtol=0)
    kv_bytes = 2 * batch * context * n_head * head_dim * 2
    triton_ms, contiguous_ms = time_ms(lambda: kernel(paged)), time_ms(lambda: kernel(contig))
    graph_grid_ms = time_ms(lambda: paged_decode_attention(*paged, max_context_len=1024))  # a CUDA graph's grid: GPT-2's whole context
    reference_ms = time_ms(lambda: paged_decode_reference(*paged))
    q, k_cache, v_cache = contig[:3]
    k = k_cache.view(batch, -1, n_head, head_dim)[:, :context].transpose(1, 2)  # (B, H, S, D) views of the contiguous cache
    v = v_cache.view(batch, -1, n_head, head_dim)[:, :context].transpose(1, 2)
    sdpa_ms = time_ms(lambda: F.scaled_dot_product_attention(q[:, :, None], k, v))
    gbs = kv_bytes / triton_ms / 1e6
    return {"batch": batch, "context": context, "kv_mib": kv_bytes / 2**20, "triton_ms": triton_ms, "contiguous_ms": contiguous_ms, "graph_grid_ms": graph_grid_ms,
            "reference_ms": reference_ms, "sdpa_contiguous_ms": sdpa_ms, "triton_gbs": gbs, "fraction_of_copy": gbs / copy_bw,
            "paged_overhead": triton_ms / contiguous_ms - 1, "speedup_vs_reference": reference_ms / triton_ms}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", required=True)
    p.add_argument("--n-head", type=int, default=25)   # GPT-2 XL
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--block-size", type=int, default=16)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16, 64, 256])
    p.add_argument("--contexts", type=int, nargs="+", default=[128, 256, 512, 1024])
    args = p.parse_args(argv)
    copy_bw = copy_bandwidth_gbs()
    tuning = tune([(1, 160), (8, 160), (1, 1024), (16, 1024), (64, 512), (256, 1024)], args.n_head, args.head_dim, args.block_size)
    print(f"copy bandwidth {copy_bw:.0f} GB/s; tuned {len(tuning)} configurations", flush=True)
    rows = []
    for b in args.batches:
        for c in args.contexts:
            print(f"batch {b}, context {c} ...", end=" ", flush=True)  # a crash names the point it happened at
            rows.append(sweep_point(b, c, args.n_head, args.head_dim, args.block_size, copy_bw))
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in rows[-1].items()}), flush=True)
    result = {"benchmark": "paged_decode", "device_name": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
              "command": "python " + " ".join(sys.argv), "dtype": "float16", "n_head": args.n_head, "head_dim": args.head_dim,
              "block_size": args.block_size, "timing": "median of CUDA-graph replays (triton.testing.do_bench_cudagraph)",
              "copy_bandwidth_gbs": copy_bw, "tuning": tuning, "rows": rows}
    with open(args.json, "w") as f: json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()

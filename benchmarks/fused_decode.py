"""Part 12b benchmark: the fused small-batch kernels against the torch/cuBLAS operations they replace, and a
batch-1 / batch-8 decode step of gpt2 and gpt2-xl (dummy float16 weights) with plain and fused blocks.

1. `linear_kernel` over a grid of tile configurations, at every projection shape of gpt2 and gpt2-xl, against
   `F.linear` (cuBLAS) — weight bytes read per second, as a fraction of the copy bandwidth measured here;
2. `layer_norm_kernel` against `F.layer_norm`;
3. CUDA-graph replays of the engine's decode step (Part 13c) with `Block` and with `FusedBlock`, against the
   weight-streaming floor (weight bytes / copy bandwidth), and the kernels of one fused replay.

For the few-row GEMV (12b's `_rows_gemv_kernel`, off while `ROWS_GEMV_MAX_ROWS` is 0):
  --rows 1,2,4,8        the default kernels at these row counts (replaces the usual 1 and 8);
  --sweep-rows 2,4,8    the rows kernel over ROWS_CONFIGS at these row counts, every projection shape: each config checked
                        against the reference, then timed; the best per shape and row count against the tl.dot kernel and
                        the one-row GEMV ("rows_sweep", summarized in "rows_summary");
  --buckets 1,2,4,8     gpt2-xl's decode-step graphs at these batch sizes (= rows) with the rows kernel off ("default") and
                        on ("rows": its first-guess tiles; "rows_tuned", with --sweep-rows: the sweep's best tiles where the
                        rows kernel beat tl.dot, and dot_config where it lost or was not timed);
  --sweep-models gpt2-xl  the models whose shapes the rows sweep covers (gpt2, gpt2-xl; default both).

Kernel times are medians of CUDA-graph replays (triton.testing.do_bench_cudagraph): GPU time, no launch cost.
Run on a GPU:  python benchmarks/fused_decode.py --json benchmarks/results/fused_decode_gpu.json
Few rows:      python benchmarks/fused_decode.py --skip-sweep --rows 1,2,4,8 --sweep-rows 2,4,8 --buckets 1,2,4,8 --json ...
"""
import argparse
import itertools
import json
import sys

import torch
import torch.nn.functional as F
import triton
from triton.testing import do_bench_cudagraph

import functools

from ruvon.cuda_graphs import DecodeGraphs, GraphModelRunner
from ruvon.engine import EngineConfig, LLMEngine
import ruvon.fused
from ruvon.fused import FusedBlock, dot_config, layer_norm_kernel, linear_config, linear_kernel, linear_reference
from ruvon.loading import load_model, load_tokenizer
from ruvon.model import Block

GEMV_CONFIGS = [dict(kernel="gemv", BLOCK_N=bn, BLOCK_K=bk, num_warps=w, num_stages=1)
                for bn, bk, w in itertools.product([4, 8, 16], [512, 1024, 2048], [2, 4, 8])]
DOT_CONFIGS = [dict(kernel="dot", BLOCK_N=bn, BLOCK_K=bk, num_warps=4, num_stages=st)
               for bn, bk, st in itertools.product([16, 32, 64], [64, 128, 256], [3, 5])]
ROWS_CONFIGS = [dict(kernel="rows", BLOCK_N=bn, BLOCK_K=bk, num_warps=w, num_stages=1, ROW_LOOP=loop)  # small: each compiles per row count and epilogue
                for loop, bn, bk, w in [(False, 8, 128, 4), (False, 8, 256, 4), (False, 16, 128, 4), (False, 16, 256, 4), (False, 32, 128, 4),
                                        (True, 8, 256, 4), (True, 8, 512, 4), (True, 8, 1024, 4), (True, 16, 256, 4), (True, 16, 512, 4),
                                        (True, 32, 256, 8)]]
MODELS = {"gpt2": 768, "gpt2-xl": 1600}
default_linear_config = ruvon.fused.linear_config


def time_ms(fn) -> float: return do_bench_cudagraph(fn, rep=30, return_mode="median")
def time_us(fn) -> float: return time_ms(fn) * 1e3


def copy_bandwidth_gbs(nbytes: int = 1 << 30) -> float:
    src = torch.empty(nbytes // 2, dtype=torch.float16, device="cuda").normal_()
    dst = torch.empty_like(src)
    return 2 * nbytes / time_ms(lambda: dst.copy_(src)) / 1e6


def projection_shapes(C: int) -> dict:
    "GPT-2's four projections as (N, K) weights, with the LayerNorm and epilogue each one gets in a `FusedBlock`."
    return {"c_attn": (3 * C, C, {"ln": True}), "attn.c_proj": (C, C, {"residual": True}), "c_fc": (4 * C, C, {"ln": True, "gelu": True}),
            "mlp.c_proj": (C, 4 * C, {"residual": True})}


def weight_copies(N: int, K: int, total_bytes: int = 512 << 20) -> list[torch.Tensor]:
    "Enough distinct (N, K) weights that calling them in turn streams from memory, not from the L2 cache — as a model's layers do."
    return [torch.randn(N, K, device="cuda", dtype=torch.float16) / K**0.5 for _ in range(max(1, min(400, total_bytes // (N * K * 2))))]


def per_call_ms(ws: list[torch.Tensor], x, config=None, **kw) -> float:
    "Time of one call, from a CUDA graph that calls the kernel once per weight copy."
    fn = (lambda: [linear_reference(x, w, **kw) for w in ws]) if config == "torch" else (lambda: [linear_kernel(x, w, config=config, **kw) for w in ws])
    return time_ms(fn) / len(ws)


def linear_rows(copy_bw: float, rows=(1, 8)) -> list[dict]:
    "Every projection shape x batch rows: cuBLAS, the default configuration, and every candidate configuration."
    out = []
    for model, C in MODELS.items():
        for name, (N, K, epi) in projection_shapes(C).items():
            ws, b = weight_copies(N, K), torch.randn(N, device="cuda", dtype=torch.float16)
            for M in rows:
                x, kw = fp16_case(M, N, K, epi, b)
                torch.testing.assert_close(linear_kernel(x, ws[0], **kw), linear_reference(x, ws[0], **kw), atol=2e-2, rtol=2e-2)
                gb = N * K * 2 / 1e9
                row = {"model": model, "projection": name, "N": N, "K": K, "M": M, "weight_mib": N * K * 2 / 2**20, "copies": len(ws),
                       "torch_ms": per_call_ms(ws, x, "torch", **kw), "default_config": linear_config(M, N, K, layer_norm=epi.get("ln", False)), "fused_ms": per_call_ms(ws, x, **kw)}
                if M == 1: row["dot_kernel_ms"] = per_call_ms(ws, x, linear_config(2, N, K), **kw)  # the 2-16-row kernel on one row
                row["torch_fraction_of_copy"] = gb / row["torch_ms"] * 1e3 / copy_bw
                row["fused_fraction_of_copy"] = gb / row["fused_ms"] * 1e3 / copy_bw
                candidates = [c for c in (GEMV_CONFIGS if M == 1 else DOT_CONFIGS) if c["BLOCK_K"] <= 2 * K]
                row["configs"] = [{**c, "ms": per_call_ms(ws, x, c, **kw)} for c in candidates]
                best = min(row["configs"], key=lambda c: c["ms"], default=None)
                print(json.dumps({k: v for k, v in row.items() if k != "configs"} | {"best": best}), flush=True)
                out.append(row)
            del ws; torch.cuda.empty_cache()
    return out


def fp16_case(M: int, N: int, K: int, epi: dict, b: torch.Tensor) -> tuple[torch.Tensor, dict]:
    "An input of M rows and the epilogue keywords a `FusedBlock` passes for this projection."
    x = torch.randn(M, K, device="cuda", dtype=torch.float16)
    return x, dict(bias=b, gelu=epi.get("gelu", False), residual=torch.randn(M, N, device="cuda", dtype=torch.float16) if epi.get("residual") else None,
                   ln=(torch.randn(K, device="cuda", dtype=torch.float16), torch.randn(K, device="cuda", dtype=torch.float16), 1e-5) if epi.get("ln") else None)


def rows_config(M: int, N: int, K: int, layer_norm: bool = False) -> dict:
    "`linear_config` with the few-row kernel switched on up to its limit."
    saved, ruvon.fused.ROWS_GEMV_MAX_ROWS = ruvon.fused.ROWS_GEMV_MAX_ROWS, ruvon.fused.ROWS_GEMV_LIMIT
    try: return default_linear_config(M, N, K, layer_norm)
    finally: ruvon.fused.ROWS_GEMV_MAX_ROWS = saved


def checked_ms(ws: list[torch.Tensor], x, config: dict, **kw) -> dict:
    "Time of one call with `config`, after checking its output against the reference; an error instead if it fails either."
    try:
        torch.testing.assert_close(linear_kernel(x, ws[0], config=config, **kw), linear_reference(x, ws[0], **kw), atol=2e-2, rtol=2e-2)
        return {"ms": per_call_ms(ws, x, config, **kw)}
    except Exception as e:  # a config that does not compile or computes wrong: recorded, left out of the best
        print(f"config {config} failed: {type(e).__name__}: {str(e)[:300]}", flush=True)
        return {"error": f"{type(e).__name__}: {str(e)[:300]}"}


def rows_sweep(copy_bw: float, rows=(2, 4, 8), models=tuple(MODELS)) -> list[dict]:
    "Every projection shape of `models` x row count: the rows kernel over ROWS_CONFIGS, against the tl.dot kernel and the one-row GEMV."
    out = []
    for model, C in ((m, MODELS[m]) for m in models):
        for name, (N, K, epi) in projection_shapes(C).items():
            ws, b = weight_copies(N, K), torch.randn(N, device="cuda", dtype=torch.float16)
            x1, kw1 = fp16_case(1, N, K, epi, b)
            gemv_ms = per_call_ms(ws, x1, **kw1)
            for M in rows:
                x, kw = fp16_case(M, N, K, epi, b)
                dot = dot_config(N, K)
                guess = rows_config(M, N, K, epi.get("ln", False))
                configs = [{**c, **checked_ms(ws, x, c, **kw)} for c in ROWS_CONFIGS + ([guess] if guess not in ROWS_CONFIGS else [])]
                timed = [c for c in configs if "ms" in c]
                best = min(timed, key=lambda c: c["ms"], default=None)
                row = {"model": model, "projection": name, "N": N, "K": K, "M": M, "weight_mib": N * K * 2 / 2**20, "copies": len(ws),
                       "gemv_1row_ms": gemv_ms, "dot_config": dot, "dot_ms": per_call_ms(ws, x, dot, **kw), "first_guess_config": guess,
                       "first_guess_ms": next((c["ms"] for c in timed if {k: v for k, v in c.items() if k != "ms"} == guess), None), "configs": configs}
                if best:
                    row |= {"best": {k: v for k, v in best.items() if k != "ms"}, "best_ms": best["ms"], "best_speedup_over_dot": row["dot_ms"] / best["ms"],
                            "best_over_gemv_1row": best["ms"] / gemv_ms, "best_fraction_of_copy": N * K * 2 / 1e9 / best["ms"] * 1e3 / copy_bw}
                print(json.dumps({k: v for k, v in row.items() if k != "configs"}), flush=True)
                out.append(row)
            del ws; torch.cuda.empty_cache()
    return out


def rows_summary(sweep: list[dict]) -> list[dict]:
    "Per row count: how many shapes the rows kernel's best tile beats tl.dot on, and geometric means of its ratios."
    def gmean(v): return float(torch.tensor(v, dtype=torch.float64).log().mean().exp()) if v else None
    out = []
    for M in sorted({r["M"] for r in sweep}):
        rs = [r for r in sweep if r["M"] == M and "best_ms" in r]
        out.append({"M": M, "shapes": len(rs), "best_faster_than_dot": sum(r["best_ms"] < r["dot_ms"] for r in rs),
                    "geomean_best_speedup_over_dot": gmean([r["best_speedup_over_dot"] for r in rs]),
                    "geomean_best_over_gemv_1row": gmean([r["best_over_gemv_1row"] for r in rs]),
                    "geomean_first_guess_speedup_over_dot": gmean([r["dot_ms"] / r["first_guess_ms"] for r in rs if r["first_guess_ms"]])})
        print(json.dumps(out[-1]), flush=True)
    return out


def rows_tuned_config(sweep: list[dict]):
    """A `linear_config` replacement for 2-8 rows from a rows sweep: for M rows, the sweep's row count M' >= M nearest to it
    (the kernel pads M to a power of two); the rows kernel's best tile where it beat tl.dot there, else `dot_config`.
    2-8 rows of a shape the sweep did not time get `dot_config` too (whatever ROWS_GEMV_MAX_ROWS says); 1 row the
    one-row GEMV and 9-16 rows tl.dot, as `linear_config` gives them."""
    best = {(r["M"], r["N"], r["K"]): r for r in sweep if "best" in r}
    def config(M, N, K, layer_norm=False):
        measured = sorted(m for m, n, k in best if (n, k) == (N, K) and m >= M)
        if M == 1 or M > ruvon.fused.ROWS_GEMV_LIMIT: return default_linear_config(M, N, K, layer_norm)  # never the rows kernel
        if not measured: return dot_config(N, K)
        row = best[(measured[0], N, K)]
        return dict(row["best"]) if row["best_ms"] < row["dot_ms"] else dot_config(N, K)
    return config


def rows_sweep_config(path: str):
    "`rows_tuned_config` of the rows sweep in a result JSON of this script (for other benchmarks: spec_decode.py --rows-sweep)."
    with open(path) as f: return rows_tuned_config(json.load(f)["rows_sweep"])


def tuned_config(rows: list[dict]):
    "A `linear_config` replacement that returns the sweep's fastest configuration for each measured (M, N, K)."
    best = {(r["M"], r["N"], r["K"]): {k: v for k, v in min(r["configs"], key=lambda c: c["ms"]).items() if k != "ms"} for r in rows if r["configs"]}
    return lambda M, N, K, layer_norm=False: best.get((1 if M == 1 else 8, N, K)) or linear_config(M, N, K, layer_norm)


def layer_norm_rows() -> list[dict]:
    out = []
    for C, M in itertools.product(MODELS.values(), (1, 16)):
        x = torch.randn(M, C, device="cuda", dtype=torch.float16)
        w, b = torch.randn(C, device="cuda", dtype=torch.float16), torch.randn(C, device="cuda", dtype=torch.float16)
        torch.testing.assert_close(layer_norm_kernel(x, w, b, 1e-5), F.layer_norm(x, (C,), w, b, 1e-5), atol=1e-2, rtol=1e-2)
        out.append({"C": C, "M": M, "torch_ms": time_ms(lambda: F.layer_norm(x, (C,), w, b, 1e-5)),
                    "fused_ms": time_ms(lambda: layer_norm_kernel(x, w, b, 1e-5))})
        print(json.dumps(out[-1]), flush=True)
    return out


def replay_ms(graph, n: int = 200) -> float:
    e0, e1 = torch.cuda.Event(True), torch.cuda.Event(True)
    graph.replay(); torch.cuda.synchronize(); e0.record()
    for _ in range(n): graph.replay()
    e1.record(); torch.cuda.synchronize()
    return e0.elapsed_time(e1) / n


def set_blocks(model, cls) -> None:
    for block in model.h: block.__class__ = cls


def step_variants(name: str, tuned=None, rows_buckets=(), rows_tuned=None) -> list[tuple]:
    "(blocks, label, linear_config, ROWS_GEMV_MAX_ROWS) for each decode step to capture of model `name`."
    out = [(Block, None, default_linear_config, 0), (FusedBlock, "default", default_linear_config, 0)]
    if tuned: out.append((FusedBlock, "tuned", tuned, 0))
    if rows_buckets and name == "gpt2-xl":
        out.append((FusedBlock, "rows", default_linear_config, ruvon.fused.ROWS_GEMV_LIMIT))
        if rows_tuned: out.append((FusedBlock, "rows_tuned", rows_tuned, ruvon.fused.ROWS_GEMV_LIMIT))
    return out


def decode_step_rows(copy_bw: float, tuned=None, buckets=(1, 8), rows_buckets=(), rows_tuned=None) -> tuple[list[dict], str]:
    "Graph replay time of a decode step, plain vs fused blocks (and, for gpt2-xl, the rows kernel at `rows_buckets`), each sequence at context 160."
    rows, profile, saved_rows = [], "", ruvon.fused.ROWS_GEMV_MAX_ROWS
    for name in MODELS:
        model = load_model(name, load_format="dummy", dtype="float16", device="cuda")
        wbytes = sum(p.numel() * p.element_size() for p in model.parameters())
        engine = LLMEngine(model, load_tokenizer(name), EngineConfig(max_num_seqs=16, kv_cache_memory=2 << 30),
                           runner=functools.partial(GraphModelRunner, decode_mode="padded"))
        model_buckets = sorted({*buckets, *rows_buckets}) if rows_buckets and name == "gpt2-xl" else buckets
        for cls, configs, config_fn, max_rows in step_variants(name, tuned, rows_buckets, rows_tuned):
            set_blocks(model, cls)  # then capture: the graphs record whichever forward the blocks have
            ruvon.fused.linear_config, ruvon.fused.ROWS_GEMV_MAX_ROWS = config_fn, max_rows
            g = DecodeGraphs(model, engine.runner.cache, 16, engine.runner.kernels)
            g.context_lens.fill_(160); g.meta[2, :16] = torch.arange(16, device="cuda")
            g.block_tables.copy_(torch.arange(g.block_tables.numel(), device="cuda").view_as(g.block_tables) % engine.bm.num_blocks)
            for b in model_buckets:
                ms = replay_ms(g.graphs[b])
                rows.append({"model": name, "blocks": cls.__name__, "configs": configs, "batch": b, "replay_ms": ms, "weight_bytes": wbytes,
                             "roofline_ms": wbytes / copy_bw / 1e6, "ratio_to_roofline": ms / (wbytes / copy_bw / 1e6)})
                print(json.dumps(rows[-1]), flush=True)
            if cls is FusedBlock and configs == ("tuned" if tuned else "default") and name == "gpt2-xl":
                from torch.profiler import ProfilerActivity, profile
                with profile(activities=[ProfilerActivity.CUDA]) as prof:
                    g.graphs[1].replay(); torch.cuda.synchronize()
                profile = prof.key_averages().table(sort_by="cuda_time_total", row_limit=14)
            del g; torch.cuda.empty_cache()
        del engine, model; torch.cuda.empty_cache()
    ruvon.fused.linear_config, ruvon.fused.ROWS_GEMV_MAX_ROWS = default_linear_config, saved_rows
    return rows, profile


def int_list(s: str) -> list[int]: return [int(v) for v in s.split(",") if v.strip()]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", required=True)
    p.add_argument("--skip-sweep", action="store_true", help="only the default configurations and the decode steps")
    p.add_argument("--rows", type=int_list, default=[1, 8], help="row counts at which to time each projection's default kernel (default 1,8)")
    p.add_argument("--sweep-rows", type=int_list, default=[], help="row counts (2-8) at which to sweep the few-row GEMV's tiles, e.g. 2,4,8")
    p.add_argument("--sweep-models", type=lambda s: [m for m in s.split(",") if m.strip()], default=list(MODELS),
                   help="models whose projection shapes the rows sweep covers: gpt2, gpt2-xl (default both)")
    p.add_argument("--buckets", type=int_list, default=[], help="gpt2-xl decode-step batch sizes to replay with the few-row GEMV off and on, e.g. 1,2,4,8")
    args = p.parse_args(argv)
    if any(not 1 <= m <= ruvon.fused.MAX_FUSED_ROWS for m in args.rows): p.error(f"--rows: 1 to {ruvon.fused.MAX_FUSED_ROWS}")
    if any(not 2 <= m <= ruvon.fused.ROWS_GEMV_LIMIT for m in args.sweep_rows): p.error(f"--sweep-rows: 2 to {ruvon.fused.ROWS_GEMV_LIMIT}")
    if any(b not in (1, 2, 4, 8, 16) for b in args.buckets): p.error("--buckets: the captured batch sizes 1, 2, 4, 8, 16")
    if not args.sweep_models or any(m not in MODELS for m in args.sweep_models): p.error(f"--sweep-models: a comma-separated list of {', '.join(MODELS)}")
    copy_bw = copy_bandwidth_gbs()
    print(f"copy bandwidth {copy_bw:.0f} GB/s", flush=True)
    if args.skip_sweep: GEMV_CONFIGS.clear(); DOT_CONFIGS.clear()
    result = {"benchmark": "fused_decode", "device_name": torch.cuda.get_device_name(), "torch": torch.__version__,
              "triton": triton.__version__, "command": "python " + " ".join(sys.argv), "dtype": "float16",
              "timing": "kernels: median of CUDA-graph replays (do_bench_cudagraph); steps: mean of 200 graph replays",
              "copy_bandwidth_gbs": copy_bw, "layer_norm": layer_norm_rows(), "linear": linear_rows(copy_bw, args.rows)}
    if args.sweep_rows:
        result["rows_configs"], result["rows_sweep"] = ROWS_CONFIGS, rows_sweep(copy_bw, args.sweep_rows, args.sweep_models)
        result["rows_summary"] = rows_summary(result["rows_sweep"])
    result["decode_steps"], profile = decode_step_rows(copy_bw, tuned_config(result["linear"]) if not args.skip_sweep else None, rows_buckets=args.buckets,
                                                       rows_tuned=rows_tuned_config(result["rows_sweep"]) if args.sweep_rows else None)
    result["fused_profile_gpt2_xl_batch1"] = profile
    print(profile)
    with open(args.json, "w") as f: json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()

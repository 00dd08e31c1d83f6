"""Part 17b benchmark: the W8A16 and W4A16 decode kernels against Part 12b's float16 kernel and bitsandbytes.

For every projection of gpt2 and gpt2-xl, with the LayerNorm and epilogue each one has in a `FusedBlock`
(12b), at M = 1 and 8 rows:
- `linear_kernel` (12b, float16 weights),
- `int8_linear_kernel`, and `int4_linear_kernel` with groups of 128 and of 64 (17b),
- bitsandbytes' `Linear8bitLt` (threshold 6.0) and `Linear4bit` NF4, through 12b's `fused_linear`, which runs a
  module without a kernel of its own with the LayerNorm, GELU and residual add as separate kernels (skipped, with
  a note in the JSON, where bitsandbytes cannot be imported).
Every kernel's output is checked against its reference before it is timed: the Triton kernels against their
torch references (17a's dequantization, then `F.linear`), bitsandbytes against the float16 weights it quantized,
to within its quantization error. Reported: µs per call, and the bytes of the stored weights (integers, scales,
zero points) read per second as a fraction of the copy bandwidth measured here. `--sweep` adds a grid of tiles
for the quantized kernels, each checked too.

Kernel times are medians of CUDA-graph replays (triton.testing.do_bench_cudagraph) of a graph that calls the
kernel once for each of enough weight copies (>= 512 MiB of stored weights, at most 400 copies) that every call
streams its weights from memory, as a model's layers do. A bitsandbytes call that cannot be captured in a CUDA
graph is timed eagerly (triton.testing.do_bench, launch costs included) and marked so.
Run on a GPU:  python benchmarks/quant_kernels.py --json benchmarks/results/quant_kernels_gpu.json [--sweep]
"""
import argparse
import itertools
import json
import sys

import torch
import triton
from torch import nn
from triton.testing import do_bench, do_bench_cudagraph

from fused_decode import MODELS, copy_bandwidth_gbs, projection_shapes
from ruvon.fused import fused_linear, linear_config, linear_kernel, linear_reference
from ruvon.quant_kernels import (int4_linear_kernel, int4_linear_reference, int8_linear_kernel, int8_linear_reference,
                                 quant_linear_config)
from ruvon.quantization import quantize_int4, quantize_int8

DEVICE = "cuda"
ROWS = (1, 8)
FORMATS = {"float16": (linear_kernel, linear_reference), "int8": (int8_linear_kernel, int8_linear_reference),
           "int4-g128": (int4_linear_kernel, int4_linear_reference), "int4-g64": (int4_linear_kernel, int4_linear_reference)}
BNB_METHODS = ("bitsandbytes-int8", "bitsandbytes-nf4")
BNB_TOLERANCE = {"bitsandbytes-int8": 0.03, "bitsandbytes-nf4": 0.2}  # relative error of the output: quantization, not bugs
GEMV_SWEEP = [dict(kernel="gemv", BLOCK_N=bn, BLOCK_K=bk, num_warps=w, num_stages=1)
              for bn, bk, w in itertools.product([4, 8, 16], [1024, 2048, 4096], [2, 4, 8])]
DOT_SWEEP = [dict(kernel="dot", BLOCK_N=bn, BLOCK_K=bk, num_warps=4, num_stages=st)
             for bn, bk, st in itertools.product([16, 32, 64], [64, 128, 256], [3, 5])]


def time_us(fn) -> tuple[float, str]:
    "Median µs of fn from CUDA-graph replays, or of eager calls where fn cannot be captured; and which."
    try: return do_bench_cudagraph(fn, rep=30, return_mode="median") * 1e3, "cudagraph"
    except Exception:  # bitsandbytes paths that synchronize or allocate on the host cannot be captured
        torch.cuda.synchronize()
        return do_bench(fn, rep=30, return_mode="median") * 1e3, "eager"


def nbytes(tensors) -> int: return sum(t.numel() * t.element_size() for t in tensors if torch.is_tensor(t))


def stored_weight(fmt: str, w: torch.Tensor) -> tuple:
    "The arguments that follow x in the format's kernel: the float16 weight, or 17a's quantization of it."
    if fmt == "float16": return (w,)
    if fmt == "int8": return quantize_int8(w)
    group_size = int(fmt.split("-g")[1])
    return (*quantize_int4(w, group_size), group_size)


def copies(parts: tuple, total_bytes: int = 512 << 20) -> list[tuple]:
    "Enough distinct copies of a stored weight that calling them in turn streams from memory, not from the L2 cache."
    n = max(1, min(400, total_bytes // nbytes(parts)))
    return [tuple(p.clone() if torch.is_tensor(p) else p for p in parts) for _ in range(n)]


def check(fmt: str, x, parts, kw: dict, config=None) -> None:
    kernel, reference = FORMATS[fmt]
    torch.testing.assert_close(kernel(x, *parts, config=config, **kw), reference(x, *parts, **kw), atol=2e-2, rtol=2e-2)


def kernel_us(fmt: str, weights: list[tuple], x, kw: dict, config=None) -> dict:
    "Check the kernel on the first copy, then time one call; with the weight bytes per second against copy bandwidth."
    check(fmt, x, weights[0], kw, config)
    kernel = FORMATS[fmt][0]
    us, timing = time_us(lambda: [kernel(x, *parts, config=config, **kw) for parts in weights])
    return {"us": us / len(weights), "timing": timing}


def default_config(fmt: str, M: int, N: int, K: int, layer_norm: bool) -> dict:
    if fmt == "float16": return linear_config(M, N, K, layer_norm)
    return quant_linear_config(M, N, K, 8 if fmt == "int8" else 4, layer_norm)


def sweep_configs(M: int, K: int) -> list[dict]:
    "The sweep's tiles that fit the row; for the GEMVs, only those with at most 256 fp32 values of the tile per thread (more spill)."
    fits = lambda c: c["kernel"] == "dot" or c["BLOCK_N"] * c["BLOCK_K"] <= 256 * 32 * c["num_warps"]
    return [c for c in (GEMV_SWEEP if M == 1 else DOT_SWEEP) if c["BLOCK_K"] <= 2 * triton.next_power_of_2(K) and fits(c)]


def format_result(fmt: str, weights: list[tuple], x, kw: dict, copy_bw: float, sweep: bool) -> dict:
    "One format at one shape: the default configuration, the dot kernel on one row, and the sweep's tiles if asked."
    (M, K), N, wbytes = x.shape, weights[0][0].shape[0], nbytes(weights[0])
    config = default_config(fmt, M, N, K, kw["ln"] is not None)
    res = {"weight_bytes": wbytes, "copies": len(weights), "config": config, **kernel_us(fmt, weights, x, kw, config)}
    res["fraction_of_copy"] = wbytes / res["us"] / 1e3 / copy_bw
    if M == 1: res["dot_kernel_us"] = kernel_us(fmt, weights, x, kw, default_config(fmt, 2, N, K, False))["us"]
    if sweep and fmt != "float16":
        res["sweep"] = [{**c, **kernel_us(fmt, weights, x, kw, c)} for c in sweep_configs(M, K)]
        res["sweep_best"] = min(res["sweep"], key=lambda c: c["us"], default=None)
    return res


def bnb_import():
    "bitsandbytes, or None and why not."
    try:
        import bitsandbytes
        return bitsandbytes, None
    except Exception as e:  # not installed, or installed without a build for this GPU
        return None, f"bitsandbytes could not be imported, its rows are skipped: {e!r}"


def bnb_bytes(module: nn.Module) -> int:
    "Bytes of a bitsandbytes module's stored weight: its integers, and the statistics that rescale them."
    w = module.weight
    state = getattr(w, "quant_state", None)  # Linear4bit's absmax per block (itself quantized: state2)
    return nbytes([w.data, getattr(w, "SCB", None), getattr(state, "absmax", None), getattr(getattr(state, "state2", None), "absmax", None)])


def bnb_copies(method: str, w: torch.Tensor, b: torch.Tensor, total_bytes: int = 512 << 20) -> list[nn.Module]:
    "Distinct bitsandbytes modules holding w and b, as many as `copies` makes of the other formats."
    from ruvon.quantized import bnb_linear
    linear = nn.Linear(w.shape[1], w.shape[0], device=DEVICE, dtype=w.dtype)
    linear.weight.copy_(w); linear.bias.copy_(b)
    modules = [bnb_linear(linear, method, DEVICE)]
    modules += [bnb_linear(linear, method, DEVICE) for _ in range(max(1, min(400, total_bytes // bnb_bytes(modules[0]))) - 1)]
    return modules


def bnb_result(method: str, modules: list[nn.Module], w, x, kw: dict, ln_module, copy_bw: float) -> dict:
    "A bitsandbytes module as 12b's `fused_linear` runs it (LayerNorm, module, GELU, residual), checked against the float16 weights."
    call = lambda m: fused_linear(x, m, ln_module, kw["gelu"], kw["residual"])
    ref = linear_reference(x, w, **kw).float()
    rel = ((call(modules[0]).float() - ref).norm() / ref.norm()).item()
    if not rel <= BNB_TOLERANCE[method]: raise AssertionError(f"{method}: relative error {rel:.3f} over {BNB_TOLERANCE[method]}")
    us, timing = time_us(lambda: [call(m) for m in modules])
    wbytes = bnb_bytes(modules[0])
    return {"weight_bytes": wbytes, "copies": len(modules), "relative_error": rel, "us": us / len(modules), "timing": timing,
            "fraction_of_copy": wbytes / (us / len(modules)) / 1e3 / copy_bw}


def inputs(M: int, N: int, K: int, epilogue: dict, b: torch.Tensor) -> tuple:
    "x (M, K) and the keyword arguments of the projection's call in a `FusedBlock`, with the LayerNorm as a module too."
    f16 = dict(device=DEVICE, dtype=torch.float16)
    x, ln_module = torch.randn(M, K, **f16), nn.LayerNorm(K, eps=1e-5, **f16) if epilogue.get("ln") else None
    if ln_module is not None: ln_module.weight.normal_(); ln_module.bias.normal_()
    kw = dict(bias=b, gelu=epilogue.get("gelu", False), residual=torch.randn(M, N, **f16) if epilogue.get("residual") else None,
              ln=(ln_module.weight, ln_module.bias, ln_module.eps) if ln_module is not None else None)
    return x, kw, ln_module


def shape_rows(model: str, name: str, N: int, K: int, epilogue: dict, copy_bw: float, sweep: bool, use_bnb: bool,
               formats=(*FORMATS, *BNB_METHODS), rows=ROWS) -> list[dict]:
    "The formats and bitsandbytes methods asked for (float16, the baseline, always) at one projection shape, for each row count."
    w, b = torch.randn(N, K, device=DEVICE, dtype=torch.float16) / K**0.5, torch.randn(N, device=DEVICE, dtype=torch.float16)
    stored = {fmt: copies(stored_weight(fmt, w)) for fmt in FORMATS if fmt == "float16" or fmt in formats}
    bnb = {}
    for method in [m for m in BNB_METHODS if m in formats] if use_bnb else ():
        try: bnb[method] = bnb_copies(method, w, b)
        except Exception as e: bnb[method] = f"could not build: {e!r}"
    out = []
    for M in rows:
        x, kw, ln_module = inputs(M, N, K, epilogue, b)
        row = {"model": model, "projection": name, "N": N, "K": K, "M": M, "epilogue": epilogue}
        row |= {fmt: format_result(fmt, weights, x, kw, copy_bw, sweep) for fmt, weights in stored.items()}
        row |= {m: bnb_result(m, mods, w, x, kw, ln_module, copy_bw) if isinstance(mods, list) else {"skipped": mods} for m, mods in bnb.items()}
        print(summary(row), flush=True)
        out.append(row)
    return out


def summary(row: dict) -> str:
    best = lambda v: (f" [sweep best {v['sweep_best']['us']:.2f} µs: BLOCK_N {v['sweep_best']['BLOCK_N']}, BLOCK_K {v['sweep_best']['BLOCK_K']}, "
                      f"{v['sweep_best']['num_warps']} warps, {v['sweep_best']['num_stages']} stages]" if v.get("sweep_best") else "")
    cols = [f"{k} {v['us']:7.2f} µs ({v['fraction_of_copy']:.2f}){best(v)}" for k, v in row.items() if isinstance(v, dict) and "us" in v]
    return f"{row['model']:8} {row['projection']:12} M={row['M']}  " + "  ".join(cols)



def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", required=True)
    p.add_argument("--sweep", action="store_true", help="also time a grid of tiles for the quantized kernels")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS),
                   help="a part of the run (the sweep compiles every tile for every epilogue: it is long, split it by model)")
    p.add_argument("--formats", nargs="+", default=[*FORMATS, *BNB_METHODS], choices=[*FORMATS, *BNB_METHODS],
                   help="formats to time (float16, the baseline, is always timed)")
    p.add_argument("--rows", nargs="+", type=int, default=list(ROWS), help="input rows (batch sizes) to time")
    args = p.parse_args(argv)
    if not torch.cuda.is_available(): sys.exit("this benchmark needs a CUDA GPU")
    bnb, bnb_note = bnb_import()
    copy_bw = copy_bandwidth_gbs()
    print(f"copy bandwidth {copy_bw:.0f} GB/s; µs per call (weight bytes per second as a fraction of it)", flush=True)
    result = {"benchmark": "quant_kernels", "device_name": torch.cuda.get_device_name(), "torch": torch.__version__,
              "triton": triton.__version__, "bitsandbytes": getattr(bnb, "__version__", None), "bitsandbytes_note": bnb_note,
              "command": "python " + " ".join(sys.argv), "dtype": "float16", "rows": args.rows,
              "timing": "median of CUDA-graph replays (do_bench_cudagraph) over all weight copies, divided by the copies; "
                        "'timing': 'eager' marks calls that could not be captured (do_bench, launch costs included)",
              "copy_bandwidth_gbs": copy_bw, "projections": []}
    with torch.no_grad():
        for model in args.models:
            for name, (N, K, epilogue) in projection_shapes(MODELS[model]).items():
                result["projections"] += shape_rows(model, name, N, K, epilogue, copy_bw, args.sweep, bnb is not None, args.formats, args.rows)
                torch.cuda.empty_cache()
                with open(args.json, "w") as f: json.dump(result, f, indent=1)  # after each projection: a partial result survives a timeout


if __name__ == "__main__":
    main()

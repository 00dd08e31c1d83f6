"""Quantized projections at many rows (prompts, large decode batches): Part 17b's tiled `tl.dot` kernels against the path they
replace, on a GPU.

For each projection of one gpt2-xl block (random float16 weights of its shapes), at each row count of `--rows`, it times:

* `float16`: cuBLAS on the float16 weight (`F.linear`), the unquantized engine's call;
* for int8 and int4 (group 128), 17c's module both ways: `kernel`, 17b's dot kernel (what `forward` runs up to
  `QUANT_GEMM_MAX_ROWS` rows, and at any row count through `fused`), and `rebuild`, the module's `dequantized()` weight and then `F.linear` (what it runs past
  them: 17b's one-kernel `int8_dequantize` and `int4_dequantize`; the first run, `quant_gemm_gpu_h100_torch_int8_rebuild.json`,
  rebuilt int8 in PyTorch).

Each call is checked against `F.linear` on the dequantized weight before it is timed, and timed as the median of CUDA-graph
replays (Triton's `do_bench_cudagraph`). The crossover between `kernel` and `rebuild` is where `QUANT_GEMM_MAX_ROWS` belongs.

    python benchmarks/quant_gemm.py --json benchmarks/results/quant_gemm_gpu.json
"""
import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
import triton
from torch import nn

from fused_decode import time_us  # Part 12b's benchmark, beside this file: the median of CUDA-graph replays
from ruvon.bench import result_header
from ruvon.loading import load_config
from ruvon.model import GPT2
from ruvon.quant_kernels import QUANT_GEMM_MAX_ROWS
from ruvon.quantization import PROJECTIONS, QuantizationConfig
from ruvon.quantized import quantized_projection

METHODS = ("int8", "int4")


def check(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    "The kernel and the rebuilt weight compute the same product; only the order of the sums differs."
    err = ((got.float() - want.float()).abs().max() / want.float().abs().max().clamp(min=1e-6)).item()
    if err > 1e-2: raise AssertionError(f"{what}: relative error {err:.3g} against F.linear on the dequantized weight")


def projection_rows(linear: nn.Linear, name: str, rows: list[int]) -> list[dict]:
    "Every row count for one projection: float16, then each method's kernel and rebuild."
    modules = {m: quantized_projection(linear, QuantizationConfig(m)) for m in METHODS}
    out = []
    for M in rows:
        x = torch.randn(M, linear.in_features, device=linear.weight.device, dtype=linear.weight.dtype)
        row = {"projection": name, "rows": M, "K": linear.in_features, "N": linear.out_features,
               "float16_us": time_us(lambda: F.linear(x, linear.weight, linear.bias))}
        for method, q in modules.items():
            want = F.linear(x, q.dequantized(), q.bias)
            check(q.fused(x), want, f"{name} {method} kernel at {M} rows")
            row[f"{method}_kernel_us"] = time_us(lambda: q.fused(x))
            row[f"{method}_rebuild_us"] = time_us(lambda: F.linear(x, q.dequantized(), q.bias))
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="gpt2-xl")
    p.add_argument("--rows", nargs="+", type=int, default=[64, 256, 512, 1024, 2048])
    p.add_argument("--json", required=True)
    args = p.parse_args(argv)
    if not torch.cuda.is_available(): p.error("quant_gemm.py times GPU kernels: it needs a CUDA device")
    torch.manual_seed(0)
    with torch.device("cuda"): model = GPT2(load_config(args.model)).half()   # random weights of the model's shapes
    block = model.h[0]
    result = {**result_header("quant_gemm", args.model, "random", model, "python " + " ".join(sys.argv)), "triton": triton.__version__,
              "quant_gemm_max_rows": QUANT_GEMM_MAX_ROWS, "group_size": QuantizationConfig("int4").group_size,
              "timing": "median of CUDA-graph replays (do_bench_cudagraph), µs per call", "projections": []}
    for parent, name in PROJECTIONS:
        result["projections"] += projection_rows(getattr(getattr(block, parent), name), f"{parent}.{name}", args.rows)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")  # after each projection: a partial result survives a timeout


if __name__ == "__main__":
    main()

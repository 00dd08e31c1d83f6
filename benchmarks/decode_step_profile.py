"""Diagnostic: where one batch-1 decode step's time goes. For each model (dummy fp16 weights, optionally quantized) it
times the engine's batch-1 decode, replays the captured batch-1 CUDA graph alone, compares the replay with the
weight-streaming floor (weight bytes / measured copy bandwidth), and profiles the CUDA kernels of one replay, grouped
by kernel name. The gap between the replay time and the kernels' summed time is time the GPU spends between kernels.

Run on the device as: python benchmarks/decode_step_profile.py [--models gpt2,gpt2-xl] [--quantization none,int8,int4]
(prints; results/decode_step_profile_gpu*.txt hold runs).
"""
import argparse, time, torch
from torch.profiler import profile, ProfilerActivity
from ruvon.llm import LLM
from ruvon.sampling import SamplingParams
from ruvon.quantized import weight_bytes
from fused_decode import copy_bandwidth_gbs, replay_ms  # Part 12b's benchmark, beside this file


def kernel_table(graph, rows: int) -> tuple[float, str]:
    "The CUDA kernels of one replay, grouped by name: (summed kernel µs, printed table)."
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        graph.replay(); torch.cuda.synchronize()
    ev = [e for e in prof.key_averages() if e.device_type.name == "CUDA" and e.self_device_time_total > 0]
    ev.sort(key=lambda e: -e.self_device_time_total)
    total = sum(e.self_device_time_total for e in ev)
    lines = [f"    {e.key[:60]:60s} {e.self_device_time_total:9.1f} µs {100 * e.self_device_time_total / total:5.1f}% {e.count:4d} calls"
             for e in ev[:rows]]
    return total, "\n".join(lines)


def profile_model(name: str, quantization: str | None, bw: float, rows: int):
    llm = LLM(name, load_format="dummy", dtype="float16", quantization=quantization, max_num_seqs=8, kv_cache_memory=4 << 30)
    p = SamplingParams(temperature=0, max_tokens=128, ignore_eos=True)
    llm.generate([[1] * 32], p)
    torch.cuda.synchronize(); t = time.perf_counter(); llm.generate([[1] * 32], p); torch.cuda.synchronize()
    tpot = (time.perf_counter() - t) / 128 * 1e3
    graph = llm.engine.runner.graphs.graphs[1]
    ms, wb = replay_ms(graph), weight_bytes(llm.model)
    floor = wb / bw / 1e6
    kern, table = kernel_table(graph, rows)
    print(f"{name} {quantization or 'fp16'}: engine {tpot:.3f} ms/token; replay b=1 {ms:.3f} ms; kernels {kern / 1e3:.3f} ms "
          f"(between kernels {ms - kern / 1e3:.3f} ms); weights {wb / 1e9:.2f} GB, floor {floor:.3f} ms, replay/floor {ms / floor:.2f}")
    print(table, flush=True)
    del llm; torch.cuda.empty_cache()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="gpt2,gpt2-xl")
    ap.add_argument("--quantization", default="none", help="comma-separated: none, int8, int4, ...")
    ap.add_argument("--rows", type=int, default=14, help="kernel names shown per profile")
    a = ap.parse_args(argv)
    bw = copy_bandwidth_gbs()
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; copy bandwidth {bw:.0f} GB/s")
    for name in a.models.split(","):
        for q in a.quantization.split(","):
            profile_model(name, None if q == "none" else q, bw, a.rows)


if __name__ == "__main__": main()

"""Diagnostic: batch-1 decode of gpt2 and gpt2-xl (dummy fp16 weights) through the engine with and without CUDA
graphs, the graph replay time against the weight-streaming floor, and a CUDA-kernel profile of one replay.

Run on the device as: python benchmarks/decode_step_profile.py (prints; results/decode_step_profile_gpu.txt holds one run).
"""
import time, torch
from ruvon.llm import LLM
from ruvon.sampling import SamplingParams
src = torch.empty(1 << 29, dtype=torch.float16, device="cuda"); dst = torch.empty_like(src)
for _ in range(3): dst.copy_(src)
torch.cuda.synchronize(); e0, e1 = torch.cuda.Event(True), torch.cuda.Event(True); e0.record()
for _ in range(20): dst.copy_(src)
e1.record(); torch.cuda.synchronize(); bw = 20 * 2 * src.nbytes / (e0.elapsed_time(e1) / 1e3) / 1e9
print(f"copy bandwidth {bw:.0f} GB/s")
out = {"copy_gbs": bw}
for name in ["gpt2", "gpt2-xl"]:
    for eager in (False, True):
        llm = LLM(name, load_format="dummy", dtype="float16", max_num_seqs=8, kv_cache_memory=4 << 30, enforce_eager=eager)
        p = SamplingParams(temperature=0, max_tokens=128, ignore_eos=True)
        llm.generate([[1] * 32], p)
        torch.cuda.synchronize(); t = time.perf_counter(); llm.generate([[1] * 32], p); torch.cuda.synchronize(); dt = time.perf_counter() - t
        print(name, "eager" if eager else "graphs", f"{128 / dt:.1f} tok/s", flush=True)
        if not eager:
            g = llm.engine.runner.graphs
            e0.record()
            for _ in range(200): g.graphs[1].replay()
            e1.record(); torch.cuda.synchronize(); ms = e0.elapsed_time(e1) / 200
            wbytes = sum(p.numel() * p.element_size() for p in llm.model.parameters())
            print(f"  replay b=1: {ms:.3f} ms/step; weights {wbytes/1e9:.2f} GB; roofline {wbytes / bw / 1e6:.3f} ms; ratio {ms / (wbytes / bw / 1e6):.2f}", flush=True)
            from torch.profiler import profile, ProfilerActivity
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                g.graphs[1].replay(); torch.cuda.synchronize()
            print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12))
        del llm; torch.cuda.empty_cache()

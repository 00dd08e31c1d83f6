"""Multi-LoRA serving (Part 18) against the base model, same process, same device, with PEFT's unmerged generation as the peer.

The model (default gpt2-xl, dummy fp16 weights) gets `--num-loras` random adapters of rank `--rank` on every projection (B is not
zero, so each update is computed for real). Measured, in one run:

* throughput: `--num-prompts` requests (`--input-len` prompt tokens, `--output-len` output tokens, greedy, ignore_eos) spread
  round-robin over the adapters on Part 18c's `LoRAEngine`, against the same requests on the base engine (Part 13c's
  `GraphModelRunner`; CUDA graphs on a GPU). Also the LoRA engine with every request on the base model (what the slots cost
  unused). Issue #16's target: adapters >= 0.8x the base.
* batch-1 TPOT: one request with an adapter, and without, on the LoRA engine; the base engine for reference. Target <= 1.15x.
* merged: one adapter merged into the weights (Part 18a) on the base engine. Target: the base's speed +-3%.
* PEFT: transformers' GPT2LMHeadModel with the same weights and adapters, unmerged (PeftModel): batch-1 TPOT, and a static batch
  of `--peft-batch` prompts with mixed `adapter_names`.

    python benchmarks/multi_lora.py --json benchmarks/results/multi_lora_gpu.json
    python benchmarks/multi_lora.py --model $RUVON_DATA/checkpoints/ruvon-standin-2l --load-format auto --device cpu \\
        --num-prompts 8 --input-len 16 --output-len 8 --peft-batch 4 --json /tmp/multi_lora_cpu.json      # plumbing check
"""
import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from ruvon.bench import result_header
from ruvon.config import EngineConfig
from ruvon.cuda_graphs import GraphModelRunner
from ruvon.engine import LLMEngine, run_to_completion
from ruvon.loading import CONV1D_WEIGHTS, load_model, load_tokenizer
from ruvon.lora import TARGET_MODULES, LoRAAdapter, LoRAConfig, merge_lora
from ruvon.multi_lora import MAX_LORA_RANKS, LoRAEngine, MultiLoRAConfig, projection_names
from ruvon.outputs import SamplingParams


def sync(device: torch.device) -> None:
    if device.type == "cuda": torch.cuda.synchronize(device)


def random_adapter(model, rank: int, seed: int) -> LoRAAdapter:
    "A rank-`rank` adapter on every projection, with updates about 1% of the weights' scale."
    g = torch.Generator().manual_seed(seed)
    weights = {}
    for name in projection_names(model):
        p = model.get_submodule(name)
        A = torch.randn(rank, p.in_features, generator=g) / p.in_features**0.5
        weights[name] = (A, torch.randn(p.out_features, rank, generator=g) * 0.01)
    return LoRAAdapter(LoRAConfig(rank, rank, TARGET_MODULES, max_lora_rank=rank), weights)


def prompts_for(num: int, input_len: int, vocab: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, vocab, (num, input_len), generator=g).tolist()


def throughput(engine, prompts, output_len: int, lora_names: list | None) -> float:
    "Output tokens/s of all `prompts` at once, greedy, exactly `output_len` tokens each."
    params = SamplingParams(temperature=0, max_tokens=output_len, ignore_eos=True)
    options = None if lora_names is None else [dict(lora_name=n) for n in lora_names]
    sync(engine.runner.device); t0 = time.perf_counter()
    outs = run_to_completion(engine, prompts, [params] * len(prompts), options)
    sync(engine.runner.device)
    return sum(len(o.outputs[0].token_ids) for o in outs) / (time.perf_counter() - t0)


def tpot(engine, prompt: list[int], output_len: int, lora_name: str | None) -> float:
    "Seconds per output token after the first, for one request alone (median of its decode steps)."
    options = {} if lora_name is None else dict(lora_name=lora_name)
    engine.add_request("tpot", prompt, SamplingParams(temperature=0, max_tokens=output_len, ignore_eos=True), **options)
    engine.step()  # the prefill and first token
    steps = []
    while engine.has_unfinished_requests():
        sync(engine.runner.device); t0 = time.perf_counter()
        engine.step()
        sync(engine.runner.device); steps.append(time.perf_counter() - t0)
    return statistics.median(steps)


def best(runs: int, fn, key=max):
    return key(fn() for _ in range(runs))


def free(device: torch.device) -> None:
    "Drop what the last engine held, so the next one sizes its KV cache from the same free memory."
    gc.collect()
    if device.type == "cuda": torch.cuda.empty_cache()


def hf_model(model, peft_adapters: dict[str, LoRAAdapter] | None):
    "transformers' GPT-2 with `model`'s weights (Conv1D transposed back), wrapped by PEFT with `peft_adapters` unmerged if given."
    from transformers import GPT2Config, GPT2LMHeadModel
    cfg = model.config
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.n_positions, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
                                    n_head=cfg.n_head, n_inner=cfg.n_inner, layer_norm_epsilon=cfg.layer_norm_epsilon))
    state = {f"transformer.{k}": (v.t() if k.endswith(CONV1D_WEIGHTS) else v) for k, v in model.state_dict().items() if k != "lm_head.weight"}
    hf.load_state_dict(state, strict=False)
    hf = hf.to(model.wte.weight.device, model.wte.weight.dtype).eval()
    if not peft_adapters: return hf
    from peft import LoraConfig, get_peft_model
    names = list(peft_adapters)
    rank = next(iter(peft_adapters.values())).config.r
    config = LoraConfig(r=rank, lora_alpha=rank, target_modules=list(TARGET_MODULES), fan_in_fan_out=True, lora_dropout=0.0)
    peft = get_peft_model(hf, config, adapter_name=names[0])
    for name in names[1:]: peft.add_adapter(name, config)
    with torch.no_grad():
        for mod_name, module in peft.named_modules():
            if not hasattr(module, "lora_A"): continue
            ours = mod_name.split("transformer.", 1)[1]
            for name, adapter in peft_adapters.items():
                A, B = adapter.weights[ours]
                module.lora_A[name].weight.copy_(A); module.lora_B[name].weight.copy_(B)
    return peft.eval()


def hf_seconds(m, ids: torch.Tensor, new_tokens: int, **kw) -> float:
    sync(ids.device); t0 = time.perf_counter()
    with torch.no_grad(): m.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0, **kw)
    sync(ids.device)
    return time.perf_counter() - t0


def peft_numbers(model, adapters: dict[str, LoRAAdapter], prompts, output_len: int, batch: int, runs: int) -> dict:
    "PEFT unmerged: batch-1 TPOT ((t(n) - t(1)) / (n - 1)) with an adapter and a mixed static batch's output tokens/s."
    device = model.wte.weight.device
    peft = hf_model(model, adapters)
    names = list(adapters)
    one = torch.tensor([prompts[0]], device=device)
    hf_seconds(peft, one, 4, adapter_names=names[:1])  # warm-up
    t_n = best(runs, lambda: hf_seconds(peft, one, output_len, adapter_names=names[:1]), min)
    t_1 = best(runs, lambda: hf_seconds(peft, one, 1, adapter_names=names[:1]), min)
    ids = torch.tensor(prompts[:batch], device=device)
    mixed = [names[i % len(names)] for i in range(batch)]
    t_b = best(runs, lambda: hf_seconds(peft, ids, output_len, adapter_names=mixed), min)
    del peft
    return {"tpot_s": (t_n - t_1) / (output_len - 1), "batch": batch, "throughput_tok_s": batch * output_len / t_b}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="gpt2-xl")
    p.add_argument("--load-format", default="dummy")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="float16")
    p.add_argument("--num-loras", type=int, default=8)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--num-prompts", type=int, default=256)
    p.add_argument("--input-len", type=int, default=128)
    p.add_argument("--output-len", type=int, default=128)
    p.add_argument("--max-num-seqs", type=int, default=256)
    p.add_argument("--peft-batch", type=int, default=32)
    p.add_argument("--runs", type=int, default=2, help="timed repeats; the best is kept")
    p.add_argument("--skip-peft", action="store_true")
    p.add_argument("--json", required=True)
    args = p.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    config = EngineConfig(max_num_seqs=args.max_num_seqs, max_model_len=args.input_len + args.output_len,
                          **({} if device.type == "cuda" else {"kv_cache_memory": 256 << 20}))
    tok = load_tokenizer(args.model)
    fresh = lambda: load_model(args.model, dtype=args.dtype, device=str(device), load_format=args.load_format, seed=0)
    model = fresh()
    adapters = {f"lora{i}": random_adapter(model, args.rank, seed=i) for i in range(args.num_loras)}
    prompts = prompts_for(args.num_prompts, args.input_len, model.config.vocab_size)
    names = [f"lora{i % args.num_loras}" for i in range(args.num_prompts)]
    result = {**result_header("multi_lora", args.model, args.load_format, model, "python " + " ".join(sys.argv)),
              "num_loras": args.num_loras, "rank": args.rank, "num_prompts": args.num_prompts, "input_len": args.input_len,
              "output_len": args.output_len, "max_num_seqs": args.max_num_seqs, "runs": args.runs}

    def measure(engine, lora_names, one_name) -> dict:
        throughput(engine, prompts[:8], 4, None if lora_names is None else lora_names[:8])  # warm-up: compiles, graphs
        return {"throughput_tok_s": best(args.runs, lambda: throughput(engine, prompts, args.output_len, lora_names)),
                "tpot_s": best(args.runs, lambda: tpot(engine, prompts[0], args.output_len, one_name), min),
                "kv_blocks": engine.runner.num_blocks}  # each engine's KV capacity, so the comparison's fairness shows

    base = LLMEngine(model, tok, config, runner=GraphModelRunner)
    result["base"] = measure(base, None, None)
    print("base", result["base"], flush=True)
    del base; free(device); model = fresh()
    merged = LLMEngine(merge_lora(model, adapters["lora0"]), tok, config, runner=GraphModelRunner)
    result["merged"] = measure(merged, None, None)
    print("merged", result["merged"], flush=True)
    del merged; free(device); model = fresh()
    slot_rank = next(r for r in MAX_LORA_RANKS if r >= args.rank)  # the slots' size: the smallest allowed rank that holds the adapters
    engine = LoRAEngine(model, tok, config, lora=MultiLoRAConfig(args.num_loras, slot_rank))
    for name, adapter in adapters.items(): engine.add_lora(name, adapter)
    result["lora"] = measure(engine, names, "lora0")
    print("lora", result["lora"], flush=True)
    result["lora_engine_base_requests"] = measure(engine, [None] * len(prompts), None)
    print("lora engine, base requests", result["lora_engine_base_requests"], flush=True)
    result["pool_bytes"] = engine.runner.lora_slots.nbytes
    del engine; free(device)
    if not args.skip_peft:
        result["peft"] = peft_numbers(fresh(), adapters, prompts, args.output_len, args.peft_batch, args.runs)
        print("peft", result["peft"], flush=True)
    b, l, m = result["base"], result["lora"], result["merged"]
    result["ratios"] = {"lora_throughput_over_base": l["throughput_tok_s"] / b["throughput_tok_s"],
                        "lora_tpot_over_base": l["tpot_s"] / b["tpot_s"],
                        "merged_throughput_over_base": m["throughput_tok_s"] / b["throughput_tok_s"],
                        "merged_tpot_over_base": m["tpot_s"] / b["tpot_s"]}
    if "peft" in result:
        result["ratios"]["peft_tpot_over_lora"] = result["peft"]["tpot_s"] / l["tpot_s"]
    print(json.dumps(result["ratios"], indent=1))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Part 18a's demo adapters: LoRA fine-tunes of the 6-layer stand-in with PEFT, in fp32 on the CPU.

"business" learns the Paul Graham essays, "poetry" Tiny Shakespeare. Each corpus is tokenized whole and split
at the end: the last 10% of its tokens is held out and never trained on. Training draws random windows of
--seq-len tokens from the rest (seeded), with AdamW and a linear warm-up/decay. The adapters are saved with
PEFT's `save_pretrained` (adapter_config.json + adapter_model.safetensors), then loaded back with
`PeftModel.from_pretrained` and scored: held-out perplexity of the base and of each adapter on both corpora,
in non-overlapping windows of --seq-len tokens. Deterministic: a rerun writes the same bytes. Example (3 minutes on
2 quiet CPU cores, about 70 s per adapter; far longer when other processes share the cores):

    python benchmarks/train_lora.py --json benchmarks/results/lora_adapters_cpu.json
"""
import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import peft
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import GPT2LMHeadModel

from ruvon.loading import load_tokenizer

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RUVON_DATA", ROOT.parent / "shared" / "data"))
ADAPTERS = {"business": "paulgraham", "poetry": "tinyshakespeare"}  # adapter -> the corpus it learns
TARGET_MODULES = ["c_attn", "c_proj", "c_fc"]


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(DATA / "checkpoints" / "ruvon-standin-6l"))
    p.add_argument("--out", default=str(ROOT / "adapters"), help="the adapters go to OUT/business and OUT/poetry")
    p.add_argument("--json", required=True, help="where to write the perplexity table")
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=int, default=16)
    p.add_argument("--steps", type=int, default=80)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--held-out", type=float, default=0.1, help="share of each corpus, at its end, never trained on")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def split_corpus(tokenizer, name: str, held_out: float) -> tuple[torch.Tensor, torch.Tensor]:
    "(train ids, held-out ids) of corpus `name`: the held-out part is the last `held_out` share of its tokens."
    ids = torch.tensor(tokenizer.encode((DATA / "corpus" / f"{name}.txt").read_text(encoding="utf-8")))
    cut = len(ids) - int(len(ids) * held_out)
    return ids[:cut], ids[cut:]


def base_model(path: str) -> GPT2LMHeadModel:
    return GPT2LMHeadModel.from_pretrained(path, dtype=torch.float32)


def train_adapter(path: str, train_ids: torch.Tensor, args) -> tuple[PeftModel, list[float]]:
    "A LoRA adapter on the stand-in trained on random windows of `train_ids`: (the PEFT model, the loss every 10 steps)."
    torch.manual_seed(args.seed)
    config = LoraConfig(r=args.rank, lora_alpha=args.alpha, target_modules=TARGET_MODULES, lora_dropout=0.0,
                        bias="none", task_type="CAUSAL_LM", fan_in_fan_out=True)  # GPT-2's Conv1D stores (in, out)
    model = get_peft_model(base_model(path), config).eval()  # no dropout: the stand-in was not trained with it
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    warmup = max(1, args.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warmup, (args.steps - s) / (args.steps - warmup)))
    gen, losses = torch.Generator().manual_seed(args.seed), []
    for step in range(args.steps):
        starts = torch.randint(0, len(train_ids) - args.seq_len, (args.batch_size,), generator=gen)
        x = torch.stack([train_ids[s:s + args.seq_len] for s in starts.tolist()])
        loss = model(input_ids=x, labels=x).loss
        loss.backward(); torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step(); sched.step(); opt.zero_grad()
        if step % 10 == 9: losses.append(round(loss.item(), 4))
    return model.eval(), losses


@torch.no_grad()
def perplexity(model, ids: torch.Tensor, seq_len: int) -> float:
    "exp(mean next-token loss) over non-overlapping windows of `seq_len` tokens (the last, shorter one included)."
    nll, count = 0.0, 0
    for s in range(0, len(ids) - 1, seq_len):
        x = ids[s:s + seq_len][None]
        if x.shape[1] < 2: break
        logits = model(input_ids=x).logits[0, :-1]
        nll += torch.nn.functional.cross_entropy(logits.float(), x[0, 1:], reduction="sum").item()
        count += x.shape[1] - 1
    return math.exp(nll / count)


def portable_base_name(config_path: Path) -> None:
    "PEFT records the base model's path as given (an absolute path on this machine); keep only its directory name."
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = Path(config["base_model_name_or_path"]).name
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def main():
    args = arguments()
    torch.set_num_threads(args.threads)
    transformers.utils.logging.set_verbosity_error(); transformers.utils.logging.disable_progress_bar()
    tokenizer = load_tokenizer(args.model)
    corpora = {name: split_corpus(tokenizer, name, args.held_out) for name in ADAPTERS.values()}
    trained = {}
    for adapter, corpus in ADAPTERS.items():
        t0 = time.perf_counter()
        model, losses = train_adapter(args.model, corpora[corpus][0], args)
        model.save_pretrained(Path(args.out) / adapter)
        (Path(args.out) / adapter / "README.md").unlink(missing_ok=True)  # PEFT's model-card template: nothing but placeholders
        portable_base_name(Path(args.out) / adapter / "adapter_config.json")
        trained[adapter] = {"corpus": corpus, "train_seconds": round(time.perf_counter() - t0, 1), "loss_every_10_steps": losses}
        print(f"{adapter}: trained on {corpus} in {trained[adapter]['train_seconds']} s, last losses {losses[-3:]}", flush=True)
    t0 = time.perf_counter()
    ppl = {"base": {c: perplexity(base_model(args.model).eval(), held, args.seq_len) for c, (_, held) in corpora.items()}}
    for adapter in ADAPTERS:
        model = PeftModel.from_pretrained(base_model(args.model), Path(args.out) / adapter).eval()  # what was saved
        ppl[adapter] = {c: perplexity(model, held, args.seq_len) for c, (_, held) in corpora.items()}
    eval_seconds = round(time.perf_counter() - t0, 1)
    for name, row in ppl.items(): print(f"{name:9}" + "".join(f"  {c} {v:7.2f}" for c, v in row.items()))
    for adapter, corpus in ADAPTERS.items():
        assert ppl[adapter][corpus] < ppl["base"][corpus], f"{adapter} does not beat the base on {corpus}: train better"
    result = {
        "benchmark": "lora_adapters", "command": "python " + " ".join(sys.argv), "device": "cpu", "threads": args.threads,
        "platform": platform.platform(), "python": platform.python_version(),
        "versions": {"torch": torch.__version__, "peft": peft.__version__, "transformers": transformers.__version__},
        "base_model": Path(args.model).name, "dtype": "float32",
        "training": {"rank": args.rank, "lora_alpha": args.alpha, "target_modules": TARGET_MODULES, "lora_dropout": 0.0,
                     "steps": args.steps, "batch_size": args.batch_size, "seq_len": args.seq_len, "lr": args.lr,
                     "optimizer": "AdamW, weight decay 0, linear warm-up (10% of steps) and decay, gradient clipping 1.0",
                     "seed": args.seed, "held_out_share": args.held_out},
        "corpora": {c: {"train_tokens": len(tr), "held_out_tokens": len(held)} for c, (tr, held) in corpora.items()},
        "adapters": trained, "eval_seconds": eval_seconds,
        "perplexity_note": f"held-out perplexity, non-overlapping windows of {args.seq_len} tokens, HF transformers + PEFT, fp32. "
                           "The stand-in was pre-trained on all of tinyshakespeare (held-out part included); paulgraham is new to it.",
        "perplexity": ppl,
    }
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

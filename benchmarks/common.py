"""What every benchmark script shares: the model options, the device's name, and the JSON header."""
import argparse
import platform
import sys

import torch


def model_arguments(description: str) -> argparse.ArgumentParser:
    "An argument parser with the options that choose and place the model, and --json for the result."
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--model", required=True, help="local directory or Hub id")
    p.add_argument("--load-format", default="auto", help="auto, or dummy for random weights")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--json", required=True, help="where to write the result")
    return p


def device_name(device: torch.device) -> str:
    "The GPU's name, or the CPU's architecture and thread count."
    if device.type == "cuda": return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def result_header(name: str, args, model) -> dict:
    "The fields every result JSON starts with: what ran, where, and the command that ran it."
    device = model.wte.weight.device
    return {"benchmark": name, "model": args.model, "load_format": args.load_format, "device": str(device),
            "device_name": device_name(device), "dtype": str(model.wte.weight.dtype).removeprefix("torch."),
            "torch": torch.__version__, "command": "python " + " ".join(sys.argv)}

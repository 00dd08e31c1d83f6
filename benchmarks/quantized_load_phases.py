"""Diagnostic: time a quantized dummy load's two phases apart, the host's fill and the quantization onto the device.

`load_quantized` (Part 17c) stages the float weights of a model on the host with `load_staged` (so that a model too large for a small
GPU in float16 can still be quantized onto it), their numbers drawn on the device (Part 1c's `draw_on`), then quantizes them onto the
device with `quantize_model`; this times the same two calls one by one. `--draw-on host` draws the numbers on the host instead, as
`load_quantized` did before. A float16 dummy load straight onto the device runs first, for comparison (it also pays the
process's one-time start-up on the device).

Run on the device as: python benchmarks/quantized_load_phases.py --methods int8,int4 --json benchmarks/results/quantized_load_phases_gpu_h100_drawn_on_gpu.json
"""
import argparse, json, sys, time, torch
from ruvon.loading import load_model
from ruvon.quantization import QuantizationConfig
from ruvon.quantized import load_staged, quantize_model


def timed(seconds: dict, name: str, make):
    "Run `make()`, record its wall time (after the device has finished) under `name`, and return what it made."
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync(); t0 = time.perf_counter(); out = make(); sync()
    seconds[name] = round(time.perf_counter() - t0, 2); print(f"{name}: {seconds[name]} s", flush=True)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="gpt2-xl")
    p.add_argument("--methods", default="int8,int4")
    p.add_argument("--device", default="cuda")
    p.add_argument("--draw-on", choices=["device", "host"], default="device", help="where the host model's dummy numbers are drawn")
    p.add_argument("--json", required=True)
    args = p.parse_args(argv)
    seconds = {}
    timed(seconds, "float16_dummy_fill_on_device", lambda: load_model(args.model, dtype="float16", device=args.device, load_format="dummy"))
    stage = {"device": lambda: load_staged(args.model, "float16", torch.device(args.device), "dummy"),
             "host": lambda: load_model(args.model, dtype="float16", device="cpu", load_format="dummy")}[args.draw_on]
    for method in args.methods.split(","):
        model = timed(seconds, f"{method}_float16_dummy_fill_on_host", stage)
        timed(seconds, f"{method}_quantize_onto_device", lambda: quantize_model(model, QuantizationConfig(method), args.device))
        del model
    device = torch.cuda.get_device_name() if torch.device(args.device).type == "cuda" else args.device
    result = {"benchmark": "quantized_load_phases", "model": args.model, "device": device, "torch": torch.__version__,
              "host_threads": torch.get_num_threads(), "draw_on": args.draw_on, "command": "python " + " ".join(sys.argv), "seconds": seconds}
    with open(args.json, "w") as f: json.dump(result, f, indent=1); f.write("\n")


if __name__ == "__main__":
    main()

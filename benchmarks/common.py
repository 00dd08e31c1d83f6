"""What every benchmark script shares: the model options, and the device's name and JSON header from `ruvon.bench`."""
import argparse
import sys

from ruvon.bench import device_name  # noqa: F401  (re-exported for the scripts)
from ruvon.bench import result_header as bench_header


def model_arguments(description: str) -> argparse.ArgumentParser:
    "An argument parser with the options that choose and place the model, and --json for the result."
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--model", required=True, help="local directory or Hub id")
    p.add_argument("--load-format", default="auto", help="auto, or dummy for random weights")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--json", required=True, help="where to write the result")
    return p


def result_header(name: str, args, model) -> dict:
    "The fields every result JSON starts with: what ran, where, with which software, and the command that ran it."
    return bench_header(name, args.model, args.load_format, model, "python " + " ".join(sys.argv))

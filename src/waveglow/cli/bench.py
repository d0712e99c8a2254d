"""``waveglow bench``: how fast synthesis runs on this machine
(:func:`waveglow.benchmark.benchmark`)."""

from __future__ import annotations

import argparse
import sys

import torch

from ..backends import PRECISIONS
from .common import warning
from .options import Subparsers, add_count, add_shared, device, positive_number, subparser

DEFAULT_PRECISIONS = ("fp32", "bf16", "auto")
DESCRIPTION = """Measure synthesis speed on this machine with a model: a random mel of SECONDS is
synthesized (fixed noise, streamed in chunks as 'waveglow synthesize' does) in each precision after
a short warm-up, and the best of --repeat wall times is reported as kHz (output samples per second
/ 1000) and x real time (> 1: faster than real time), with the peak memory of the process.
auto shows what it resolves to here. bf16 without bf16 matrix hardware (AVX512-BF16, AMX) and fp16
on a CPU are emulated by torch, tens of times slower: bf16 is then skipped unless asked for by name,
and an emulated precision is measured once on 0.1 s of audio only. Close other programs first:
anything else running slows the figures down."""
EXAMPLES = """examples:
  waveglow bench                                  # the bundled demo model, fp32, bf16, auto
  waveglow bench -c waveglow.pt --seconds 30 --threads 4
  waveglow bench -c waveglow.pt --device cuda --precisions fp32,fp16,bf16"""


def add_bench_parser(subparsers: Subparsers) -> None:
    parser = subparser(
        subparsers, "bench", "how fast synthesis runs on this machine", DESCRIPTION, EXAMPLES, run
    )
    add_shared(
        parser,
        "checkpoint",
        required=False,
        help="WaveGlow checkpoint (ours or NVIDIA's) (default: the bundled demo model)",
        default="demo",
    )
    parser.add_argument(
        "--seconds",
        type=positive_number,
        default=10.0,
        help="length of audio to synthesize per timed run (default: %(default)s)",
    )
    parser.add_argument(
        "--precisions",
        type=precision_list,
        metavar="LIST",
        help=f"comma-separated, of {', '.join(PRECISIONS)} "
        f"(default: {','.join(DEFAULT_PRECISIONS)})",
    )
    add_count(parser, "--threads", "CPU threads (default: torch's choice)")
    add_shared(parser, "device")
    help = "timed runs per precision, the fastest is kept (default: %(default)s)"
    add_count(parser, "--repeat", help, default=2)


def run(args: argparse.Namespace) -> int:
    from ..benchmark import benchmark, machine_info
    from ..checkpoint import load

    target = device(args.device)
    model = load(args.checkpoint, device=target)
    print(machine_info(target, args.threads).line())
    parameters = sum(parameter.numel() for parameter in model.parameters())
    print(f"model {args.checkpoint}: {parameters:,} parameters; {args.seconds:g} s of audio, "
          f"best of {args.repeat} run(s)")  # fmt: skip
    precisions = chosen_precisions(args, target)
    sys.stdout.flush()
    benchmark(
        model,
        seconds=args.seconds,
        precisions=precisions,
        threads=args.threads,
        repeat=args.repeat,
        on_result=lambda outcome: print(outcome.line(), flush=True),
    )
    return 0


def chosen_precisions(args: argparse.Namespace, target: torch.device) -> list[str]:
    """The precisions to measure: by default without an emulated bf16 (one line says so); the
    emulated ones asked for by name get a warning first."""
    from ..benchmark import EMULATED_SECONDS, is_emulated, label

    precisions = list(args.precisions or DEFAULT_PRECISIONS)
    if args.precisions is None and is_emulated("bf16", target):
        precisions.remove("bf16")
        print(f"{'bf16':>10}: skipped: no bf16 matrix hardware here, torch would emulate it very "
              "slowly (measure it anyway with --precisions bf16)")  # fmt: skip
    for precision in precisions:
        if is_emulated(precision, target):
            warning(f"{label(precision, target)} has no matrix hardware on this {target.type}: "
                    f"torch emulates it, tens of times slower than fp32; measuring it once on "
                    f"{min(args.seconds, EMULATED_SECONDS):g} s of audio")  # fmt: skip
    return precisions


def precision_list(text: str) -> list[str]:
    """``fp32,bf16`` as a list without repeats; each name must be one of PRECISIONS."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in PRECISIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown precision {', '.join(unknown) or repr(text)}; choose from {', '.join(PRECISIONS)}"
        )
    return list(dict.fromkeys(names))

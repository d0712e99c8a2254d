"""The ``waveglow`` command line: argparse only; each subcommand wraps one library function.

Adding a subcommand is one ``_add_<name>_parser(subparsers)`` function that registers its options
and sets ``handler`` to one ``_run_<name>(args) -> int`` function; list it in ``_PARSERS``.
Expected errors (bad files, bad configs, bad values) print one line
``waveglow: error: <file>: <problem>`` on stderr and exit with 1; usage errors exit with 2.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

from . import __version__
from .audio import AudioError, InputWarning
from .backends import PRECISIONS
from .checkpoint import CheckpointError
from .config import ConfigError
from .model import DEFAULT_CHUNK_FRAMES

PROGRAM = "waveglow"
EXPECTED_ERRORS = (AudioError, CheckpointError, ConfigError, ValueError, OSError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit code.

    SIGTERM unwinds like an exception (temporary files are removed) and exits with 143; a closed
    stdout (``waveglow info demo | head -1``) ends the command quietly with 0.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # --help, --version (0) or a usage error (2)
        return exit_request.code if isinstance(exit_request.code, int) else 2
    previous = _raise_on_sigterm()
    try:
        code = _run(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        _discard_stdout()
        return 0
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(BaseException):
    """SIGTERM, raised where the program is, so that every ``with`` block cleans up."""


def _run(args: argparse.Namespace) -> int:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", InputWarning)
            warnings.showwarning = _show_warning(warnings.showwarning)
            return args.handler(args)
    except BrokenPipeError:
        raise
    except EXPECTED_ERRORS as error:
        _error(_describe(error))
        return 1
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except Terminated:
        _error("terminated (SIGTERM)")
        return 143


def _raise_on_sigterm() -> Any:
    """Install a SIGTERM handler raising :class:`Terminated`; returns the previous handler
    (None where signals cannot be set: not the main thread)."""

    def terminate(_number: int, _frame: object) -> None:
        raise Terminated

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, terminate)


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit raises no second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="WaveGlow vocoder: Tacotron 2 mel spectrograms to 22050 Hz speech.",
        epilog="Run 'waveglow <command> --help' for a command's options and examples.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROGRAM} {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="<command>", required=True)
    for add_parser in _PARSERS:
        add_parser(subparsers)
    return parser


# ---------------------------------------------------------------------------- synthesize
def _add_synthesize_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = _subparser(
        subparsers,
        "synthesize",
        "mel or audio files to speech",
        """Synthesize speech from mel spectrograms (.pt tensors (80, F) as Tacotron 2 and NVIDIA's
mel2samp.py save them, or .npy arrays) or from audio files (copy synthesis: audio -> mel -> audio,
any sampling rate or channel count). Each INPUT becomes OUTDIR/<stem>_synthesis.wav (16-bit PCM,
clipped to [-1, 1]). A bad input is reported and skipped; the exit code is 1 if any failed.""",
        """examples:
  waveglow synthesize --checkpoint waveglow.pt mels/*.pt -o wavs
  waveglow synthesize --checkpoint waveglow.pt speech.wav -o out --sigma 0.666 --denoise 0.1
  waveglow synthesize -c waveglow.pt mels/*.npy -o wavs --device cuda --batch-size 8 --seed 1""",
    )
    parser.add_argument(
        "--checkpoint",
        "-c",
        required=True,
        metavar="CKPT",
        help="WaveGlow checkpoint (ours or NVIDIA's)",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="mel (.pt, .npy) or audio file")
    parser.add_argument(
        "--output-dir", "-o", required=True, metavar="OUTDIR", help="where the wavs go"
    )
    parser.add_argument(
        "--sigma", type=_non_negative, default=0.6, help="noise scale (default: %(default)s)"
    )
    parser.add_argument(
        "--denoise",
        type=_non_negative,
        default=0.0,
        metavar="STRENGTH",
        help="bias-removal strength, e.g. 0.1 (default: 0, off)",
    )
    parser.add_argument(
        "--seed", type=int, metavar="N", help="seed for reproducible noise (per file)"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1... (default: cpu)")
    parser.add_argument(
        "--batch-size",
        type=_positive,
        default=1,
        metavar="N",
        help="files per forward pass (default: 1)",
    )
    parser.add_argument(
        "--precision",
        choices=tuple(PRECISIONS),
        default="fp32",
        help="precision of the WN matrix products; auto = bf16 on CPUs with bf16 matrix "
        "hardware (AMX, AVX512-BF16) and on CUDA, else fp32 (default: %(default)s)",
    )
    parser.add_argument(
        "--chunk-frames",
        type=_positive,
        default=DEFAULT_CHUNK_FRAMES,
        metavar="N",
        help="longer inputs are streamed to their file in chunks of N mel frames, in bounded "
        "memory (batch size 1, no --denoise) (default: %(default)s, about 12 s)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_synthesize)


def _run_synthesize(args: argparse.Namespace) -> int:
    from .checkpoint import load
    from .synthesize import synthesize_files

    device = _device(args.device)
    model = load(args.checkpoint, device=device)
    report = synthesize_files(
        model,
        args.inputs,
        args.output_dir,
        sigma=args.sigma,
        denoise=args.denoise,
        seed=args.seed,
        batch_size=args.batch_size,
        device=device,
        progress=not args.quiet,
        on_error=_error_line,
        precision=args.precision,
        chunk_frames=args.chunk_frames,
    )
    print(report.summary())
    return 1 if report.failures else 0


# ---------------------------------------------------------------------------- mel
def _add_mel_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = _subparser(
        subparsers,
        "mel",
        "audio files to Tacotron 2 mel spectrograms",
        """Compute the Tacotron 2 log-mel spectrogram of audio files (resampled to the config's
rate, mixed to mono). Each INPUT becomes OUTDIR/<stem>.pt (a float tensor (80, F), what NVIDIA's
inference.py loads) or OUTDIR/<stem>.npy.""",
        """examples:
  waveglow mel speech/*.wav -o mels
  waveglow mel speech.flac -o mels --format npy --config config.json""",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="audio file")
    parser.add_argument(
        "--output-dir", "-o", required=True, metavar="OUTDIR", help="where the mels go"
    )
    parser.add_argument("--format", choices=("pt", "npy"), default="pt", help="(default: pt)")
    parser.add_argument(
        "--config", help="NVIDIA-style config.json whose data_config defines the mel"
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_mel)


def _run_mel(args: argparse.Namespace) -> int:
    from .audio import mel_transform
    from .config import Config, load_config
    from .synthesize import compute_mels

    config = load_config(args.config) if args.config else Config()
    report = compute_mels(
        args.inputs,
        args.output_dir,
        format=args.format,
        transform=mel_transform(config),
        progress=not args.quiet,
        on_error=_error_line,
    )
    done = len(report.results) - len(report.failures)
    print(f"wrote {done} of {len(report.results)} mel file(s) to {args.output_dir}")
    return 1 if report.failures else 0


# ---------------------------------------------------------------------------- convert
def _add_convert_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = _subparser(
        subparsers,
        "convert",
        "any supported checkpoint to our format",
        """Convert a checkpoint (NVIDIA's published or training checkpoints, or ours) to our
self-describing format, with weight norm folded. A DST ending in .safetensors writes
safetensors.""",
        """examples:
  waveglow convert waveglow_256channels_universal_v5.pt waveglow.pt
  waveglow convert waveglow_256channels_universal_v5.pt waveglow.safetensors""",
    )
    parser.add_argument("source", metavar="SRC")
    parser.add_argument("destination", metavar="DST")
    parser.add_argument(
        "--glow-old",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="read an NVIDIA file as glow_old.py did (odd flows' coupling halves swapped), or "
        "with --no-glow-old as glow.py did (default: from the pickled module; a bare state "
        "dict as glow.py)",
    )
    parser.set_defaults(handler=_run_convert)


def _run_convert(args: argparse.Namespace) -> int:
    from .checkpoint import convert

    checkpoint = convert(args.source, args.destination, glow_old=args.glow_old)
    print(f"converted {args.source} ({checkpoint.layout}) to {args.destination}")
    return 0


# ---------------------------------------------------------------------------- info
def _add_info_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = _subparser(
        subparsers,
        "info",
        "describe a checkpoint",
        "Print a checkpoint's layout, configuration and parameter count.",
        "example:\n  waveglow info waveglow.pt",
    )
    parser.add_argument("checkpoint", metavar="CKPT")
    parser.set_defaults(handler=_run_info)


def _run_info(args: argparse.Namespace) -> int:
    from .checkpoint import model_config_dict, read_checkpoint
    from .model import multiply_adds_per_sample

    checkpoint = read_checkpoint(args.checkpoint)
    print(f"file:        {args.checkpoint}")
    print(f"layout:      {checkpoint.layout}")
    print(f"parameters:  {checkpoint.parameter_count:,}")
    print(f"weight norm: {'yes' if checkpoint.has_weight_norm else 'no (folded)'}")
    config = checkpoint.config
    madds = multiply_adds_per_sample(config.waveglow_config, config.data_config)
    print(f"compute:     {madds / 1e3:,.1f} k multiply-adds per output sample")
    if checkpoint.extra:
        print(f"extra:       {', '.join(sorted(map(str, checkpoint.extra)))}")
    if isinstance(checkpoint.extra.get("trained"), dict):
        print("trained:")
        print(json.dumps(checkpoint.extra["trained"], indent=2))
    print("config:")
    print(json.dumps(model_config_dict(checkpoint.config), indent=2))
    return 0


# ---------------------------------------------------------------------------- export
def _add_export_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = _subparser(
        subparsers,
        "export",
        "the synthesis graph as ONNX or TorchScript",
        """Export the deterministic synthesis graph (mel (B, M, F), z (B, G, F*hop/G)) -> audio
(B, F*hop), batch and time axes dynamic. Draw z ~ N(0, sigma^2) yourself (e.g. 0.6 * randn).
ONNX needs the 'export' extra (pip install 'waveglow[export]').""",
        """examples:
  waveglow export --format onnx waveglow.pt waveglow.onnx
  waveglow export --format torchscript waveglow.pt waveglow.ts""",
    )
    parser.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    parser.add_argument("checkpoint", metavar="CKPT")
    parser.add_argument("output", metavar="OUT")
    parser.set_defaults(handler=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from .checkpoint import load
    from .export import export_onnx, export_torchscript

    model = load(args.checkpoint)
    if args.format == "onnx":
        try:
            import onnx  # noqa: F401 - the exporter needs it
        except ImportError:
            raise ValueError(
                "ONNX export needs the onnx package: pip install 'waveglow[export]'"
            ) from None
        export_onnx(model, args.output)
    else:
        export_torchscript(model, args.output)
    print(f"exported {args.checkpoint} as {args.format} to {args.output}")
    return 0


# ---------------------------------------------------------------------------- train
def _add_train_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = _subparser(
        subparsers,
        "train",
        "train a WaveGlow (single process or torchrun)",
        """Train by maximum likelihood. CONFIG is NVIDIA's config.json (or ours); options and
--set override it. Data: LJ Speech, VCTK, LibriTTS, a folder of audio or a filelist. OUTDIR receives
config.json, the train/validation split, checkpoints (waveglow_<step>.pt, best.pt), log.jsonl,
samples/ and (with --tensorboard) logs/. SIGINT/SIGTERM save a checkpoint and stop; --resume then
continues exactly. Several processes: torchrun --nproc_per_node=N -m waveglow train ...""",
        """examples:
  waveglow train --config config.json --data LJSpeech-1.1 -o runs/lj
  waveglow train -o runs/lj --resume
  waveglow train --config config.json --data VCTK-Corpus -o runs/vctk --precision bf16 \\
      --set train_config.batch_size=8 --set train_config.iters_per_validation=500
  waveglow train --config config.json --data lj -o runs/ft --init-from waveglow_256channels.pt
  torchrun --nproc_per_node=4 -m waveglow train --config config.json --data lj -o runs/lj""",
    )
    parser.add_argument("--config", help="config.json (default: OUTDIR/config.json on --resume)")
    parser.add_argument("--data", metavar="PATH", help="dataset folder or filelist")
    parser.add_argument("--output-dir", "-o", metavar="OUTDIR", help="where the run is written")
    parser.add_argument(
        "--precision",
        choices=tuple(PRECISIONS),
        help="auto: bf16 where the hardware multiplies bf16 matrices, else fp32",
    )
    parser.add_argument("--batch-size", type=_positive, metavar="N", help="per process")
    parser.add_argument("--max-iters", type=_positive, metavar="N", help="stop after N steps")
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="CKPT",
        help="continue from CKPT, or from OUTDIR's newest checkpoint",
    )
    parser.add_argument(
        "--init-from", metavar="CKPT", help="warm-start from any checkpoint, fresh optimizer"
    )
    parser.add_argument("--tensorboard", action="store_true", help="log to OUTDIR/logs")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        dest="overrides",
        help="override a config value (repeatable), e.g. train_config.learning_rate=5e-5",
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1... (default: cuda when available)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from .train import TrainingError, apply_overrides, model_overrides, starting_config, train

    config = starting_config(args.config, args.output_dir, args.resume)
    config = apply_overrides(config, _train_overrides(args))
    if args.init_from:
        for key in model_overrides(args.overrides):
            _warning(f"--set {key}: not used: --init-from {args.init_from} keeps that file's "
                     "architecture")  # fmt: skip
    try:
        result = train(
            config,
            resume=args.resume,
            init_from=args.init_from,
            device=_device(args.device) if args.device else None,
            progress_bar=not args.quiet,
        )
    except TrainingError as error:
        _error(_describe(error))
        return 1
    if os.environ.get("RANK", "0") == "0":
        ending = f" (stopped by {result.stopped_by})" if result.stopped_by else ""
        print(
            f"trained to step {result.step}{ending}; validation loss {result.validation_loss:.4f}; "
            f"skipped steps {result.skipped_steps}; checkpoint {result.last_checkpoint}"
        )
    return 0


def _train_overrides(args: argparse.Namespace) -> list[str]:
    """The flags as ``section.key=value`` overrides, applied before the explicit ``--set``s."""
    flags = {
        "data_config.training_files": args.data,
        "train_config.output_directory": args.output_dir,
        "train_config.precision": args.precision,
        "train_config.batch_size": args.batch_size,
        "train_config.max_iters": args.max_iters,
        "train_config.with_tensorboard": True if args.tensorboard else None,
    }
    return [
        f"{key}={json.dumps(value)}" for key, value in flags.items() if value is not None
    ] + list(args.overrides)


# ---------------------------------------------------------------------------- evaluate
def _add_evaluate_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = _subparser(
        subparsers,
        "evaluate",
        "score copy synthesis against the originals (and Griffin-Lim)",
        """Copy synthesis of each audio file (audio -> Tacotron 2 mel -> WaveGlow -> audio), scored
against the original: PESQ wide-band, STOI, ESTOI, mel-cepstral distortion (0-8 kHz), log-mel L1,
multi-resolution STFT distance, and DNSMOS when speechmos can run. The Griffin-Lim baseline
inverts the same mel (60 iterations) and is scored the same way. OUTDIR receives wavs/, plots/
(one PNG of spectrograms per clip), metrics.csv, summary.json and report.md.
Needs the 'eval' extra: pip install 'waveglow[eval]'.""",
        """examples:
  waveglow evaluate --checkpoint waveglow.pt heldout/ -o eval
  waveglow evaluate -c waveglow.pt a.wav b.flac -o eval --baseline none --sigma 0.5 --seed 3""",
    )
    parser.add_argument(
        "--checkpoint",
        "-c",
        required=True,
        metavar="CKPT",
        help="WaveGlow checkpoint (ours or NVIDIA's)",
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="AUDIO", help="audio file or folder of audio files"
    )
    parser.add_argument(
        "--output-dir", "-o", required=True, metavar="OUTDIR", help="where the results go"
    )
    parser.add_argument(
        "--baseline",
        choices=("griffin-lim", "none"),
        default="griffin-lim",
        help="reference system scored alongside (default: %(default)s)",
    )
    parser.add_argument(
        "--sigma", type=_non_negative, default=0.6, help="noise scale (default: %(default)s)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="noise seed, clip i uses N + i (default: 0)",
    )
    parser.add_argument(
        "--denoise",
        type=_non_negative,
        default=0.0,
        metavar="STRENGTH",
        help="NVIDIA's bias denoiser on the WaveGlow output, e.g. 0.1 (default: off)",
    )
    parser.add_argument("--no-dnsmos", action="store_true", help="skip the DNSMOS score")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1... (default: cpu)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from .checkpoint import load
    from .evaluate import MissingExtraError, evaluate, require_eval_extra

    try:
        require_eval_extra()
    except MissingExtraError as error:
        _error(str(error))
        return 1
    model = load(args.checkpoint, device=_device(args.device))
    report = evaluate(
        model,
        args.inputs,
        args.output_dir,
        baseline=args.baseline,
        sigma=args.sigma,
        seed=args.seed,
        denoise=args.denoise,
        dnsmos=not args.no_dnsmos,
        progress=not args.quiet,
        on_error=_error_line,
    )
    print(report.markdown(), end="")
    print(f"results in {args.output_dir}")
    return 1 if report.failures else 0


# ---------------------------------------------------------------------------- bench
_BENCH_DEFAULT_PRECISIONS = ("fp32", "bf16", "auto")


def _add_bench_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = _subparser(
        subparsers,
        "bench",
        "how fast synthesis runs on this machine",
        """Measure synthesis speed on this machine with a model: a random mel of SECONDS is
synthesized (fixed noise, streamed in chunks as 'waveglow synthesize' does) in each precision after
a short warm-up, and the best of --repeat wall times is reported as kHz (output samples per second
/ 1000) and x real time (> 1: faster than real time), with the peak memory of the process.
auto shows what it resolves to here. bf16 without bf16 matrix hardware (AVX512-BF16, AMX) and fp16
on a CPU are emulated by torch, tens of times slower: bf16 is then skipped unless asked for by name,
and an emulated precision is measured once on 0.1 s of audio only. Close other programs first:
anything else running slows the figures down.""",
        """examples:
  waveglow bench                                  # the bundled demo model, fp32, bf16, auto
  waveglow bench -c waveglow.pt --seconds 30 --threads 4
  waveglow bench -c waveglow.pt --device cuda --precisions fp32,fp16,bf16""",
    )
    parser.add_argument(
        "--checkpoint",
        "-c",
        default="demo",
        metavar="CKPT",
        help="WaveGlow checkpoint (ours or NVIDIA's) (default: the bundled demo model)",
    )
    parser.add_argument(
        "--seconds",
        type=_positive_number,
        default=10.0,
        help="length of audio to synthesize per timed run (default: %(default)s)",
    )
    parser.add_argument(
        "--precisions",
        type=_precision_list,
        metavar="LIST",
        help=f"comma-separated, of {', '.join(PRECISIONS)} "
        f"(default: {','.join(_BENCH_DEFAULT_PRECISIONS)})",
    )
    parser.add_argument(
        "--threads", type=_positive, metavar="N", help="CPU threads (default: torch's choice)"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1... (default: cpu)")
    parser.add_argument(
        "--repeat",
        type=_positive,
        default=2,
        metavar="N",
        help="timed runs per precision, the fastest is kept (default: %(default)s)",
    )
    parser.set_defaults(handler=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from .benchmark import benchmark, machine_info
    from .checkpoint import load

    device = _device(args.device)
    model = load(args.checkpoint, device=device)
    print(machine_info(device, args.threads).line())
    parameters = sum(parameter.numel() for parameter in model.parameters())
    print(f"model {args.checkpoint}: {parameters:,} parameters; {args.seconds:g} s of audio, "
          f"best of {args.repeat} run(s)")  # fmt: skip
    precisions = _bench_precisions(args, device)
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


def _bench_precisions(args: argparse.Namespace, device: torch.device) -> list[str]:
    """The precisions to measure: by default without an emulated bf16 (one line says so); the
    emulated ones asked for by name get a warning first."""
    from .benchmark import EMULATED_SECONDS, is_emulated, label

    precisions = list(args.precisions or _BENCH_DEFAULT_PRECISIONS)
    if args.precisions is None and is_emulated("bf16", device):
        precisions.remove("bf16")
        print(f"{'bf16':>10}: skipped: no bf16 matrix hardware here, torch would emulate it very "
              "slowly (measure it anyway with --precisions bf16)")  # fmt: skip
    for precision in precisions:
        if is_emulated(precision, device):
            _warning(f"{label(precision, device)} has no matrix hardware on this {device.type}: "
                     f"torch emulates it, tens of times slower than fp32; measuring it once on "
                     f"{min(args.seconds, EMULATED_SECONDS):g} s of audio")  # fmt: skip
    return precisions


# ---------------------------------------------------------------------------- serve
def _add_serve_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = _subparser(
        subparsers,
        "serve",
        "an HTTP vocoder service with a demo page",
        """Serve a checkpoint over HTTP (needs the serve extra: pip install 'waveglow[serve]'):
POST /v1/synthesize (a mel: .npy/.pt bytes, a form upload or JSON {"mel": [[...]]}),
POST /v1/copy-synthesis and /v1/griffin-lim (an audio file), each returning a 16-bit wav
(stream=true: chunk by chunk as synthesized); GET / (demo page), /healthz, /metrics, /docs.
Concurrent requests are batched on one worker; SIGTERM finishes the requests in flight.""",
        """examples:
  waveglow serve -c demo
  waveglow serve -c waveglow.pt --port 8080 --max-batch 16 --max-seconds 30""",
    )
    parser.add_argument("--checkpoint", "-c", required=True, metavar="CKPT", help="checkpoint")
    parser.add_argument("--host", default="127.0.0.1", help="address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="(default: %(default)s)")
    parser.add_argument(
        "--precision", choices=tuple(PRECISIONS), default="auto", help="(default: auto)"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda... (default: cpu)")
    parser.add_argument("--max-batch", type=_positive, default=8, metavar="N", help="(default: 8)")
    parser.add_argument(
        "--max-seconds", type=_positive_number, default=60.0, help="longest audio (default: 60)"
    )
    parser.add_argument("--queue", type=_positive, default=64, metavar="N", help="(default: 64)")
    parser.add_argument(
        "--max-body-mb", type=_positive_number, default=32.0, help="body size limit (default: 32)"
    )
    parser.add_argument(
        "--chunk-frames",
        type=_positive,
        default=128,
        metavar="N",
        help="synthesis and streaming unit in mel frames (default: %(default)s, about 1.5 s)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="N",
        help="torch threads of the synthesis worker; 1 makes a batched request bit-exact with "
        "the same request alone (default: 0, torch's choice)",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help="require this key on every endpoint but /healthz (Authorization: Bearer KEY, "
        "X-API-Key or Basic); visible to other users in the process list: prefer "
        "--api-key-file or $WAVEGLOW_API_KEY. Keep a TLS proxy in front of a reachable service",
    )
    parser.add_argument(
        "--api-key-file", default=None, metavar="FILE", help="the key: the file's first line"
    )
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let pages of this origin call the service from a browser (repeatable; default: none)",
    )
    parser.add_argument(
        "--debug-batch-delay", type=_non_negative, default=0.0, help=argparse.SUPPRESS
    )
    parser.set_defaults(handler=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    try:
        from .serve import ServeConfig, serve
        from .serve.app import create_app  # noqa: F401 - fails early without the serve extra
        from .serve.auth import resolve_api_key
    except ImportError as error:
        raise ValueError(
            f"serve needs the serve extra: pip install 'waveglow[serve]' ({error})"
        ) from None
    _device(args.device)
    config = ServeConfig(
        checkpoint=args.checkpoint,
        host=args.host,
        port=args.port,
        precision=args.precision,
        device=args.device,
        max_batch=args.max_batch,
        max_seconds=args.max_seconds,
        queue=args.queue,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        chunk_frames=args.chunk_frames,
        threads=args.threads,
        batch_delay_s=args.debug_batch_delay,
        api_key=resolve_api_key(args.api_key, args.api_key_file),
        cors_origins=tuple(args.cors_origin),
    )
    return serve(config)


# ---------------------------------------------------------------------------- helpers
_PARSERS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_synthesize_parser,
    _add_mel_parser,
    _add_convert_parser,
    _add_info_parser,
    _add_export_parser,
    _add_train_parser,
    _add_evaluate_parser,
    _add_bench_parser,
    _add_serve_parser,
)


def _subparser(
    subparsers: argparse._SubParsersAction, name: str, summary: str, description: str, epilog: str
) -> argparse.ArgumentParser:
    return subparsers.add_parser(
        name,
        help=summary,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _non_negative(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_number(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _precision_list(text: str) -> list[str]:
    """``fp32,bf16`` as a list without repeats; each name must be one of PRECISIONS."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in PRECISIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown precision {', '.join(unknown) or repr(text)}; choose from {', '.join(PRECISIONS)}"
        )
    return list(dict.fromkeys(names))


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def _device(name: str) -> torch.device:
    from .backends import resolve_device

    try:
        return resolve_device(name)
    except ValueError as error:
        raise ValueError(f"--{error}") from None


def _describe(error: BaseException) -> str:
    """One line for an expected error; OS errors get ``<file>: <problem>``."""
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    return " ".join(str(error).split()) or type(error).__name__


def _error_line(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"{PROGRAM}: error: {' '.join(message.split())}", file=sys.stderr)


def _show_warning(default: Callable[..., None]) -> Callable[..., None]:
    """A ``warnings.showwarning`` printing an :class:`InputWarning` as one ``warning:`` line."""

    def show(message: Warning | str, category: type[Warning], *args: object, **kwargs: object):
        if not issubclass(category, InputWarning):
            return default(message, category, *args, **kwargs)
        from tqdm import tqdm

        tqdm.write(f"{PROGRAM}: warning: {' '.join(str(message).split())}", file=sys.stderr)
        return None

    return show


def _warning(message: str) -> None:
    print(f"{PROGRAM}: warning: {message}", file=sys.stderr, flush=True)


def _error(message: str) -> None:
    print(f"{PROGRAM}: error: {message}", file=sys.stderr)

"""``waveglow stream``: raw mel frames on stdin, raw PCM on stdout as it becomes final
(:func:`waveglow.streaming.stream_pipe`)."""

from __future__ import annotations

import argparse
import sys

from .options import Subparsers, add_count, add_shared, device, subparser

DESCRIPTION = """Vocode mel frames as they arrive: stdin takes raw float32 little-endian mel
frames, frame-major (each frame's M values together), in any pieces; stdout gets raw 16-bit
little-endian mono PCM at the model's rate, flushed as soon as it is final. With the default
--lookahead (R, printed by 'waveglow info') the audio is exactly whole-utterance synthesis with
the same seed, the audio of 'POST /v1/synthesize?seed=S' of 'waveglow serve'; a smaller lookahead
answers sooner, approximately. One line on stderr names the seed, the rate and the lookahead."""
EXAMPLES = """examples:
  tts | waveglow stream -c demo | aplay -f S16_LE -r 22050 -c 1
  waveglow stream -c waveglow.pt --seed 1 --lookahead 8 < mel.f32 > speech.s16"""


def add_stream_parser(subparsers: Subparsers) -> None:
    parser = subparser(
        subparsers,
        "stream",
        "vocode mel frames from stdin as they come",
        DESCRIPTION,
        EXAMPLES,
        run,
    )
    add_shared(parser, "checkpoint")
    add_shared(parser, "sigma")
    parser.add_argument("--seed", type=int, metavar="N", help="seed of the noise (default: drawn)")
    parser.add_argument(
        "--lookahead", type=int, metavar="N", help="frames of lookahead, 0..R (default: R, exact)"
    )
    help = "the fewest final frames synthesized at once (default: %(default)s)"
    add_count(parser, "--min-frames", help, default=16)
    add_shared(parser, "device")


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import load
    from ..streaming import stream_pipe

    model = load(args.checkpoint, device=device(args.device)).eval()
    options = {"lookahead": args.lookahead, "min_frames": args.min_frames}
    stream_pipe(
        model, sys.stdin.buffer, sys.stdout.buffer, sys.stderr, args.sigma, args.seed, **options
    )
    return 0

"""``waveglow mel-check``: what front end made a mel, and how to convert it
(:func:`waveglow.meldoctor.diagnose_file`); the conversion options ``synthesize`` shares."""

from __future__ import annotations

import argparse

from .options import Subparsers, number, positive_number, subparser

DESCRIPTION = """Diagnose mel files (.pt, .npy) against the model's front end (Tacotron 2: natural
log of the magnitude clamped at 1e-5, 80 bands 0-8000 Hz, hop 256, centred frames, (M, F)):
shape (M, F) or (F, M), natural log, log10 or dB, mean/variance or [-4, 4] / [0, 1]
normalisation, the clamp floor, the top band. With --audio (the file the mel was made from) it
compares the mel with our mel of that audio: frames and hop, centre padding, band edges (fmin 80,
fmax 7600...), and names the closest known front end (ours, HiFi-GAN, ESPnet, Coqui/Mozilla).
It prints a verdict: fine, the 'waveglow synthesize' options that convert it, or re-extract it
with 'waveglow mel'. Exit code 0 when every mel is fine as it is, else 1."""
EXAMPLES = """examples:
  waveglow mel-check tts_out.npy
  waveglow mel-check feats/utt1.npy --audio wavs/utt1.wav -c waveglow.pt"""


def add_mel_check_parser(subparsers: Subparsers) -> None:
    parser = subparser(
        subparsers, "mel-check", "diagnose a mel from another front end", DESCRIPTION, EXAMPLES,
        run,
    )  # fmt: skip
    parser.add_argument("inputs", nargs="+", metavar="MEL", help="mel file (.pt, .npy)")
    parser.add_argument(
        "--checkpoint", "-c", metavar="CKPT", help="the model whose front end (default: ours)"
    )
    parser.add_argument(
        "--audio", action="append", metavar="WAV",
        help="the audio the mel was made from (once for all MELs, or once per MEL)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from ..config import Config
    from ..meldoctor import diagnose_file

    audio = args.audio or [None]
    if len(audio) not in (1, len(args.inputs)):
        raise ValueError(f"--audio: give one, or one per MEL ({len(args.inputs)})")
    config = Config()
    if args.checkpoint:
        from ..checkpoint import load

        config = load(args.checkpoint).config
    fine = True
    for index, path in enumerate(args.inputs):
        diagnosis = diagnose_file(
            path, audio[index % len(audio)], config.data_config,
            config.waveglow_config.n_mel_channels,
        )  # fmt: skip
        print(diagnosis.report())
        fine = fine and diagnosis.fine
    return 0 if fine else 1


# ---------------------------------------------------------------------------- conversion options
def add_conversion_options(parser: argparse.ArgumentParser) -> None:
    """The options of :class:`waveglow.meldoctor.Conversion` (see ``waveglow mel-check``)."""
    group = parser.add_argument_group(
        "mels from another front end (see 'waveglow mel-check'; applied to mel files only)"
    )
    group.add_argument("--transpose", action="store_true", help="the mels are (F, M)")
    group.add_argument(
        "--mel-scale", choices=("ln", "log10", "db"), default="ln",
        help="log of the mel magnitude: natural (ours), log10 (x ln 10), or dB, 20 log10 "
        "(x ln 10 / 20) (default: ln)",
    )  # fmt: skip
    for name in ("mean", "std"):
        group.add_argument(
            f"--mel-{name}", metavar="X|FILE.npy",
            help=f"de-normalise x * std + mean first: the {name}, a number or per band (M,)",
        )  # fmt: skip
    group.add_argument(
        "--db-norm", choices=("symmetric", "positive"),
        help="Coqui/Mozilla: dB normalised to [-MAX, MAX] (symmetric) or [0, MAX] (positive); "
        "S = (x + MAX) (-MIN_DB) / (2 MAX) + MIN_DB (symmetric), then + REF_DB",
    )  # fmt: skip
    group.add_argument("--max-norm", type=positive_number, default=4.0, metavar="MAX")
    group.add_argument("--min-level-db", type=number, default=-100.0, metavar="MIN_DB")
    group.add_argument("--ref-level-db", type=number, default=0.0, metavar="REF_DB")


def conversion_of(args: argparse.Namespace):  # noqa: ANN201 - a Conversion or None
    """The :class:`~waveglow.meldoctor.Conversion` the options ask for; None for none."""
    from ..meldoctor import Conversion, load_stat

    conversion = Conversion(
        transpose=args.transpose,
        scale=args.mel_scale,
        mean=None if args.mel_mean is None else load_stat(args.mel_mean),
        std=None if args.mel_std is None else load_stat(args.mel_std),
        db_norm=args.db_norm,
        max_norm=args.max_norm,
        min_level_db=args.min_level_db,
        ref_level_db=args.ref_level_db,
    )
    return None if conversion.identity else conversion

"""Incremental streaming (waveglow.streaming): time to first audio, gaps and real-time factor.

For each model (the bundled ``demo`` and NVIDIA's 256-channel config with random weights), mel
frames are pushed into a :class:`waveglow.streaming.Stream` at real-time pace (sampling_rate / hop
frames per second: 86.1 at hop 256) and as fast as possible, exactly (lookahead R) and with a
low lookahead; next to it, in the same run, whole-utterance synthesis of the same mel
(``infer_chunks``). Printed per row: time to first audio (from the first frame pushed), the
longest gap between two pieces of audio, the wall time and the real-time factor (wall / audio).

``--table`` prints the cost of a lower lookahead instead: lookahead -> relative L2 error against
the exact stream and, for the demo model on examples/demo-thanks.wav, the STOI change against
the original (STOI of random weights means nothing: left out for the 256-channel row).

    PYTHONPATH=$PWD/src python bench/stream_latency.py                  # both models
    PYTHONPATH=$PWD/src python bench/stream_latency.py --models demo --seconds 3
    PYTHONPATH=$PWD/src python bench/stream_latency.py --table --lookaheads 0,2,4,8
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import waveglow
from waveglow import Config, Stream
from waveglow.streaming import right_context

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "examples" / "demo-thanks.wav"
NVIDIA_256 = {
    "n_mel_channels": 80, "n_flows": 12, "n_group": 8, "n_early_every": 4, "n_early_size": 2,
    "WN_config": {"n_layers": 8, "n_channels": 256, "kernel_size": 3},
}  # fmt: skip


def load_model(name: str) -> waveglow.WaveGlow:
    """``demo`` (the bundled model) or ``nvidia256`` (the published config, random weights with
    small random ``end`` layers so that the couplings transform)."""
    if name == "demo":
        return waveglow.load("demo").eval()
    torch.manual_seed(0)
    config = Config.from_dict({"waveglow_config": NVIDIA_256})
    model = waveglow.WaveGlow(config.waveglow_config, config.data_config)
    with torch.no_grad():
        for wn in model.WN:
            wn.end.weight.normal_(0, 0.02)
            wn.end.bias.normal_(0, 0.02)
    return model.remove_weight_norm().eval()


def clip_mel(model: waveglow.WaveGlow, seconds: float | None) -> tuple[torch.Tensor, np.ndarray]:
    """The mel (M, F) of examples/demo-thanks.wav (cut to ``seconds``) and its audio."""
    audio, _ = waveglow.load_audio(CLIP, model.data_config.sampling_rate)
    if seconds is not None:
        audio = audio[: int(seconds * model.data_config.sampling_rate)]
    audio = audio[: len(audio) // model.hop_length * model.hop_length]
    mel = model.mel_transform()(torch.from_numpy(audio).unsqueeze(0))[0, :, :-1]  # (M, F)
    return mel, audio


def run_stream(model, mel: torch.Tensor, lookahead: int, pace: float | None, seed: int) -> dict:
    """Push ``mel`` one frame at a time (at ``pace`` frames per second, or at once when None)."""
    stream = Stream(model, sigma=0.6, seed=seed, lookahead=lookahead, min_frames=8)
    started = time.perf_counter()
    arrivals, parts = [], []
    for frame in range(mel.size(1)):
        if pace is not None:
            time.sleep(max(0.0, started + frame / pace - time.perf_counter()))
        audio = stream.push(mel[:, frame : frame + 1])
        if audio.numel():
            arrivals.append(time.perf_counter() - started)
            parts.append(audio)
    parts.append(stream.finish())
    arrivals.append(time.perf_counter() - started)
    wall = arrivals[-1]
    gaps = np.diff([0.0, *arrivals])
    seconds = mel.size(1) * model.hop_length / model.data_config.sampling_rate
    return {"first": arrivals[0], "gap": float(gaps[1:].max(initial=0.0)), "wall": wall,
            "rtf": wall / seconds, "audio": torch.cat(parts)}  # fmt: skip


def latency(models: list[str], seconds: float, low: int) -> None:
    print("| model | R | mode | pace | first audio s | longest gap s | wall s | RTF |")
    print("|---|---|---|---|---|---|---|---|")
    for name in models:
        model = load_model(name)
        mel, _ = clip_mel(model, seconds)
        rate = model.data_config.sampling_rate / model.hop_length
        started = time.perf_counter()
        with torch.inference_mode():
            torch.cat(list(model.infer_chunks(mel.unsqueeze(0), generator=torch.Generator())), 1)
        whole = time.perf_counter() - started
        audio_s = mel.size(1) / rate
        print(f"| {name} | {right_context(model)} | whole utterance | - | {whole:.2f} | - | "
              f"{whole:.2f} | {whole / audio_s:.2f} |")  # fmt: skip
        for mode, lookahead in (("exact", right_context(model)), (f"lookahead {low}", low)):
            for pace_name, pace in (("real time", rate), ("at once", None)):
                with torch.inference_mode():
                    row = run_stream(model, mel, lookahead, pace, seed=1)
                print(f"| {name} | {right_context(model)} | {mode} | {pace_name} | "
                      f"{row['first']:.2f} | {row['gap']:.2f} | {row['wall']:.2f} | "
                      f"{row['rtf']:.2f} |")  # fmt: skip


def table(models: list[str], seconds: float | None, lookaheads: list[int]) -> None:
    from pystoi import stoi

    print("| model | lookahead (frames) | relative L2 error vs exact | STOI change vs exact |")
    print("|---|---|---|---|")
    for name in models:
        model = load_model(name)
        mel, original = clip_mel(model, seconds)
        rate = model.data_config.sampling_rate
        with torch.inference_mode():
            exact = run_stream(model, mel, right_context(model), None, seed=1)["audio"]
            exact_stoi = stoi(original, exact.numpy(), rate) if name == "demo" else None
            for lookahead in [*lookaheads, right_context(model)]:
                audio = run_stream(model, mel, min(lookahead, right_context(model)), None, 1)
                audio = audio["audio"]
                error = float((audio - exact).norm() / exact.norm())
                change = (
                    f"{stoi(original, audio.numpy(), rate) - exact_stoi:+.4f}"
                    if exact_stoi is not None
                    else "n/a (random weights)"
                )
                print(f"| {name} | {lookahead} | {error:.2e} | {change} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="demo,nvidia256", help="comma-separated")
    parser.add_argument("--seconds", type=float, default=2.0, help="of the clip (default: 2)")
    parser.add_argument("--low", type=int, default=4, help="the low lookahead (default: 4)")
    parser.add_argument("--table", action="store_true", help="lookahead -> error and STOI")
    parser.add_argument("--lookaheads", default="0,2,4,8,16")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = args.models.split(",")
    if args.table:
        table(models, args.seconds, [int(n) for n in args.lookaheads.split(",")])
    else:
        latency(models, args.seconds, args.low)


if __name__ == "__main__":
    main()

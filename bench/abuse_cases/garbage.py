"""No silent garbage: NaN and out-of-range values are refused or warned about, never written out
as if they were audio or a model."""

from __future__ import annotations

import re
from pathlib import Path

from .harness import NAN_REPORT, Context, api_refuses, wav_peak
from .inputs import tone, write_npy
from .processes import Run
from .verdicts import Verdict, broken, expect_error, fail, ok, quoted, results


def nan_weights(ctx: Context) -> Verdict:
    import torch

    payload = torch.load(ctx.inputs.tiny, weights_only=True)
    for tensor in payload["state_dict"].values():
        tensor.fill_(float("nan"))
    path = ctx.folder / "nan.pt"
    torch.save(payload, path)
    run = ctx.cli("synthesize", "-c", path, ctx.inputs.mel, "-o", "out", "-q")
    if run.code == 0:
        peak = wav_peak(ctx.folder / "out" / "mel_synthesis.wav")
        return fail(f"a wav written, peak {peak}", run)
    return expect_error(run, contains=["nan"])


def api_nan_mel(ctx: Context) -> Verdict:
    code = f"mel = torch.full((1, 8, 20), -5.0); mel[0, 0, 3] = float('nan')\naudio = model.infer(mel)\n{NAN_REPORT}"
    return api_refuses(ctx, code, ["nan"])


def api_nan_sigma(ctx: Context) -> Verdict:
    code = f"audio = model.infer(torch.full((1, 8, 20), -5.0), sigma=float('nan'))\n{NAN_REPORT}"
    return api_refuses(ctx, code, ["sigma"])


def api_nan_z(ctx: Context) -> Verdict:
    code = (
        "z = torch.zeros(1, 4, 80); z[0, 1, 5] = float('nan')\n"
        f"audio = model.infer(torch.full((1, 8, 20), -5.0), z=z)\n{NAN_REPORT}"
    )
    return api_refuses(ctx, code, ["nan"])


def _save_wav_refuses(ctx: Context, array: str) -> Verdict:
    path = ctx.folder / "out.wav"
    code = (
        f"waveglow.save_wav({str(path)!r}, {array}, 22050)\n"
        f"import soundfile; info = soundfile.info({str(path)!r})\n"
        "print(f'RESULT wrote={info.frames} frames x {info.channels} channel(s)')"
    )
    run = ctx.api(code)
    if (verdict := broken(run)) is not None:
        return verdict
    found = results(run)
    if "refused" in found and not path.exists():
        return ok("ValueError " + quoted(found["refused"]) + "; no file", run)
    return fail(", ".join(f"{key} {value}" for key, value in found.items()), run)


def save_wav_nan(ctx: Context) -> Verdict:
    return _save_wav_refuses(ctx, "np.array([0.1, float('nan'), 0.2] * 100, dtype=np.float32)")


def save_wav_two_channels(ctx: Context) -> Verdict:
    return _save_wav_refuses(ctx, "np.zeros((2, 1000), dtype=np.float32)")


def mel_of_1e30(ctx: Context) -> Verdict:
    path = write_npy(ctx.folder / "loud.npy", (8, 50), 1e30)
    run = ctx.cli("synthesize", "-c", ctx.inputs.tiny, path, "-o", "out", "-q")
    return _warned_or_refused(run, "loud.npy")


def _warned_or_refused(run: Run, name: str) -> Verdict:
    if (verdict := broken(run)) is not None:
        return verdict
    lines = [line for line in run.stderr.splitlines() if name in line]
    if lines and re.search(r"warning|error", lines[0]):
        return ok(quoted(lines[0]), run)
    return fail("exit 0 without a word about the input", run)


def float_wav_peak_5(ctx: Context) -> Verdict:
    import soundfile

    path = ctx.folder / "hot.wav"
    soundfile.write(str(path), tone(0.5) / 0.3 * 5.0, 22050, subtype="FLOAT")
    run = ctx.cli("synthesize", "-c", ctx.inputs.tiny, path, "-o", "out", "-q")
    return _warned_or_refused(run, "hot.wav")


def destructive_learning_rate(ctx: Context) -> Verdict:
    output = ctx.folder / "run"
    first = ctx.train(output)
    if first.code != 0:
        return fail("the first two steps failed: " + quoted(first.error_line()), first)
    run = ctx.train(
        output, "--resume", "--max-iters", "30", "--set", "train.learning_rate=1e6",
        "--set", "train.max_bad_steps=2", "--set", "train.keep_checkpoints=1",
    )  # fmt: skip
    if (verdict := broken(run)) is not None:
        return verdict
    good = _finite_checkpoints(ctx, output)
    line = run.error_line()
    if "bf16" in line:
        return fail("advises fp32/bf16 to an fp32 run: " + quoted(line), run)
    if run.code == 0 or "rolled back" not in line or not good:
        return fail(f"finite checkpoints left: {good or 'none'}; {quoted(line)}", run)
    return ok(f"{quoted(line)}; finite: {', '.join(good)}", run)


def _finite_checkpoints(ctx: Context, output: Path) -> list[str]:
    code = (
        f"from pathlib import Path\nfor path in sorted(Path({str(output)!r}).glob('waveglow_*.pt')):\n"
        "    state = torch.load(path, weights_only=True)['state_dict']\n"
        "    finite = all(bool(torch.isfinite(t).all()) for t in state.values() if t.is_floating_point())\n"
        "    print(f'RESULT {path.name}={finite}')"
    )
    found = results(ctx.api(code))
    return [name for name, finite in found.items() if finite == "True"]

"""Already handled (regression guard): broken inputs refused before issue 12, kept refused."""

from __future__ import annotations

import os
import random
import shlex
import signal
import time
from pathlib import Path

from .harness import Context
from .inputs import write_npy
from .processes import wait_bounded
from .verdicts import Verdict, broken, expect_error, fail, ok, quoted


def missing_checkpoint(ctx: Context) -> Verdict:
    return expect_error(ctx.cli("info", "nothing.pt"), contains=["nothing.pt"])


def empty_checkpoint(ctx: Context) -> Verdict:
    (ctx.folder / "empty.pt").touch()
    return expect_error(ctx.cli("info", "empty.pt"), contains=["empty.pt"])


def truncated_checkpoint(ctx: Context) -> Verdict:
    data = ctx.inputs.tiny.read_bytes()
    (ctx.folder / "cut.pt").write_bytes(data[: len(data) // 2])
    return expect_error(ctx.cli("info", "cut.pt"), contains=["cut.pt"])


def text_as_checkpoint(ctx: Context) -> Verdict:
    (ctx.folder / "notes.pt").write_text("not a checkpoint\n" * 10)
    return expect_error(ctx.cli("info", "notes.pt"), contains=["notes.pt"])


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def hostile_pickle_checkpoint(ctx: Context) -> Verdict:
    import torch

    marker = ctx.folder / "PWNED"
    torch.save({"state_dict": _Exploit(marker)}, ctx.folder / "evil.pt")
    run = ctx.cli("info", "evil.pt")
    if marker.exists():
        return fail("the pickle ran code", run)
    return expect_error(run, contains=["evil.pt"])


def hostile_pickle_mel(ctx: Context) -> Verdict:
    import torch

    marker = ctx.folder / "PWNED"
    torch.save(_Exploit(marker), ctx.folder / "evil.pt")
    run = ctx.cli("synthesize", "-c", ctx.inputs.tiny, "evil.pt", "-o", "out", "-q")
    if marker.exists():
        return fail("the pickle ran code", run)
    return expect_error(run, contains=["evil.pt"])


def checkpoint_of_another_model(ctx: Context) -> Verdict:
    import torch

    torch.save(
        {"fc.weight": torch.zeros(10, 10), "fc.bias": torch.zeros(10)}, ctx.folder / "net.pt"
    )
    return expect_error(ctx.cli("info", "net.pt"), contains=["net.pt"])


def mel_wrong_channels(ctx: Context) -> Verdict:
    write_npy(ctx.folder / "m80.npy", (80, 20))
    run = ctx.cli("synthesize", "-c", ctx.inputs.tiny, "m80.npy", "-o", "out", "-q")
    return expect_error(run, contains=["m80.npy"])


def mel_with_nan_file(ctx: Context) -> Verdict:
    write_npy(ctx.folder / "nan.npy", (8, 20), float("nan"))
    run = ctx.cli("synthesize", "-c", ctx.inputs.tiny, "nan.npy", "-o", "out", "-q")
    return expect_error(run, contains=["nan.npy"])


def mel_without_frames(ctx: Context) -> Verdict:
    write_npy(ctx.folder / "none.npy", (8, 0))
    run = ctx.cli("synthesize", "-c", ctx.inputs.tiny, "none.npy", "-o", "out", "-q")
    return expect_error(run, contains=["none.npy"])


def corrupt_audio_input(ctx: Context) -> Verdict:
    (ctx.folder / "noise.wav").write_bytes(random.Random(4).randbytes(4000))
    run = ctx.cli("synthesize", "-c", ctx.inputs.tiny, "noise.wav", "-o", "out", "-q")
    return expect_error(run, contains=["noise.wav"])


def one_bad_file_among_good(ctx: Context) -> Verdict:
    (ctx.folder / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    run = ctx.cli(
        "synthesize", "-c", ctx.inputs.tiny, ctx.inputs.mel, "bad.npy", ctx.inputs.clip,
        "-o", "out", "-q",
    )  # fmt: skip
    written = len(list((ctx.folder / "out").glob("*.wav")))
    verdict = expect_error(run, contains=["bad.npy"])
    if verdict.status == "ok" and written != 2:
        return fail(f"{written} of 2 good files written", run)
    return verdict


def input_is_a_directory(ctx: Context) -> Verdict:
    (ctx.folder / "folder.npy").mkdir()
    run = ctx.cli("synthesize", "-c", ctx.inputs.tiny, "folder.npy", "-o", "out", "-q")
    return expect_error(run, contains=["folder.npy", "directory"])


def output_dir_is_a_file(ctx: Context) -> Verdict:
    (ctx.folder / "out").write_text("a file")
    run = ctx.cli("synthesize", "-c", ctx.inputs.tiny, ctx.inputs.mel, "-o", "out", "-q")
    return expect_error(run, contains=["out"])


def negative_sigma(ctx: Context) -> Verdict:
    run = ctx.cli("synthesize", "-c", ctx.inputs.tiny, ctx.inputs.mel, "-o", "out", "--sigma", "-1")
    return expect_error(run, contains=["sigma"], code=2)


def unknown_config_key(ctx: Context) -> Verdict:
    return expect_error(
        ctx.train(ctx.folder / "run", "--set", "train.batch_sise=3"), ["batch_sise"]
    )


def config_not_json(ctx: Context) -> Verdict:
    (ctx.folder / "config.json").write_text("{'single': quotes}")
    run = ctx.cli("train", "--config", "config.json", "--data", ctx.inputs.corpus, "-o", "run")
    return expect_error(run, contains=["config.json"])


def resume_without_checkpoint(ctx: Context) -> Verdict:
    return expect_error(ctx.train(ctx.folder / "fresh", "--resume", timeout=60), ["resume"])


def nemo_not_a_tar(ctx: Context) -> Verdict:
    (ctx.folder / "model.nemo").write_bytes(random.Random(12).randbytes(2000))
    return expect_error(ctx.cli("info", "model.nemo"), contains=["model.nemo"])


def kill_9_training_then_resume(ctx: Context) -> Verdict:
    """kill -9 of a run, then --resume: it goes on from the last checkpoint, no traceback."""
    output = ctx.folder / "run"
    process = ctx.start(
        "train", "--config", ctx.inputs.train_config, "--data", ctx.inputs.corpus, "-o", output,
        "-q", "--max-iters", "1000",
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(output.glob("waveglow_*.pt")) and time.monotonic() < deadline:
        if process.poll() is not None:
            break
        time.sleep(0.1)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    wait_bounded(process, 30)
    run = ctx.train(output, "--resume", "--max-iters", "3", timeout=180)
    if (verdict := broken(run)) is not None:
        return verdict
    if run.code == 0 and "trained to step 3" in run.stdout:
        return ok("resumed to step 3", run)
    return fail(quoted(run.error_line() or run.stdout), run)

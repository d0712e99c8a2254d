"""Paths: never replace what is not ours. Outputs onto device nodes, directories and full disks,
signals mid-write, file modes: nothing of the user's is overwritten and no temporary file is left."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from .harness import Context, temporaries
from .inputs import tone, write_npy
from .processes import Run, text_of, wait_bounded
from .verdicts import Verdict, broken, expect_error, fail, not_applicable, ok, quoted


def _device_node(ctx: Context, name: str, minor: int) -> Path | None:
    path = ctx.folder / name
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
    except PermissionError:
        return None
    return path


def _node_kept(ctx: Context, args: Sequence[object], minor: int) -> Verdict:
    node = _device_node(ctx, "node", minor)
    if node is None:
        return not_applicable("mknod needs root")
    run = ctx.cli(*[node if arg is None else arg for arg in args])
    mode = os.lstat(node).st_mode
    kept = stat.S_ISCHR(mode)
    left = temporaries(ctx.folder)
    if not kept:
        what = (
            f"a {os.lstat(node).st_size / 2**20:.2f} MB regular file"
            if stat.S_ISREG(mode)
            else "gone"
        )
        return fail(f"the device node is now {what}", run)
    if left:
        return fail(f"left {left}", run)
    return expect_error(run, contains=["node"])


def convert_onto_null(ctx: Context) -> Verdict:
    return _node_kept(ctx, ["convert", ctx.inputs.tiny, None], 3)


def convert_onto_full(ctx: Context) -> Verdict:
    return _node_kept(ctx, ["convert", ctx.inputs.tiny, None], 7)


def export_torchscript_onto_null(ctx: Context) -> Verdict:
    return _node_kept(ctx, ["export", "--format", "torchscript", ctx.inputs.tiny, None], 3)


def export_onnx_onto_null(ctx: Context) -> Verdict:
    return _node_kept(ctx, ["export", "--format", "onnx", ctx.inputs.tiny, None], 3)


def mel_onto_null(ctx: Context) -> Verdict:
    out = ctx.folder / "mels"
    out.mkdir()
    try:
        os.mknod(out / "clip.pt", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        return not_applicable("mknod needs root")
    run = ctx.cli("mel", ctx.inputs.clip, "-o", out, "-q")
    if not stat.S_ISCHR(os.lstat(out / "clip.pt").st_mode):
        return fail("the device node mels/clip.pt was replaced", run)
    return expect_error(run, contains=["clip.pt"])


def _onto_directory(ctx: Context, args: Sequence[object]) -> Verdict:
    target = ctx.folder / "target"
    target.mkdir()
    run = ctx.cli(*[target if arg is None else arg for arg in args])
    if not target.is_dir():
        return fail("the directory was replaced", run)
    verdict = expect_error(run, contains=["target"], absent=[".tmp"])
    if verdict.status == "ok" and temporaries(ctx.folder):
        return fail(f"left {temporaries(ctx.folder)}", run)
    return verdict


def convert_onto_directory(ctx: Context) -> Verdict:
    return _onto_directory(ctx, ["convert", ctx.inputs.tiny, None])


def export_onto_directory(ctx: Context) -> Verdict:
    return _onto_directory(ctx, ["export", "--format", "torchscript", ctx.inputs.tiny, None])


def modes_follow_umask(ctx: Context) -> Verdict:
    runs = [
        ctx.cli("convert", ctx.inputs.tiny, name, umask=0o027)
        for name in ("model.pt", "model.safetensors")
    ]
    for run in runs:
        if (verdict := broken(run)) is not None:
            return verdict
    modes = {
        name: oct(os.stat(ctx.folder / name).st_mode & 0o777)
        for name in ("model.pt", "model.safetensors")
        if (ctx.folder / name).exists()
    }
    note = ", ".join(f"{name} {mode}" for name, mode in modes.items())
    if set(modes.values()) == {"0o640"} and len(modes) == 2:
        return ok(note + " (umask 027)", runs[1])
    return fail(note + " (umask 027: both should be 0o640)", runs[1])


def _synthesis_killed(ctx: Context, number: int) -> tuple[subprocess.Popen, Run, list[str]]:
    """Synthesis of the long mel, sent signal ``number`` once its temporary file exists."""
    out = ctx.folder / "out"
    process = ctx.start("synthesize", "-c", ctx.inputs.tiny, ctx.inputs.long_mel, "-o", out, "-q")
    deadline = time.monotonic() + ctx.timeout
    while not temporaries(out) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    seen = temporaries(out)
    if process.poll() is None:
        process.send_signal(number)
    code, hung, peak, seconds = wait_bounded(process, 60)
    stderr = text_of(process.stderr.read()) if process.stderr else ""
    return process, Run(code, "", stderr, hung, peak, seconds), seen


def sigterm_during_synthesis(ctx: Context) -> Verdict:
    _, run, seen = _synthesis_killed(ctx, signal.SIGTERM)
    if not seen:
        return fail("no temporary file seen: the synthesis ended first", run)
    if (verdict := broken(run)) is not None:
        return verdict
    left = temporaries(ctx.folder / "out")
    if left:
        return fail(f"left {left}", run)
    return ok(f"no temporary left; {quoted(run.error_line())}", run)


def kill_9_then_next_run(ctx: Context) -> Verdict:
    _, killed, seen = _synthesis_killed(ctx, signal.SIGKILL)
    if not seen:
        return fail("no temporary file seen: the synthesis ended first", killed)
    after_kill = temporaries(ctx.folder / "out")
    run = ctx.cli("synthesize", "-c", ctx.inputs.tiny, ctx.inputs.mel, "-o", "out", "-q")
    if (verdict := broken(run)) is not None:
        return verdict
    left = temporaries(ctx.folder / "out")
    if left:
        return fail(f"kill -9 left {len(after_kill)}; the next run left {left}", run)
    return ok(f"kill -9 left {len(after_kill)} temporary; the next run removed it", run)


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "200k") -> Iterator[Path | None]:
    """A tmpfs of ``size`` mounted at ``folder`` (None without root); unmounted afterwards."""
    folder.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]
    if subprocess.run(command, capture_output=True).returncode != 0:
        yield None
        return
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)


def _full_disk(
    ctx: Context, count: int, args: Callable[[Path], list[object]], glob: str
) -> Verdict:
    """``count`` outputs written into a 200 KB tmpfs by the command ``args(disk)``: each one that
    does not fit is one error line, the others are written, no temporary is left."""
    with small_disk(ctx.folder / "disk") as disk:
        if disk is None:
            return not_applicable("mount -t tmpfs needs root")
        run = ctx.cli(*args(disk))
        written = sorted(path.name for path in disk.glob(glob))
        left = temporaries(disk)
    if (verdict := broken(run)) is not None:
        return verdict
    errors = [line for line in run.stderr.splitlines() if "error" in line.lower()]
    note = f"{len(written)} of {count} written, {len(errors)} error line(s)"
    if left:
        return fail(f"{note}; left {left}", run)
    if run.code == 1 and len(written) + len(errors) == count and errors:
        return ok(f"{note}: {quoted(errors[0])}", run)
    return fail(f"{note}; {quoted(run.error_line())}", run)


def full_disk_mid_batch(ctx: Context) -> Verdict:
    mels = [write_npy(ctx.folder / f"m{k}.npy", (8, 2500)) for k in range(4)]  # 80 KB wavs
    return _full_disk(
        ctx, 4, lambda disk: ["synthesize", "-c", ctx.inputs.tiny, *mels, "-o", disk, "-q",
                              "--batch-size", "2"], "*.wav",
    )  # fmt: skip


def full_disk_streamed(ctx: Context) -> Verdict:
    return _full_disk(
        ctx, 1, lambda disk: ["synthesize", "-c", ctx.inputs.tiny, ctx.inputs.long_mel, "-o", disk,
                              "-q"], "*.wav",
    )  # fmt: skip


def full_disk_mels(ctx: Context) -> Verdict:
    import soundfile

    clips = []
    for index in range(4):
        clips.append(ctx.folder / f"c{index}.wav")
        soundfile.write(str(clips[-1]), tone(4.0, seed=index), 22050)  # 80-bin mels of ~60 KB
    return _full_disk(ctx, 4, lambda disk: ["mel", *clips, "-o", disk, "-q"], "*.pt")


def _evaluate_with(ctx: Context, bad_name: str, bad_content: Callable[[Path], None]) -> Verdict:
    import soundfile

    clips = ctx.folder / "clips"
    clips.mkdir()
    for index in range(2):
        soundfile.write(str(clips / f"good{index}.wav"), tone(1.0, seed=index), 22050)
    bad_content(clips / bad_name)
    out = ctx.folder / "eval"
    run = ctx.cli(
        "evaluate", "-c", ctx.inputs.tiny, clips, "-o", out, "--baseline", "none",
        "--no-dnsmos", "-q", timeout=180,
    )  # fmt: skip
    if (verdict := broken(run)) is not None:
        return verdict
    rows = (out / "metrics.csv").read_text().splitlines() if (out / "metrics.csv").exists() else []
    scored = [row for row in rows[1:] if "good" in row]
    note = f"{len(scored)} of 2 good clips scored"
    if run.code == 1 and bad_name in run.stderr and len(scored) >= 2:
        return ok(f"{note}; {quoted(run.error_line())}", run)
    return fail(f"{note}; {quoted(run.error_line())}", run)


def evaluate_unreadable_clip(ctx: Context) -> Verdict:
    return _evaluate_with(ctx, "broken.wav", lambda path: path.write_bytes(b"RIFF" + bytes(60)))


def evaluate_short_clip(ctx: Context) -> Verdict:
    import soundfile

    return _evaluate_with(
        ctx, "short.wav", lambda path: soundfile.write(str(path), tone(0.002), 22050)
    )


def evaluate_all_clips_bad(ctx: Context) -> Verdict:
    clips = ctx.folder / "clips"
    clips.mkdir()
    (clips / "broken.wav").write_bytes(b"RIFF" + bytes(60))
    run = ctx.cli(
        "evaluate", "-c", ctx.inputs.tiny, clips, "-o", "eval", "--baseline", "none",
        "--no-dnsmos", "-q", timeout=120,
    )  # fmt: skip
    return expect_error(run, contains=["broken.wav"])

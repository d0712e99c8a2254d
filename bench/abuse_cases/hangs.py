"""Nothing hangs, nothing is a traceback: odd inputs to the API and to the command line end in one
error line (or are converted), within the time limit."""

from __future__ import annotations

from .harness import NAN_REPORT, Context, api_refuses
from .inputs import safetensors_with_metadata
from .verdicts import Verdict, broken, expect_error, fail, not_applicable, ok, quoted, results


def corrupt_training_folder(ctx: Context) -> Verdict:
    corpus = ctx.folder / "corrupt"
    corpus.mkdir()
    for index in range(8):
        (corpus / f"clip_{index}.wav").write_bytes(b"RIFF" + bytes(64))
    run = ctx.cli(
        "train", "--config", ctx.inputs.train_config, "--data", corpus, "-o", "run", "-q",
        "--set", "train.num_workers=2", "--set", "train.validation_size=1",
        "--set", "train.batch_size=2", timeout=60,
    )  # fmt: skip
    verdict = expect_error(run)
    if verdict.status == "ok":
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        if len(lines) != 1 or run.seconds > 30:
            return fail(f"{len(lines)} lines in {run.seconds:.0f} s: {quoted(lines[0])}", run)
        verdict.note += f" in {run.seconds:.0f} s"
    return verdict


def resume_another_wn_size(ctx: Context) -> Verdict:
    first = ctx.train(ctx.folder / "run", "--max-iters", "1")
    if first.code != 0:
        return fail("the first step failed: " + quoted(first.error_line()), first)
    run = ctx.train(
        ctx.folder / "run", "--resume", "--max-iters", "2",
        "--set", "waveglow_config.WN_config.n_channels=16",
    )  # fmt: skip
    return expect_error(run, contains=["n_channels"])


def metadata_not_an_object(ctx: Context) -> Verdict:
    path = safetensors_with_metadata(ctx.inputs.tiny, ctx.folder / "list.safetensors", "[1, 2]")
    return expect_error(ctx.cli("info", path), contains=["list.safetensors"])


def metadata_not_json(ctx: Context) -> Verdict:
    path = safetensors_with_metadata(ctx.inputs.tiny, ctx.folder / "text.safetensors", "{oops")
    return expect_error(ctx.cli("info", path), contains=["text.safetensors"])


def unparsable_set_value(ctx: Context) -> Verdict:
    run = ctx.train(ctx.folder / "run", "--set", "train_config.batch_size=abc", timeout=60)
    return expect_error(run, contains=["batch_size"], absent=["not supported between"])


def boolean_set_value(ctx: Context) -> Verdict:
    run = ctx.train(ctx.folder / "run", "--set", "train_config.iters_per_log=true", timeout=60)
    return expect_error(run, contains=["iters_per_log"])


def info_into_closed_pipe(ctx: Context) -> Verdict:
    run = ctx.cli("info", "demo", reader_gone=True)
    if (verdict := broken(run)) is not None:
        return verdict
    if run.code != 0 or run.stderr.strip():
        return fail(f"exit {run.code}: {quoted(run.error_line())}", run)
    return ok("quiet", run)


def _api_converts(ctx: Context, mel: str) -> Verdict:
    code = (
        f"model = waveglow.load({str(ctx.inputs.tiny)!r})\naudio = model.infer({mel})\n"
        "print('RESULT audio=' + str(tuple(audio.shape)) + ' ' + str(audio.dtype) + "
        "(' finite' if torch.isfinite(audio).all() else ' NaN'))"
    )
    run = ctx.api(code)
    if (verdict := broken(run)) is not None:
        return verdict
    found = results(run)
    if found.get("audio") == "(1, 320) torch.float32 finite":
        return ok("audio (1, 320) float32", run)
    return fail(", ".join(f"{key} {value}" for key, value in found.items()), run)


def api_int_mel(ctx: Context) -> Verdict:
    return _api_converts(ctx, "torch.full((1, 8, 20), -5, dtype=torch.int64)")


def api_fp64_mel(ctx: Context) -> Verdict:
    return _api_converts(ctx, "torch.full((1, 8, 20), -5.0, dtype=torch.float64)")


def api_numpy_mel(ctx: Context) -> Verdict:
    return _api_converts(ctx, "np.full((1, 8, 20), -5.0)")


def api_list_mel(ctx: Context) -> Verdict:
    return _api_converts(ctx, "[[[-5.0] * 20] * 8]")


def api_string_mel(ctx: Context) -> Verdict:
    return api_refuses(ctx, f"audio = model.infer('mel.npy')\n{NAN_REPORT}", ["mel"])


def api_cuda_without_cuda(ctx: Context) -> Verdict:
    code = "model = waveglow.load('demo', device='cuda')\nprint('RESULT loaded=on', next(model.parameters()).device)"
    run = ctx.api(code)
    if "RESULT loaded=on cuda" in run.stdout:
        return not_applicable("this machine has CUDA", run)
    if (verdict := broken(run)) is not None:
        return verdict
    found = results(run)
    if "refused" in found and "cuda" in found["refused"].lower():
        return ok("ValueError " + quoted(found["refused"]), run)
    return fail(str(found), run)


def cli_cuda_without_cuda(ctx: Context) -> Verdict:
    run = ctx.cli(
        "synthesize", "-c", ctx.inputs.tiny, ctx.inputs.mel, "-o", "out", "--device", "cuda"
    )
    if run.code == 0:
        return not_applicable("this machine has CUDA", run)
    return expect_error(run, contains=["cuda"])


def api_wrong_channels(ctx: Context) -> Verdict:
    return api_refuses(ctx, f"audio = model.infer(torch.zeros(1, 80, 20))\n{NAN_REPORT}", ["80"])


def api_unbatched_mel(ctx: Context) -> Verdict:
    code = (
        f"model = waveglow.load({str(ctx.inputs.tiny)!r})\naudio = model.infer(torch.full((8, 20), -5.0))\n"
        "print('RESULT audio=' + str(tuple(audio.shape)))"
    )
    run = ctx.api(code)
    if (verdict := broken(run)) is not None:
        return verdict
    found = results(run)
    if "refused" in found:
        return ok("ValueError " + quoted(found["refused"]), run)
    return ok(f"audio {found.get('audio')}", run) if "audio" in found else fail(str(found), run)


def complex_npy_mel(ctx: Context) -> Verdict:
    import numpy as np

    np.save(ctx.folder / "complex.npy", np.full((8, 20), -5 + 1j, dtype=np.complex64))
    run = ctx.cli("synthesize", "-c", ctx.inputs.tiny, "complex.npy", "-o", "out", "-q")
    return expect_error(run, contains=["complex.npy"])


def train_empty_folder(ctx: Context) -> Verdict:
    (ctx.folder / "empty").mkdir()
    return expect_error(ctx.train(ctx.folder / "run", "--data", ctx.folder / "empty", timeout=60))


def train_missing_data(ctx: Context) -> Verdict:
    run = ctx.train(ctx.folder / "run", "--data", ctx.folder / "nowhere", timeout=60)
    return expect_error(run, contains=["nowhere"])


def info_of_a_directory(ctx: Context) -> Verdict:
    (ctx.folder / "model.pt").mkdir()
    return expect_error(ctx.cli("info", "model.pt"), contains=["model.pt", "directory"])

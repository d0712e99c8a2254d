"""Rough edges of the main workflows: what a user of synthesis, training and the docs meets."""

from __future__ import annotations

import re

from .harness import Context
from .verdicts import Verdict, broken, expect_error, fail, ok, quoted


def long_input_progress(ctx: Context) -> Verdict:
    run = ctx.cli(
        "synthesize", "-c", ctx.inputs.tiny, ctx.inputs.long_mel, "-o", "out",
        "--chunk-frames", "20000",
    )  # fmt: skip
    if (verdict := broken(run)) is not None:
        return verdict
    updates = re.findall(r"([\d.]+)/([\d.]+) s of audio", run.stderr)
    between = {done for done, total in updates if 0 < float(done) < float(total)}
    bars = [line for line in run.stderr.replace("\r", "\n").splitlines() if line.strip()]
    shown = quoted(bars[-2] if len(bars) > 1 else (bars or [""])[0], 110)
    if run.code == 0 and between:
        return ok(f"{len(between)} updates in seconds of audio, e.g. {shown}", run)
    return fail(f"no progress within the file: {shown}", run)


def resume_after_max_iters(ctx: Context) -> Verdict:
    first = ctx.train(ctx.folder / "run", "--max-iters", "1")
    if first.code != 0:
        return fail("the first step failed: " + quoted(first.error_line()), first)
    run = ctx.cli("train", "-o", ctx.folder / "run", "--resume", "-q", timeout=120)
    if (verdict := broken(run)) is not None:
        return verdict
    if run.code == 0:
        return fail("exit 0, nothing trained, nothing said: " + quoted(run.stdout), run)
    return expect_error(run, contains=["max"])


def init_from_demo_with_set(ctx: Context) -> Verdict:
    run = ctx.cli(
        "train", "--data", ctx.inputs.corpus, "-o", "run", "-q", "--init-from", "demo",
        "--max-iters", "1", "--set", "waveglow_config.WN_config.n_channels=32",
        "--set", "train.batch_size=1", "--set", "train.validation_size=1",
        "--set", "train.num_workers=0", "--set", "data.segment_length=4096",
        "--set", "train.n_synthesis_samples=0", "--set", "train.iters_per_checkpoint=1",
        timeout=240,
    )  # fmt: skip
    if (verdict := broken(run)) is not None:
        return verdict
    said = [line for line in run.stderr.splitlines() if "n_channels" in line]
    if said:
        return ok(quoted(said[0]), run)
    return fail("the --set was ignored without a word: " + quoted(run.stdout), run)


def info_demo_facts(ctx: Context) -> Verdict:
    run = ctx.cli("info", "demo")
    if (verdict := broken(run)) is not None:
        return verdict
    paths = re.findall(r'"(/[^"]+)"', run.stdout)
    default_rate = re.search(r'"learning_rate": 0\.0001\b', run.stdout)
    if paths or default_rate or run.code != 0:
        shown = f"machine path {paths[0]}" if paths else "learning_rate 1e-4 (the default)"
        return fail(shown, run)
    trained = "trained:" in run.stdout
    return ok("no machine path; " + ("its training facts" if trained else "no training facts"), run)


def convert_help_names(ctx: Context) -> Verdict:
    run = ctx.cli("convert", "--help")
    if "universe_v5" in run.stdout or "universal_v5" not in run.stdout:
        return fail("names " + ("universe_v5" if "universe_v5" in run.stdout else "no file"), run)
    return ok("names waveglow_256channels_universal_v5.pt", run)


def training_docs(ctx: Context) -> Verdict:
    text = (ctx.checkout / "docs" / "training.md").read_text()
    problems = []
    if "once the converter reads them" in text:
        problems.append("says NVIDIA's models work 'once the converter reads them'")
    if not re.search(r"GB", text):
        problems.append("no cost of the full model")
    if not re.search(r"tiny|laptop", text, re.IGNORECASE):
        problems.append("no small recipe")
    return fail("; ".join(problems)) if problems else ok("cost of the full model, a tiny recipe")


def readme_names_nvidia_pages(ctx: Context) -> Verdict:
    text = (ctx.checkout / "README.md").read_text()
    missing = [word for word in ("universal_v5", "NGC", "DeepLearningExamples") if word not in text]
    return fail(f"no {', '.join(missing)}") if missing else ok("NVIDIA/waveglow, NGC, DLE pages")


def model_file_has_no_machine_path(ctx: Context) -> Verdict:
    first = ctx.train(ctx.folder / "run", "--max-iters", "1")
    if first.code != 0:
        return fail("the first step failed: " + quoted(first.error_line()), first)
    checkpoint = sorted((ctx.folder / "run").glob("waveglow_*.pt"))[-1]
    converted = ctx.cli("convert", checkpoint, ctx.folder / "model.safetensors")
    if (verdict := broken(converted)) is not None:
        return verdict
    run = ctx.cli("info", ctx.folder / "model.safetensors")
    if (verdict := broken(run)) is not None:
        return verdict
    if str(ctx.inputs.corpus) in run.stdout:
        return fail("info shows the training machine's corpus path", run)
    return ok("no path of the training machine", run)

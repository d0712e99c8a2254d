"""The package as users get it: the sdist, the wheel built from that sdist, and the wheel
installed (not editable) into a fresh virtual environment outside the source tree.

Marked ``wheel`` and left out of a plain ``pytest`` (it builds, and installs torch into a new
environment from pip's cache: a minute or two); ``.ci/wheel_check.sh`` (``make wheel-check``,
part of ``make test`` and CI) runs it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
import soundfile

import waveglow

pytestmark = pytest.mark.wheel

REPO = Path(__file__).resolve().parents[1]
TORCH_PIN = "torch==2.13.0"  # the Makefile's TORCH_PIN: the CPU build pip has cached already
PACKAGE_DATA = (
    "waveglow/models/demo.safetensors",
    "waveglow/models/MODEL_CARD.md",
    "waveglow/serve/static/index.html",
)
DEMO_CLIP = REPO / "examples" / "demo-thanks.wav"


def run(argv: list[str | Path], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """``argv`` with PYTHONPATH unset (nothing of the source tree on the path); fails the test
    with the command's output when it exits non-zero."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run(
        [str(arg) for arg in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m build``: the sdist, then the wheel built from the unpacked sdist."""
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", out, REPO], cwd=REPO)
    return out


@pytest.fixture(scope="module")
def wheel(dist: Path) -> Path:
    (path,) = dist.glob("*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment (no system site-packages) holding torch and the wheel[serve]."""
    folder = tmp_path_factory.mktemp("fresh") / "venv"
    run([sys.executable, "-m", "venv", folder], cwd=folder.parent)
    pip = [folder / "bin" / "python", "-m", "pip", "install", "--quiet"]
    run([*pip, TORCH_PIN], cwd=folder.parent)
    run([*pip, f"{wheel}[serve]"], cwd=folder.parent)
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working folder outside the source tree."""
    assert not tmp_path.resolve().is_relative_to(REPO)
    return tmp_path


def test_archives_carry_the_one_version(dist: Path):
    names = sorted(path.name for path in dist.iterdir())
    version = waveglow.__version__
    assert names == [f"waveglow-{version}-py3-none-any.whl", f"waveglow-{version}.tar.gz"]


def test_wheel_holds_the_model_its_card_the_page_and_the_command(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        sizes = {info.filename: info.file_size for info in archive.infolist()}
        entry_points = archive.read(f"waveglow-{waveglow.__version__}.dist-info/entry_points.txt")
    print(f"\n{wheel.name}:")
    for name in sorted(sizes):
        print(f"  {sizes[name]:>9,}  {name}")
    for name in PACKAGE_DATA:
        source = REPO / "src" / name
        assert sizes.get(name) == source.stat().st_size, f"{name} missing or not {source}"
    assert "waveglow/cli/__init__.py" in sizes and "waveglow/cli/synthesize.py" in sizes
    assert not [name for name in sizes if name.startswith(("tests/", "bench/", "recipes/"))]
    assert "waveglow = waveglow.cli:main" in entry_points.decode()


def test_sdist_holds_the_package_data(dist: Path):
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = set(archive.getnames())
    root = f"waveglow-{waveglow.__version__}"
    for name in (*PACKAGE_DATA, "../pyproject.toml", "../README.md"):
        assert os.path.normpath(f"{root}/src/{name}") in names, name


def test_twine_check_passes_on_both_archives(dist: Path):
    done = run([sys.executable, "-m", "twine", "check", "--strict", *dist.iterdir()], cwd=dist)
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_installed_wheel_loads_the_demo_model(venv: Path, outside: Path):
    code = """
import json, sys, torch, waveglow
model = waveglow.load("demo")
mel = torch.full((1, model.config.n_mel_channels, 10), -5.0)  # (B, M, F)
audio = model.infer(mel, sigma=0.6)  # (B, F * hop)
print(json.dumps({"file": waveglow.__file__, "prefix": sys.prefix, "shape": list(audio.shape),
                  "hop": model.data_config.hop_length, "finite": bool(torch.isfinite(audio).all()),
                  "version": waveglow.__version__}))
"""
    done = run([venv / "bin" / "python", "-c", code], cwd=outside)
    found = json.loads(done.stdout.splitlines()[-1])
    assert Path(found["file"]).resolve().is_relative_to(Path(found["prefix"]).resolve())
    assert not Path(found["file"]).resolve().is_relative_to(REPO)
    assert found["shape"] == [1, 10 * found["hop"]] and found["finite"]
    assert found["version"] == waveglow.__version__


def test_installed_command_copy_synthesizes(venv: Path, outside: Path):
    run([venv / "bin" / "waveglow", "synthesize", "-c", "demo", DEMO_CLIP, "-o", "out", "-q"],
        cwd=outside)  # fmt: skip
    audio, rate = soundfile.read(outside / "out" / "demo-thanks_synthesis.wav", dtype="float32")
    original = soundfile.info(DEMO_CLIP)
    assert rate == 22050
    assert abs(len(audio) / rate - original.frames / original.samplerate) < 0.05
    assert 0.01 < abs(audio).max() <= 1.0


def test_installed_serve_answers_with_the_demo_page(venv: Path, outside: Path):
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    server = subprocess.Popen(
        [venv / "bin" / "waveglow", "serve", "-c", "demo", "--port", str(port)],
        cwd=outside,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        status, kind, body = get_when_up(f"http://127.0.0.1:{port}/", server, timeout=120)
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(60)
    page = (REPO / "src" / "waveglow" / "serve" / "static" / "index.html").read_text()
    assert status == 200 and kind.startswith("text/html")
    assert "<title>WaveGlow demo</title>" in body and body == page
    assert code == 0, server.stderr.read().decode() if server.stderr else ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_when_up(url: str, server: subprocess.Popen, timeout: float) -> tuple[int, str, str]:
    """(status, content type, body) of ``GET url`` once the server answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the server exited {server.returncode}: {server.stderr.read().decode()}")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, response.headers["content-type"], response.read().decode()
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.5)
    pytest.fail(f"no answer from {url} within {timeout:.0f} s")

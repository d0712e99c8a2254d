"""The demo page (``GET /``) driven in headless Chromium against the real ``waveglow serve``.

Needs the Python ``playwright`` package (the serve extra) and a system Chromium (Debian's
``chromium``; ``make test`` installs it when run as root); Playwright's own browser download is
not used. Without either the test is skipped, saying which one is missing.
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser test needs playwright (pip install '.[serve]')"
)

from serve_server import HOP, RATE, Server, write_tiny_checkpoint  # noqa: E402

CHROMIUM = (
    os.environ.get("WAVEGLOW_CHROMIUM")
    or shutil.which("chromium")
    or shutil.which("chromium-browser")
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="the browser test needs a system chromium (apt-get install chromium, or set "
    "WAVEGLOW_CHROMIUM); make test installs it when run as root",
)

CLIP_RATE = 16000  # not the model's rate: the page's upload goes through the service's resampling
CLIP_SECONDS = 1.2
SIGMA, DENOISE = "0.5", "0.05"  # not the page's defaults: the controls must reach the service
SYSTEMS = ("original", "waveglow", "griffin-lim")
WAIT_MS = 120_000

AUDIO_STATE = """async (id) => {
  const audio = document.getElementById(id);
  if (audio.readyState < 1) {
    await new Promise((done, fail) => {
      audio.addEventListener("loadedmetadata", done, { once: true });
      audio.addEventListener("error", () => fail(new Error(id + ": cannot be decoded")), { once: true });
    });
  }
  return { duration: audio.duration, readyState: audio.readyState, src: audio.src };
}"""
PLAY = """async (id) => {
  const audio = document.getElementById(id);
  audio.muted = true;
  await audio.play();
  const started = performance.now();
  while (audio.currentTime === 0 && performance.now() - started < 10000) {
    await new Promise((done) => setTimeout(done, 50));
  }
  audio.pause();
  return audio.currentTime;
}"""
SRC_BYTES = """async (id) => {
  const blob = await (await fetch(document.getElementById(id).src)).blob();
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let text = "";
  for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return btoa(text);
}"""
CANVAS_SPREAD = """(id) => {
  const canvas = document.getElementById(id);
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let sum = 0, squares = 0, n = 0;
  for (let i = 0; i < data.length; i += 4) {
    const level = data[i] + data[i + 1] + data[i + 2];
    sum += level; squares += level * level; n++;
  }
  const mean = sum / n;
  return { drawn: canvas.dataset.drawn === "true", std: Math.sqrt(squares / n - mean * mean) };
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    checkpoint = write_tiny_checkpoint(tmp_path_factory.mktemp("page") / "tiny.pt")
    with Server(checkpoint, "--chunk-frames", "32", "--threads", "1") as running:
        yield running


def write_clip(path: Path) -> Path:
    """A vowel-like clip: a gliding 120-180 Hz harmonic series under a syllable envelope."""
    t = np.arange(int(CLIP_SECONDS * CLIP_RATE)) / CLIP_RATE
    phase = 2 * np.pi * np.cumsum(120 + 60 * t / CLIP_SECONDS) / CLIP_RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 25))
    envelope = np.sin(np.pi * np.clip(t / CLIP_SECONDS, 0, 1)) ** 2
    noise = np.random.default_rng(0).standard_normal(t.size) * 0.01
    soundfile.write(path, (0.2 * voice * envelope + noise).astype(np.float32), CLIP_RATE)
    return path


def expected_samples(server: Server, clip: Path) -> tuple[int, bytes]:
    """The length of the service's audio for ``clip``, and its WaveGlow wav for the page's settings."""
    params = {"sigma": SIGMA, "denoise": DENOISE, "seed": "0"}
    with clip.open("rb") as upload:
        response = server.client.post(
            "/v1/copy-synthesis", files={"file": (clip.name, upload)}, params=params
        )
    assert response.status_code == 200, response.text
    return (len(response.content) - 44) // 2, response.content


@pytest.mark.slow
def test_the_demo_page_synthesises_an_upload_in_chromium(server: Server, tmp_path: Path):
    clip = write_clip(tmp_path / "clip.wav")
    samples, served_wav = expected_samples(server, clip)
    assert samples % HOP == 0 and samples > CLIP_SECONDS * RATE * 0.9
    problems: list[str] = []
    foreign: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 720})
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on(
                "console",
                lambda message: problems.append(message.text) if message.type == "error" else None,
            )
            page.on(
                "response",
                lambda response: (
                    problems.append(f"{response.status} {response.url}")
                    if response.status >= 400
                    else None
                ),
            )
            page.on(
                "request",
                lambda request: (
                    foreign.append(request.url)
                    if not request.url.startswith((server.url, "blob:", "data:"))
                    else None
                ),
            )
            page.goto(server.url)
            sync_api.expect(page.locator("#model-name")).to_have_text("tiny.pt")
            sync_api.expect(page.locator("#architecture")).to_contain_text("4 flows")
            sync_api.expect(page.locator("#synthesize")).to_be_disabled()

            page.set_input_files("#file", str(clip))
            page.fill("#sigma", SIGMA)
            page.fill("#denoise", DENOISE)
            page.click("#synthesize")
            sync_api.expect(page.locator("#status")).to_contain_text("done in", timeout=WAIT_MS)
            for name in SYSTEMS:
                sync_api.expect(page.locator(f"#audio-{name}")).to_be_visible()
                sync_api.expect(page.locator(f"#spec-{name}")).to_be_visible()

            states = {name: page.evaluate(AUDIO_STATE, f"audio-{name}") for name in SYSTEMS}
            page_wav = base64.b64decode(page.evaluate(SRC_BYTES, "audio-waveglow"))
            played = page.evaluate(PLAY, "audio-waveglow")
            spreads = {name: page.evaluate(CANVAS_SPREAD, f"spec-{name}") for name in SYSTEMS}
            page.screenshot(path=tmp_path / "demo-page.png", full_page=True)
        finally:
            browser.close()

    assert not problems, problems
    assert not foreign, f"the page reached beyond the service: {foreign}"
    assert page_wav == served_wav, "the page's WaveGlow audio is not the service's for its settings"
    assert abs(states["original"]["duration"] - CLIP_SECONDS) < 0.01, states
    for name in ("waveglow", "griffin-lim"):
        assert states[name]["readyState"] >= 1, states
        assert abs(states[name]["duration"] - samples / RATE) < 0.01, states
    assert played > 0, "the WaveGlow audio did not play"
    for name, spread in spreads.items():
        assert spread["drawn"] and spread["std"] > 10, (name, spread)
    screenshot = tmp_path / "demo-page.png"
    assert 10_000 < screenshot.stat().st_size < 500_000


@pytest.mark.slow
def test_the_demo_page_sends_the_api_key_it_is_given(tmp_path: Path):
    """A keyed service: the browser opens the page with HTTP Basic credentials (as a person
    would, from its prompt); the page sends the key it was given (#key=...) as X-API-Key."""
    key = "page-test-key-0123456789"
    key_file = tmp_path / "key"
    key_file.write_text(key)
    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.pt")
    sent: list[str | None] = []
    with (
        Server(checkpoint, "--api-key-file", str(key_file)) as keyed,
        sync_api.sync_playwright() as playwright,
    ):
        assert keyed.client.get("/").status_code == 401
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context(http_credentials={"username": "me", "password": key})
            page = context.new_page()
            page.on(
                "request",
                lambda request: (
                    sent.append(request.headers.get("x-api-key"))
                    if request.url.endswith("/v1/info")
                    else None
                ),
            )
            page.goto(f"{keyed.url}/#key={key}")
            sync_api.expect(page.locator("#model-name")).to_have_text("tiny.pt")
        finally:
            browser.close()
    assert sent and sent[-1] == key, sent

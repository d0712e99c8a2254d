"""The FastAPI app: endpoints, limits, streaming and the demo page (see ``waveglow serve --help``).

Audio responses are 16-bit mono PCM wavs at the model's rate. Their length is known before
synthesis (frames * hop), so a streamed response (``stream=true``: chunked transfer, the chunks
sent as the worker synthesizes them) carries the same 44-byte header as a whole one and the two
bodies are identical byte for byte. A streamed response that fails half-way is cut off (the
connection closes before the announced length). Errors are ``text/plain``, one line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import signal
import struct
import time
from importlib import resources
from pathlib import Path

import torch
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import StreamingResponse

from .. import __version__
from ..chunked import _pcm16
from ..model import WaveGlow
from ..noise import draw_seed
from .auth import ApiKeyMiddleware, resolve_api_key
from .config import ServeConfig
from .conversion import CONVERSION_FIELDS, conversion_from_fields, converted_mel
from .engine import Engine, Job, QueueFullError, queue_and_sink
from .inputs import (
    InputError,
    Options,
    check_frames,
    mel_from_audio_bytes,
    mel_from_bytes,
    mel_from_json,
    parse_json,
    parse_options,
)
from .metrics import Metrics
from .stream import add_stream_route

OPTION_NAMES = ("sigma", "seed", "denoise", "stream", *CONVERSION_FIELDS)
RETRY_AFTER_S = 1
ERRORS = {
    400: {"description": "bad input (one line saying what is wrong)", "content": {"text/plain": {}}},
    413: {"description": "over --max-seconds of audio or the body size limit", "content": {"text/plain": {}}},
    503: {"description": "the queue is full (Retry-After) or the service is stopping", "content": {"text/plain": {}}},
}  # fmt: skip
WAV_RESPONSE = {
    200: {
        "description": "16-bit mono PCM wav at the model's rate; X-Seed names the seed used",
        "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
    }
}
UPLOAD_SCHEMA = {
    "type": "object",
    "properties": {"file": {"type": "string", "format": "binary"}},
    "required": ["file"],
}


def _body_spec(description: str, json_body: bool) -> dict:
    content = {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {"schema": UPLOAD_SCHEMA},
    }
    if json_body:
        content["application/json"] = {
            "schema": {
                "type": "object",
                "required": ["mel"],
                "properties": {
                    "mel": {
                        "type": "array",
                        "items": {"type": "array", "items": {"type": "number"}},
                    },
                    "sigma": {"type": "number"},
                    "seed": {"type": "integer"},
                    "denoise": {"type": "number"},
                    "stream": {"type": "boolean"},
                },
            }
        }
    return {"requestBody": {"required": True, "description": description, "content": content}}


class Service:
    """What the endpoints share: the model, its worker, the metrics and the limits."""

    def __init__(self, config: ServeConfig, model: WaveGlow) -> None:
        self.config = config
        self.model = model
        self.rate = model.data_config.sampling_rate
        self.metrics = Metrics(config.max_batch, self.rate)
        self.engine = Engine(model, config, self.metrics)
        self.transform = model.mel_transform()
        self.info = model_info(config, model)
        self.griffin_lim_slot = asyncio.Semaphore(1)  # the baseline must not crowd out the worker

    # ------------------------------------------------------------------ request bodies
    async def read_body(self, request: Request) -> bytes:
        """The body, refused with 413 past ``max_body_bytes`` (before reading it if announced)."""
        limit = self.config.max_body_bytes
        announced = request.headers.get("content-length")
        if announced is not None and announced.isdigit() and int(announced) > limit:
            raise InputError(
                f"the body ({int(announced)} bytes) is over the {limit}-byte limit", 413
            )
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise InputError(f"the body is over the {limit}-byte limit", 413)
            chunks.append(chunk)
        body = b"".join(chunks)
        request._body = body  # so that request.form() parses what was read
        return body

    async def upload(self, request: Request, json_mel: bool) -> tuple[object, dict[str, object]]:
        """The uploaded bytes (or parsed JSON) and the option fields (query, then form/JSON)."""
        body = await self.read_body(request)
        fields: dict[str, object] = dict(request.query_params)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "application/json" and json_mel:
            payload = parse_json(body)
            if isinstance(payload, dict):
                fields.update({name: payload[name] for name in OPTION_NAMES if name in payload})
            return payload, fields
        if kind == "multipart/form-data":
            form = await request.form()
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise InputError('a form upload needs its file in a field named "file"')
            fields.update({name: form[name] for name in OPTION_NAMES if name in form})
            return await upload.read(), fields
        return body, fields

    async def mel_request(self, request: Request, source: str) -> tuple[torch.Tensor, Options]:
        """The mel and options of a request; ``source``: "mel" or "audio"."""
        data, fields = await self.upload(request, json_mel=source == "mel")
        options = parse_options(fields)
        bins = self.model.config.n_mel_channels
        conversion = conversion_from_fields(fields) if source == "mel" else None
        if conversion is not None:  # a mel from another front end (waveglow mel-check)
            mel = await run_in_threadpool(converted_mel, data, bins, conversion)
        elif source == "audio":
            mel = await run_in_threadpool(mel_from_audio_bytes, data, self.transform)
        elif isinstance(data, bytes):
            mel = await run_in_threadpool(mel_from_bytes, data, bins)
        else:
            mel = await run_in_threadpool(mel_from_json, data, bins)
        check_frames(mel.size(1), self.model.hop_length, self.rate, self.config.max_seconds)
        return mel, options

    # ------------------------------------------------------------------ synthesis
    async def synthesize(
        self, request: Request, endpoint: str, mel: torch.Tensor, options: Options
    ) -> Response:
        started = time.perf_counter()
        seed = draw_seed() if options.seed is None else options.seed
        outputs, sink = queue_and_sink()

        job = Job(mel, seed, options.sigma, options.denoise, options.stream, sink)
        try:
            self.engine.submit(job)
        except QueueFullError as error:
            self.count(endpoint, 503, "queue_full")
            return PlainTextResponse(
                f"{error}; retry later\n", 503, headers={"Retry-After": str(RETRY_AFTER_S)}
            )
        header = wav_header(mel.size(1) * self.model.hop_length, self.rate)
        headers = {"X-Seed": str(seed)}
        if options.stream:
            self.count(endpoint, 200)
            body = self.stream(job, outputs, header, endpoint, started)
            return StreamingResponse(body, media_type="audio/wav", headers=headers)
        try:
            parts = [header, *[part async for part in self.pcm(job, outputs, request)]]
        except RuntimeError as error:
            self.count(endpoint, 500)
            return PlainTextResponse(f"{error}\n", 500)
        if job.cancelled:
            return Response(status_code=499)
        self.metrics.first_audio.labels(endpoint=endpoint, stream="false").observe(
            time.perf_counter() - started
        )
        self.metrics.latency.labels(endpoint=endpoint).observe(time.perf_counter() - started)
        self.count(endpoint, 200)
        return Response(b"".join(parts), media_type="audio/wav", headers=headers)

    async def pcm(self, job: Job, outputs: asyncio.Queue, request: Request | None = None):  # noqa: ANN201
        """The job's PCM chunks as the worker delivers them; cancels it if the client leaves."""
        while True:
            try:
                item = await asyncio.wait_for(outputs.get(), 0.25)
            except TimeoutError:
                if request is not None and await request.is_disconnected():
                    job.cancel()
                    return
                continue
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    async def stream(
        self, job: Job, outputs: asyncio.Queue, header: bytes, endpoint: str, started: float
    ):  # noqa: ANN201
        """The streamed body; closing it early (client gone) cancels the job."""
        try:
            yield header
            first = True
            async for part in self.pcm(job, outputs):
                if first:
                    self.metrics.first_audio.labels(endpoint=endpoint, stream="true").observe(
                        time.perf_counter() - started
                    )
                    first = False
                yield part
            self.metrics.latency.labels(endpoint=endpoint).observe(time.perf_counter() - started)
        finally:
            job.cancel()  # a no-op for a finished job

    async def griffin_lim(self, mel: torch.Tensor) -> bytes:
        """The Griffin-Lim baseline of ``mel`` as a wav as long as WaveGlow's (one at a time)."""
        from ..evaluate import griffin_lim

        started = time.perf_counter()
        length = mel.size(1) * self.model.hop_length
        async with self.griffin_lim_slot:
            audio = await run_in_threadpool(griffin_lim, mel, self.model.data_config, length, 0)
        self.metrics.latency.labels(endpoint="/v1/griffin-lim").observe(
            time.perf_counter() - started
        )
        return wav_header(length, self.rate) + _pcm16(torch.from_numpy(audio)).tobytes()

    def count(self, endpoint: str, status: int, kind: str | None = None) -> None:
        self.metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()
        if kind is not None:
            self.metrics.errors.labels(kind=kind).inc()


# ---------------------------------------------------------------------------- the app
def create_app(config: ServeConfig, model: WaveGlow | None = None) -> FastAPI:
    """The service for ``config``; loads ``config.checkpoint`` unless ``model`` is given."""
    if model is None:
        from ..checkpoint import load

        model = load(config.checkpoint, device=config.device)
    service = Service(config, model.eval())

    async def lifespan(app: FastAPI):  # noqa: ANN202
        service.engine.start()
        yield
        await run_in_threadpool(service.engine.stop, 60.0)

    app = FastAPI(
        title="waveglow serve",
        version=__version__,
        summary="WaveGlow vocoder: Tacotron 2 mels and audio to 16-bit speech",
        lifespan=lifespan,
    )
    app.state.service = service
    _add_error_handlers(app, service)
    _add_audio_routes(app, service)
    _add_info_routes(app, service)
    add_stream_route(app, service)
    _add_access_control(app, config)
    return app


def _add_access_control(app: FastAPI, config: ServeConfig) -> None:
    """The API key check, and CORS outside it (preflights carry no key) when origins are given."""
    if config.api_key is not None:
        app.add_middleware(ApiKeyMiddleware, key=config.api_key)
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
            expose_headers=["X-Seed"],
        )


def _add_error_handlers(app: FastAPI, service: Service) -> None:
    @app.exception_handler(InputError)
    async def input_error(request: Request, error: InputError) -> PlainTextResponse:
        kind = "too_large" if error.status == 413 else "bad_input"
        service.count(request.url.path, error.status, kind)
        return PlainTextResponse(f"{error}\n", error.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        """Starlette's own refusals (a malformed form upload, an unknown path or method) as the
        documented one-line text, not FastAPI's JSON."""
        if error.status_code < 400:
            return Response(status_code=error.status_code, headers=error.headers)
        if error.status_code == 400:
            service.count(request.url.path, 400, "bad_input")
        return PlainTextResponse(f"{error.detail}\n", error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(
        request: Request, error: RequestValidationError
    ) -> PlainTextResponse:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
        service.count(request.url.path, 400, "bad_input")
        return PlainTextResponse(f"{where}: {first.get('msg', 'invalid')}\n", 400)


def _add_audio_routes(app: FastAPI, service: Service) -> None:
    sigma_q = Query(None, ge=0, description="noise scale (default 0.6)")
    seed_q = Query(
        None, ge=0, lt=2**63, description="seed of the noise (default: drawn, see X-Seed)"
    )
    denoise_q = Query(None, ge=0, description="bias-removal strength, e.g. 0.1 (default 0: off)")
    stream_q = Query(None, description="send the audio chunk by chunk as it is synthesized")
    audio_body = _body_spec(
        "an audio file (any format soundfile reads, any rate, any channels)", False
    )

    @app.post("/v1/synthesize", responses={**WAV_RESPONSE, **ERRORS}, response_class=Response,
              openapi_extra=_body_spec("a mel (M, F): .npy or .pt bytes, a form upload, or JSON", True))  # fmt: skip
    async def synthesize(
        request: Request,
        sigma: float | None = sigma_q,
        seed: int | None = seed_q,
        denoise: float | None = denoise_q,
        stream: bool | None = stream_q,
    ) -> Response:
        """Synthesize a mel spectrogram (the model's number of bands, F frames)."""
        mel, options = await service.mel_request(request, "mel")
        return await service.synthesize(request, "/v1/synthesize", mel, options)

    @app.post("/v1/copy-synthesis", responses={**WAV_RESPONSE, **ERRORS}, response_class=Response,
              openapi_extra=audio_body)  # fmt: skip
    async def copy_synthesis(
        request: Request,
        sigma: float | None = sigma_q,
        seed: int | None = seed_q,
        denoise: float | None = denoise_q,
        stream: bool | None = stream_q,
    ) -> Response:
        """Resynthesize an audio file: its Tacotron 2 mel through WaveGlow."""
        mel, options = await service.mel_request(request, "audio")
        return await service.synthesize(request, "/v1/copy-synthesis", mel, options)

    @app.post("/v1/griffin-lim", responses={**WAV_RESPONSE, **ERRORS}, response_class=Response,
              openapi_extra=audio_body)  # fmt: skip
    async def griffin_lim(request: Request) -> Response:
        """The Griffin-Lim baseline of an audio file (its mel inverted without a vocoder)."""
        mel, _ = await service.mel_request(request, "audio")
        body = await service.griffin_lim(mel)
        service.count("/v1/griffin-lim", 200)
        return Response(body, media_type="audio/wav")


def _add_info_routes(app: FastAPI, service: Service) -> None:
    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        """The demo page."""
        html = resources.files("waveglow.serve").joinpath("static/index.html").read_text("utf-8")
        return HTMLResponse(html)

    @app.get("/v1/info")
    async def info() -> dict:
        """The loaded model, its verdict and the service's limits."""
        return service.info

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """200 while the worker runs, else 503."""
        alive = service.engine.alive
        body = {"status": "ok" if alive else "worker stopped", "queue_depth": service.engine.depth}
        return JSONResponse(body, 200 if alive else 503)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> Response:
        """Prometheus text format."""
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")


# ---------------------------------------------------------------------------- helpers
def wav_header(samples: int, sampling_rate: int) -> bytes:
    """The 44-byte header of a 16-bit mono PCM wav of ``samples`` samples."""
    data = samples * 2
    return (
        b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, sampling_rate, sampling_rate * 2, 2, 16)
        + b"data" + struct.pack("<I", data)
    )  # fmt: skip


def model_info(config: ServeConfig, model: WaveGlow) -> dict:
    """What the demo page shows about the model and the limits."""
    wn = model.config.WN_config
    return {
        "checkpoint": config.checkpoint,
        "name": Path(config.checkpoint).name,
        "architecture": f"{model.config.n_flows} flows, n_group {model.n_group}, WN "
        f"{wn.n_layers} layers x {wn.n_channels} channels, {model.config.n_mel_channels} mel bands",
        "verdict": model_verdict(config.checkpoint),
        "sampling_rate": model.data_config.sampling_rate,
        "hop_length": model.hop_length,
        "precision": config.precision,
        "max_seconds": config.max_seconds,
        "max_batch": config.max_batch,
        "chunk_frames": config.chunk_frames,
        "version": __version__,
    }


def model_verdict(checkpoint: str) -> str | None:
    """The model card's one-line verdict for a bundled model (its first bold claim), else None."""
    from ..checkpoint import BUNDLED_MODELS

    if checkpoint not in BUNDLED_MODELS or Path(checkpoint).exists():
        return None
    card = resources.files("waveglow").joinpath("models/MODEL_CARD.md").read_text("utf-8")
    # the bold claim and the rest of its sentence (a full stop followed by a space: 0.65 is a number)
    for match in re.finditer(r"\*\*([^*]+)\*\*(.*?\.(?=\s|$))?", card, flags=re.DOTALL):
        if not match.group(1).rstrip().endswith("."):
            return " ".join((match.group(1) + (match.group(2) or "")).split())
    return None


def run(config: ServeConfig) -> int:
    """Serve ``config`` with uvicorn until SIGTERM/SIGINT; requests in flight are finished."""
    import uvicorn

    from .drain import DrainingServer

    if config.api_key is None and (key := resolve_api_key()) is not None:
        config = dataclasses.replace(config, api_key=key)  # $WAVEGLOW_API_KEY
    app = create_app(config)
    access = "API key required" if config.api_key else "no API key (open to whoever reaches it)"
    print(
        f"waveglow serve: {config.checkpoint} on http://{config.host}:{config.port} ({access})",
        flush=True,
    )
    server_config = uvicorn.Config(
        app, host=config.host, port=config.port, log_level=config.log_level,
        timeout_graceful_shutdown=None,
    )  # fmt: skip
    server = DrainingServer(server_config, app.state.stream_gate)  # open streams finish first
    # uvicorn drains on SIGTERM/SIGINT and then re-raises the signal into the handlers it found;
    # a drained service has done what was asked and exits 0, so those handlers do nothing here.
    quiet = {sig: signal.signal(sig, _drained) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for sig, handler in quiet.items():
            signal.signal(sig, handler)
    return 0


def _drained(signum: int, frame: object) -> None:
    """The signal uvicorn passes on after its graceful shutdown: already handled."""

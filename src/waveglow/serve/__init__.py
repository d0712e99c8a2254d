"""``waveglow serve``: an HTTP vocoder service (FastAPI + uvicorn, the ``serve`` extra).

:func:`create_app` builds the app from a :class:`ServeConfig` (no module-level state); :func:`serve`
loads the model once and runs it under uvicorn until SIGTERM/SIGINT, then drains the requests in
flight. See :mod:`waveglow.serve.engine` for batching and the noise contract.
"""

from .config import ServeConfig
from .engine import Engine, QueueFullError

__all__ = ["Engine", "QueueFullError", "ServeConfig", "create_app", "serve"]


def create_app(config: ServeConfig, model=None):  # noqa: ANN001, ANN201 - FastAPI is optional
    """The FastAPI app for ``config`` (``model``: an already loaded WaveGlow, else loaded)."""
    from .app import create_app as build

    return build(config, model)


def serve(config: ServeConfig) -> int:
    """Run the service until SIGTERM or SIGINT; returns the exit code."""
    from .app import run

    return run(config)

"""Opt-in access control of ``waveglow serve``: the API key, the key file and environment
variable, and CORS off unless asked for."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from conftest import make_model  # noqa: E402
from serve_server import SERVE_TINY, Server, write_tiny_checkpoint  # noqa: E402
from waveglow import DataConfig  # noqa: E402
from waveglow.serve import ServeConfig, create_app  # noqa: E402
from waveglow.serve.auth import ApiKeyError, key_matches, resolve_api_key  # noqa: E402

KEY = "k3y-for-the-tests-0123456789"


@pytest.fixture(scope="module")
def model():
    return make_model(SERVE_TINY, DataConfig(), 0).remove_weight_norm()


def client(model, **fields) -> TestClient:
    return TestClient(create_app(ServeConfig(checkpoint="tiny.pt", **fields), model))


def test_without_a_key_every_endpoint_is_open_and_there_is_no_cors(model):
    with client(model) as open_service:
        response = open_service.get("/v1/info", headers={"Origin": "https://elsewhere.example"})
        assert response.status_code == 200
        assert "access-control-allow-origin" not in response.headers


def test_with_a_key_every_endpoint_but_healthz_needs_it(model):
    with client(model, api_key=KEY) as service:
        assert service.get("/healthz").status_code == 200
        for method, path in (("GET", "/"), ("GET", "/v1/info"), ("GET", "/metrics"),
                             ("GET", "/openapi.json"), ("POST", "/v1/synthesize")):  # fmt: skip
            response = service.request(method, path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"].startswith("Basic")
            assert response.text.count("\n") == 1
        wrong = service.get("/v1/info", headers={"X-API-Key": KEY[:-1] + "x"})
        assert wrong.status_code == 401


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {KEY}"},
        {"X-API-Key": KEY},
        {"Authorization": "Basic " + base64.b64encode(f"anyone:{KEY}".encode()).decode()},
    ],
    ids=["bearer", "x-api-key", "basic"],
)
def test_the_key_is_accepted_in_each_documented_header(model, headers):
    with client(model, api_key=KEY) as service:
        assert service.get("/v1/info", headers=headers).status_code == 200


def test_cors_is_on_only_for_the_origins_asked_for(model):
    origin = "https://page.example"
    with client(model, api_key=KEY, cors_origins=(origin,)) as service:
        preflight = service.options(
            "/v1/synthesize",
            headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "x-api-key"},
        )  # fmt: skip
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == origin
        other = service.get(
            "/v1/info", headers={"Origin": "https://evil.example", "X-API-Key": KEY}
        )
        assert "access-control-allow-origin" not in other.headers


def test_key_sources_in_order_and_bad_keys_name_their_source(tmp_path: Path):
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    environ = {"WAVEGLOW_API_KEY": "from-the-environment-0123"}
    assert resolve_api_key("x" * 16, key_file, environ) == "x" * 16
    assert resolve_api_key(None, key_file, environ) == KEY
    assert resolve_api_key(None, None, environ) == "from-the-environment-0123"
    assert resolve_api_key(None, None, {}) is None
    with pytest.raises(ApiKeyError, match="WAVEGLOW_API_KEY: an API key must be at least 16"):
        resolve_api_key(None, None, {"WAVEGLOW_API_KEY": "short"})
    with pytest.raises(ApiKeyError, match=f"{tmp_path / 'missing'}: cannot read the API key file"):
        resolve_api_key(None, tmp_path / "missing", {})
    with pytest.raises(ValueError, match="api_key: an API key"):
        ServeConfig(checkpoint="x", api_key="has a space in it!")


def test_key_comparison_sees_the_whole_key():
    assert key_matches({b"x-api-key": KEY.encode()}, KEY)
    assert not key_matches({b"x-api-key": KEY.encode() + b"x"}, KEY)
    assert not key_matches({b"x-api-key": KEY[:8].encode()}, KEY)
    assert not key_matches({b"authorization": b"Basic !!!notbase64"}, KEY)
    assert "api_key" not in repr(ServeConfig(checkpoint="x", api_key=KEY))


def test_the_real_server_reads_the_key_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("WAVEGLOW_API_KEY", KEY)
    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.pt")
    with Server(checkpoint) as server:
        assert server.client.get("/v1/info").status_code == 401
        assert server.client.get("/v1/info", headers={"X-API-Key": KEY}).status_code == 200
        output = server.stop()
    assert "API key required" in output and KEY not in output


def test_the_command_line_takes_a_key_file_and_cors_origins(tmp_path, capsys):
    from waveglow.cli import main

    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.pt")
    missing = tmp_path / "no-such-key"
    assert main(["serve", "-c", str(checkpoint), "--api-key-file", str(missing)]) == 1
    assert f"{missing}: cannot read the API key file" in capsys.readouterr().err
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    origin = "https://page.example"
    with Server(checkpoint, "--api-key-file", str(key_file), "--cors-origin", origin) as server:
        assert server.client.get("/metrics").status_code == 401
        allowed = server.client.get(
            "/v1/info", headers={"Authorization": f"Bearer {KEY}", "Origin": origin}
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == origin


def test_the_websocket_stream_needs_the_key_too(model):
    from starlette.websockets import WebSocketDisconnect

    with client(model, api_key=KEY) as service:
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            service.websocket_connect("/v1/stream") as socket,
        ):
            socket.receive_json()
        assert refused.value.code == 1008
        with service.websocket_connect("/v1/stream", headers={"X-API-Key": KEY}) as socket:
            assert socket.receive_json()["type"] == "start"

"""No log line carries a credential: a real `darkroom serve` process's access log shows a
signed URL with its signature redacted, as text and as JSON; a JSON line carries the request's
id and, inside a job, the job's ids; the access line is Darkroom's own, one per request."""

import io
import json
import logging
import time
from pathlib import Path

import httpx

from app.config import Settings
from app.logs import JsonFormatter, RedactSecrets, job_context, redact, request_id
from app.main import create_app
from tests.factories import image_bytes
from tests.support import darkroom_serve, free_port


async def serve_and_download_a_signed_url(
    settings: Settings, log: Path, headers: dict[str, str] | None = None
) -> tuple[dict, str]:
    """Run `darkroom serve`, upload an asset and download it by a signed URL; the asset and
    the URL."""
    async with (
        darkroom_serve(settings, "logs", log) as (base_url, key, _),
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        auth = {"Authorization": f"Bearer {key}"}
        files = {"file": ("photo.png", image_bytes(), "image/png")}
        asset = (await client.post("/v1/assets", files=files, headers=auth)).json()
        signed = await client.post(f"/v1/assets/{asset['id']}/url", json={}, headers=auth)
        url = signed.json()["url"]
        download = await client.get(url, headers=headers)
        assert download.status_code == 200
        if headers:
            assert download.headers["X-Request-ID"] == headers["X-Request-ID"]
    return asset, url


async def test_the_access_log_redacts_the_signature_of_a_signed_url(tmp_path):
    log = tmp_path / "serve.log"
    settings = Settings(data_dir=tmp_path / "var", port=free_port())

    asset, url = await serve_and_download_a_signed_url(settings, log)

    signature = httpx.URL(url).params["signature"]
    text = log.read_text()
    assert f"/v1/assets/{asset['id']}/content?expires=" in text
    assert "signature=[redacted]" in text
    assert signature not in text


async def test_json_lines_carry_the_request_id_and_one_redacted_access_line_per_request(
    tmp_path,
):
    log = tmp_path / "serve.log"
    settings = Settings(data_dir=tmp_path / "var", port=free_port(), log_format="json")

    began = time.perf_counter()
    asset, url = await serve_and_download_a_signed_url(
        settings, log, headers={"X-Request-ID": "download-7"}
    )
    whole_run_ms = (time.perf_counter() - began) * 1000

    text = log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    [download] = [line for line in lines if line.get("request_id") == "download-7"]
    assert download["logger"] == "darkroom.access"
    assert download["route"] == "/v1/assets/{asset_id}/content"
    assert download["method"] == "GET" and download["status"] == 200
    # The request's own time: within the whole run of the server, however long the machine is up.
    assert 0 < download["duration_ms"] < whole_run_ms
    assert download["path"].startswith(f"/v1/assets/{asset['id']}/content?expires=")
    assert "signature=[redacted]" in download["path"]
    assert httpx.URL(url).params["signature"] not in text
    # Darkroom's access line replaces uvicorn's: three requests (upload, mint, download) and
    # the readiness polls, each logged once.
    assert not [line for line in lines if line["logger"] == "uvicorn.access"]
    access = [line for line in lines if line["logger"] == "darkroom.access"]
    assert len({line["request_id"] for line in access}) == len(access)
    assert [line["route"] for line in access if line["route"] != "/healthz"] == [
        "/v1/assets",
        "/v1/assets/{asset_id}/url",
        "/v1/assets/{asset_id}/content",
    ]


def test_a_json_line_carries_the_job_ids_and_redacts_secrets_in_extra_fields():
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactSecrets())
    logger = logging.getLogger("tests.logs.json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    token = request_id.set("req-1")
    try:
        with job_context(job_id="job_1", tenant_id="ten_1", kind="edit", attempt=2):
            logger.info(
                "fetched %s",
                "https://cdn.example/a.png?sig=s3cret&w=2",
                extra={"source": "https://bucket.example/k?X-Amz-Signature=abc&x=1"},
            )
        logger.info("after the job")
    finally:
        request_id.reset(token)
        logger.removeHandler(handler)

    inside, after = (json.loads(line) for line in output.getvalue().splitlines())
    assert inside["message"] == "fetched https://cdn.example/a.png?sig=[redacted]&w=2"
    assert inside["source"] == "https://bucket.example/k?X-Amz-Signature=[redacted]&x=1"
    assert inside["level"] == "INFO" and inside["logger"] == "tests.logs.json"
    assert inside["request_id"] == "req-1"
    assert (inside["job_id"], inside["tenant_id"], inside["kind"], inside["attempt"]) == (
        "job_1",
        "ten_1",
        "edit",
        2,
    )
    assert after["request_id"] == "req-1" and "job_id" not in after
    assert "s3cret" not in output.getvalue() and "abc" not in output.getvalue()


def test_redact_hides_every_secret_parameter_and_keeps_the_rest():
    line = (
        '"GET /v1/assets/ast_1/content?expires=1767225600&signature=3q2-7w HTTP/1.1" '
        "https://bucket.example/key?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=abc&size=2 "
        "/v1/x?api_key=sk-123;token=t0"
    )

    assert redact(line) == (
        '"GET /v1/assets/ast_1/content?expires=1767225600&signature=[redacted] HTTP/1.1" '
        "https://bucket.example/key?X-Amz-Credential=[redacted]&X-Amz-Signature=[redacted]"
        "&size=2 /v1/x?api_key=[redacted];token=[redacted]"
    )


async def test_an_unhandled_error_is_a_500_problem_carrying_the_request_id_as_its_log_line_does(
    tmp_path,
):
    application = create_app(Settings(data_dir=tmp_path / "var"))

    @application.get("/v1/crash")
    async def crash() -> None:
        raise RuntimeError("a bug")

    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter())
    logging.getLogger("app.errors").addHandler(handler)
    transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
    try:
        async with (
            application.router.lifespan_context(application),
            httpx.AsyncClient(transport=transport, base_url="http://darkroom.test") as client,
        ):
            response = await client.get("/v1/crash", headers={"X-Request-ID": "crash-1"})
    finally:
        logging.getLogger("app.errors").removeHandler(handler)

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["X-Request-ID"] == "crash-1"
    assert response.json()["type"] == "/problems/internal-error"
    assert "a bug" not in response.text
    [line] = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert line["message"] == "unhandled error on GET /v1/crash"
    assert line["request_id"] == "crash-1"
    assert "RuntimeError: a bug" in line["exception"]

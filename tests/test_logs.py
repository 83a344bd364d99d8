"""No log line carries a credential: a real `darkroom serve` process's access log shows a
signed URL with its signature redacted."""

import socket
import subprocess
import time

import httpx

from app.config import Settings
from app.logs import redact
from tests.factories import image_bytes
from tests.support import darkroom_command, darkroom_environment


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(base_url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "darkroom serve exited"
        try:
            if httpx.get(f"{base_url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("darkroom serve did not answer within 60 s")


def test_the_access_log_redacts_the_signature_of_a_signed_url(tmp_path):
    settings = Settings(data_dir=tmp_path / "var", port=free_port())
    environment = darkroom_environment(settings)
    key = subprocess.run(
        darkroom_command("keys", "create", "--tenant", "logs"),
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.splitlines()[-1]
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            darkroom_command("serve"), env=environment, stdout=output, stderr=subprocess.STDOUT
        )
    base_url = f"http://127.0.0.1:{settings.port}"
    try:
        wait_until_serving(base_url, process)
        auth = {"Authorization": f"Bearer {key}"}
        files = {"file": ("photo.png", image_bytes(), "image/png")}
        asset = httpx.post(f"{base_url}/v1/assets", files=files, headers=auth).json()
        signed = httpx.post(f"{base_url}/v1/assets/{asset['id']}/url", json={}, headers=auth)
        url = signed.json()["url"]
        assert httpx.get(url if url.startswith("http") else base_url + url).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)

    signature = httpx.URL(url).params["signature"]
    text = log.read_text()
    assert f"/v1/assets/{asset['id']}/content?expires=" in text
    assert "signature=[redacted]" in text
    assert signature not in text


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

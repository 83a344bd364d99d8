"""Signed asset URLs: POST /v1/assets/{id}/url mints one; GET .../content with `expires` and
`signature` serves the bytes without an API key until it expires, and refuses any alteration."""

import asyncio
import os
import stat
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from app.config import Settings
from app.errors import SignatureInvalid
from app.services import signing
from tests.factories import image_bytes
from tests.support import embedded_only, fresh_process_output


async def upload(client, auth) -> dict:
    data = image_bytes(96, 64, "PNG")
    response = await client.post(
        "/v1/assets", files={"file": ("a.png", data, "image/png")}, headers=auth
    )
    assert response.status_code == 201, response.text
    return response.json()


async def mint(client, auth, asset_id: str, **body) -> dict:
    response = await client.post(f"/v1/assets/{asset_id}/url", json=body or None, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()} | changes
    return f"{parts.path}?{urlencode(query)}"


@embedded_only()
async def test_signed_url_downloads_without_an_api_key(client, auth):
    asset = await upload(client, auth)

    signed = await mint(client, auth, asset["id"])
    response = await client.get(signed["url"])

    assert signed["url"].startswith(f"http://darkroom.test/v1/assets/{asset['id']}/content?")
    expires_at = datetime.fromisoformat(signed["expires_at"])
    assert abs(expires_at - (datetime.now(UTC) + timedelta(hours=1))) < timedelta(seconds=5)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.content == (await client.get(asset["url"], headers=auth)).content


@embedded_only()
async def test_expires_in_is_honoured_and_bounded(client, auth):
    asset = await upload(client, auth)

    short = await mint(client, auth, asset["id"], expires_in=60)
    too_long = await client.post(
        f"/v1/assets/{asset['id']}/url", json={"expires_in": 7 * 86400 + 1}, headers=auth
    )

    expires = int(parse_qs(urlsplit(short["url"]).query)["expires"][0])
    assert abs(expires - (time.time() + 60)) < 5
    assert too_long.status_code == 422


@embedded_only()
async def test_expired_url_is_refused(app, client, auth):
    asset = await upload(client, auth)
    past = datetime.now(UTC) - timedelta(seconds=1)
    url = signing.signed_content_url(app.state.settings, asset["id"], past)

    response = await client.get(url)

    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/url-expired")


@embedded_only()
async def test_a_url_that_expires_stops_working(client, auth):
    asset = await upload(client, auth)
    signed = await mint(client, auth, asset["id"], expires_in=2)
    assert (await client.get(signed["url"])).status_code == 200

    expires = int(parse_qs(urlsplit(signed["url"]).query)["expires"][0])
    await asyncio.sleep(max(0.0, expires - time.time()) + 0.5)
    response = await client.get(signed["url"])

    assert response.status_code == 403
    assert response.json()["type"].endswith("/url-expired")


@embedded_only()
async def test_tampered_urls_are_refused(client, auth):
    asset = await upload(client, auth)
    other = await upload(client, auth)
    url = (await mint(client, auth, asset["id"]))["url"]
    query = parse_qs(urlsplit(url).query)
    expires, signature = query["expires"][0], query["signature"][0]
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]

    attempts = {
        "extended": with_query(url, expires=str(int(expires) + 86400)),
        "altered signature": with_query(url, signature=flipped),
        "other asset": with_query(url).replace(asset["id"], other["id"]),
        "no signature": f"{urlsplit(url).path}?expires={expires}",
        "no expiry": f"{urlsplit(url).path}?signature={signature}",
    }
    answers = {name: await client.get(path) for name, path in attempts.items()}

    for name, answer in answers.items():
        assert answer.status_code == 403, name
        assert answer.json()["type"].endswith("/signature-invalid"), name


async def test_head_of_a_signed_url_follows_the_same_rules_as_get(app, client, auth):
    asset = await upload(client, auth)
    url = (await mint(client, auth, asset["id"]))["url"]
    signature = parse_qs(urlsplit(url).query)["signature"][0]
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    past = datetime.now(UTC) - timedelta(seconds=1)

    signed = await client.head(url)
    altered = await client.head(with_query(url, signature=flipped))
    expired = await client.head(signing.signed_content_url(app.state.settings, asset["id"], past))

    assert signed.status_code == 200, signed.text
    assert (signed.content, signed.headers["content-type"]) == (b"", "image/png")
    assert signed.headers["content-length"] == str(asset["bytes"])
    assert signed.headers["etag"] == f'"{asset["content_hash"]}"'
    assert (altered.status_code, expired.status_code) == (403, 403)


@embedded_only()
async def test_without_key_or_signature_the_content_needs_auth(client, auth, other_auth):
    asset = await upload(client, auth)

    anonymous = await client.get(asset["url"])
    other_tenant = await client.post(f"/v1/assets/{asset['id']}/url", headers=other_auth)
    unauthenticated = await client.post(f"/v1/assets/{asset['id']}/url")

    assert anonymous.status_code == 401
    assert other_tenant.status_code == 404
    assert unauthenticated.status_code == 401


def test_the_file_key_is_private_and_shared_by_processes(tmp_path):
    settings = Settings(data_dir=tmp_path)
    key = signing.signing_key(settings)
    code = (
        "from app.config import Settings; from app.services.signing import signing_key; "
        f"print(signing_key(Settings(data_dir={str(tmp_path)!r})).decode())"
    )

    assert fresh_process_output(code) == key.decode()
    mode = stat.S_IMODE(os.stat(tmp_path / signing.KEY_FILE).st_mode)
    assert mode == 0o600
    assert len(key) >= 40
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".signing-")]


def test_a_configured_secret_is_used_instead_of_the_file(tmp_path):
    configured = Settings(data_dir=tmp_path, signing_secret="s3cret-value")
    expires = int(time.time()) + 3600

    ours = signing.signature(signing.signing_key(configured), "ast_x", expires)

    assert not (tmp_path / signing.KEY_FILE).exists()
    signing.check_signature(configured, "ast_x", expires, ours)
    with pytest.raises(SignatureInvalid):
        signing.check_signature(Settings(data_dir=tmp_path), "ast_x", expires, ours)


def test_a_deployment_with_workers_refuses_to_start_without_a_shared_secret(tmp_path):
    with pytest.raises(ValueError, match="DARKROOM_SIGNING_SECRET must be set"):
        Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:6379/0")
    configured = Settings(
        data_dir=tmp_path, redis_url="redis://127.0.0.1:6379/0", signing_secret="x" * 32
    )
    assert configured.signing_secret is not None

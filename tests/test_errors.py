"""Errors for common mistakes, over HTTP: each problem says what was wrong and what is accepted,
in words, never as a character offset or a regular expression."""

JSON = {"Content-Type": "application/json"}


async def test_a_json_syntax_error_names_its_line_and_column_and_no_field(client, auth):
    body = b'{"prompt": "a cat",\n  "n": 2,,\n  "seed": 1}'

    response = await client.post("/v1/generate", content=body, headers=auth | JSON)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    message = "The body is not valid JSON: expecting property name enclosed in double quotes"
    assert problem["detail"] == f"{message} at line 2, column 10."
    assert problem["errors"] == [
        {
            "field": None,
            "message": f"{message} at line 2, column 10.",
            "type": "json_invalid",
            "line": 2,
            "column": 10,
        }
    ]


async def test_a_body_that_is_not_json_is_415_naming_application_json(client, auth):
    sent = {
        "a form": {"data": {"prompt": "a cat"}},
        "text/plain": {
            "content": b'{"prompt": "a cat"}',
            "headers": {"Content-Type": "text/plain"},
        },
        "no Content-Type": {"content": b'{"prompt": "a cat"}'},
    }
    for name, request in sent.items():
        headers = auth | request.pop("headers", {})

        response = await client.post("/v1/generate", headers=headers, **request)

        assert response.status_code == 415, (name, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["type"].endswith("/unsupported-media-type"), name
        assert "application/json" in problem["detail"], name
        assert "dictionary" not in problem["detail"], name
    assert (await client.get("/v1/jobs", headers=auth)).json()["data"] == []


async def test_the_415_names_the_media_type_that_was_sent(client, auth):
    form = await client.post("/v1/export", data={"asset_id": "x"}, headers=auth)
    webhook = await client.post(
        "/v1/webhooks", content=b"url=x", headers=auth | {"Content-Type": "text/plain"}
    )

    assert form.status_code == webhook.status_code == 415
    assert form.json()["detail"] == (
        "The body must be application/json; this one was sent as application/x-www-form-urlencoded."
    )
    assert webhook.json()["detail"].endswith("sent as text/plain.")


SIZE_WORDS = "must be `WxH` in pixels, e.g. 1024x1024, with each side from 64 to 4096"
ASPECT_WORDS = "must be `W:H` in whole numbers, e.g. 16:9"


async def test_patterned_fields_say_in_words_what_they_take(client, auth):
    image = {"asset_id": "ast_01JD7Z8Q3N5X2W1V0T9S8R7Q6P"}
    cases = [
        ("/v1/generate", {"prompt": "x", "size": "1024*1024"}, f"size: {SIZE_WORDS}"),
        ("/v1/edit", {"image": image, "prompt": "x", "size": "big"}, f"size: {SIZE_WORDS}"),
        (
            "/v1/generate",
            {"prompt": "x", "aspect_ratio": "16/9"},
            f"aspect_ratio: {ASPECT_WORDS}, from 1:4 to 4:1",
        ),
        (
            "/v1/edit",
            {"image": image, "prompt": "x", "aspect_ratio": "wide"},
            f"aspect_ratio: {ASPECT_WORDS}, from 1:4 to 4:1",
        ),
        (
            "/v1/prompts/optimize",
            {"prompt": "x", "aspect_ratio": "wide"},
            f"aspect_ratio: {ASPECT_WORDS}",
        ),
        (
            "/v1/export",
            {"asset_id": image["asset_id"], "targets": ["og-image"], "background": "red"},
            "background: must be a hex colour, `#RGB`, `#RGBA`, `#RRGGBB` or `#RRGGBBAA`, "
            "e.g. #ffffff",
        ),
    ]
    for path, body, detail in cases:
        response = await client.post(path, json=body, headers=auth)

        assert response.status_code == 422, (path, body, response.text)
        assert response.json()["detail"] == detail


async def test_no_message_starts_with_value_error(client, auth):
    cases = [
        ({"prompt": "   "}, "prompt: must not be blank"),
        (
            {"prompt": "x", "size": "512x512", "aspect_ratio": "1:1"},
            "body: give either size or aspect_ratio, not both",
        ),
        (
            {"prompt": "x", "size": "32x32"},
            "size: must be `WxH` in pixels, e.g. 1024x1024, with each side from 64 to 4096",
        ),
        ({"prompt": "x", "aspect_ratio": "9:1"}, "aspect_ratio: must be between 1:4 and 4:1"),
    ]
    for body, detail in cases:
        response = await client.post("/v1/generate", json=body, headers=auth)

        assert response.status_code == 422, (body, response.text)
        problem = response.json()
        assert problem["detail"] == detail
        assert not any(e["message"].startswith("Value error") for e in problem["errors"])


async def test_an_object_given_as_something_else_is_asked_for_as_a_json_object(client, auth):
    response = await client.post(
        "/v1/edit", json={"image": "ast_01JD7Z8Q3N5X2W1V0T9S8R7Q6P", "prompt": "x"}, headers=auth
    )

    assert response.status_code == 422
    assert response.json()["detail"] == "image: Input should be a JSON object"


async def test_a_method_not_allowed_lists_every_method_of_its_path(client, auth):
    expected = {
        "/v1/webhooks": "GET, POST",
        "/v1/webhooks/whe_01JD7Z8Q3N5X2W1V0T9S8R7Q6P": "DELETE, GET, PATCH",
        "/v1/webhooks/signing-secret": "GET",
    }
    for path, allow in expected.items():
        response = await client.options(path, headers=auth)

        assert response.status_code == 405, path
        assert response.headers["allow"] == allow, path
        assert response.json()["type"] == "/problems/method-not-allowed"

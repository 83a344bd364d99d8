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

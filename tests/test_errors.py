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

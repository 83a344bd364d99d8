"""The public JSON contract (pydantic v2), one module per domain; the one source of the OpenAPI
spec. Import names from their module: `from app.schemas.jobs import JobPage`."""

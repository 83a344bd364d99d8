"""The API reference pages, /docs (Swagger UI) and /redoc (ReDoc): served whole by Darkroom, so
they work on a machine with no internet."""

import re
from urllib.parse import urljoin, urlsplit

import pytest

from app.config import Settings
from tests.support import serving

# Every URL a page loads: scripts, styles, icons, and the spec it renders.
PAGE_URLS = re.compile(r"""(?:src|href|spec-url)="([^"]*)"|\burl: '([^']*)'""")
ASSET_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_reference_pages_load_every_asset_from_darkroom_itself(tmp_path, page):
    async with serving(Settings(data_dir=tmp_path)) as (_, client, _auth):
        response = await client.get(page)
        assert response.status_code == 200
        html = response.text
        urls = [urljoin(str(response.url), "".join(match)) for match in PAGE_URLS.findall(html)]
        origin = urlsplit(str(client.base_url)).netloc

        assert len(urls) >= 3, html
        assert {urlsplit(url).netloc for url in urls} == {origin}, urls
        scripts = [url for url in urls if url.endswith(".js")]
        assert scripts, html
        for url in urls:
            asset = await client.get(url)
            assert asset.status_code == 200, url
            suffix = next((s for s in ASSET_TYPES if url.endswith(s)), None)
            expected = ASSET_TYPES[suffix] if suffix else "application/json"
            assert expected in asset.headers["content-type"], (url, asset.headers)

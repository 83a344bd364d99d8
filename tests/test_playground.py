"""The browser playground at `/`, end to end in a real browser (Debian's Chromium driven by
Playwright) against a real uvicorn: paste a key, generate, compare a vendor model with
local/draft, refine with a mask painted on the canvas, export a preset and download it, reopen a
job from the history, all without a request to another origin. Plus the page's headers and the
setting that turns it off.

Screenshots of each step go to $DARKROOM_ARTIFACTS (default /tmp/darkroom-playground-artifacts),
outside the repository."""

import asyncio
import io
import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.async_api import Browser, Page, Route, async_playwright, expect

from app.config import Settings
from app.errors import ServiceUnavailable
from app.routers.playground import CONTENT_SECURITY_POLICY
from tests.fakes.openai_images import API_KEY, FakeOpenAIImages
from tests.support import live_server, serving

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DRAFT, VENDOR = "local/draft", "openai/gpt-image-1-mini"
# Long enough for a job on a busy machine; a step that finishes sooner goes on at once.
STEP_MS = 20_000


@dataclass
class Site:
    """The playground in a browser page, the server's address, and a tenant's key."""

    page: Page
    base_url: str
    key: str
    requested: list[str]
    artifacts: Path

    async def shot(self, name: str) -> None:
        await self.page.screenshot(path=self.artifacts / f"{name}.png", full_page=True)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One Chromium for the module: Debian's (.ci/run installs it), never a downloaded one."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    """Where the screenshots and the downloaded export go: outside the repository."""
    directory = Path(os.environ.get("DARKROOM_ARTIFACTS", "/tmp/darkroom-playground-artifacts"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
async def site(
    browser: Browser, artifacts: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Site]:
    """The embedded default with a fake OpenAI configured, served by uvicorn, and a page."""
    async with FakeOpenAIImages() as vendor:
        settings = Settings(
            data_dir=tmp_path_factory.mktemp("playground") / "var",
            openai_api_key=API_KEY,
            openai_base_url=vendor.base_url,
        )
        async with serving(settings) as (app, _, auth), live_server(app) as http:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            # Chromium enforces the page's policy; what it refuses is recorded, to be checked.
            await context.add_init_script(
                "window.violations = [];"
                "document.addEventListener('securitypolicyviolation',"
                " event => window.violations.push(event.violatedDirective));"
            )
            page = await context.new_page()
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            key = auth["Authorization"].removeprefix("Bearer ")
            yield Site(page, str(http.base_url), key, requested, artifacts)
            await context.close()


async def run_and_wait(page: Page, button: str) -> str:
    """Click `button` and wait until the job it starts is the one shown; its id."""
    results = page.locator("#results")
    before = await results.get_attribute("data-job")
    await page.click(button)
    if before is not None:
        await expect(results).not_to_have_attribute("data-job", before, timeout=STEP_MS)
    await expect(results).to_have_attribute("data-job", re.compile(r"job_\w+"), timeout=STEP_MS)
    await expect(results.locator(".job-line")).to_contain_text("succeeded")
    await expect(page.locator("#progress-text")).to_have_text("Job succeeded")
    return await results.get_attribute("data-job")


async def cards(page: Page, model: str) -> list:
    """The images in `model`'s group of the results shown."""
    group = page.locator(f'#results .group[data-model="{model}"]')
    await expect(group).to_be_visible(timeout=STEP_MS)
    images = group.locator(".card img")
    return [images.nth(index) for index in range(await images.count())]


async def shown_width(image) -> int:
    """The width of the picture an <img> shows, once decoded (a broken image fails here)."""
    return await image.evaluate("img => img.decode().then(() => img.naturalWidth)")


async def test_the_playground_runs_the_whole_workflow_in_a_browser(site: Site) -> None:
    page = site.page
    await page.goto(site.base_url + "/")
    await nothing_calls_the_api_before_a_key_is_saved(site)
    await page.fill("#api-key", site.key)
    await page.click("text=Use key")
    await expect(page.locator(f'#models input[value="{DRAFT}"]')).to_be_checked()
    # A refused request shows the problem's title and detail.
    await page.click("#run")
    await expect(page.locator("#error strong")).to_have_text("Validation error")
    await expect(page.locator("#error")).to_contain_text("prompt")
    await page.fill("#prompt", "a ceramic mug on a walnut desk, morning light")
    # The live preview shows what the optimizer made of the brief for the model.
    await expect(page.locator("#preview .chips .given").first).to_be_visible(timeout=STEP_MS)
    await expect(page.locator("#estimate")).to_contain_text("Estimate:", timeout=STEP_MS)
    await site.shot("01-brief-preview-estimate")

    first_job = await generate_two_images(site)
    await compare_with_a_vendor_model(site)
    refined = await refine_with_a_painted_mask(site)
    await export_a_preset(site, refined)
    await reopen_from_history(site, first_job)
    await make_variants(site)
    await follow_by_polling_while_the_stream_is_refused(site)
    await edit_an_existing_asset_with_a_reference(site)

    await page.set_viewport_size({"width": 390, "height": 844})
    await site.shot("10-narrow-screen")
    # One column on a phone: nothing wider than the screen.
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    assert await page.evaluate("window.violations") == []
    foreign = [
        url for url in site.requested if not url.startswith((site.base_url + "/", "blob:", "data:"))
    ]
    assert site.requested and foreign == []


async def nothing_calls_the_api_before_a_key_is_saved(site: Site) -> None:
    """Choosing image to image and writing a brief ask nothing of the API until there is a key,
    so no refusal for the missing key is shown."""
    page = site.page
    await page.check('input[name="mode"][value="edit"]')
    await page.fill("#prompt", "a ceramic mug")
    await expect(page.locator("#preview")).to_contain_text("Use a key")
    await page.check('input[name="mode"][value="generate"]')
    await page.fill("#prompt", "")
    await expect(page.locator("#error")).to_be_hidden()
    assert [url for url in site.requested if "/v1/" in url] == []


async def generate_two_images(site: Site) -> str:
    page = site.page
    await page.fill("#n", "2")
    job_id = await run_and_wait(page, "#run")
    images = await cards(page, DRAFT)
    assert len(images) == 2
    for image in images:
        assert await shown_width(image) > 0
    await site.shot("02-two-images")
    return job_id


async def compare_with_a_vendor_model(site: Site) -> None:
    page = site.page
    await page.fill("#n", "1")
    await page.check(f'#models input[value="{VENDOR}"]')
    await run_and_wait(page, "#run")
    for model in (DRAFT, VENDOR):
        images = await cards(page, model)
        assert len(images) == 1
        assert await shown_width(images[0]) > 0
        heading = page.locator(f'#results .group[data-model="{model}"] h3')
        await expect(heading.locator(".latency")).to_have_text(re.compile(r"^(\d+ ms|\d+\.\d s)$"))
        await expect(heading.locator(".cost")).to_have_text(re.compile(r"^\$\d+\.\d{4}$"))
    await site.shot("03-compare")
    await page.uncheck(f'#models input[value="{VENDOR}"]')


async def refine_with_a_painted_mask(site: Site) -> str:
    """Paint a stroke across the middle of a draft output and refine it; the edit's mask is
    clear where the stroke went and opaque in the corners."""
    page = site.page
    source = page.locator(f'#results .group[data-model="{DRAFT}"] .card').first
    source_id = await source.get_attribute("data-asset")
    await source.get_by_role("button", name="Refine").click()
    canvas = page.locator("#refine-canvas")
    await expect(canvas).to_be_visible()
    box = await canvas.bounding_box()
    assert box is not None
    middle_y = box["y"] + box["height"] / 2
    await page.mouse.move(box["x"] + box["width"] * 0.3, middle_y)
    await page.mouse.down()
    await page.mouse.move(box["x"] + box["width"] * 0.7, middle_y, steps=8)
    await page.mouse.up()
    await page.fill("#refine-prompt", "a brass lamp")
    await site.shot("04-refine-mask")
    await run_and_wait(page, "#refine-run")
    await expect(page.locator("#results .job-line")).to_contain_text("edit succeeded")
    refined = page.locator("#results .card").first
    refined_id = await refined.get_attribute("data-asset")
    await site.shot("05-refined")

    async with httpx.AsyncClient(base_url=site.base_url) as api:
        auth = {"Authorization": f"Bearer {site.key}"}
        lineage = (await api.get(f"/v1/assets/{refined_id}/lineage", headers=auth)).json()
        parents = {parent["role"]: parent["asset_id"] for parent in lineage["data"][-1]["parents"]}
        assert parents["source"] == source_id
        mask_bytes = (await api.get(f"/v1/assets/{parents['mask']}/content", headers=auth)).content
    mask = Image.open(io.BytesIO(mask_bytes)).getchannel("A")
    width, height = mask.size
    assert mask.getpixel((width // 2, height // 2)) == 0
    assert mask.getpixel((2, 2)) == mask.getpixel((width - 3, height - 3)) == 255

    await refined.get_by_role("button", name="Lineage").click()
    await expect(page.locator("#lineage-list li")).to_have_count(len(lineage["data"]))
    return refined_id


async def export_a_preset(site: Site, asset_id: str) -> None:
    page = site.page
    card = page.locator(f'#results .card[data-asset="{asset_id}"]')
    await card.get_by_role("button", name="Export").click()
    await page.check('#presets input[value="og-image"]')
    await page.select_option("#export-format", "png")
    await page.click("#export-run")
    download_button = page.get_by_role("button", name="Download og-image.png")
    await expect(download_button).to_be_visible(timeout=STEP_MS)
    await site.shot("06-export")
    async with page.expect_download() as download_info:
        await download_button.click()
    download = await download_info.value
    path = site.artifacts / "og-image.png"
    await download.save_as(path)
    assert download.suggested_filename == "og-image.png"
    with Image.open(path) as exported:
        assert (exported.format, exported.size) == ("PNG", (1200, 630))


async def reopen_from_history(site: Site, job_id: str) -> None:
    """After a reload the key is still there (local storage) and the history lists the job."""
    page = site.page
    await page.reload()
    await expect(page.locator("#api-key")).to_have_value(site.key)
    await page.click(f'#history button[data-job="{job_id}"]')
    await expect(page.locator("#results")).to_have_attribute("data-job", job_id)
    images = await cards(page, DRAFT)
    assert len(images) == 2
    await site.shot("07-reopened-from-history")


async def make_variants(site: Site) -> None:
    page = site.page
    await page.fill("#n", "2")
    await page.locator("#results .card").first.get_by_role("button", name="Variants").click()
    await expect(page.locator("#results .job-line")).to_contain_text(
        "variants succeeded", timeout=STEP_MS
    )
    assert len(await cards(page, DRAFT)) == 2
    await site.shot("08-variants")


async def follow_by_polling_while_the_stream_is_refused(site: Site) -> None:
    """The event stream answers 503 (held until released, so the job is still being followed):
    meanwhile a Variants button and a history button start nothing, and once the stream is
    refused the job is followed to its end by polling."""
    page = site.page
    release = asyncio.Event()
    refused = json.dumps(ServiceUnavailable("Live job events are unavailable.").to_problem())

    async def refuse(route: Route) -> None:
        await release.wait()
        await route.fulfill(status=503, content_type="application/problem+json", body=refused)

    await page.route("**/events", refuse)
    results = page.locator("#results")
    shown = await results.get_attribute("data-job")
    reopened = await page.locator("#history button").first.get_attribute("data-job")
    first_request = len(site.requested)
    await page.fill("#prompt", "a paper lantern over a river at dusk")
    await page.click("#run")
    await expect(page.locator("#progress-text")).to_have_text("Submitting")
    await expect(page.locator("#run")).to_be_disabled()
    await page.locator("#results .card").first.get_by_role("button", name="Variants").click()
    await expect(page.locator("#error strong")).to_have_text("A job is already running")
    await page.click(f'#history button[data-job="{reopened}"]')
    await expect(page.locator("#error strong")).to_have_text("A job is already running")
    release.set()
    await expect(results).not_to_have_attribute("data-job", shown, timeout=STEP_MS)
    job_id = await results.get_attribute("data-job")
    await expect(page.locator("#progress-text")).to_have_text("Job succeeded")
    await expect(results.locator(".job-line")).to_contain_text("generate succeeded")
    await page.unroute("**/events", refuse)

    paths = [re.sub(r"^\w+://[^/]+", "", url) for url in site.requested[first_request:]]
    assert f"/v1/jobs/{job_id}" in paths
    assert not [path for path in paths if path == "/v1/variants" or reopened in path]


async def edit_an_existing_asset_with_a_reference(site: Site) -> None:
    """Image to image: pick an asset as the source, upload a reference with a role, edit."""
    page = site.page
    await page.check('input[name="mode"][value="edit"]')
    picked = page.locator("#asset-picker button").first
    await picked.click()
    source_id = await picked.get_attribute("data-asset")
    await expect(page.locator("#source-chosen")).to_contain_text(source_id)
    palette = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 60, 20)).save(palette, "PNG")
    reference = {"name": "palette.png", "mimeType": "image/png", "buffer": palette.getvalue()}
    await page.set_input_files("#reference-file", files=[reference])
    await page.locator("#references select").select_option("color")
    await page.check('#keep input[value="framing"]')
    await site.shot("09-image-to-image")
    job_id = await run_and_wait(page, "#run")
    await expect(page.locator("#results .job-line")).to_contain_text("edit succeeded")

    async with httpx.AsyncClient(base_url=site.base_url) as api:
        auth = {"Authorization": f"Bearer {site.key}"}
        job = (await api.get(f"/v1/jobs/{job_id}", headers=auth)).json()
    request = job["request"]
    assert request["image"] == source_id
    assert [item["role"] for item in request["references"]] == ["color"]
    assert request["keep"] == ["framing"]


async def test_the_page_forbids_other_origins_and_the_setting_turns_it_off(tmp_path) -> None:
    async with serving(Settings(data_dir=tmp_path / "on")) as (_, client, _):
        page = await client.get("/")
        script = await client.get("/playground/main.js")
        schema = (await client.get("/openapi.json")).json()
    async with serving(Settings(data_dir=tmp_path / "off", playground=False)) as (_, client, _):
        off = await client.get("/")
        off_script = await client.get("/playground/main.js")

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert '<script type="module" src="/playground/main.js">' in page.text
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    # The modules are revalidated like the page, so an upgrade never mixes the two releases.
    for response in (page, script):
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-content-type-options"] == "nosniff"
    assert "/" not in schema["paths"]
    assert off.status_code == off_script.status_code == 404
    assert off.headers["content-type"] == "application/problem+json"

"""The web page in a real headless browser (Debian's Chromium driven by Playwright): upload two photos and read the
verdict, browse the gallery with its thumbnails. Skipped, with the reason, where no Chromium is installed (.ci/run
installs it)."""

from __future__ import annotations

import shutil

import pytest

from tests.serving.conftest import TOKEN

httpx = pytest.importorskip("httpx")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--no-first-run", "--disable-dev-shm-usage"]


@pytest.fixture
def browser(tmp_path):
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("no Chromium on the PATH (apt-get install chromium); .ci/run installs it")
    with playwright_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=executable, headless=True, args=CHROMIUM_FLAGS,
            timeout=60_000)
        try:
            yield context
        finally:
            context.close()


def test_verify_two_photos_and_browse_the_gallery(server, photos, browser):
    a, b = photos["Aaron_Peirsol"][0], photos["Amelie_Mauresmo"][2]
    for name, photo in (("Aaron page", a), ("Amelie page", b)):
        enrolled = httpx.post(f"{server.url}/enrol", data={"name": name}, files={"image": photo.read_bytes()},
                              headers={"Authorization": f"Bearer {TOKEN}"})
        assert enrolled.status_code == 200, enrolled.text
    expected = httpx.post(f"{server.url}/verify", files={"a": a.read_bytes(), "b": b.read_bytes()}).json()

    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server.url}/", wait_until="load")
    page.set_input_files("#photo-a", str(a))
    page.set_input_files("#photo-b", str(b))
    page.click("#verify-button")
    page.wait_for_function("() => /^(Same person|Different people|Error)/.test("
                           "document.querySelector('#verdict').textContent)", timeout=60_000)
    verdict = page.text_content("#verdict")
    assert verdict.startswith("Same person" if expected["same"] else "Different people"), verdict
    assert f"distance {expected['distance']:.3f}" in verdict and f"threshold {expected['threshold']:.3f}" in verdict

    # the gallery: a card per person, with its thumbnails loaded (decoded images, not broken links)
    page.click("#refresh")
    page.wait_for_function("() => / people$/.test(document.querySelector('#gallery-status').textContent) && "
                           "[...document.querySelectorAll('.person img')].every(img => img.complete)",
                           timeout=60_000)
    for name in ("Aaron page", "Amelie page"):
        widths = page.eval_on_selector_all(f".person[data-name='{name}'] img",
                                           "images => images.map(img => img.complete && img.naturalWidth)")
        assert widths == [96], (name, widths)
    assert not errors, errors

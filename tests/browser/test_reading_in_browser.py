"""The imaging loop in a real browser: the radiologist reads the demo head CT in the viewer
and signs; the township doctor who asked sees the report at once."""

from __future__ import annotations

import io
import re

from PIL import Image, ImageStat

from tests.browser.conftest import login


def _viewer_shows_an_image(page) -> bool:
    shot = page.locator("#viewer").screenshot()
    grey = Image.open(io.BytesIO(shot)).convert("L")
    return ImageStat.Stat(grey).stddev[0] > 20


def test_radiologist_reads_in_the_viewer_signs_and_the_requester_sees_the_report(new_page):
    reader = new_page(locale="en-US")
    reader.on("dialog", lambda dialog: dialog.accept())
    login(reader, "radiologist")
    reader.goto("/imaging/worklist/")
    row = reader.locator("tr[data-request]").filter(has_text="刘桂兰").first
    request_id = row.get_attribute("data-request")
    row.locator("form[action$='/claim/'] button").click()
    reader.wait_for_url(re.compile(rf"/imaging/requests/{request_id}/read/"))

    reader.wait_for_selector("#viewer canvas", timeout=30_000)
    reader.wait_for_function(
        "() => !document.getElementById('viewer-fallback') || "
        "document.getElementById('viewer-fallback').hidden || "
        "getComputedStyle(document.getElementById('viewer-fallback')).display === 'none'",
        timeout=30_000,
    )
    reader.wait_for_timeout(1500)  # let the first frame draw
    assert _viewer_shows_an_image(reader)
    before = reader.locator("#viewer").screenshot()
    reader.locator("#viewer canvas").first.hover()
    reader.mouse.wheel(0, 400)  # scroll the stack
    reader.wait_for_timeout(800)
    assert reader.locator("#viewer").screenshot() != before

    reader.fill("textarea[name=findings]", "右侧额叶见小片状高密度影，约1.5cm，周围轻度水肿。")
    reader.fill("textarea[name=impression]", "右额叶急性脑出血，请结合临床。")
    reader.check("input[name=critical]")
    reader.click("button[name=action][value=sign]")
    reader.wait_for_load_state()

    requester = new_page(locale="zh-CN")
    login(requester, "township")
    requester.goto(f"/imaging/requests/{request_id}/")
    body = requester.content()
    assert "右额叶急性脑出血" in body
    assert requester.locator("#notif-count").inner_text().strip() not in {"", "0"}

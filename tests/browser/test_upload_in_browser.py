"""A township doctor uploads studies in the browser and watches them arrive (real demo server).

The page hashes in the browser, groups DICOM files by study, sends chunks and resumes
after a dropped link without sending the same bytes twice.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.browser.conftest import login

UPLOAD_PATH = "/imaging/upload/"
DONE_TIMEOUT_MS = 60_000


def _copy_testdata(folder: Path, names: list[str]) -> list[str]:
    paths = []
    for name in names:
        target = folder / name
        shutil.copyfile(get_testdata_file(name), target)
        paths.append(str(target))
    return paths


def _ct_like(path: Path, *, study_uid: str, rows: int = 64, columns: int = 64) -> Path:
    """A valid CT slice from CT_small.dcm with new UIDs and a pixel matrix of our choosing."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = os.urandom(rows * columns * 2)
    ds.save_as(path, enforce_file_format=True)
    return path


def _open_upload_page(new_page: Any) -> Any:
    page = new_page(locale="en-US")
    login(page, "township")  # the township doctor prefers Chinese: switch to English
    page.goto(UPLOAD_PATH)
    with page.expect_navigation():
        page.locator(".lang-switch button[value=en]").click()
    assert page.locator("html").get_attribute("lang") == "en"
    page.wait_for_selector("#upload[data-ready='1']", state="attached")
    return page


def _wait_until_settled(page: Any, groups: int) -> None:
    page.wait_for_function(
        """(n) => {
            const all = document.querySelectorAll('.upload-group[data-state]');
            const settled = Array.from(all).filter(
                (g) => ['done', 'failed', 'skipped'].includes(g.dataset.state));
            return all.length === n && settled.length === n;
        }""",
        arg=groups,
        timeout=DONE_TIMEOUT_MS,
    )


def test_township_doctor_uploads_three_studies_and_watches_each_reach_100(new_page, tmp_path):
    page = _open_upload_page(new_page)
    # Record every value each bar shows, to see progress rather than a jump at the end.
    page.evaluate(
        """() => {
            window.seen = [];
            new MutationObserver((changes) => changes.forEach((c) => window.seen.push(
                c.target.getAttribute('aria-valuenow')))).observe(document.getElementById('upload'),
                {subtree: true, attributes: true, attributeFilter: ['aria-valuenow']});
        }"""
    )
    files = _copy_testdata(tmp_path, ["CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm"])
    page.set_input_files("#upload-files", files)

    _wait_until_settled(page, 3)
    groups = page.locator(".upload-group")
    for i in range(3):
        group = groups.nth(i)
        assert group.get_attribute("data-state") == "done", group.inner_text()
        assert group.locator("[role=progressbar]").get_attribute("aria-valuenow") == "100"
        result = group.locator(".upload-result[data-status=stored]")
        assert result.count() == 1
        assert "Stored: 1" in result.inner_text()
    assert page.locator("#upload-overall-bar").get_attribute("aria-valuenow") == "100"
    assert "100" in page.evaluate("window.seen")
    # One bar per study, titled from the DICOM header read in the browser.
    titles = page.locator(".upload-group-title").all_inner_texts()
    assert {title.split(" · ")[0] for title in titles} == {"CT", "MR", "NM"}


def test_files_of_one_study_travel_as_one_zip_and_junk_is_not_sent(new_page, tmp_path):
    page = _open_upload_page(new_page)
    study = generate_uid()
    files = [str(_ct_like(tmp_path / f"IM{i:04d}", study_uid=study)) for i in range(3)]
    junk = tmp_path / "notes.txt"
    junk.write_text("not an image")
    uploads: list[dict[str, Any]] = []
    page.on(
        "request",
        lambda r: (
            uploads.append(r.post_data_json)
            if r.method == "POST" and r.url.endswith("/api/imaging/uploads/")
            else None
        ),
    )

    page.set_input_files("#upload-files", [*files, str(junk)])

    _wait_until_settled(page, 2)
    study_group = page.locator(".upload-group", has=page.locator("[role=progressbar]"))
    assert study_group.count() == 1
    assert study_group.get_attribute("data-state") == "done"
    assert "Stored: 3" in study_group.locator(".upload-result").inner_text()
    assert len(uploads) == 1, "one study, one upload"
    assert uploads[0]["filename"].endswith(".zip")
    skipped = page.locator(".upload-group[data-state=skipped]")
    assert "notes.txt" in skipped.inner_text()


def test_a_dropped_chunk_is_resent_alone_and_the_upload_completes(new_page, tmp_path):
    page = _open_upload_page(new_page)
    big = _ct_like(tmp_path / "big.dcm", study_uid=generate_uid(), rows=1024, columns=1536)
    assert big.stat().st_size > 3 * 1024 * 1024
    offsets: list[int] = []
    dropped: list[int] = []

    def on_patch(route: Any) -> None:
        request = route.request
        if request.method != "PATCH":
            route.continue_()
            return
        offset = int(request.headers["upload-offset"])
        offsets.append(offset)
        if len(offsets) == 2 and not dropped:  # the link drops during the second chunk
            dropped.append(offset)
            route.abort("connectionreset")
            return
        route.continue_()

    page.route("**/api/imaging/uploads/*/", on_patch)
    page.set_input_files("#upload-files", str(big))

    _wait_until_settled(page, 1)
    group = page.locator(".upload-group")
    assert group.get_attribute("data-state") == "done", group.inner_text()
    assert "Stored: 1" in group.locator(".upload-result").inner_text()
    assert offsets[0] == 0
    assert offsets.count(0) == 1, f"the first chunk was sent again: {offsets}"
    assert dropped == [offsets[1]], offsets
    assert offsets[2] == offsets[1], f"only the dropped chunk was sent again: {offsets}"
    assert offsets == sorted(offsets)


def test_the_browser_sha256_matches_pythons(new_page):
    page = _open_upload_page(new_page)
    for length in (0, 1, 55, 56, 63, 64, 65, 1000, 4 * 1024 * 1024 + 3):
        got = page.evaluate(
            """(n) => {
                const bytes = new Uint8Array(n);
                for (let i = 0; i < n; i++) bytes[i] = (i * 31 + 7) & 255;
                const h = new TelemedUpload.Sha256();
                // in uneven pieces, as slices arrive
                for (let i = 0; i < n; i += 1000) {
                    h.update(bytes.subarray(i, Math.min(n, i + 1000)));
                }
                return h.hex();
            }""",
            length,
        )
        expected = hashlib.sha256(bytes((i * 31 + 7) & 255 for i in range(length))).hexdigest()
        assert got == expected, length


def _hold_patches_after_the_first(page: Any) -> list[int]:
    """Let one chunk through, then drop every PATCH (the link is down); returns the offsets."""
    offsets: list[int] = []

    def on_request(route: Any) -> None:
        if route.request.method != "PATCH":
            route.continue_()
            return
        offsets.append(int(route.request.headers["upload-offset"]))
        if len(offsets) == 1:
            route.continue_()
        else:
            route.abort("internetdisconnected")

    page.route("**/api/imaging/uploads/*/", on_request)
    return offsets


def test_pause_and_resume_continue_from_the_servers_offset(new_page, tmp_path):
    page = _open_upload_page(new_page)
    big = _ct_like(tmp_path / "pause.dcm", study_uid=generate_uid(), rows=1024, columns=1536)
    held = _hold_patches_after_the_first(page)
    page.set_input_files("#upload-files", str(big))
    page.wait_for_selector(".upload-group[data-state=retrying]")

    page.click("#upload-pause")
    page.wait_for_selector(".upload-group[data-state=paused]")
    page.unroute("**/api/imaging/uploads/*/")
    sent: list[int] = []
    page.on(
        "request",
        lambda r: sent.append(int(r.headers["upload-offset"])) if r.method == "PATCH" else None,
    )
    page.click("#upload-resume")

    _wait_until_settled(page, 1)
    assert page.locator(".upload-group").get_attribute("data-state") == "done"
    assert held[0] == 0
    assert sent, "the rest was sent after resuming"
    assert 0 not in sent, f"the first chunk was not sent again: {sent}"


def test_after_a_page_reload_the_same_file_resumes_without_hashing_again(new_page, tmp_path):
    page = _open_upload_page(new_page)
    big = _ct_like(tmp_path / "reload.dcm", study_uid=generate_uid(), rows=1024, columns=1536)
    _hold_patches_after_the_first(page)
    page.set_input_files("#upload-files", str(big))
    page.wait_for_selector(".upload-group[data-state=retrying]")

    # Reload before lifting the block: a retry the old page sends in between would finish
    # the upload before the page is reloaded, and nothing would be left to resume.
    page.reload()
    page.unroute("**/api/imaging/uploads/*/")
    page.wait_for_selector("#upload[data-ready='1']", state="attached")
    assert "reload.dcm" in page.locator("#upload-unfinished").inner_text()
    states: list[str] = []
    page.expose_function("recordState", lambda state: states.append(state))
    page.evaluate(
        """() => new MutationObserver((changes) => changes.forEach((c) => {
            if (c.attributeName === 'data-state') window.recordState(c.target.dataset.state);
        })).observe(document.getElementById('upload-groups'),
                    {subtree: true, attributes: true, attributeFilter: ['data-state']})"""
    )
    sent: list[int] = []
    page.on(
        "request",
        lambda r: sent.append(int(r.headers["upload-offset"])) if r.method == "PATCH" else None,
    )
    with page.expect_response(lambda r: r.request.method == "POST") as announced:
        page.set_input_files("#upload-files", str(big))
    assert announced.value.status == 200, "the server found the unfinished upload"
    assert announced.value.json()["offset"] > 0

    _wait_until_settled(page, 1)
    assert page.locator(".upload-group").get_attribute("data-state") == "done"
    assert "hashing" not in states, "the checksum was remembered"
    assert sent
    assert 0 not in sent, f"nothing was sent twice: {sent}"


def test_a_folder_from_a_cd_is_sent_study_by_study(new_page, tmp_path):
    page = _open_upload_page(new_page)
    cd = tmp_path / "CD"
    (cd / "DICOM" / "ST1").mkdir(parents=True)
    (cd / "DICOM" / "ST2").mkdir(parents=True)
    first, second = generate_uid(), generate_uid()
    for i in range(2):
        _ct_like(cd / "DICOM" / "ST1" / f"IM{i}", study_uid=first)
        _ct_like(cd / "DICOM" / "ST2" / f"IM{i}", study_uid=second)
    (cd / "AUTORUN.INF").write_text("[autorun]")

    page.set_input_files("#upload-folder", str(cd))

    _wait_until_settled(page, 3)
    done = page.locator(".upload-group[data-state=done]")
    assert done.count() == 2
    for i in range(2):
        assert "Stored: 2" in done.nth(i).locator(".upload-result").inner_text()
    assert "CD/AUTORUN.INF" in page.locator(".upload-group[data-state=skipped]").inner_text()


SNIFFED = [
    "CT_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "ExplVR_BigEnd.dcm",
    "rtplan.dcm",
    "rtstruct.dcm",
    "test-SR.dcm",
    "reportsi.dcm",
    "priv_SQ.dcm",
    "nested_priv_SQ.dcm",
    "UN_sequence.dcm",
    "waveform_ecg.dcm",
    "GDCMJ2K_TextGBR.dcm",
    "image_dfl.dcm",
    "no_meta.dcm",
]


def test_the_browser_reads_the_study_of_a_dicom_file_as_pydicom_does(new_page):
    page = _open_upload_page(new_page)
    for name in SNIFFED:
        path = Path(get_testdata_file(name))
        sniffed = page.evaluate(
            "(bytes) => TelemedUpload.sniff(new Uint8Array(bytes))", list(path.read_bytes())
        )
        head = path.read_bytes()[128:132]
        if head != b"DICM":
            assert sniffed["kind"] == "other", name
            continue
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert sniffed["kind"] == "dicom", name
        syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
        if syntax == "1.2.840.10008.1.2.1.99" or "StudyInstanceUID" not in ds:
            assert sniffed["study"] is None, name
            continue
        assert sniffed["study"] is not None, name
        assert sniffed["study"]["uid"] == ds.StudyInstanceUID, name
        assert sniffed["study"]["modality"] == ds.get("Modality", ""), name

"""The lab loop in real browsers: a village doctor orders and prints a label, the box is
shipped and received, the lab imports an analyser CSV with one critical value, the village
doctor acknowledges the alert from the toast, and the signed report reaches the record."""

from __future__ import annotations

import re

from tests.browser.conftest import login


def _patient_id(demo_shell, name: str) -> int:
    code = f"from records.models import Patient; print(Patient.objects.get(name={name!r}).pk)"
    return int(demo_shell(code).strip().splitlines()[-1])


def _scan(page, selector: str, text: str, region: str) -> None:
    """Type into a scan field and press Enter, as a keyboard-wedge scanner does."""
    page.fill(selector, text)
    page.press(selector, "Enter")
    page.wait_for_function(
        "([region, text]) => (document.querySelector(region) || {}).textContent"
        " && document.querySelector(region).textContent.includes(text)",
        arg=[region, text],
        timeout=10_000,
    )


def test_village_order_to_signed_report_with_a_critical_value(new_page, demo_shell):
    patient_id = _patient_id(demo_shell, "张三")

    # The village doctor orders electrolytes for 张三 from the resident's page.
    doctor = new_page(locale="en-US")
    doctor.on("dialog", lambda dialog: dialog.accept())
    login(doctor, "village")
    doctor.goto(f"/patients/{patient_id}/")
    doctor.click("a[href*='/lab/orders/new/']")
    doctor.check("form[data-lab-order] label:has-text('LYTES') input[name=panels]")
    consent = doctor.locator("form[data-lab-order] input[name=record_consent]")
    if consent.count():
        consent.check()
    doctor.fill("form[data-lab-order] textarea[name=clinical_note]", "乏力两天，服用利尿剂。")
    doctor.click("form[data-lab-order] button[type=submit]")
    doctor.wait_for_url(re.compile(r"/lab/orders/\d+/$"))
    order_id = int(re.search(r"/lab/orders/(\d+)/", doctor.url).group(1))

    # Collected, and the label printed: a Code 128 barcode of the 12-digit tube number.
    doctor.click(f"form[action$='/lab/orders/{order_id}/collect/'] button[type=submit]")
    doctor.wait_for_load_state()
    doctor.goto(f"/lab/orders/{order_id}/labels/")
    label = doctor.locator(".label[data-barcode]").first
    barcode = label.get_attribute("data-barcode")
    assert barcode
    assert re.fullmatch(r"\d{12}", barcode)
    assert label.locator("svg rect").count() > 20  # the bars
    assert barcode in label.inner_text()

    # Packed into a box and handed to the courier.
    doctor.goto("/lab/boxes/")
    doctor.click("form[action$='/lab/boxes/new/'] button[type=submit]")
    doctor.wait_for_url(re.compile(r"/lab/boxes/\d+/$"))
    box_number = re.search(r"BX\d{10}", doctor.content()).group(0)
    _scan(doctor, "input[data-scan-input]", barcode, "#box-specimens")
    doctor.reload()
    doctor.fill("input[name=courier]", "县医共体物流 王师傅 13800000000")
    doctor.fill("input[name=scanned_number]", box_number)
    doctor.click("#box-ship button[type=submit]")
    doctor.wait_for_load_state()

    # The lab receives the box and the tube.
    lab = new_page(locale="en-US")
    lab.on("dialog", lambda dialog: dialog.accept())
    login(lab, "labtech")
    lab.goto("/lab/receive/")
    _scan(lab, "#id_code", box_number, "#receive-log")
    _scan(lab, "#id_code", barcode, "#receive-log")

    # The village doctor keeps the order open: the critical value arrives as a toast.
    doctor.goto(f"/lab/orders/{order_id}/")

    # The analyser export: potassium critically high.
    lab.goto("/lab/import/")
    csv = f"barcode,test,value,unit\n{barcode},K,6.8,mmol/L\n{barcode},NA,139,mmol/L\n"
    lab.set_input_files(
        "input[type=file]",
        files=[{"name": "analyser.csv", "mimeType": "text/csv", "buffer": csv.encode()}],
    )
    lab.click("form[enctype='multipart/form-data'] button[type=submit]")
    lab.wait_for_url(re.compile(r"/lab/import/\d+/$"))
    assert "6.8" in lab.content()
    lab.click("form[action$='/apply/'] button[type=submit]")
    lab.wait_for_load_state()

    ack = doctor.locator(".toast .toast-ack-button").first
    ack.wait_for(timeout=15_000)
    doctor.locator(".toast input[name=note]").first.fill("已电话通知患者立即到县医院急诊")
    ack.click()
    doctor.wait_for_function(
        "() => { const s = document.querySelector('.toast .toast-ack-status');"
        " return s && s.textContent.trim().length > 0 && !s.style.color.includes('161'); }",
        timeout=10_000,
    )

    # The lab validates and signs; the report reaches the resident's record.
    lab.goto(f"/lab/orders/{order_id}/results/")
    for box in lab.locator(
        f"form[action$='/lab/orders/{order_id}/results/validate/'] input[name=items]"
    ).all():
        box.check()
    lab.click(f"form[action$='/lab/orders/{order_id}/results/validate/'] button[type=submit]")
    lab.wait_for_load_state()
    lab.click(f"form[action$='/lab/orders/{order_id}/results/sign/'] button[type=submit]")
    lab.wait_for_load_state()

    doctor.goto(f"/patients/{patient_id}/")
    signed = doctor.locator(".timeline-item.kind-labreport_signed").first.inner_text()
    assert "检验报告已签发" in signed  # the village doctor reads Chinese (their preference)
    assert "K 6.8" in signed
    doctor.goto(f"/lab/orders/{order_id}/")
    body = doctor.content()
    assert "6.8" in body
    assert "/report/1.pdf" in body
    assert "已电话通知患者立即到县医院急诊" in body  # the acknowledgement, with the action taken

"""A newcomer's demo in a real browser: every account, both languages, the main path."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from demo.services import demo_resident_id
from tests.browser.conftest import login

ACCOUNTS = {
    "village": "grassroots",
    "township": "grassroots",
    "specialist": "clinical",
    "coordinator": "clinical",
    "radiologist": "centre",
    "labtech": "centre",
    "admin": "admin",
    "auditor": "auditor",
}


@pytest.mark.parametrize(("locale", "lang"), [("zh-CN", "zh-hans"), ("en-US", "en")])
@pytest.mark.parametrize("username", sorted(ACCOUNTS))
def test_every_demo_account_logs_in_and_sees_its_home_page(new_page, username, locale, lang):
    page = new_page(locale=locale)
    login(page, username)
    page.locator(f".lang-switch button[value={lang}]").click()
    page.wait_for_load_state()
    home = page.locator("[data-home]")
    assert home.get_attribute("data-home") == ACCOUNTS[username]
    assert page.locator("html").get_attribute("lang") == lang
    # The notification socket of the page is open and greeted.
    page.wait_for_function("document.getElementById('notif-bell').dataset.state === 'open'")


def test_village_doctor_registers_a_resident_and_sees_the_timeline(new_page):
    page = new_page(locale="en-US")
    login(page, "village")
    page.goto("/patients/register/")
    number = demo_resident_id("110101", dt.date(1991, 6, 1), 321, "F")
    page.fill("input[name=resident_id]", number)
    page.fill("input[name=name]", "林小雨")
    page.check("input[name=sex][value=F]")
    page.fill("input[name=birth_date]", "1991-06-01")
    page.click("form[data-form=register] button[type=submit]")
    page.wait_for_url(re.compile(r"/patients/\d+/$"))
    body = page.content()
    assert "林小雨" in body
    assert number not in body  # shown masked only
    assert number[:6] + "********" + number[-4:] in body
    assert page.locator(".timeline-item.kind-registered").count() == 1


def test_invalid_resident_id_is_explained_on_the_form(new_page):
    page = new_page(locale="en-US")
    login(page, "village")
    page.goto("/patients/register/")
    page.fill("input[name=resident_id]", "110101199106013219")
    page.fill("input[name=name]", "林小雨")
    page.check("input[name=sex][value=F]")
    page.fill("input[name=birth_date]", "1991-06-01")
    response_status = []
    page.on(
        "response", lambda r: response_status.append(r.status) if "/register/" in r.url else None
    )
    page.click("form[data-form=register] button[type=submit]")
    page.wait_for_selector(".field-invalid .error")
    assert 400 in response_status
    # The account prefers Chinese, so the page (and the reason) is in Chinese.
    assert "身份证" in page.locator(".field-invalid .error").first.inner_text()


def test_home_clinic_gets_a_live_notification_when_another_clinic_needs_the_record(new_page):
    home_doctor = new_page(locale="zh-CN")
    login(home_doctor, "village")
    home_doctor.wait_for_function("document.getElementById('notif-bell').dataset.state === 'open'")
    before = int(home_doctor.locator("#notif-count").inner_text() or 0)

    other = new_page(locale="zh-CN")
    login(other, "village2")
    other.goto("/patients/register/")
    zhang_san = demo_resident_id("110101", dt.date(1956, 3, 14), 1, "M")
    other.fill("input[name=resident_id]", zhang_san)
    other.fill("input[name=name]", "张三")
    other.check("input[name=sex][value=M]")
    other.fill("input[name=birth_date]", "1956-03-14")
    other.click("form[data-form=register] button[type=submit]")
    other.wait_for_selector(".field-invalid .error")
    assert "东山村卫生室" in other.locator(".field-invalid .error").inner_text()

    toast = home_doctor.locator(".toast").filter(has_text="张三")
    toast.wait_for()
    assert "南湾村卫生室" in toast.inner_text()
    assert int(home_doctor.locator("#notif-count").inner_text()) == before + 1


def test_logout_ends_the_session(new_page):
    page = new_page(locale="en-US")
    login(page, "township")
    page.locator("form[action$='/accounts/logout/'] button").click()
    page.wait_for_url(re.compile(r"/accounts/login/"))
    page.goto("/patients/")
    assert "/accounts/login/" in page.url

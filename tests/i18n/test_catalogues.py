"""The shipped translations: complete, compiled, and covering the pages people use.

Staff read Chinese first, so a page in Simplified Chinese must not show English UI text,
and an English page must not show Chinese UI text (names of people and institutions are
data, and stay Chinese in both).
"""

from __future__ import annotations

import ast
import datetime as dt
import gettext
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation

from audit.models import AuditEvent
from demo.services import demo_resident_id

LOCALE_DIR = Path(settings.LOCALE_PATHS[0])
LANGUAGES = ("zh_Hans", "en")
ZH_PO = LOCALE_DIR / "zh_Hans" / "LC_MESSAGES" / "django.po"


# --- A small PO reader (no third-party dependency) -----------------------------------------


@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    references: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.msgctxt}\x04{self.msgid}" if self.msgctxt is not None else self.msgid

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.msgid,) if self.msgid_plural is None else (self.msgid, self.msgid_plural)


_KEYWORD = re.compile(r'^(msgctxt|msgid_plural|msgid|msgstr)(?:\[(\d+)\])?\s+(".*")$')


def read_po(path: Path) -> list[Entry]:
    """Every live entry of ``path``, the header (msgid "") first; obsolete ones skipped."""
    entries: list[Entry] = []
    current: Entry | None = None
    target: tuple[str, int] = ("", 0)

    def finish() -> None:
        nonlocal current
        if current is not None:
            entries.append(current)
        current = None

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            finish()
            continue
        if line.startswith("#~"):
            continue
        if line.startswith("#"):
            if current is not None and current.msgstr:
                finish()
            current = current or Entry()
            if line.startswith("#,"):
                current.flags |= {flag.strip() for flag in line[2:].split(",")}
            elif line.startswith("#:"):
                current.references += line[2:].split()
            continue
        match = _KEYWORD.match(line)
        if match:
            keyword, index, literal = match.groups()
            # A new entry starts at its msgctxt or msgid once the previous one has its
            # msgstr (its comments came first and belong to it).
            if keyword in ("msgctxt", "msgid") and current and current.msgstr:
                finish()
            current = current or Entry()
            text = ast.literal_eval(literal)
            if keyword == "msgstr":
                target = ("msgstr", int(index or 0))
                current.msgstr[target[1]] = text
            else:
                target = (keyword, 0)
                setattr(current, keyword, text)
            continue
        assert line.startswith('"'), f"{path}: cannot read {raw!r}"
        assert current is not None
        text = ast.literal_eval(line)
        if target[0] == "msgstr":
            current.msgstr[target[1]] += text
        else:
            setattr(current, target[0], getattr(current, target[0]) + text)
    finish()
    assert entries, f"{path} is empty"
    assert entries[0].msgid == "", f"{path} has no header entry"
    return entries


def zh_entries() -> list[Entry]:
    return read_po(ZH_PO)[1:]


# --- (a) The Chinese catalogue is complete ----------------------------------------------------


def test_catalogues_exist_for_both_languages():
    for language in LANGUAGES:
        for suffix in ("po", "mo"):
            path = LOCALE_DIR / language / "LC_MESSAGES" / f"django.{suffix}"
            assert path.is_file(), f"missing {path}"
    assert len(zh_entries()) > 100


def test_every_chinese_message_is_translated_and_none_is_fuzzy():
    header, *entries = read_po(ZH_PO)
    assert "fuzzy" not in header.flags
    assert "Plural-Forms: nplurals=1; plural=0;" in header.msgstr[0]
    untranslated = [e.msgid for e in entries if not all(e.msgstr.values())]
    fuzzy = [e.msgid for e in entries if "fuzzy" in e.flags]
    plural_shape = [e.msgid for e in entries if e.msgid_plural and set(e.msgstr) != {0}]
    assert not untranslated, f"untranslated: {untranslated}"
    assert not fuzzy, f"fuzzy: {fuzzy}"
    assert not plural_shape, f"Chinese has one plural form: {plural_shape}"


def test_no_entry_of_either_catalogue_is_fuzzy():
    for language in LANGUAGES:
        header, *entries = read_po(LOCALE_DIR / language / "LC_MESSAGES" / "django.po")
        assert "fuzzy" not in header.flags, language
        assert not [e.msgid for e in entries if "fuzzy" in e.flags], language


_PLACEHOLDER = re.compile(r"%\(\w+\)[sdif]|%[sdif]|\{\w*\}|</?[a-zA-Z][^>]*>")


def test_translations_keep_every_placeholder_and_tag():
    wrong = []
    for entry in zh_entries():
        expected = {p for source in entry.sources for p in _PLACEHOLDER.findall(source)}
        for translated in entry.msgstr.values():
            if set(_PLACEHOLDER.findall(translated)) != expected:
                wrong.append((entry.msgid, translated))
    assert not wrong


def test_chinese_translations_contain_chinese():
    """A copied English string is not a translation."""
    latin_only = [
        e.msgid
        for e in zh_entries()
        for text in e.msgstr.values()
        if not re.search(r"[\u4e00-\u9fff]", _PLACEHOLDER.sub("", text))
    ]
    assert not latin_only


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="gettext's msgfmt is not installed")
def test_msgfmt_counts_only_translated_messages():
    result = subprocess.run(
        ["msgfmt", "--check", "--statistics", "-o", "/dev/null", str(ZH_PO)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"\d+ translated messages\.", result.stderr.strip()), result.stderr


# --- (b) The committed .mo files match their .po -----------------------------------------------


def _expected_catalog(po: Path) -> dict[object, str]:
    """What msgfmt puts in the .mo: every translated, non-fuzzy entry (header aside)."""
    _header, *entries = read_po(po)
    catalog: dict[object, str] = {}
    for entry in entries:
        if "fuzzy" in entry.flags or not all(entry.msgstr.values()):
            continue
        if entry.msgid_plural is None:
            catalog[entry.key] = entry.msgstr[0]
        else:
            for index, text in entry.msgstr.items():
                catalog[(entry.key, index)] = text
    return catalog


def _load_mo(path: Path) -> dict[object, str]:
    """The messages of a compiled catalogue, without its header (msgfmt rewrites that)."""
    with path.open("rb") as handle:
        catalog = dict(gettext.GNUTranslations(handle)._catalog)  # type: ignore[attr-defined]
    catalog.pop("", None)
    return catalog


def _plural_forms(path: Path) -> str:
    with path.open("rb") as handle:
        return gettext.GNUTranslations(handle).info()["plural-forms"]


@pytest.mark.parametrize("language", LANGUAGES)
def test_committed_mo_holds_exactly_the_po_messages(language):
    folder = LOCALE_DIR / language / "LC_MESSAGES"
    compiled = _load_mo(folder / "django.mo")
    assert compiled == _expected_catalog(folder / "django.po"), (
        "django.mo is stale: run `telemed manage compilemessages -i .venv`"
    )
    header = read_po(folder / "django.po")[0].msgstr[0]
    assert f"Plural-Forms: {_plural_forms(folder / 'django.mo')}\n" in header


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="gettext's msgfmt is not installed")
@pytest.mark.parametrize("language", LANGUAGES)
def test_committed_mo_equals_a_fresh_msgfmt_build(language, tmp_path):
    folder = LOCALE_DIR / language / "LC_MESSAGES"
    fresh = tmp_path / "django.mo"
    subprocess.run(["msgfmt", "-o", str(fresh), str(folder / "django.po")], check=True)
    assert _load_mo(folder / "django.mo") == _load_mo(fresh)
    assert _plural_forms(folder / "django.mo") == _plural_forms(fresh)


def test_django_finds_the_catalogues():
    with translation.override("zh-hans"):
        assert translation.gettext("Telemedicine") == "远程医疗协作平台"
        assert translation.ngettext("%(age)s year", "%(age)s years", 3) % {"age": 3} == "3岁"
    with translation.override("en"):
        assert translation.gettext("Telemedicine") == "Telemedicine"
        assert translation.ngettext("%(age)s year", "%(age)s years", 3) % {"age": 3} == "3 years"


# --- (c) The pages people use are fully translated ---------------------------------------------


class _VisibleText(HTMLParser):
    """Text a person sees or hears: text nodes and the attributes read out or shown."""

    SHOWN_ATTRIBUTES = frozenset({"title", "aria-label", "placeholder", "alt"})
    HIDDEN_ELEMENTS = frozenset({"script", "style"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN_ELEMENTS:
            self._hidden += 1
        shown_value = tag == "input" and dict(attrs).get("type") in {"submit", "button"}
        for name, value in attrs:
            shown = name in self.SHOWN_ATTRIBUTES or name.startswith("data-label-")
            if value and (shown or (shown_value and name == "value")):
                self.texts.append(value.strip())

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN_ELEMENTS and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden and data.strip():
            self.texts.append(" ".join(data.split()))


def visible_texts(html: str) -> list[str]:
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    return parser.texts


def _english_ui_strings() -> tuple[set[str], set[str]]:
    """English source strings: (phrases of two words or more, capitalised single words)."""
    phrases: set[str] = set()
    words: set[str] = set()
    for entry in zh_entries():
        for source in entry.sources:
            plain = _PLACEHOLDER.sub(" ", source).strip()
            if len(plain.split()) >= 2:
                # The longest run of words without a placeholder is what would show.
                for part in re.split(r"\s{2,}", _PLACEHOLDER.sub("  ", source)):
                    if len(part.split()) >= 2:
                        phrases.add(" ".join(part.split()))
            elif plain[:1].isupper():
                words.add(plain)
    return phrases, words


def english_left_on(html: str, data: frozenset[str] = frozenset()) -> list[str]:
    """English UI text on a page that should be all Chinese; ``data`` is shown as stored."""
    phrases, words = _english_ui_strings()
    found = []
    for text in visible_texts(html):
        if text in data:
            continue
        translatable = text in words or any(phrase in text for phrase in phrases)
        # Wording that never went through gettext: two Latin words in a row.
        unwrapped = re.search(r"[A-Za-z]{2,}[,.;:]?\s+[A-Za-z]{2,}", text)
        if translatable or unwrapped:
            found.append(text)
    return found


def _chinese_ui_strings() -> set[str]:
    return {text for entry in zh_entries() for text in entry.msgstr.values()}


def chinese_left_on(html: str) -> list[str]:
    """Chinese UI text on an English page (whole texts only: data is Chinese too)."""
    translations = _chinese_ui_strings()
    return [text for text in visible_texts(html) if text in translations]


HOME_ACCOUNTS = (
    "village",
    "township",
    "specialist",
    "radiologist",
    "labtech",
    "coordinator",
    "admin",
    "auditor",
)


def _page(client, path, language, *, data=None, method="get"):
    send = getattr(client, method)
    response = send(path, data or {}, HTTP_ACCEPT_LANGUAGE=language)
    html = response.content.decode()
    assert f'<html lang="{language}">' in html, (path, response.status_code)
    return response, html


def _pages(client, actors, residents, language):
    """Every page the check covers, as (label, expected status, response, html)."""
    shown = []

    def visit(label, path, status=200, *, user=None, data=None, method="get"):
        client.logout()
        if user is not None:
            client.force_login(getattr(actors, user))
        response, html = _page(client, path, language, data=data, method=method)
        assert response.status_code == status, (label, response.status_code)
        shown.append((label, html))

    visit("login", "/accounts/login/")
    visit(
        "login failed",
        "/accounts/login/",
        data={"username": "village", "password": "wrong-password"},
        method="post",
    )
    for username in HOME_ACCOUNTS:
        visit(f"home of {username}", "/", user=username)
    visit("residents", "/patients/", user="village")
    visit("resident search", "/patients/", user="village", data={"q": "张"})
    visit("resident search, no match", "/patients/", user="village", data={"q": "无此人"})
    visit("residents of a specialist", "/patients/", user="specialist")
    visit("register", "/patients/register/", user="village")
    visit(
        "register with errors",
        "/patients/register/",
        400,
        user="village",
        data={"resident_id": "12345", "name": "孙小红", "sex": "F", "birth_date": "1970-04-01"},
        method="post",
    )
    zhang = residents["张三"]
    visit("resident record", f"/patients/{zhang.pk}/", user="village")
    visit("edit demographics", f"/patients/{zhang.pk}/edit/", user="village")
    visit("audit trail", "/audit/", user="auditor")
    visit("audit trail, denied", "/audit/", user="auditor", data={"outcome": "denied"})
    visit(
        "audit trail, bad filters",
        "/audit/",
        400,
        user="auditor",
        data={"date_from": "2024-02-01", "date_to": "2024-01-01"},
    )
    visit("no such page", "/no-such-page/", 404, user="village")
    visit("forbidden", "/audit/", 403, user="village")
    return shown


@pytest.mark.django_db
def test_chinese_pages_show_no_english_ui_text(client, actors, residents):
    pages = _pages(client, actors, residents, "zh-hans")
    # The audit trail shows each event's reason as it was stored: data, not UI text.
    stored = frozenset(AuditEvent.objects.values_list("reason", flat=True))
    leftovers = {label: found for label, html in pages if (found := english_left_on(html, stored))}
    assert not leftovers


@pytest.mark.django_db
def test_english_pages_show_no_chinese_ui_text(client, actors, residents):
    leftovers = {
        label: found
        for label, html in _pages(client, actors, residents, "en")
        if (found := chinese_left_on(html))
    }
    assert not leftovers


HOME = ("village", "/")
RECORD = ("village", "record")
AUDIT = ("auditor", "/audit/")
PAGES_IN_EACH_LANGUAGE = [
    (*HOME, "en", ["Residents", "Register a resident", "My residents", "Log out", "Telemedicine"]),
    (*HOME, "zh-hans", ["居民档案", "居民建档", "本机构居民", "退出登录", "远程医疗协作平台"]),
    (*RECORD, "en", ["Record", "Resident ID", "Home institution", "Consents", "Timeline"]),
    (*RECORD, "zh-hans", ["档案信息", "居民身份证号", "所属机构", "知情同意", "时间轴"]),
    (*AUDIT, "en", ["Audit trail", "When", "Who", "Outcome", "Search"]),
    (*AUDIT, "zh-hans", ["审计日志", "时间", "操作人", "结果", "查询"]),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("username", "path", "language", "expected"), PAGES_IN_EACH_LANGUAGE)
def test_pages_speak_the_language_asked_for(
    client, actors, residents, username, path, language, expected
):
    client.force_login(getattr(actors, username))
    if path == "record":
        path = f"/patients/{residents['张三'].pk}/"
    _, html = _page(client, path, language)
    texts = visible_texts(html)
    for text in expected:
        assert text in texts, text


# --- (d) The API answers in the language asked for ---------------------------------------------


def _bad_registration() -> dict[str, str]:
    return {
        "resident_id": "12345",
        "name": "孙小梅",
        "sex": "F",
        "birth_date": "1980-02-29",
        "phone": "13900000000",
    }


@pytest.mark.django_db
def test_api_error_comes_in_chinese(client, actors):
    client.force_login(actors.village)
    response = client.post(
        "/api/patients/",
        _bad_registration(),
        content_type="application/json",
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "身份证" in detail
    assert not re.search(r"[A-Za-z]{2,}", detail), detail


@pytest.mark.django_db
def test_api_error_comes_in_english_when_asked(client, actors):
    client.force_login(actors.village)
    response = client.post(
        "/api/patients/",
        _bad_registration(),
        content_type="application/json",
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 400
    assert "18 characters" in response.json()["detail"]


@pytest.mark.django_db
def test_api_check_digit_error_comes_in_chinese(client, actors):
    good = demo_resident_id("110101", dt.date(1980, 2, 29), 401, "F")
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    client.force_login(actors.village)
    response = client.post(
        "/api/patients/",
        {**_bad_registration(), "resident_id": bad},
        content_type="application/json",
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )
    assert response.status_code == 400
    assert "校验码" in response.json()["detail"]

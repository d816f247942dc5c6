"""QIDO-RS query parameters (PS3.18 §8.3.4), parsed into typed conditions.

A bad parameter raises :class:`QueryError` with a sentence for a person; the view answers
400 with it. Attributes that are valid DICOM but not matchable here are collected in
``QidoQuery.ignored`` (the answer carries a ``Warning`` header, as PS3.18 asks) and are
still returned when the index has them.
"""

from __future__ import annotations

import datetime
import enum
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.http import QueryDict
from django.utils.translation import gettext as _
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from imaging.dicom.validate import is_valid_uid

DEFAULT_LIMIT = {"study": 101, "series": 1000, "instance": 1000}
MAX_LIMIT = 1000
_TAG_RE = re.compile(r"^[0-9A-Fa-f]{8}$")
_DATE_RE = re.compile(r"^\d{8}$")
_TIME_RE = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")
# Accepted and without effect here (PS3.18 2019+ options, viewers' cache busters).
_IGNORED_KEYS = {"emptyvaluematching", "multiplevaluematching", "_", "charset"}


class Level(enum.IntEnum):
    """Query/retrieve levels; a search may match attributes at or above its own level."""

    STUDY = 1
    SERIES = 2
    INSTANCE = 3


class Kind(enum.Enum):
    TEXT = "text"  # SH, LO: case-sensitive, wildcards
    NAME = "name"  # PN and descriptions: case-insensitive, wildcards
    UID = "uid"  # list of UIDs
    DATE = "date"  # single date or range
    TIME = "time"  # single time or range
    NUMBER = "number"  # IS
    CODES = "codes"  # CS list (Modality)
    MODALITIES = "modalities"  # ModalitiesInStudy: any series has one of them


@dataclass(frozen=True)
class Attribute:
    """A matchable attribute and the index column that holds it."""

    tag: int
    level: Level
    column: str  # field on the model of ``level`` (Study, Series or Instance)
    kind: Kind

    @property
    def keyword(self) -> str:
        return keyword_for_tag(self.tag)

    @property
    def hex(self) -> str:
        return f"{self.tag:08X}"


def _attr(keyword: str, level: Level, column: str, kind: Kind) -> Attribute:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return Attribute(tag=tag, level=level, column=column, kind=kind)


MATCHABLE: dict[int, Attribute] = {
    a.tag: a
    for a in (
        _attr("PatientName", Level.STUDY, "dicom_patient_name", Kind.NAME),
        _attr("PatientID", Level.STUDY, "dicom_patient_id", Kind.TEXT),
        _attr("PatientBirthDate", Level.STUDY, "patient_birth_date", Kind.DATE),
        _attr("PatientSex", Level.STUDY, "patient_sex", Kind.CODES),
        _attr("AccessionNumber", Level.STUDY, "accession_number", Kind.TEXT),
        _attr("StudyDescription", Level.STUDY, "study_description", Kind.NAME),
        _attr("StudyDate", Level.STUDY, "study_date", Kind.DATE),
        _attr("StudyTime", Level.STUDY, "study_time", Kind.TIME),
        _attr("StudyID", Level.STUDY, "study_id", Kind.TEXT),
        _attr("ModalitiesInStudy", Level.STUDY, "modalities", Kind.MODALITIES),
        _attr("StudyInstanceUID", Level.STUDY, "study_uid", Kind.UID),
        _attr("ReferringPhysicianName", Level.STUDY, "referring_physician", Kind.NAME),
        _attr("SeriesInstanceUID", Level.SERIES, "series_uid", Kind.UID),
        _attr("Modality", Level.SERIES, "modality", Kind.CODES),
        _attr("SeriesNumber", Level.SERIES, "series_number", Kind.NUMBER),
        _attr("SeriesDescription", Level.SERIES, "series_description", Kind.NAME),
        _attr("BodyPartExamined", Level.SERIES, "body_part", Kind.TEXT),
        _attr("SOPInstanceUID", Level.INSTANCE, "sop_uid", Kind.UID),
        _attr("SOPClassUID", Level.INSTANCE, "sop_class_uid", Kind.UID),
        _attr("InstanceNumber", Level.INSTANCE, "instance_number", Kind.NUMBER),
    )
}


class QueryError(ValueError):
    """A query parameter is malformed; the message is for a person (translated)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Condition:
    """One matching key with its parsed value.

    Exactly one of the value forms is used, chosen by ``attribute.kind``: ``values``
    (UID and code lists), ``pattern`` (text with or without ``*``/``?``), ``low``/``high``
    (date and time ranges; either may be ``None``), ``number``.
    """

    attribute: Attribute
    raw: str
    values: tuple[str, ...] = ()
    pattern: str | None = None
    low: str | None = None
    high: str | None = None
    number: int | None = None

    @property
    def universal(self) -> bool:
        """An empty value (or a lone ``*``) matches everything (PS3.4 C.2.2.2.3)."""
        return self.raw in ("", "*")


@dataclass(frozen=True)
class QidoQuery:
    level: Level
    conditions: tuple[Condition, ...]
    limit: int
    offset: int
    fuzzy: bool = False
    include_all: bool = False
    include_tags: frozenset[int] = frozenset()
    ignored: tuple[str, ...] = ()

    def audit_detail(self) -> dict[str, object]:
        """The matched parameters, for the audit trail."""
        return {
            "level": self.level.name.lower(),
            "match": {c.attribute.keyword: c.raw for c in self.conditions},
            "limit": self.limit,
            "offset": self.offset,
        }


def parse_tag(name: str) -> int | None:
    """A keyword (``PatientName``) or 8 hex digits (``00100010``) as a tag, else ``None``."""
    if _TAG_RE.match(name):
        return int(name, 16)
    tag = tag_for_keyword(name)
    return int(tag) if tag is not None else None


def _split_list(value: str) -> list[str]:
    """Comma- or backslash-separated values (PS3.18 allows both for UID lists)."""
    return [v.strip() for v in re.split(r"[,\\]", value) if v.strip()]


def _uid_list(attribute: Attribute, raw: str) -> Condition:
    values = _split_list(raw)
    for value in values:
        if not is_valid_uid(value):
            raise QueryError(
                _("%(attribute)s: %(value)s is not a valid UID (digits and dots, at most 64).")
                % {"attribute": attribute.keyword, "value": value[:70]}
            )
    return Condition(attribute=attribute, raw=raw, values=tuple(values))


def _valid_date(value: str) -> bool:
    if not _DATE_RE.match(value):
        return False
    try:
        datetime.date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return False
    return True


def _valid_time(value: str) -> bool:
    if not _TIME_RE.match(value):
        return False
    limits = (23, 59, 60)
    return all(
        int(value[i * 2 : i * 2 + 2]) <= limits[i] for i in range(len(value.split(".")[0]) // 2)
    )


def _range(attribute: Attribute, raw: str, valid: Callable[[str], bool], what: str) -> Condition:
    low, sep, high = raw.partition("-")
    if not sep:
        low = high = raw
    for value in (low, high):
        if value and not valid(value):
            raise QueryError(
                _(
                    "%(attribute)s: %(value)s is not a %(what)s; use %(example)s, a range"
                    " %(example)s-%(example)s, or an open range."
                )
                % {
                    "attribute": attribute.keyword,
                    "value": raw[:40],
                    "what": what,
                    "example": "YYYYMMDD" if attribute.kind is Kind.DATE else "HHMMSS",
                }
            )
    if not low and not high:
        raise QueryError(_("%(attribute)s: an empty range.") % {"attribute": attribute.keyword})
    if low and high and low > high:
        raise QueryError(
            _("%(attribute)s: the range starts after it ends.") % {"attribute": attribute.keyword}
        )
    return Condition(attribute=attribute, raw=raw, low=low or None, high=high or None)


def parse_condition(attribute: Attribute, raw: str) -> Condition:
    """Parse one matching value for ``attribute``.

    Raises
    ------
    QueryError
        The value does not fit the attribute (a bad UID, date, time or number).
    """
    if raw in ("", "*"):
        return Condition(attribute=attribute, raw=raw)
    kind = attribute.kind
    if kind is Kind.UID:
        return _uid_list(attribute, raw)
    if kind is Kind.DATE:
        return _range(attribute, raw, _valid_date, _("date"))
    if kind is Kind.TIME:
        return _range(attribute, raw, _valid_time, _("time"))
    if kind is Kind.NUMBER:
        try:
            number = int(raw)
        except ValueError:
            raise QueryError(
                _("%(attribute)s must be a whole number.") % {"attribute": attribute.keyword}
            ) from None
        return Condition(attribute=attribute, raw=raw, number=number)
    if kind in (Kind.CODES, Kind.MODALITIES):
        values = tuple(_split_list(raw))
        if any("*" in v or "?" in v for v in values):
            if len(values) != 1:
                raise QueryError(
                    _("%(attribute)s: wildcards cannot be combined with a list.")
                    % {"attribute": attribute.keyword}
                )
            return Condition(attribute=attribute, raw=raw, pattern=values[0])
        return Condition(attribute=attribute, raw=raw, values=values)
    if len(raw) > 324:
        raise QueryError(
            _("%(attribute)s: the value is too long.") % {"attribute": attribute.keyword}
        )
    return Condition(attribute=attribute, raw=raw, pattern=raw)


def _positive_int(name: str, raw: str, minimum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise QueryError(
            _("%(name)s must be a whole number from %(minimum)d.")
            % {"name": name, "minimum": minimum}
        )
    return value


def _bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no", ""):
        return False
    raise QueryError(_("%(name)s must be true or false.") % {"name": name})


def _include_fields(values: Iterable[str]) -> tuple[bool, frozenset[int]]:
    include_all = False
    tags: set[int] = set()
    for value in values:
        for name in _split_list(value.replace("\\", ",")):
            if name.lower() == "all":
                include_all = True
                continue
            tag = parse_tag(name)
            if tag is None:
                raise QueryError(
                    _("includefield: %(name)s is neither a DICOM keyword nor a tag.")
                    % {"name": name[:70]}
                )
            tags.add(tag)
    return include_all, frozenset(tags)


def parse_qido(params: QueryDict, *, level: Level) -> QidoQuery:
    """Parse the query string of a QIDO-RS search at ``level``.

    Parameters
    ----------
    params
        ``request.GET`` (values already percent-decoded by Django).
    level
        The level searched: studies, series or instances.

    Returns
    -------
    QidoQuery
        Conditions on attributes at or above ``level``, paging and included fields.

    Raises
    ------
    QueryError
        A parameter is malformed: unknown name, bad UID, date, number, limit or offset.
    """
    conditions: dict[int, Condition] = {}
    ignored: list[str] = []
    limit = DEFAULT_LIMIT[level.name.lower()]
    offset = 0
    fuzzy = False
    include_all = False
    include_tags: frozenset[int] = frozenset()
    unmatched: set[int] = set()
    for key, values in params.lists():
        last = values[-1] if values else ""
        if key == "limit":
            limit = min(_positive_int("limit", last, 1), MAX_LIMIT)
        elif key == "offset":
            offset = _positive_int("offset", last, 0)
        elif key == "fuzzymatching":
            fuzzy = _bool("fuzzymatching", last)
        elif key == "includefield":
            include_all, include_tags = _include_fields(values)
        elif key.lower() in _IGNORED_KEYS:
            continue
        else:
            tag = parse_tag(key)
            if tag is None:
                if "." in key and all(parse_tag(part) is not None for part in key.split(".")):
                    ignored.append(key)  # a sequence path: valid, not matchable here
                    continue
                raise QueryError(
                    _(
                        "%(name)s is not a query parameter: use a DICOM keyword or tag,"
                        " limit, offset, includefield or fuzzymatching."
                    )
                    % {"name": key[:70]}
                )
            attribute = MATCHABLE.get(tag)
            if attribute is None or attribute.level > level:
                ignored.append(key)
                unmatched.add(tag)
                continue
            if attribute.kind is Kind.UID:
                last = ",".join(values)  # StudyInstanceUID=a&StudyInstanceUID=b
            conditions[tag] = parse_condition(attribute, last)
    return QidoQuery(
        level=level,
        conditions=tuple(conditions.values()),
        limit=limit,
        offset=offset,
        fuzzy=fuzzy,
        include_all=include_all,
        include_tags=include_tags | unmatched,
        ignored=tuple(ignored),
    )


def vr_of(tag: int) -> str:
    """The dictionary VR of ``tag`` (``UN`` when unknown or ambiguous)."""
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return "UN"
    return vr if len(vr) == 2 else "UN"

"""QIDO-RS (PS3.18 §10.6): search for studies, series and instances the caller may see.

Every search starts from :func:`imaging.selectors.studies_visible_to` (through
:mod:`imaging.dicomweb.access`, which reuses its compiled SQL for a minute) or from a
study fetched through :func:`~imaging.selectors.study_get_for_user`, so a result never
shows a study the caller may not open. Attributes come from the index columns; ``includefield`` asks
for more, taken from the stored DICOM JSON of one instance per row (a subquery, so a
page of results stays a single query).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.db.models import Exists, F, JSONField, Lookup, OuterRef, Q, QuerySet, Subquery, Value
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.urls import reverse

from audit.models import Outcome
from audit.services import audit_record
from imaging.dicom.metadata import BULK_MARKER
from imaging.dicomweb.access import series_for, study_for, visible_studies
from imaging.dicomweb.negotiate import negotiate_metadata
from imaging.dicomweb.query import (
    MATCHABLE,
    Condition,
    Kind,
    Level,
    QidoQuery,
    parse_qido,
    vr_of,
)
from imaging.dicomweb.responses import check_uids, dicom_json_response, endpoint, post_stow
from imaging.models import Instance, Series, Study

ACTION = "dicomweb.qido"
TRUNCATED_WARNING = '299 telemed: "There are additional results that can be requested"'
UTF8 = "ISO_IR 192"  # DICOM JSON is UTF-8 whatever the file's character set was

# Attributes "all" adds per level, from the stored DICOM JSON (Patient, General Study,
# Patient Study; General Series and Equipment). Instance level returns the whole data set.
_STUDY_GROUPS = {0x0010, 0x0032}
_STUDY_TAGS = {
    0x00080020, 0x00080030, 0x00080050, 0x00080051, 0x00080090, 0x00080201, 0x00081030,
    0x00081032, 0x00081060, 0x0020000D, 0x00200010, 0x00101010, 0x00101020, 0x00101030,
}  # fmt: skip
_SERIES_TAGS = {
    0x00080021, 0x00080031, 0x00080060, 0x00080070, 0x00080080, 0x00081010, 0x0008103E,
    0x00081090, 0x00180015, 0x00185100, 0x0020000E, 0x00200011, 0x00200052, 0x00200060,
    0x00400244, 0x00400245, 0x00400275,
}  # fmt: skip
_COVERED = {
    Level.STUDY: {
        0x00080005, 0x00080020, 0x00080030, 0x00080050, 0x00080056, 0x00080061, 0x00080090,
        0x00081030, 0x00081190, 0x00100010, 0x00100020, 0x00100030, 0x00100040, 0x0020000D,
        0x00200010, 0x00201206, 0x00201208,
    },
    Level.SERIES: {
        0x00080060, 0x0008103E, 0x00081190, 0x00180015, 0x0020000E, 0x00200011, 0x00201209,
    },
    Level.INSTANCE: {
        0x00080016, 0x00080018, 0x00081190, 0x00200013, 0x00280008, 0x00280010, 0x00280011,
        0x00280100,
    },
}  # fmt: skip


# --- Matching ------------------------------------------------------------------------------


def _like(pattern: str) -> str:
    """DICOM ``*``/``?`` wildcards as an SQL LIKE pattern, ``%``, ``_`` and ``\\`` escaped."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _glob(pattern: str) -> str:
    """DICOM wildcards as an SQLite GLOB pattern (case-sensitive), ``[`` escaped."""
    return pattern.replace("[", "[[]")


class WildcardMatch(Lookup[str]):
    """``lhs`` matches a DICOM wildcard pattern (``*``, ``?``), case-sensitively."""

    lookup_name = "dicom_wildcard"
    prepare_rhs = False
    case_sensitive = True

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        pattern = str(next(iter(rhs_params)))
        if self.case_sensitive and connection.vendor == "sqlite":
            # SQLite's LIKE ignores ASCII case; GLOB does not.
            return f"{lhs} GLOB {rhs}", [*lhs_params, _glob(pattern)]
        if self.case_sensitive:
            return f"{lhs} LIKE {rhs} ESCAPE '\\'", [*lhs_params, _like(pattern)]
        return f"UPPER({lhs}) LIKE UPPER({rhs}) ESCAPE '\\'", [*lhs_params, _like(pattern)]


class WildcardIMatch(WildcardMatch):
    lookup_name = "dicom_iwildcard"
    case_sensitive = False


def _text_q(column: str, pattern: str, *, insensitive: bool) -> Q:
    if "*" in pattern or "?" in pattern:
        lookup = WildcardIMatch if insensitive else WildcardMatch
        return Q(lookup(F(column), Value(pattern)))
    return Q(**{f"{column}__iexact" if insensitive else column: pattern})


def _name_q(column: str, pattern: str) -> Q:
    """A person name matches in any component group (``Wang^Xiao=王^小``)."""
    q = _text_q(column, pattern, insensitive=True)
    q |= Q(WildcardIMatch(F(column), Value(f"*={pattern}")))
    if not pattern.endswith("*"):
        q |= Q(WildcardIMatch(F(column), Value(f"{pattern}=*")))
        q |= Q(WildcardIMatch(F(column), Value(f"*={pattern}=*")))
    return q


def _range_q(column: str, condition: Condition, *, kind: Kind) -> Q:
    if condition.low is not None and condition.low == condition.high:
        if kind is Kind.TIME:
            return Q(**{f"{column}__startswith": condition.low})
        return Q(**{column: condition.low})
    q = ~Q(**{column: ""})
    if condition.low is not None:
        q &= Q(**{f"{column}__gte": condition.low})
    if condition.high is not None:
        high = condition.high
        if kind is Kind.TIME:
            high = (high + "235959"[len(high) :])[:6] + ".999999" if "." not in high else high
        q &= Q(**{f"{column}__lte": high})
    return q


def condition_q(condition: Condition, *, prefix: str, fuzzy: bool) -> Q:
    """The filter for one condition, reached from the searched model through ``prefix``."""
    attribute = condition.attribute
    column = prefix + attribute.column
    kind = attribute.kind
    if condition.universal:
        return Q()
    if kind is Kind.UID:
        values = condition.values
        return Q(**{column: values[0]}) if len(values) == 1 else Q(**{f"{column}__in": values})
    if kind in (Kind.DATE, Kind.TIME):
        return _range_q(column, condition, kind=kind)
    if kind is Kind.NUMBER:
        return Q(**{column: condition.number})
    if kind is Kind.MODALITIES:
        series = Series.objects.filter(study=OuterRef(f"{prefix}pk" if prefix else "pk"))
        if condition.pattern is not None:
            series = series.filter(WildcardMatch(F("modality"), Value(condition.pattern)))
        else:
            series = series.filter(modality__in=condition.values)
        return Q(Exists(series))
    if kind is Kind.CODES:
        if condition.pattern is not None:
            return _text_q(column, condition.pattern, insensitive=fuzzy)
        return Q(**{f"{column}__in": condition.values})
    pattern = condition.pattern or ""
    if kind is Kind.NAME:
        if vr_of(attribute.tag) == "PN":
            return _name_q(column, pattern)
        return _text_q(column, pattern, insensitive=True)
    return _text_q(column, pattern, insensitive=fuzzy)


def _filtered(qs: QuerySet[Any], query: QidoQuery, prefixes: dict[Level, str]) -> QuerySet[Any]:
    for condition in query.conditions:
        qs = qs.filter(
            condition_q(condition, prefix=prefixes[condition.attribute.level], fuzzy=query.fuzzy)
        )
    return qs


# --- DICOM JSON ----------------------------------------------------------------------------


def _el(vr: str, *values: Any) -> dict[str, Any]:
    kept = [v for v in values if v not in ("", None)]
    return {"vr": vr, "Value": kept} if kept else {"vr": vr}


def _pn(value: str) -> dict[str, Any]:
    if not value:
        return {"vr": "PN"}
    groups = value.split("=")
    names = dict(zip(("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False))
    return {"vr": "PN", "Value": [{k: v for k, v in names.items() if v}]}


def _study_json(study: Study, root: str) -> dict[str, Any]:
    return {
        "00080005": _el("CS", UTF8),
        "00080020": _el("DA", study.study_date),
        "00080030": _el("TM", study.study_time),
        "00080050": _el("SH", study.accession_number),
        "00080056": _el("CS", "ONLINE"),
        "00080061": _el("CS", *study.modalities.split("\\")),
        "00080090": _pn(study.referring_physician),
        "00081030": _el("LO", study.study_description),
        "00081190": _el("UR", f"{root}studies/{study.study_uid}"),
        "00100010": _pn(study.dicom_patient_name),
        "00100020": _el("LO", study.dicom_patient_id),
        "00100030": _el("DA", study.patient_birth_date),
        "00100040": _el("CS", study.patient_sex),
        "0020000D": _el("UI", study.study_uid),
        "00200010": _el("SH", study.study_id),
        "00201206": _el("IS", study.num_series),
        "00201208": _el("IS", study.num_instances),
    }


def _series_json(series: Series, study_uid: str, root: str) -> dict[str, Any]:
    return {
        "00080005": _el("CS", UTF8),
        "00080060": _el("CS", series.modality),
        "0008103E": _el("LO", series.series_description),
        "00081190": _el("UR", f"{root}studies/{study_uid}/series/{series.series_uid}"),
        "00180015": _el("CS", series.body_part),
        "0020000D": _el("UI", study_uid),
        "0020000E": _el("UI", series.series_uid),
        "00200011": _el("IS", series.series_number),
        "00201209": _el("IS", series.num_instances),
    }


def _instance_json(
    instance: Instance, study_uid: str, series_uid: str, root: str
) -> dict[str, Any]:
    url = f"{root}studies/{study_uid}/series/{series_uid}/instances/{instance.sop_uid}"
    return {
        "00080005": _el("CS", UTF8),
        "00080016": _el("UI", instance.sop_class_uid),
        "00080018": _el("UI", instance.sop_uid),
        "00080056": _el("CS", "ONLINE"),
        "00081190": _el("UR", url),
        "0020000D": _el("UI", study_uid),
        "0020000E": _el("UI", series_uid),
        "00200013": _el("IS", instance.instance_number),
        "00280008": _el("IS", instance.frames),
        "00280010": _el("US", instance.rows),
        "00280011": _el("US", instance.columns),
        "00280100": _el("US", instance.bits_allocated),
    }


def _wanted(query: QidoQuery, level: Level) -> Callable[[int], bool] | None:
    """Which stored tags to add to a ``level`` result, or ``None`` for none."""
    extra = set(query.include_tags) - _COVERED[level]
    if level is Level.STUDY:
        extra = {t for t in extra if t >> 16 in _STUDY_GROUPS or t in _STUDY_TAGS}
    elif level is Level.SERIES:
        extra = {t for t in extra if t in _SERIES_TAGS or t not in _COVERED[Level.INSTANCE]}
    if query.include_all:
        if level is Level.STUDY:
            return lambda t: t >> 16 in _STUDY_GROUPS or t in _STUDY_TAGS or t in extra
        if level is Level.SERIES:
            return lambda t: t in _SERIES_TAGS or t in extra
        return lambda t: t >> 16 != 0x7FE0
    if not extra:
        return None
    return extra.__contains__


def _merge_stored(
    result: dict[str, Any], stored: dict[str, Any] | None, wanted: Callable[[int], bool]
) -> None:
    for key, element in (stored or {}).items():
        if key in result or not isinstance(element, dict):
            continue
        try:
            tag = int(key, 16)
        except ValueError:
            continue
        if not wanted(tag) or str(element.get("BulkDataURI", "")).startswith(BULK_MARKER):
            continue
        result[key] = element


def _representative(**link: Any) -> Subquery:
    """The stored DICOM JSON of the first instance under the row (one subquery)."""
    instances = Instance.objects.filter(**link).order_by("pk").values("metadata")[:1]
    return Subquery(instances, output_field=JSONField())


# --- Views ---------------------------------------------------------------------------------


def _root(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse("dicomweb:root"))


def _answer(
    request: HttpRequest,
    query: QidoQuery,
    rows: list[Any],
    build: Callable[[Any], dict[str, Any]],
    *,
    resource_type: str,
    resource_id: str = "",
) -> HttpResponseBase:
    truncated = len(rows) > query.limit
    rows = rows[: query.limit]
    payload = [build(row) for row in rows]
    audit_record(
        actor=request.user,
        action=ACTION,
        outcome=Outcome.ALLOWED,
        resource_type=resource_type,
        resource_id=resource_id,
        detail={**query.audit_detail(), "count": len(payload)},
    )
    headers: dict[str, str] = {}
    warnings = []
    if truncated:
        warnings.append(TRUNCATED_WARNING)
    if query.ignored:
        names = ", ".join(sorted(set(query.ignored)))[:300]
        warnings.append(f'299 telemed: "Not supported for matching: {names}"')
    if warnings:
        headers["Warning"] = ", ".join(warnings)
    return dicom_json_response(payload, **headers)


def _page(qs: QuerySet[Any], query: QidoQuery) -> list[Any]:
    return list(qs[query.offset : query.offset + query.limit + 1])


@endpoint(methods=("GET", "HEAD", "POST"))
def studies_resource(request: HttpRequest) -> HttpResponseBase:
    """``GET`` searches for studies; ``POST`` stores instances (STOW-RS)."""
    if request.method == "POST":
        return post_stow(request, None)
    return search_studies(request)


def search_studies(request: HttpRequest) -> HttpResponseBase:
    """QIDO-RS ``/studies`` (undecorated: :func:`studies_resource` is the view)."""
    negotiate_metadata(request)
    query = parse_qido(request.GET, level=Level.STUDY)
    qs = visible_studies(request.user)
    qs = _filtered(qs, query, {Level.STUDY: ""}).order_by("-study_date", "-study_time", "-pk")
    wanted = _wanted(query, Level.STUDY)
    if wanted is not None:
        qs = qs.annotate(_stored=_representative(series__study=OuterRef("pk")))
    root = _root(request)

    def build(study: Study) -> dict[str, Any]:
        result = _study_json(study, root)
        if wanted is not None:
            _merge_stored(result, getattr(study, "_stored", None), wanted)
        return result

    return _answer(request, query, _page(qs, query), build, resource_type="study")


def _series_rows(
    request: HttpRequest, query: QidoQuery, study: Study | None
) -> tuple[QuerySet[Series], bool]:
    if study is not None:
        qs = Series.objects.filter(study=study)
    else:
        qs = Series.objects.filter(study__in=visible_studies(request.user))
    qs = _filtered(qs, query, {Level.STUDY: "study__", Level.SERIES: ""})
    return qs.select_related("study").order_by("study_id", "series_number", "pk"), study is None


@endpoint()
def search_series(request: HttpRequest, study: str | None = None) -> HttpResponseBase:
    negotiate_metadata(request)
    query = parse_qido(request.GET, level=Level.SERIES)
    parent = None
    if study is not None:
        check_uids(study_uid=study)
        parent = study_for(actor=request.user, study_uid=study, action=ACTION)
    qs, with_study = _series_rows(request, query, parent)
    wanted = _wanted(query, Level.SERIES)
    study_wanted = _wanted(query, Level.STUDY) if with_study else None
    if wanted is not None or study_wanted is not None:
        qs = qs.annotate(_stored=_representative(series=OuterRef("pk")))
    root = _root(request)

    def build(series: Series) -> dict[str, Any]:
        result = _series_json(series, series.study.study_uid, root)
        stored = getattr(series, "_stored", None)
        if with_study:
            result = {**_study_json(series.study, root), **result}
            if study_wanted is not None:
                _merge_stored(result, stored, study_wanted)
        if wanted is not None:
            _merge_stored(result, stored, wanted)
        return result

    return _answer(
        request, query, _page(qs, query), build, resource_type="series", resource_id=study or ""
    )


@endpoint()
def search_instances(
    request: HttpRequest, study: str | None = None, series: str | None = None
) -> HttpResponseBase:
    negotiate_metadata(request)
    query = parse_qido(request.GET, level=Level.INSTANCE)
    qs = Instance.objects.all()
    if series is not None and study is not None:
        check_uids(study_uid=study, series_uid=series)
        parent = series_for(actor=request.user, study_uid=study, series_uid=series, action=ACTION)
        qs = qs.filter(series=parent)
    elif study is not None:
        check_uids(study_uid=study)
        qs = qs.filter(series__study=study_for(actor=request.user, study_uid=study, action=ACTION))
    else:
        qs = qs.filter(series__study__in=visible_studies(request.user))
    qs = _filtered(
        qs, query, {Level.STUDY: "series__study__", Level.SERIES: "series__", Level.INSTANCE: ""}
    )
    with_series, with_study = series is None, study is None
    wanted = _wanted(query, Level.INSTANCE)
    upper = [
        w
        for w in (
            _wanted(query, Level.SERIES) if with_series else None,
            _wanted(query, Level.STUDY) if with_study else None,
        )
        if w is not None
    ]
    qs = qs.select_related("series__study").order_by(
        "series__study_id", "series__series_number", "series_id", "instance_number", "pk"
    )
    if wanted is None and not upper:
        qs = qs.defer("metadata")
    root = _root(request)

    def build(instance: Instance) -> dict[str, Any]:
        parent_series = instance.series
        parent_study = parent_series.study
        result = _instance_json(instance, parent_study.study_uid, parent_series.series_uid, root)
        if with_series:
            result = {**_series_json(parent_series, parent_study.study_uid, root), **result}
        if with_study:
            result = {**_study_json(parent_study, root), **result}
        for w in (*upper, *([wanted] if wanted is not None else [])):
            _merge_stored(result, instance.metadata, w)
        return result

    return _answer(
        request,
        query,
        _page(qs, query),
        build,
        resource_type="instance",
        resource_id=series or study or "",
    )


def matchable_keywords() -> Iterable[str]:
    """The attributes QIDO-RS matches on (for the docs and tests)."""
    return sorted(a.keyword for a in MATCHABLE.values())

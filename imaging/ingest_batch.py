"""Index several prepared instances together: one transaction, one INSERT, counts once.

A STOW-RS request carries many instances, nearly always of one series. Indexed one by
one, each costs its own transaction, a look-up of its series, an INSERT, two count
UPDATEs and an audit INSERT. :func:`instances_index` indexes a batch (the parts of one
request, :data:`BATCH_SIZE` at a time) in one transaction: the first instance of each
series goes through :func:`imaging.ingest._index` (which finds or creates study and
series), the others are inserted together, the series and study counts are raised once
and the audit events are written together.

Nothing about the outcome changes. Anything unusual in the batch (a duplicate, a UID
conflict, a race with another sender) rolls the whole transaction back, and each
instance is then indexed on its own by :func:`imaging.ingest.instance_index`, exactly as
a lone sender's would be: duplicates, conflicts and their audit events come from there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from audit.services import audit_record_many
from imaging.ingest import (
    Conflict,
    IngestResult,
    IngestStatus,
    Origin,
    Prepared,
    _index,
    _other_patient_study,
    _same_resident,
    instance_index,
    new_instance,
    stored_event,
)
from imaging.models import Instance, Series, Study
from objectstore import get_store

BATCH_SIZE = 32  # instances per transaction: the study row stays locked this long at most

Outcome = IngestResult | Exception


def instances_index(batch: Sequence[Prepared], *, origin: Origin) -> list[Outcome]:
    """Index ``batch``; one outcome per instance, in order.

    An outcome is an :class:`IngestResult` (stored or duplicate) or the exception that
    kept the instance out of the index (:class:`Conflict`, audited, or another failure);
    the object of an instance not indexed is removed from the store.
    """
    if not batch:
        return []
    try:
        with transaction.atomic():
            return list[Outcome](_index_together(batch, origin))
    except (IntegrityError, Conflict):
        pass  # a duplicate, a conflict or a race: settled instance by instance below
    except BaseException:
        store = get_store()
        for item in batch:
            store.delete(item.key)
        raise
    return [_index_alone(item, origin) for item in batch]


def _index_alone(item: Prepared, origin: Origin) -> Outcome:
    try:
        return instance_index(item, origin=origin)
    except Exception as exc:  # the caller answers each instance's failure
        return exc


def _index_together(batch: Sequence[Prepared], origin: Origin) -> list[IngestResult]:
    known: dict[str, Series] = {}
    added: list[Instance] = []
    per_series: Counter[int] = Counter()
    results: list[IngestResult] = []
    for item in batch:
        valid = item.header
        series = known.get(valid.series_uid)
        if series is None or series.study.study_uid != valid.study_uid:
            # Found or created, counted and inserted as a lone instance would be.
            instance = _index(item, origin)
            known[valid.series_uid] = instance.series
        else:
            if not _same_resident(series.study, valid):
                raise _other_patient_study()
            instance = new_instance(item, origin, series)
            added.append(instance)
            per_series[series.pk] += 1
        results.append(IngestResult(IngestStatus.STORED, instance))
    Instance.objects.bulk_create(added)
    _count(known.values(), per_series)
    audit_record_many([stored_event(result.instance, origin) for result in results])
    return results


def _count(series_seen: Iterable[Series], per_series: Counter[int]) -> None:
    """Raise the series and study counts by the instances inserted together."""
    per_study: Counter[int] = Counter()
    for series in series_seen:
        added = per_series.get(series.pk, 0)
        if added:
            Series.objects.filter(pk=series.pk).update(num_instances=F("num_instances") + added)
            per_study[series.study_id] += added
    now = timezone.now()
    for study_pk, added in per_study.items():
        Study.objects.filter(pk=study_pk).update(
            num_instances=F("num_instances") + added, updated_at=now
        )

"""Querysets on a hot path, compiled to SQL once and run again with new values.

Building and compiling even a small Django query (filters across a join, ``LIMIT 1``)
costs more CPU than running it on an indexed column: on the 2-core machine about a
millisecond per DICOMweb frame request went to compiling the same two look-ups (the
instance of a granted study, the user of a remembered HTTP Basic login; py-spy,
docs/benchmarks.md). :class:`Precompiled` builds the queryset once with sentinel values,
keeps Django's own SQL and parameter order, and afterwards runs that SQL through
``Manager.raw()`` with the caller's values. The SQL never contains a caller's value.

If Django's parameters do not map one to one onto the sentinels (a lookup that
transforms its value, say), the queryset is simply built and run each time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from django.db import connections
from django.db.models import Model, QuerySet

M = TypeVar("M", bound=Model)


class Precompiled(Generic[M]):
    """``build(*values)`` returns the queryset; ``sentinels`` stand for values at compile time.

    Parameters
    ----------
    build
        Makes the queryset from its values (positional, in the order of ``sentinels``).
    sentinels
        Distinct values of the right types that callers never pass.
    """

    def __init__(self, build: Callable[..., QuerySet[M]], *sentinels: object) -> None:
        if len(set(sentinels)) != len(sentinels):
            raise ValueError("sentinels must be distinct")
        self._build = build
        self._sentinels = sentinels
        # Per database vendor: the model, the SQL ("" when unusable) and, for each of its
        # parameters, which value it takes.
        self._compiled: dict[str, tuple[type[M], str, tuple[int, ...]]] = {}

    def _compile(self, using: str) -> tuple[type[M], str, tuple[int, ...]]:
        queryset = self._build(*self._sentinels)
        sql, params = queryset.query.get_compiler(using=using).as_sql()
        try:
            positions = tuple(self._sentinels.index(param) for param in params)
        except ValueError:
            return queryset.model, "", ()
        return queryset.model, sql, positions

    def first(self, *values: object, using: str = "default") -> M | None:
        """The first row for ``values``, or ``None``."""
        vendor = connections[using].vendor
        compiled = self._compiled.get(vendor)
        if compiled is None:
            compiled = self._compiled[vendor] = self._compile(using)
        model, sql, positions = compiled
        if not sql:
            return next(iter(self._build(*values).using(using)), None)
        params: Sequence[Any] = [values[i] for i in positions]
        return next(iter(model._default_manager.using(using).raw(sql, params)), None)

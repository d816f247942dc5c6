"""Querysets compiled once and run again with new values (core.precompiled)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from core.precompiled import Precompiled

SENTINEL = -7_000_000_001


def _active(built: list[int]) -> Precompiled[User]:
    def build(pk: int) -> object:
        built.append(pk)
        return User.objects.filter(pk=pk, is_active=True).order_by()[:1]

    return Precompiled(build, SENTINEL)  # type: ignore[arg-type]


@pytest.mark.django_db
def test_it_finds_what_the_queryset_finds_and_compiles_once() -> None:
    alice = User.objects.create_user("alice-pre", password="x-long-password-1")
    built: list[int] = []
    lookup = _active(built)
    assert lookup.first(alice.pk) == alice
    assert lookup.first(alice.pk + 10_000) is None
    assert lookup.first(alice.pk) == alice
    assert built == [SENTINEL]  # built once, with the sentinel; never with a caller's value


@pytest.mark.django_db
def test_the_rows_are_read_afresh_every_time() -> None:
    bob = User.objects.create_user("bob-pre", password="x-long-password-1")
    lookup = _active([])
    assert lookup.first(bob.pk) == bob
    User.objects.filter(pk=bob.pk).update(is_active=False)
    assert lookup.first(bob.pk) is None


@pytest.mark.django_db
def test_the_sql_holds_no_caller_value() -> None:
    carol = User.objects.create_user("carol-pre", password="x-long-password-1")
    lookup = _active([])
    with CaptureQueriesContext(connection) as queries:
        lookup.first(carol.pk)
    assert len(queries) == 1
    assert "is_active" in queries[0]["sql"]


@pytest.mark.django_db
def test_a_value_django_transforms_falls_back_to_the_queryset() -> None:
    dave = User.objects.create_user("dave-pre", password="x-long-password-1")
    built: list[str] = []

    def build(name: str) -> object:
        built.append(name)
        return User.objects.filter(username__startswith=name)  # the parameter becomes "name%"

    lookup: Precompiled[User] = Precompiled(build, "\0sentinel")  # type: ignore[arg-type]
    assert lookup.first("dave-p") == dave
    assert lookup.first("dave-p") == dave
    assert built == ["\0sentinel", "dave-p", "dave-p"]  # compiled once, then built each time


def test_sentinels_must_be_distinct() -> None:
    with pytest.raises(ValueError, match="distinct"):
        Precompiled(lambda a, b: User.objects.none(), 1, 1)

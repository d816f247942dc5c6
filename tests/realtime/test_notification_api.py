"""The notification inbox over HTTP: only the user's own, typed input, documented."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from realtime.models import Notification
from realtime.services import notification_send

pytestmark = pytest.mark.django_db

LIST = "/api/notifications/"
READ = "/api/notifications/read/"


def send(user: Any, title: str = "会诊申请", *, read: bool = False) -> int:
    notification = notification_send(recipient=user, kind="consult.requested", title=title)
    if read:
        Notification.objects.filter(pk=notification.pk).update(read_at=timezone.now())
    return notification.pk


def ids(response: Any) -> list[int]:
    return [n["id"] for n in response.json()["results"]]


def test_user_lists_own_notifications_newest_first_with_unread_count(client, village):
    first, second = send(village), send(village, read=True)
    client.force_login(village)
    response = client.get(LIST)
    assert response.status_code == 200
    assert ids(response) == [second, first]
    assert response.json()["unread"] == 1
    assert response.json()["more"] is False
    assert response.json()["results"][1] == Notification.objects.get(pk=first).as_message()


def test_list_filters_by_after_and_unread(client, village):
    first, second, third = send(village), send(village, read=True), send(village)
    client.force_login(village)
    assert ids(client.get(LIST, {"after": first})) == [
        second,
        third,
    ]  # paging forward: oldest first
    assert ids(client.get(LIST, {"unread": "true"})) == [third, first]


def test_list_says_when_older_notifications_were_left_out(client, village):
    for _ in range(3):
        send(village)
    client.force_login(village)
    response = client.get(LIST, {"limit": 2})
    assert len(ids(response)) == 2
    assert response.json()["more"] is True


def test_list_never_shows_another_users_notifications(client, village, village2):
    send(village2, "南湾的会诊")
    client.force_login(village)
    assert client.get(LIST).json() == {"unread": 0, "more": False, "results": []}


def test_list_runs_a_fixed_number_of_queries(client, village, django_assert_max_num_queries):
    for _ in range(20):
        send(village)
    client.force_login(village)
    with django_assert_max_num_queries(4):
        assert len(ids(client.get(LIST))) == 20


def test_read_marks_own_notifications_and_ignores_other_users_ids(client, village, village2):
    mine, theirs = send(village), send(village2)
    client.force_login(village)
    response = client.post(READ, {"ids": [mine, theirs]}, content_type="application/json")
    assert response.status_code == 200
    assert response.json() == {"marked": 1, "unread": 0}
    assert Notification.objects.get(pk=mine).read_at is not None
    assert Notification.objects.get(pk=theirs).read_at is None


@pytest.mark.parametrize(
    "body",
    [{}, {"ids": []}, {"ids": ["one"]}, {"ids": [0]}, {"ids": list(range(1, 102))}, {"ids": 5}],
)
def test_bad_read_body_is_a_400_with_a_readable_message(client, village, body):
    client.force_login(village)
    response = client.post(READ, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"]
    assert response.json()["ids"]


def test_malformed_json_is_a_400(client, village):
    client.force_login(village)
    response = client.post(READ, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"]


@pytest.mark.parametrize(
    "query", [{"after": "x"}, {"after": -1}, {"limit": 0}, {"unread": "maybe"}]
)
def test_bad_list_query_is_a_400_naming_the_parameter(client, village, query):
    client.force_login(village)
    response = client.get(LIST, query)
    assert response.status_code == 400
    assert set(query) <= set(response.json())


def test_anonymous_gets_no_inbox(client):
    assert client.get(LIST).status_code in {401, 403}
    assert client.post(READ, {"ids": [1]}, content_type="application/json").status_code in {
        401,
        403,
    }


def test_machine_client_reads_its_inbox_with_a_bearer_token(client, village):
    mine = send(village)
    token = Token.objects.create(user=village)
    response = client.get(LIST, headers={"authorization": f"Bearer {token.key}"})
    assert response.status_code == 200
    assert ids(response) == [mine]


def test_openapi_schema_documents_the_inbox_in_the_socket_shape(client, village):
    client.force_login(village)
    schema = client.get("/api/schema/", {"format": "json"}).json()
    assert {"get"} <= set(schema["paths"][LIST])
    assert {"post"} <= set(schema["paths"][READ])
    documented = set(schema["components"]["schemas"]["Notification"]["properties"])
    assert documented == set(Notification.objects.get(pk=send(village)).as_message())

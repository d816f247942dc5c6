"""Who may call DICOMweb (session, Basic, bearer token), CSRF on writes, CORS for OHIF."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from audit.models import AuditEvent, Outcome
from tests.imaging.dicomweb_support import basic, ingest_file, instance_path

pytest_plugins = ["tests.imaging.dicomweb_fixtures"]

VIEWER = "https://viewer.example.cn"

pytestmark = pytest.mark.django_db


def test_anonymous_is_a_401_with_a_basic_challenge_and_is_audited(client):
    response = client.get("/dicomweb/studies")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Basic realm="telemed DICOMweb"'
    assert response.json()["detail"]
    event = AuditEvent.objects.filter(action="dicomweb.auth").order_by("-id").first()
    assert event is not None
    assert event.outcome == Outcome.DENIED
    assert event.resource_id == "/dicomweb/studies"


def test_a_wrong_basic_password_is_a_401_and_an_audited_failed_login(client):
    response = client.get("/dicomweb/studies", HTTP_AUTHORIZATION=basic("township", "wrong"))
    assert response.status_code == 401
    assert AuditEvent.objects.filter(
        action="auth.login", outcome=Outcome.FAILED, actor_username="township"
    ).exists()


def test_a_changed_password_ends_a_remembered_basic_login(client, actors):
    assert client.get("/dicomweb/studies", HTTP_AUTHORIZATION=basic("township")).status_code == 200
    user = actors.township
    user.set_password("a-new-password-1")
    user.save()
    response = client.get("/dicomweb/studies", HTTP_AUTHORIZATION=basic("township"))
    assert response.status_code == 401


def test_a_bearer_token_authenticates(client, actors):
    token = Token.objects.create(user=actors.township)
    response = client.get("/dicomweb/studies", HTTP_AUTHORIZATION=f"Bearer {token.key}")
    assert response.status_code == 200


def test_an_unknown_bearer_token_is_a_401_and_audited(client):
    response = client.get("/dicomweb/studies", HTTP_AUTHORIZATION="Bearer not-a-token")
    assert response.status_code == 401
    assert AuditEvent.objects.filter(action="dicomweb.auth", outcome=Outcome.FAILED).exists()


def test_an_unknown_scheme_or_garbage_is_a_401(client):
    for header in ("Digest abc", "Basic !!!not-base64", "Basic " + "dXNlcg=="):
        assert client.get("/dicomweb/studies", HTTP_AUTHORIZATION=header).status_code == 401


def test_a_present_authorization_header_wins_over_the_session(client, actors):
    client.force_login(actors.township)
    response = client.get("/dicomweb/studies", HTTP_AUTHORIZATION=basic("township", "wrong"))
    assert response.status_code == 401


def test_a_session_write_without_csrf_token_is_refused(actors):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(actors.township)
    response = browser.post("/dicomweb/studies", b"", content_type="multipart/related")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_a_basic_authenticated_write_needs_no_csrf_token_and_reaches_stow(actors):
    machine = Client(enforce_csrf_checks=True)
    response = machine.post(
        "/dicomweb/studies",
        b"",
        content_type="multipart/related; type=application/dicom; boundary=x",
        HTTP_AUTHORIZATION=basic("township"),
    )
    assert response.status_code not in (401, 403, 405)


def test_search_endpoints_refuse_writes(client, actors):
    client.force_login(actors.township)
    response = client.post("/dicomweb/series")
    assert response.status_code == 405
    assert "GET" in response["Allow"]


@pytest.fixture
def viewer_origin(settings):
    settings.DICOMWEB_CORS_ORIGINS = [VIEWER]


def test_a_preflight_from_the_viewer_is_answered(client, viewer_origin):
    response = client.options(
        "/dicomweb/studies",
        HTTP_ORIGIN=VIEWER,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, accept",
    )
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == VIEWER
    assert response["Access-Control-Allow-Credentials"] == "true"
    allowed = response["Access-Control-Allow-Headers"]
    assert {"Authorization", "Accept", "Content-Type"} <= {h.strip() for h in allowed.split(",")}
    assert "GET" in response["Access-Control-Allow-Methods"]


def test_answers_to_the_viewer_carry_cors_headers(
    client, actors, viewer_origin, ct_series, samples
):
    client.force_login(actors.township)
    response = client.get(f"{instance_path(samples['CT_small.dcm'])}/rendered", HTTP_ORIGIN=VIEWER)
    assert response["Access-Control-Allow-Origin"] == VIEWER
    assert "Content-Type" in response["Access-Control-Expose-Headers"]
    assert response["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert "Origin" in response["Vary"]


def test_even_a_401_tells_the_viewer_why(client, viewer_origin):
    response = client.get("/dicomweb/studies", HTTP_ORIGIN=VIEWER)
    assert response.status_code == 401
    assert response["Access-Control-Allow-Origin"] == VIEWER


def test_another_origin_gets_no_cors_headers(client, viewer_origin):
    response = client.options(
        "/dicomweb/studies",
        HTTP_ORIGIN="https://evil.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
    )
    assert "Access-Control-Allow-Origin" not in response


def test_a_wildcard_origin_never_allows_credentials(client, settings):
    settings.DICOMWEB_CORS_ORIGINS = ["*"]
    response = client.options(
        "/dicomweb/studies",
        HTTP_ORIGIN="https://any.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
    )
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response


def test_the_full_ingest_path_feeds_dicomweb(client, actors, samples):
    """The fixtures index pre-validated files; here the real ``instance_ingest`` runs once."""
    instance = ingest_file(samples["MR_small.dcm"].path, user=actors.township)
    client.force_login(actors.township)
    response = client.get("/dicomweb/studies", {"StudyInstanceUID": samples["MR_small.dcm"].study})
    assert response.json()[0]["00201208"]["Value"] == [1]
    assert instance.sop_uid == samples["MR_small.dcm"].sop

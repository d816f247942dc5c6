"""The consult room page and the pre-call check, mounted under /consults/.

Thin like the other page views. The room page only draws the shell: everything live
(presence, chat, media signaling, viewport sync) runs over the room socket
(``/ws/consults/<id>/``, docs/protocols.md) from frontend/static/consult/room.js. Who may
open it is :func:`consult.access.room_role` (requester or accepted expert of a consult whose
room is open), the same check the socket runs on every message; a refusal is audited.

The pre-call check publishes a short test stream to the media service in a room of its
own (``precall-<user id>``), so a doctor can see camera, microphone, TURN and bandwidth
before joining; nothing there touches patient data.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from asgiref.sync import async_to_sync
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.views import acting_user, session_required
from association.selectors import primary_membership
from audit.models import Outcome
from audit.services import audit_record
from consult import media_client
from consult.access import RoomRole, room_role
from consult.ice import ice_servers_for
from consult.models import Attachment, AttachmentKind, Consult
from core.views import error_page
from imaging.viewer_context import viewer_assets, viewer_options

DEFAULT_VIDEO_MAX_KBPS = 400
MAX_OFFER_BYTES = 64 * 1024


def _first_url(*candidates: tuple[str, list[Any]]) -> str:
    """The first of ``(url name, args)`` that resolves (pages of other parts may be absent)."""
    for name, args in candidates:
        try:
            return reverse(name, args=args)
        except NoReverseMatch:
            continue
    return reverse("core:home")


def _video_max_kbps(request: HttpRequest) -> int:
    membership = primary_membership(request.user)
    if membership is None:
        return DEFAULT_VIDEO_MAX_KBPS
    return int(membership.institution.video_max_kbps or DEFAULT_VIDEO_MAX_KBPS)


# --- Texts the scripts show (in the user's language) ------------------------------------------


def room_labels() -> dict[str, str]:
    """What room.js writes on the page, translated."""
    return {
        "you": _("You"),
        "requester": _("Requesting doctor"),
        "expert": _("Expert"),
        "online": _("online"),
        "offline": _("offline"),
        "waiting": _("waiting to be admitted"),
        "admit": _("Admit"),
        "admitted": _("{name} was admitted."),
        "joined": _("{name} joined."),
        "left": _("{name} left."),
        "audioOnly": _("audio only"),
        "muted": _("muted"),
        "connecting": _("Connecting…"),
        "reconnecting": _("Connection lost. Reconnecting…"),
        "connected": _("Connected"),
        "mediaReconnecting": _("The video link dropped. Reconnecting…"),
        "autoAudioOnly": _(
            "The connection is too weak for video: switched to audio only. "
            "Turn video back on when the link is better."
        ),
        "noCamera": _(
            "No camera or microphone could be opened. Check the browser's permission "
            "and that no other program uses them."
        ),
        "closed": _("This consult room is closed."),
        "mute": _("Mute"),
        "unmute": _("Unmute"),
        "cameraOff": _("Camera off"),
        "cameraOn": _("Camera on"),
        "audioOnlyOn": _("Audio only"),
        "audioOnlyOff": _("Video back on"),
        "send": _("Send"),
        "uploading": _("Uploading {name}…"),
        "uploadFailed": _("The file could not be shared: {reason}"),
        "fileTooLarge": _("The file is too large."),
        "noVideo": _("No video"),
        "openStudy": _("Open"),
        "syncing": _("The viewer follows the other side."),
        "error": _("Error"),
    }


def precall_labels() -> dict[str, str]:
    """What precall.js writes on the page, translated."""
    return {
        "running": _("Testing…"),
        "pass": _("OK"),
        "fail": _("Problem"),
        "info": _("Note"),
        "cameraOk": _("Camera works ({width}×{height})."),
        "cameraFail": _(
            "No camera picture. Check that a camera is connected, that this site may use "
            "it, and that no other program has it open."
        ),
        "micOk": _("Microphone picks up sound."),
        "micSilent": _(
            "The microphone is open but heard nothing. Say a few words, or check it is not muted."
        ),
        "micFail": _("No microphone could be opened."),
        "turnNone": _(
            "No TURN relay is configured on this platform: calls work only where this "
            "computer can reach the media service directly."
        ),
        "turnOk": _("The TURN relay answers ({protocol})."),
        "turnFail": _(
            "The TURN relay could not be reached. A firewall may block it; ask your IT "
            "contact to allow it."
        ),
        "mediaOk": _("Connected to the media service."),
        "mediaFail": _(
            "Could not connect to the media service. Video consults will not work from "
            "this computer now."
        ),
        "bandwidthOk": _("Sending about {kbps} kbit/s: enough for video."),
        "bandwidthLow": _(
            "Sending only about {kbps} kbit/s: the consult will probably switch to audio only."
        ),
        "bandwidthFail": _("Nothing could be sent to the media service."),
        "allOk": _("Everything works. You can join the consult."),
        "someFail": _("Some checks failed: see the lines above."),
    }


# --- The room --------------------------------------------------------------------------------


def _study_panel(consult: Consult) -> list[dict[str, Any]]:
    """The imaging studies attached to the consult, with the viewer's mount options."""
    attachments = (
        Attachment.objects.filter(consult=consult, kind=AttachmentKind.STUDY, study__isnull=False)
        .select_related("study")
        .order_by("created_at", "pk")
    )
    panel = []
    for attachment in attachments:
        study = attachment.study
        options = viewer_options(study=study, priors=[], read_only=True)
        if study is None or options is None:
            continue
        panel.append(
            {
                "id": attachment.pk,
                "title": attachment.title or study.study_description or study.study_uid,
                "studyUid": study.study_uid,
                "options": options,
            }
        )
    return panel


@session_required
@require_GET
def room(request: HttpRequest, pk: int) -> HttpResponse:
    actor = acting_user(request)
    role = room_role(user_id=actor.pk, consult_id=pk)
    consult = (
        Consult.objects.filter(pk=pk)
        .select_related("patient", "requesting_institution", "requested_by")
        .first()
    )
    if role is None or consult is None:
        audit_record(
            actor=actor,
            action="consult.room.open",
            outcome=Outcome.DENIED,
            resource_type="consult",
            resource_id=pk,
            patient_id=consult.patient_id if consult is not None else None,
            reason="not a participant, or the room is not open",
        )
        return error_page(
            request,
            status=403,
            message=_(
                "You can enter this consult room only as its requesting doctor or as an "
                "expert who accepted it, while the consult is open."
            ),
        )
    audit_record(
        actor=actor,
        action="consult.room.open",
        outcome=Outcome.ALLOWED,
        resource_type="consult",
        resource_id=pk,
        patient_id=consult.patient_id,
        detail={"role": str(role)},
    )
    studies = _study_panel(consult)
    config = {
        "consultId": consult.pk,
        "number": consult.number,
        "wsPath": f"/ws/consults/{consult.pk}/",
        "me": {"userId": actor.pk, "role": str(role), "name": actor.get_full_name() or str(actor)},
        "isExpert": role == RoomRole.EXPERT,
        "urls": {
            "file": _first_url(("consult:room-file", [consult.pk])),
            "leave": _first_url(("consult:detail", [consult.pk]), ("consult:list", [])),
            "opinion": _first_url(
                ("consult:opinion", [consult.pk]), ("consult:detail", [consult.pk])
            ),
            "precall": reverse("consult:precall"),
        },
        "studies": studies,
        "labels": room_labels(),
    }
    context = {
        "consult": consult,
        "role": str(role),
        "is_expert": role == RoomRole.EXPERT,
        "room_config": config,
        "studies": studies,
        "viewer": viewer_assets() if studies else None,
    }
    return render(request, "consult/room.html", context)


# --- The pre-call check ---------------------------------------------------------------------


@session_required
@require_GET
def precall(request: HttpRequest) -> HttpResponse:
    config = {
        "urls": {
            "ice": reverse("consult:precall-ice"),
            "offer": reverse("consult:precall-offer"),
            "leave": reverse("consult:precall-leave"),
        },
        "labels": precall_labels(),
    }
    back = request.GET.get("next", "")
    if not back.startswith("/") or not url_has_allowed_host_and_scheme(back, allowed_hosts=None):
        back = ""
    return render(request, "consult/precall.html", {"precall_config": config, "back": back})


@session_required
@require_GET
def precall_ice(request: HttpRequest) -> JsonResponse:
    """The ICE servers this browser would get in a room (an empty list: no TURN here)."""
    servers = ice_servers_for(acting_user(request).pk)
    return JsonResponse(
        {
            "ice_servers": servers,
            "turn_configured": bool(servers),
            "video_max_kbps": _video_max_kbps(request),
        }
    )


def _json_error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": code, "message": message}, status=status)


def _offer_sdp(request: HttpRequest) -> str | None:
    """The SDP of a posted ``{"type": "offer", "sdp": ...}``, or None when malformed."""
    if len(request.body) > MAX_OFFER_BYTES:
        return None
    try:
        payload = json.loads(request.body)
    except ValueError:
        return None
    if not isinstance(payload, dict) or payload.get("type") != "offer":
        return None
    sdp = payload.get("sdp")
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        return None
    return sdp


@session_required
@require_POST
def precall_offer(request: HttpRequest) -> JsonResponse:
    """Publish a test stream to the media service; answers with the media service's SDP."""
    sdp = _offer_sdp(request)
    if sdp is None:
        return _json_error(
            400, "invalid_offer", _("The browser sent an offer this check cannot read.")
        )
    user_id = acting_user(request).pk
    try:
        answer = async_to_sync(media_client.precall_publish)(user_id=user_id, sdp=sdp)
    except media_client.MediaError as exc:
        if exc.status == 415:
            message = _("This browser offers no video or audio format the media service forwards.")
            return _json_error(415, exc.code, message)
        if 400 <= exc.status < 500:
            return _json_error(400, exc.code, _("The media service refused the test call."))
        return _json_error(502, exc.code, _("The media service is not answering."))
    return JsonResponse({"type": "answer", "sdp": answer})


@session_required
@require_POST
def precall_leave(request: HttpRequest) -> HttpResponse:
    """End the test stream (also when the page is closed: sent with ``sendBeacon``)."""
    # Already gone, or the service is down: nothing is left to end either way.
    with contextlib.suppress(media_client.MediaError):
        async_to_sync(media_client.precall_leave)(user_id=acting_user(request).pk)
    return HttpResponse(status=204)

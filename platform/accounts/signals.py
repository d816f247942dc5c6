"""Audit every login, logout and failed login; tell open sockets when a standing changes."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_save
from django.dispatch import receiver

from accounts.models import User
from audit.models import Outcome
from audit.services import audit_record
from realtime.services import standing_changed


@receiver(user_logged_in)
def _logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    audit_record(actor=user, action="auth.login", outcome=Outcome.ALLOWED, resource_type="session")


@receiver(user_logged_out)
def _logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        audit_record(
            actor=user, action="auth.logout", outcome=Outcome.ALLOWED, resource_type="session"
        )
        standing_changed(user.pk)


@receiver(post_save, sender=User)
def _user_saved(sender: Any, instance: User, created: bool, **kwargs: Any) -> None:
    """A password change or deactivation ends the user's open sockets at once."""
    fields = kwargs.get("update_fields")
    if not created and (fields is None or {"password", "is_active"} & set(fields)):
        standing_changed(instance.pk)


@receiver(user_login_failed)
def _login_failed(
    sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
) -> None:
    audit_record(
        actor=None,
        username=str(credentials.get("username", ""))[:150],
        action="auth.login",
        outcome=Outcome.FAILED,
        resource_type="session",
        reason="wrong username or password",
    )

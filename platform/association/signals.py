"""Keep association admins' admin rights in step with their memberships."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from association.admin_scope import sync_admin_rights
from association.models import Membership, Role


@receiver(post_save, sender=Membership)
@receiver(post_delete, sender=Membership)
def _membership_changed(sender: Any, instance: Membership, **kwargs: Any) -> None:
    if instance.role == Role.ASSOCIATION_ADMIN:
        sync_admin_rights(instance.user)

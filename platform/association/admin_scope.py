"""Association admins manage their own association in the admin, and nothing else.

Superusers see everything. A person with an active ``association_admin`` membership is
staff and in the ``association-admins`` group (given model permissions on the
association's structure and its people); every admin list, form choice and
autocomplete is narrowed to the associations they administer.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest

from association.selectors import actor_scope

GROUP_NAME = "association-admins"

# (app_label, model, actions) an association admin may use in the admin.
GROUP_PERMISSIONS: list[tuple[str, str, tuple[str, ...]]] = [
    ("association", "association", ("view", "change")),
    ("association", "institution", ("view", "add", "change")),
    ("association", "department", ("view", "add", "change", "delete")),
    ("association", "specialty", ("view", "add", "change")),
    ("association", "diagnosticcentre", ("view", "add", "change")),
    ("association", "membership", ("view", "add", "change")),
    ("accounts", "user", ("view", "add", "change")),
    ("imaging", "aetitle", ("view", "add", "change")),
    ("lab", "labtest", ("view", "add", "change")),
    ("lab", "referencerange", ("view", "add", "change", "delete")),
    ("lab", "panel", ("view", "add", "change")),
    ("lab", "labpolicy", ("view", "add", "change")),
]


def association_admin_group() -> Group:
    """The group, with exactly the permissions above (created or brought up to date)."""
    group, _created = Group.objects.get_or_create(name=GROUP_NAME)
    wanted = Q()
    for app_label, model, actions in GROUP_PERMISSIONS:
        for action in actions:
            wanted |= Q(content_type__app_label=app_label, codename=f"{action}_{model}")
    group.permissions.set(Permission.objects.filter(wanted))
    return group


def sync_admin_rights(user: Any) -> None:
    """Staff and in the group while the user holds an active association-admin membership."""
    from association.models import Membership, Role

    is_admin = Membership.objects.filter(
        user=user, role=Role.ASSOCIATION_ADMIN, active=True
    ).exists()
    group = association_admin_group()
    if is_admin:
        group.user_set.add(user)
        if not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
    else:
        group.user_set.remove(user)


def administered_association_ids(request: HttpRequest) -> frozenset[int] | None:
    """``None`` for a superuser (no narrowing), else the associations the user administers."""
    if request.user.is_superuser:
        return None
    return actor_scope(request.user).admin_association_ids


class AssociationScopedAdmin(admin.ModelAdmin):
    """Narrow lists and choices to the administered associations.

    ``association_path`` is the lookup from the model to its association id, e.g.
    ``"association_id"`` or ``"institution__association_id"``.
    """

    association_path: str = "association_id"
    # Foreign keys whose choices are narrowed, with the lookup from that model.
    scoped_choices: dict[str, str] = {}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        qs = super().get_queryset(request)
        ids = administered_association_ids(request)
        if ids is None:
            return qs
        return qs.filter(**{f"{self.association_path}__in": ids}).distinct()

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        ids = administered_association_ids(request)
        lookup = self.scoped_choices.get(db_field.name)
        if ids is not None and lookup is not None:
            related: type[Model] = db_field.remote_field.model
            kwargs["queryset"] = related._default_manager.filter(**{f"{lookup}__in": ids})
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

"""The medical association (医联体): its institutions, centres, departments and people."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class AssociationKind(models.TextChoices):
    URBAN_GROUP = "urban_group", _("Urban medical group")
    COUNTY_COMMUNITY = "county_community", _("County medical community")
    SPECIALIST_ALLIANCE = "specialist_alliance", _("Cross-regional specialist alliance")
    TELEMEDICINE_NETWORK = "telemedicine_network", _("Telemedicine collaboration network")


class InstitutionLevel(models.TextChoices):
    VILLAGE_CLINIC = "village_clinic", _("Village clinic")
    TOWNSHIP_CENTRE = "township_centre", _("Township health centre")
    COMMUNITY_CENTRE = "community_centre", _("Community health centre")
    COMMUNITY_STATION = "community_station", _("Community health station")
    COUNTY_HOSPITAL = "county_hospital", _("County hospital")
    SECONDARY_HOSPITAL = "secondary_hospital", _("Secondary hospital")
    TERTIARY_HOSPITAL = "tertiary_hospital", _("Tertiary hospital")


GRASSROOTS_LEVELS = {
    InstitutionLevel.VILLAGE_CLINIC,
    InstitutionLevel.TOWNSHIP_CENTRE,
    InstitutionLevel.COMMUNITY_CENTRE,
    InstitutionLevel.COMMUNITY_STATION,
}


class CentreKind(models.TextChoices):
    IMAGING = "imaging", _("Imaging centre")
    LAB = "lab", _("Laboratory centre")
    ECG = "ecg", _("ECG centre")
    PATHOLOGY = "pathology", _("Pathology centre")


class Role(models.TextChoices):
    GRASSROOTS_DOCTOR = "grassroots_doctor", _("Grassroots doctor")
    SPECIALIST = "specialist", _("Specialist")
    RADIOLOGIST = "radiologist", _("Radiologist")
    LAB_TECHNICIAN = "lab_technician", _("Lab technician")
    COORDINATOR = "coordinator", _("Coordinator")
    TRAINER = "trainer", _("Trainer")
    ASSOCIATION_ADMIN = "association_admin", _("Association admin")
    AUDITOR = "auditor", _("Auditor")


# Roles whose holders treat patients and so may read records shared with them.
CLINICAL_ROLES = frozenset(
    {
        Role.GRASSROOTS_DOCTOR,
        Role.SPECIALIST,
        Role.RADIOLOGIST,
        Role.LAB_TECHNICIAN,
        Role.COORDINATOR,
    }
)


class Association(models.Model):
    name = models.CharField(_("name"), max_length=200, unique=True)
    code = models.SlugField(_("code"), max_length=40, unique=True)
    kind = models.CharField(_("kind"), max_length=30, choices=AssociationKind.choices)
    lead_institution = models.ForeignKey(
        "Institution",
        verbose_name=_("lead hospital"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="led_associations",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    consult_prereview = models.BooleanField(
        _("consults are pre-reviewed by a coordinator"),
        default=True,
        help_text=_("When off, consult requests go straight to the experts."),
    )

    class Meta:
        verbose_name = _("medical association")
        verbose_name_plural = _("medical associations")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Institution(models.Model):
    name = models.CharField(_("name"), max_length=200)
    code = models.SlugField(_("code"), max_length=40, unique=True)
    level = models.CharField(_("level"), max_length=30, choices=InstitutionLevel.choices)
    association = models.ForeignKey(
        Association,
        verbose_name=_("association"),
        on_delete=models.PROTECT,
        related_name="institutions",
    )
    parent = models.ForeignKey(
        "self",
        verbose_name=_("supervising institution"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="children",
        help_text=_(
            "The township centre over a village clinic, the county hospital over a centre."
        ),
    )
    address = models.CharField(_("address"), max_length=300, blank=True)
    phone = models.CharField(_("phone"), max_length=30, blank=True)
    active = models.BooleanField(_("active"), default=True)
    video_max_kbps = models.PositiveIntegerField(
        _("video send limit (kbit/s)"),
        default=400,
        help_text=_(
            "What a browser here sends at most in a video consult (360p needs 300 to 500)."
        ),
    )

    class Meta:
        verbose_name = _("institution")
        verbose_name_plural = _("institutions")
        ordering = ["association", "level", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_grassroots(self) -> bool:
        return self.level in GRASSROOTS_LEVELS


class Specialty(models.Model):
    code = models.SlugField(_("code"), max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=100)

    class Meta:
        verbose_name = _("specialty")
        verbose_name_plural = _("specialties")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Department(models.Model):
    institution = models.ForeignKey(
        Institution,
        verbose_name=_("institution"),
        on_delete=models.CASCADE,
        related_name="departments",
    )
    name = models.CharField(_("name"), max_length=100)
    specialty = models.ForeignKey(
        Specialty,
        verbose_name=_("specialty"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="departments",
    )

    class Meta:
        verbose_name = _("department")
        verbose_name_plural = _("departments")
        ordering = ["institution", "name"]
        constraints = [
            models.UniqueConstraint(fields=["institution", "name"], name="department_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.institution} · {self.name}"


class DiagnosticCentre(models.Model):
    """A shared imaging, lab, ECG or pathology centre hosted by one institution."""

    name = models.CharField(_("name"), max_length=200)
    code = models.SlugField(_("code"), max_length=40, unique=True)
    kind = models.CharField(_("kind"), max_length=20, choices=CentreKind.choices)
    host = models.ForeignKey(
        Institution,
        verbose_name=_("host institution"),
        on_delete=models.PROTECT,
        related_name="hosted_centres",
    )
    association = models.ForeignKey(
        Association,
        verbose_name=_("association served"),
        on_delete=models.PROTECT,
        related_name="centres",
    )

    class Meta:
        verbose_name = _("diagnostic centre")
        verbose_name_plural = _("diagnostic centres")
        ordering = ["association", "kind", "name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A person's role at an institution, optionally within a department or centre.

    A membership with a centre is scoped to that centre: its holder sees what was sent
    to the centre, not the host institution's own residents.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="memberships",
    )
    institution = models.ForeignKey(
        Institution,
        verbose_name=_("institution"),
        on_delete=models.PROTECT,
        related_name="memberships",
    )
    department = models.ForeignKey(
        Department,
        verbose_name=_("department"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="memberships",
    )
    centre = models.ForeignKey(
        DiagnosticCentre,
        verbose_name=_("diagnostic centre"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="memberships",
    )
    role = models.CharField(_("role"), max_length=30, choices=Role.choices)
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        ordering = ["user", "institution"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "institution", "role"], name="membership_unique_role"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.get_role_display()} · {self.institution}"

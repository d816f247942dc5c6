"""Report templates per modality: a name and the normal findings and impression to start from.

The texts are English source strings translated by the catalogue, so a radiologist
reading in Chinese starts from the usual Chinese phrasing (given to translators below).
A template only fills the form; the signed report stores the text as written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from imaging.models import Modality


@dataclass(frozen=True)
class ReportTemplate:
    key: str
    modalities: tuple[str, ...]
    name: Promise
    findings: Promise | str
    impression: Promise | str

    def as_json(self) -> dict[str, object]:
        """The template in the active language, for the reading page's picker."""
        return {
            "key": self.key,
            "modalities": list(self.modalities),
            "name": str(self.name),
            "findings": str(self.findings),
            "impression": str(self.impression),
        }


_ALL: tuple[ReportTemplate, ...] = (
    ReportTemplate(
        key="chest-xray",
        modalities=(Modality.CR, Modality.DX),
        name=_("Chest X-ray (PA)"),
        # Translators: 胸廓对称，气管居中。双肺纹理清晰，走行自然，双肺野未见明确实质性病变。
        # 双肺门不大。心影大小、形态未见异常。双侧膈面光整，肋膈角锐利。
        findings=_(
            "The thorax is symmetrical and the trachea is central. Lung markings are clear"
            " with a normal course; no focal consolidation or mass is seen in either lung"
            " field. Both hila are not enlarged. The cardiac silhouette is normal in size and"
            " shape. Both hemidiaphragms are smooth and the costophrenic angles are sharp."
        ),
        # Translators: 心、肺、膈未见明显异常。
        impression=_("No abnormality of the heart, lungs or diaphragm."),
    ),
    ReportTemplate(
        key="ct-head",
        modalities=(Modality.CT,),
        name=_("CT head (non-contrast)"),
        # Translators: 脑实质内未见异常密度影。脑室系统大小、形态正常，脑沟、脑池未见增宽，
        # 中线结构居中。颅骨骨质未见异常。
        findings=_(
            "No abnormal density is seen in the brain parenchyma. The ventricular system is"
            " normal in size and shape; the sulci and cisterns are not widened; the midline"
            " structures are central. No abnormality of the skull."
        ),
        # Translators: 颅脑CT平扫未见明显异常。
        impression=_("Unremarkable non-contrast CT of the head."),
    ),
    ReportTemplate(
        key="ct-chest",
        modalities=(Modality.CT,),
        name=_("CT chest"),
        # Translators: 胸廓对称。双肺纹理清晰，肺野内未见明确结节、肿块及实变影。气管及主要
        # 支气管通畅。纵隔内未见肿大淋巴结。心脏大小正常，未见心包积液。双侧胸腔未见积液。
        findings=_(
            "The thorax is symmetrical. Lung markings are clear; no nodule, mass or"
            " consolidation is seen in either lung. The trachea and main bronchi are patent."
            " No enlarged mediastinal lymph nodes. The heart is normal in size, with no"
            " pericardial effusion. No pleural effusion on either side."
        ),
        # Translators: 胸部CT平扫未见明显异常。
        impression=_("Unremarkable CT of the chest."),
    ),
    ReportTemplate(
        key="ct-abdomen",
        modalities=(Modality.CT,),
        name=_("CT abdomen"),
        # Translators: 肝脏大小、形态正常，实质密度均匀，未见异常密度灶。胆囊不大，壁不厚。
        # 胰腺、脾脏及双肾形态、密度未见异常。腹膜后未见肿大淋巴结。腹腔内未见积液。
        findings=_(
            "The liver is normal in size and shape with homogeneous density and no focal"
            " lesion. The gallbladder is not distended and its wall is not thickened. The"
            " pancreas, spleen and both kidneys are normal in shape and density. No enlarged"
            " retroperitoneal lymph nodes. No free fluid in the abdomen."
        ),
        # Translators: 上腹部CT平扫未见明显异常。
        impression=_("Unremarkable CT of the abdomen."),
    ),
    ReportTemplate(
        key="us-abdomen",
        modalities=(Modality.US,),
        name=_("Ultrasound abdomen"),
        # Translators: 肝脏大小、形态正常，包膜光整，实质回声均匀，肝内管道结构清晰。胆囊大小
        # 正常，壁光滑，腔内未见异常回声。胰腺显示部分未见异常。脾脏大小正常，回声均匀。双肾
        # 大小、形态正常，集合系统未见分离。
        findings=_(
            "The liver is normal in size and shape with a smooth capsule, homogeneous"
            " echotexture and clearly shown intrahepatic vessels and ducts. The gallbladder is"
            " normal in size with a smooth wall and no abnormal echo in the lumen. The visible"
            " part of the pancreas is normal. The spleen is normal in size with homogeneous"
            " echotexture. Both kidneys are normal in size and shape, with no separation of"
            " the collecting systems."
        ),
        # Translators: 肝、胆、胰、脾、双肾声像图未见明显异常。
        impression=_(
            "Unremarkable ultrasound of the liver, gallbladder, pancreas, spleen and kidneys."
        ),
    ),
    ReportTemplate(
        key="mr-brain",
        modalities=(Modality.MR,),
        name=_("MRI brain"),
        # Translators: 脑实质内未见异常信号影。脑室系统大小、形态正常，脑沟、脑池未见增宽，
        # 中线结构居中。DWI未见弥散受限。
        findings=_(
            "No abnormal signal is seen in the brain parenchyma. The ventricular system is"
            " normal in size and shape; the sulci and cisterns are not widened; the midline"
            " structures are central. No restricted diffusion on DWI."
        ),
        # Translators: 颅脑MRI平扫未见明显异常。
        impression=_("Unremarkable non-contrast MRI of the brain."),
    ),
    ReportTemplate(
        key="free",
        modalities=(),
        name=_("Free text"),
        # Not _(""): gettext of the empty string is the catalogue's header.
        findings="",
        impression="",
    ),
)

TEMPLATES: dict[str, ReportTemplate] = {t.key: t for t in _ALL}


def templates_for_modality(modality: str) -> list[ReportTemplate]:
    """The templates of ``modality`` first, then the others (free text last)."""
    own = [t for t in _ALL if modality in t.modalities]
    others = [t for t in _ALL if t not in own and t.modalities]
    return [*own, *others, TEMPLATES["free"]]


def template_choices(modality: str = "") -> list[tuple[str, str]]:
    """Choices for a form field: ("", "—") and every template, the modality's first."""
    return [("", "—"), *((t.key, str(t.name)) for t in templates_for_modality(modality))]


# How long a mutually recognised result stays valid unless the radiologist says otherwise.
# Associations publish their own lists (结果互认 items and periods); this is the form's default.
DEFAULT_RECOGNITION_DAYS = 30


def default_valid_until(today: dt.date) -> dt.date:
    return today + dt.timedelta(days=DEFAULT_RECOGNITION_DAYS)

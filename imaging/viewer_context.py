"""What the DICOM viewer gets on a page: its bundle's URLs and ``TelemedViewer.mount`` options.

The bundle (frontend/viewer/, built into frontend/static/viewer/) is built separately;
without it a page says so and still works. The options, as frontend/viewer/src/viewer.js
reads them: the study, priors for compare mode, labels in the active language, read-only,
and the measurements and key images saved with a report.
"""

from __future__ import annotations

from typing import Any

from django.templatetags.static import static
from django.utils.translation import gettext as _

from imaging.models import Study


def viewer_assets() -> dict[str, str] | None:
    """URLs of the viewer bundle, or ``None`` when it is not built (the page says so)."""
    try:
        return {"js": static("viewer/viewer.js"), "css": static("viewer/viewer.css")}
    except ValueError:  # manifest storage without the bundle
        return None


def viewer_labels() -> dict[str, str]:
    """The viewer's texts in the active language (keys of frontend/viewer/src/labels.js)."""
    return {
        "viewer": _("DICOM viewer"),
        "loading": _("Loading…"),
        "loadingEngine": _("Loading viewer…"),
        "loadingImages": _("Loading images {loaded}/{total}"),
        "noSeries": _("This study has no images."),
        "loadFailed": _("Could not load the study."),
        "imageFailed": _("Could not load or decode this image."),
        "series": _("Series"),
        "images": _("{n} images"),
        "studyCurrent": _("Current study"),
        "studyPrior": _("Prior study"),
        "tools": _("Tools"),
        "windowLevel": _("Window/level"),
        "zoom": _("Zoom"),
        "pan": _("Pan"),
        "scroll": _("Scroll"),
        "length": _("Length"),
        "angle": _("Angle"),
        "reset": _("Reset"),
        "invert": _("Invert"),
        "compare": _("Compare with prior"),
        "closeCompare": _("Close prior"),
        "choosePrior": _("Choose a prior study"),
        "noPriors": _("No prior studies"),
        "keyImage": _("Key image"),
        "measurements": _("Measurements"),
        "noMeasurements": _("No measurements yet."),
        "deleteMeasurement": _("Delete"),
        "keyImages": _("Key images"),
        "unsupported": _("This series cannot be displayed (no image pixel data)."),
        "ellipse": _("Ellipse ROI"),
        "rectangle": _("Rectangle ROI"),
        "presets": _("W/L presets"),
        "presetDefault": _("Default (from image)"),
        "presetBrain": _("Brain"),
        "presetLung": _("Lung"),
        "presetBone": _("Bone"),
        "presetAbdomen": _("Abdomen"),
        "presetMediastinum": _("Mediastinum"),
        "cinePlay": _("Play"),
        "cinePause": _("Pause"),
        # Translators: frames per second, shown after a number in the cine control.
        "fps": _("fps"),
        # Translators: short overlay labels on the image: image number, frame number,
        # window width, window level.
        "image": _("Im"),
        "frame": _("Fr"),
        "ww": _("W"),
        "wl": _("L"),
        "zoomShort": _("Zoom"),
        "area": _("Area"),
        "mean": _("Mean"),
        # Translators: standard deviation of an ROI.
        "stdDev": _("SD"),
        "min": _("Min"),
        "max": _("Max"),
    }


def prior_label(study: Study) -> str:
    day = study.study_date
    date = f"{day[:4]}-{day[4:6]}-{day[6:]}" if len(day) == 8 else day
    return " ".join(
        filter(None, [date, study.modalities.replace("\\", "/"), study.study_description])
    )


def viewer_options(
    *,
    study: Study | None,
    priors: list[Study],
    read_only: bool,
    measurements: list[Any] | None = None,
    key_images: list[Any] | None = None,
) -> dict[str, Any] | None:
    """What ``TelemedViewer.mount`` gets (the CSRF token is added by the page)."""
    if study is None:
        return None
    return {
        "dicomwebRoot": "/dicomweb",
        "studyUid": study.study_uid,
        "priors": [{"studyUid": p.study_uid, "label": prior_label(p)} for p in priors],
        "labels": viewer_labels(),
        "readOnly": read_only,
        "measurements": measurements or [],
        "keyImages": key_images or [],
    }

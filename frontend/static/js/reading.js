/* The reading page and the read-only image page: mount the DICOM viewer, open priors in
 * its compare mode, carry measurements and key images into the report form, fill the
 * form from a report template.
 *
 * The viewer bundle (/static/viewer/viewer.js, an ES module) defines window.TelemedViewer
 * and fires "telemed-viewer-ready". Without it the page says the viewer could not load
 * and the report can still be written: the hidden fields keep what was saved before.
 *
 * Plain ES5 on purpose: clinics run old Chromium-based browsers.
 */
(function () {
  "use strict";

  var mountEl = document.getElementById("viewer");
  var fallback = document.getElementById("viewer-fallback");
  var form = document.getElementById("report-form");
  var api = null;
  var WAIT_MS = 20000;

  function readJSON(id) {
    var el = document.getElementById(id);
    if (!el) {
      return null;
    }
    try {
      return JSON.parse(el.textContent);
    } catch (e) {
      return null;
    }
  }

  function field(name) {
    return form ? form.querySelector('[name="' + name + '"]') : null;
  }

  function csrfToken() {
    var el = document.querySelector('input[name="csrfmiddlewaretoken"]');
    return el ? el.value : "";
  }

  function showFailure() {
    if (fallback) {
      fallback.textContent = fallback.getAttribute("data-failed") || fallback.textContent;
      fallback.className += " viewer-failed";
      fallback.removeAttribute("hidden");
    }
  }

  // --- Measurements and key images into the form ------------------------------------------

  function setHidden(name, list) {
    var input = field(name);
    if (input && list) {
      input.value = JSON.stringify(list);
    }
    updateCounts();
  }

  function countOf(name) {
    var input = field(name);
    if (!input || !input.value) {
      return 0;
    }
    try {
      var parsed = JSON.parse(input.value);
      return parsed && parsed.length ? parsed.length : 0;
    } catch (e) {
      return 0;
    }
  }

  function updateCounts() {
    var m = document.getElementById("count-measurements");
    var k = document.getElementById("count-key-images");
    if (m) {
      m.textContent = String(countOf("measurements"));
    }
    if (k) {
      k.textContent = String(countOf("key_images"));
    }
  }

  function gatherFromViewer() {
    if (!api || !form) {
      return;
    }
    try {
      setHidden("measurements", api.getMeasurements());
      setHidden("key_images", api.getKeyImages());
    } catch (e) {
      // keep what the fields already hold
    }
  }

  // --- Mounting ----------------------------------------------------------------------------

  function mount(Viewer) {
    if (api || !mountEl) {
      return;
    }
    var options = readJSON("viewer-options");
    if (!options || !options.studyUid) {
      return;
    }
    options.csrfToken = csrfToken();
    if (form && !options.readOnly) {
      options.onMeasurementsChanged = function (list) {
        setHidden("measurements", list);
      };
      options.onKeyImagesChanged = function (list) {
        setHidden("key_images", list);
      };
    }
    try {
      api = Viewer.mount(mountEl, options);
    } catch (e) {
      showFailure();
      return;
    }
    if (fallback) {
      fallback.setAttribute("hidden", "");
    }
    if (api && api.on) {
      api.on("error", function () {
        // errors per image are shown inside the viewer; nothing to do here
      });
    }
  }

  function waitForViewer() {
    if (!mountEl) {
      return;
    }
    if (window.TelemedViewer) {
      mount(window.TelemedViewer);
      return;
    }
    window.addEventListener("telemed-viewer-ready", function (event) {
      mount(event.detail || window.TelemedViewer);
    });
    var script = document.getElementById("viewer-script");
    if (script) {
      script.addEventListener("error", showFailure);
    }
    window.setTimeout(function () {
      if (!api) {
        showFailure();
      }
    }, WAIT_MS);
  }

  // --- Priors: open in the viewer's compare mode --------------------------------------------

  function wirePriors() {
    var buttons = document.querySelectorAll("[data-compare]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].addEventListener("click", function (event) {
        var uid = this.getAttribute("data-compare");
        if (api && api.openPrior) {
          event.preventDefault();
          api.openPrior(uid);
          if (mountEl && mountEl.scrollIntoView) {
            mountEl.scrollIntoView();
          }
        }
        // without the viewer the link opens the prior on its own page
      });
    }
  }

  // --- Report templates --------------------------------------------------------------------

  function wireTemplates() {
    var templates = readJSON("report-templates");
    var select = field("template");
    if (!templates || !select) {
      return;
    }
    var byKey = {};
    for (var i = 0; i < templates.length; i++) {
      byKey[templates[i].key] = templates[i];
    }
    var findings = field("findings");
    var impression = field("impression");
    var lastFilled = { findings: findings ? findings.value : "", impression: impression ? impression.value : "" };
    select.addEventListener("change", function () {
      var t = byKey[select.value];
      if (!t || !findings || !impression) {
        return;
      }
      var edited =
        (findings.value && findings.value !== lastFilled.findings) ||
        (impression.value && impression.value !== lastFilled.impression);
      if (edited && !window.confirm(select.getAttribute("data-confirm") || "Replace?")) {
        return;
      }
      findings.value = t.findings;
      impression.value = t.impression;
      lastFilled = { findings: t.findings, impression: t.impression };
    });
  }

  // --- The form ---------------------------------------------------------------------------

  function wireForm() {
    if (!form) {
      return;
    }
    var critical = field("critical");
    var box = critical ? critical.parentNode.parentNode : null;
    function markCritical() {
      if (box) {
        box.className = box.className.replace(/\s*is-on/g, "") + (critical.checked ? " is-on" : "");
      }
    }
    if (critical) {
      critical.addEventListener("change", markCritical);
      markCritical();
    }
    var recognised = field("mutual_recognition");
    var validUntil = field("valid_until");
    function syncValidity() {
      if (recognised && validUntil) {
        validUntil.disabled = !recognised.checked;
      }
    }
    if (recognised) {
      recognised.addEventListener("change", syncValidity);
      syncValidity();
    }
    var submitter = null;
    var buttons = form.querySelectorAll("button[type=submit]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].addEventListener("click", function () {
        submitter = this;
      });
    }
    form.addEventListener("submit", function (event) {
      gatherFromViewer();
      var question = submitter && submitter.getAttribute("data-confirm");
      if (question && !window.confirm(question)) {
        event.preventDefault();
      }
    });
    updateCounts();
  }

  waitForViewer();
  wirePriors();
  wireTemplates();
  wireForm();
})();

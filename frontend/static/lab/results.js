/* The results entry page: a live flag beside each value as it is typed, and the reason
   field of a correction shown when an entered value is changed. Also the import preview's
   row filter. The server checks everything again; this only helps the technician see
   a critical or implausible value before saving. Plain ES5 for old Chromium. */
(function () {
  "use strict";

  var ARROWS = { N: "", L: "\u2193 ", H: "\u2191 ", LL: "\u2193\u2193 ", HH: "\u2191\u2191 " };

  function number(text) {
    if (text === "" || text === null || text === undefined) { return null; }
    var value = parseFloat(text);
    return isNaN(value) ? null : value;
  }

  /* Full-width digits and signs (from a Chinese input method) to ASCII. */
  function fold(text) {
    return text.replace(/[\uFF01-\uFF5E]/g, function (c) {
      return String.fromCharCode(c.charCodeAt(0) - 0xFEE0);
    }).replace(/\s+/g, "");
  }

  /* The number a typed value is flagged with, or NaN; null when empty. */
  function read(text) {
    var folded = fold(text || "");
    if (!folded) { return null; }
    folded = folded.replace(/^(<=|>=|<|>|\u2264|\u2265)/, "");
    if (/^[+-]?\d{1,3}(,\d{3})+\.\d+$/.test(folded)) {
      folded = folded.replace(/,/g, "");
    } else if (folded.split(",").length === 2 && folded.indexOf(".") < 0) {
      folded = folded.replace(",", ".");
    }
    if (!/^[+-]?(\d+(\.\d*)?|\.\d+)$/.test(folded)) { return NaN; }
    return parseFloat(folded);
  }

  function flagOf(value, input) {
    var critLow = number(input.getAttribute("data-crit-low"));
    var critHigh = number(input.getAttribute("data-crit-high"));
    var low = number(input.getAttribute("data-ref-low"));
    var high = number(input.getAttribute("data-ref-high"));
    if (critLow !== null && value <= critLow) { return "LL"; }
    if (critHigh !== null && value >= critHigh) { return "HH"; }
    if (low !== null && value < low) { return "L"; }
    if (high !== null && value > high) { return "H"; }
    return "N";
  }

  function plausible(value, input) {
    var low = number(input.getAttribute("data-plaus-low"));
    var high = number(input.getAttribute("data-plaus-high"));
    return (low === null || value >= low) && (high === null || value <= high);
  }

  function show(badge, css, text) {
    badge.className = "lab-flag " + css;
    badge.textContent = text;
  }

  function update(form, input) {
    var badge = document.getElementById(input.getAttribute("data-flag"));
    var reason = document.getElementById(input.getAttribute("data-reason"));
    var original = input.getAttribute("data-original") || "";
    if (reason) {
      var corrected = original !== "" && input.value.trim() !== "" && input.value.trim() !== original;
      reason.hidden = !corrected && !reason.querySelector("input").value;
    }
    if (!badge || input.getAttribute("data-kind") !== "numeric") { return; }
    var value = read(input.value);
    if (value === null) { show(badge, "lab-flag-none", ""); return; }
    if (isNaN(value)) {
      show(badge, "lab-flag-bad", form.getAttribute("data-label-nan") || "?");
      return;
    }
    if (!plausible(value, input)) {
      show(badge, "lab-flag-bad", form.getAttribute("data-label-implausible") || "!");
      return;
    }
    var flag = flagOf(value, input);
    var label = flag === "N" ? "" : ARROWS[flag] + (form.getAttribute("data-label-" + flag.toLowerCase()) || flag);
    show(badge, "lab-flag-" + flag, label);
    var row = input.parentNode;
    while (row && row.tagName !== "TR") { row = row.parentNode; }
    if (row) {
      row.className = row.className.replace(/\s*res-row-critical/g, "") +
        (flag === "LL" || flag === "HH" ? " res-row-critical" : "");
    }
  }

  function setupEntry(form) {
    var inputs = form.querySelectorAll("input.res-value");
    Array.prototype.forEach.call(inputs, function (input) {
      input.addEventListener("input", function () { update(form, input); });
      if (input.value && input.value !== input.getAttribute("data-original")) { update(form, input); }
    });
  }

  function setupFilter(root) {
    var buttons = root.querySelectorAll("[data-show]");
    var table = document.getElementById(root.getAttribute("data-table"));
    if (!table) { return; }
    Array.prototype.forEach.call(buttons, function (button) {
      button.addEventListener("click", function () {
        var only = button.getAttribute("data-show");
        Array.prototype.forEach.call(buttons, function (b) {
          b.setAttribute("aria-pressed", b === button ? "true" : "false");
        });
        Array.prototype.forEach.call(table.querySelectorAll("tbody tr"), function (tr) {
          tr.hidden = only !== "all" && tr.getAttribute("data-kind") !== only;
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("form.res-entry"), setupEntry);
    Array.prototype.forEach.call(document.querySelectorAll("[data-filter-rows]"), setupFilter);
  });
})();

/* Scanning specimens and boxes into a page without leaving it.
 *
 * A keyboard-wedge scanner "types" the code and presses Enter, which submits the form.
 * Forms marked data-scan-form are posted in the background with Accept: application/json;
 * the server answers {ok, level, message, warnings}. Each answer becomes one line at the
 * top of the list named by data-scan-log: green (done), amber (done, but look at the
 * warning) or red (nothing changed, and why). The field is emptied and keeps the focus,
 * so the next tube can be scanned at once; scans made while one is on its way wait their
 * turn. No sound is played. After a change, the parts of the page marked
 * data-scan-region (with an id) are refreshed from the server.
 *
 * Optional attributes of the form:
 *   data-scan-fill="<id>"        put the last code that worked into that field
 *   data-scan-fill-skip="<re>"   ... unless the code matches this pattern (box numbers)
 *   data-label-failed, data-label-offline   messages, translated by the template
 * Fields marked data-scan-clear are emptied after each scan.
 *
 * Without JavaScript the same forms post normally and the server answers with a page.
 * Plain ES5 with XMLHttpRequest, FormData and DOMParser: old Chromium is common.
 */
(function () {
  "use strict";

  var MAX_LINES = 60;
  var forms = document.querySelectorAll("form[data-scan-form]");
  if (!forms.length || !window.FormData || !window.XMLHttpRequest) {
    return;
  }

  function pad(n) {
    return n < 10 ? "0" + n : String(n);
  }

  function clock() {
    var d = new Date();
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }

  function addLine(log, level, message, extras) {
    if (!log) {
      return;
    }
    var li = document.createElement("li");
    li.className = "scan-" + (level === "success" || level === "warning" ? level : "error");
    li.setAttribute("role", level === "error" ? "alert" : "status");
    var time = document.createElement("span");
    time.className = "scan-time";
    time.textContent = clock();
    li.appendChild(time);
    li.appendChild(document.createTextNode(message));
    for (var i = 0; i < extras.length; i++) {
      var extra = document.createElement("span");
      extra.className = "scan-extra";
      extra.textContent = extras[i];
      li.appendChild(extra);
    }
    log.insertBefore(li, log.firstChild);
    while (log.children.length > MAX_LINES) {
      log.removeChild(log.lastChild);
    }
  }

  var refreshing = false;
  var refreshAgain = false;

  /* Fetch the page again and swap in the fresh copy of each data-scan-region. */
  function refreshRegions() {
    if (!window.DOMParser || !document.querySelector("[data-scan-region]")) {
      return;
    }
    if (refreshing) {
      refreshAgain = true;
      return;
    }
    refreshing = true;
    var xhr = new XMLHttpRequest();
    xhr.open("GET", window.location.href);
    xhr.setRequestHeader("Accept", "text/html");
    xhr.onload = function () {
      if (xhr.status === 200) {
        var fresh = new DOMParser().parseFromString(xhr.responseText, "text/html");
        var regions = document.querySelectorAll("[data-scan-region]");
        for (var i = 0; i < regions.length; i++) {
          var region = regions[i];
          var replacement = region.id ? fresh.getElementById(region.id) : null;
          if (replacement) {
            region.parentNode.replaceChild(document.importNode(replacement, true), region);
          }
        }
      }
      finishRefresh();
    };
    xhr.onerror = finishRefresh;
    xhr.send();
  }

  function finishRefresh() {
    refreshing = false;
    if (refreshAgain) {
      refreshAgain = false;
      refreshRegions();
    }
  }

  function isTyping(element) {
    if (!element) {
      return false;
    }
    var tag = element.tagName;
    return tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || tag === "BUTTON" || tag === "A";
  }

  function setup(form, primary) {
    var input = form.querySelector("[data-scan-input]") || form.querySelector("input[type=text]");
    if (!input) {
      return;
    }
    var log = document.getElementById(form.getAttribute("data-scan-log") || "");
    var fill = document.getElementById(form.getAttribute("data-scan-fill") || "");
    var skip = form.getAttribute("data-scan-fill-skip");
    var skipPattern = skip ? new RegExp(skip, "i") : null;
    var labelFailed = form.getAttribute("data-label-failed") || "The scan was not saved.";
    var labelOffline = form.getAttribute("data-label-offline") || "No connection.";
    var queue = [];
    var busy = false;

    function done() {
      busy = false;
      if (document.activeElement === document.body || !isTyping(document.activeElement)) {
        input.focus();
      }
      next();
    }

    function next() {
      if (busy || !queue.length) {
        return;
      }
      busy = true;
      var item = queue.shift();
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.getAttribute("action") || window.location.href);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.onload = function () {
        var answer = null;
        try {
          answer = JSON.parse(xhr.responseText);
        } catch (err) {
          answer = null;
        }
        if (answer && typeof answer.message === "string") {
          addLine(log, answer.level || (answer.ok ? "success" : "error"), answer.message, answer.warnings || []);
          if (answer.ok) {
            if (fill && !(skipPattern && skipPattern.test(item.code))) {
              fill.value = item.code;
            }
            refreshRegions();
          }
        } else {
          /* An expired session or form (401/403 page): say so, the page must be reloaded. */
          addLine(log, "error", item.code + " — " + labelFailed + " (" + xhr.status + ")", []);
        }
        done();
      };
      xhr.onerror = function () {
        addLine(log, "error", item.code + " — " + labelOffline, []);
        done();
      };
      xhr.send(item.data);
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var code = input.value.replace(/\s+/g, "");
      if (!code) {
        input.focus();
        return;
      }
      input.value = code;
      queue.push({ code: code, data: new FormData(form) });
      input.value = "";
      var clear = form.querySelectorAll("[data-scan-clear]");
      for (var i = 0; i < clear.length; i++) {
        clear[i].value = "";
      }
      input.focus();
      next();
    });

    if (primary) {
      /* A click on the page's background gives the focus back to the scan field. */
      document.addEventListener("click", function (event) {
        var target = event.target;
        while (target && target !== document.body) {
          if (isTyping(target) || target.tagName === "LABEL" || target.tagName === "FORM") {
            return;
          }
          target = target.parentNode;
        }
        input.focus();
      });
      input.focus();
    }
  }

  for (var i = 0; i < forms.length; i++) {
    setup(forms[i], i === 0);
  }
})();

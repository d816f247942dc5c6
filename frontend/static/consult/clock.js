/* SLA clocks of consults: count down to the due time, amber when less than a fifth of the
 * target is left, red and "-HH:MM" once overdue. The server-rendered text is right at page
 * load; this keeps it current.
 *
 *   <span class="sla" data-due="<unix seconds>" data-target="<minutes>">01:23</span>
 *   <span class="overdue-tag" hidden>Overdue</span>   (next sibling, optional)
 *
 * An ancestor may carry data-server-now="<unix seconds>" so a clinic PC with a wrong clock
 * still shows the right time left. Plain ES5: clinics run old Chromium-based browsers.
 */
(function () {
  "use strict";

  var clocks = document.querySelectorAll(".sla[data-due]");
  if (!clocks.length) {
    return;
  }
  var skewMs = 0;
  var anchor = document.querySelector("[data-server-now]");
  if (anchor) {
    var serverNow = parseInt(anchor.getAttribute("data-server-now"), 10);
    if (!isNaN(serverNow)) {
      skewMs = serverNow * 1000 - Date.now();
    }
  }

  function pad(n) {
    return n < 10 ? "0" + n : String(n);
  }

  function format(seconds) {
    var minutes = Math.floor(Math.abs(seconds) / 60);
    return (seconds < 0 ? "-" : "") + pad(Math.floor(minutes / 60)) + ":" + pad(minutes % 60);
  }

  function setClass(el, name, on) {
    var has = (" " + el.className + " ").indexOf(" " + name + " ") >= 0;
    if (on && !has) {
      el.className += " " + name;
    } else if (!on && has) {
      el.className = (" " + el.className + " ").replace(" " + name + " ", " ").replace(/^\s+|\s+$/g, "");
    }
  }

  function tagOf(el) {
    var next = el.nextElementSibling;
    return next && next.className.indexOf("overdue-tag") >= 0 ? next : null;
  }

  function rowOf(el) {
    var node = el.parentNode;
    while (node && node.tagName !== "TR") {
      node = node.parentNode;
    }
    return node;
  }

  function tick() {
    var now = Date.now() + skewMs;
    for (var i = 0; i < clocks.length; i++) {
      var el = clocks[i];
      var due = parseInt(el.getAttribute("data-due"), 10) * 1000;
      var target = parseInt(el.getAttribute("data-target"), 10);
      if (isNaN(due)) {
        continue;
      }
      var left = Math.floor((due - now) / 1000);
      el.textContent = format(left);
      var overdue = left < 0;
      setClass(el, "sla-overdue", overdue);
      setClass(el, "sla-near", !overdue && !isNaN(target) && left * 5 < target * 60);
      var tag = tagOf(el);
      if (tag) {
        if (overdue) {
          tag.removeAttribute("hidden");
        } else {
          tag.setAttribute("hidden", "");
        }
      }
      var row = rowOf(el);
      if (row) {
        setClass(row, "row-overdue", overdue);
      }
    }
  }

  tick();
  window.setInterval(tick, 15000);
})();

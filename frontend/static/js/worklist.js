/* Turnaround clocks: count up from the request time, turn amber near the target and red
 * when overdue. Server-rendered text is correct at page load; this keeps it current.
 *
 *   <span class="clock" data-since="<unix seconds>" data-target="<minutes>">01:23</span>
 *   <span class="overdue-tag" hidden>Overdue</span>   (next sibling, optional)
 *
 * The page's <body> or any ancestor may carry data-server-now="<unix seconds>" so a
 * clinic PC with a wrong clock still shows the right waiting time.
 *
 * Plain ES5 on purpose: clinics run old Chromium-based browsers.
 */
(function () {
  "use strict";

  var clocks = document.querySelectorAll(".clock[data-since]");
  if (!clocks.length) {
    return;
  }
  var NEAR = 0.8; // amber from 80 % of the target
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

  function format(minutes) {
    var h = Math.floor(minutes / 60);
    return pad(h) + ":" + pad(minutes % 60);
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
    while (next && next.className.indexOf("overdue-tag") < 0) {
      next = next.nextElementSibling;
    }
    return next;
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
      var since = parseInt(el.getAttribute("data-since"), 10) * 1000;
      var target = parseInt(el.getAttribute("data-target"), 10);
      if (isNaN(since) || isNaN(target)) {
        continue;
      }
      var minutes = Math.max(0, Math.floor((now - since) / 60000));
      el.textContent = format(minutes);
      var overdue = minutes > target;
      setClass(el, "clock-overdue", overdue);
      setClass(el, "clock-near", !overdue && minutes >= target * NEAR);
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

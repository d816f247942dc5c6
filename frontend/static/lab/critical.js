/* Critical values: live clocks since a value was found, red once the acknowledgement
 * deadline has passed, with a bar of the time used. The server-rendered text is right at
 * page load; this keeps it current.
 *
 *   <span class="crit-clock" data-since="<unix s>" data-deadline="<unix s>">12 min</span>
 *   <span class="crit-bar"><span class="crit-bar-fill"></span></span>   (next sibling, optional)
 *
 * Plain ES5: clinics run old Chromium-based browsers.
 */
(function () {
  "use strict";

  var clocks = document.querySelectorAll(".crit-clock[data-since]");
  if (!clocks.length) {
    return;
  }

  function pad(n) {
    return n < 10 ? "0" + n : String(n);
  }

  function format(seconds) {
    var s = Math.max(0, seconds);
    var hours = Math.floor(s / 3600);
    var minutes = Math.floor((s % 3600) / 60);
    var rest = s % 60;
    return (hours ? hours + ":" + pad(minutes) : String(minutes)) + ":" + pad(rest);
  }

  function setClass(el, name, on) {
    var padded = " " + el.className + " ";
    var has = padded.indexOf(" " + name + " ") >= 0;
    if (on && !has) {
      el.className += " " + name;
    } else if (!on && has) {
      el.className = padded.replace(" " + name + " ", " ").replace(/^\s+|\s+$/g, "");
    }
  }

  function barOf(el) {
    var next = el.nextElementSibling;
    return next && next.className.indexOf("crit-bar") >= 0 ? next.firstElementChild : null;
  }

  function rowOf(el) {
    var node = el.parentNode;
    while (node && node.tagName !== "TR" && node.tagName !== "ARTICLE") {
      node = node.parentNode;
    }
    return node;
  }

  function tick() {
    var now = Math.floor(Date.now() / 1000);
    for (var i = 0; i < clocks.length; i++) {
      var el = clocks[i];
      var since = parseInt(el.getAttribute("data-since"), 10);
      var deadline = parseInt(el.getAttribute("data-deadline"), 10);
      if (isNaN(since) || isNaN(deadline)) {
        continue;
      }
      el.textContent = format(now - since);
      var overdue = now > deadline;
      setClass(el, "crit-clock-overdue", overdue);
      var bar = barOf(el);
      if (bar) {
        var span = Math.max(1, deadline - since);
        bar.style.width = Math.min(100, Math.round(((now - since) * 100) / span)) + "%";
      }
      var row = rowOf(el);
      if (row) {
        setClass(row, row.tagName === "TR" ? "crit-row-overdue" : "crit-card-overdue", overdue);
      }
    }
  }

  tick();
  window.setInterval(tick, 1000);
})();

/* Turnaround clocks of the lab queue: minutes since the lab received the specimens,
 * drawn as a bar that turns amber from 75 % of the target and red when late.
 * The server-rendered clock is right at page load; this keeps it current every 30 s.
 *
 *   <span class="lab-clock lab-clock-ok" data-clock data-since="<unix s>" data-target="<min>">
 *     <span class="lab-clock-elapsed">01:23</span> …
 *     <span class="lab-clock-bar" style="width: 40%"></span>
 *     <span class="lab-clock-tag" hidden>Late</span>
 *   </span>
 *
 * An ancestor carries data-server-now="<unix seconds>" so a clinic PC with a wrong clock
 * still shows the right time, and data-near="75" (the amber threshold, per cent).
 *
 * Plain ES5 on purpose: clinics run old Chromium-based browsers.
 */
(function () {
  "use strict";

  var clocks = document.querySelectorAll(".lab-clock[data-clock]");
  if (!clocks.length) {
    return;
  }
  var skewMs = 0;
  var near = 0.75;
  var anchor = document.querySelector("[data-server-now]");
  if (anchor) {
    var serverNow = parseInt(anchor.getAttribute("data-server-now"), 10);
    if (!isNaN(serverNow)) {
      skewMs = serverNow * 1000 - Date.now();
    }
    var nearAttr = parseInt(anchor.getAttribute("data-near"), 10);
    if (!isNaN(nearAttr) && nearAttr > 0) {
      near = nearAttr / 100;
    }
  }

  function pad(n) {
    return n < 10 ? "0" + n : String(n);
  }

  function format(minutes) {
    return pad(Math.floor(minutes / 60)) + ":" + pad(minutes % 60);
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

  function child(el, cls) {
    return el.querySelector("." + cls);
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
      var late = minutes > target;
      var amber = !late && minutes >= target * near;
      var percent = target > 0 ? Math.min(100, Math.floor((minutes * 100) / target)) : 100;
      var elapsed = child(el, "lab-clock-elapsed");
      if (elapsed) {
        elapsed.textContent = format(minutes);
      }
      var bar = child(el, "lab-clock-bar");
      if (bar) {
        bar.style.width = percent + "%";
      }
      var tag = child(el, "lab-clock-tag");
      if (tag) {
        if (late) {
          tag.removeAttribute("hidden");
        } else {
          tag.setAttribute("hidden", "");
        }
      }
      setClass(el, "lab-clock-ok", !late && !amber);
      setClass(el, "lab-clock-near", amber);
      setClass(el, "lab-clock-late", late);
      var row = rowOf(el);
      if (row) {
        setClass(row, "row-late", late);
      }
    }
  }

  tick();
  window.setInterval(tick, 30000);
})();

/* Live notifications: a WebSocket to /ws/notifications/ that keeps the bell's badge
 * current and shows a toast for each new notification.
 *
 * Protocol (docs/protocols.md): the server greets with {"type":"hello","unread":N} and
 * then sends {"type":"notification","notification":{id, kind, severity, title, body,
 * link, patient_id, payload, created_at, read}}. After a dropped link we reconnect with growing
 * back-off and send {"type":"resume","after":lastId} so nothing sent meanwhile is lost.
 * "hello" also says how many unread notifications follow it as a backlog: those are
 * already in its count.
 *
 * A notification whose payload carries an "ack_url" (a critical lab value) gets an
 * "Acknowledge" button with an optional note: it POSTs to that URL asking for JSON, then
 * says "Acknowledged", or shows the server's reason (e.g. already acknowledged by whom).
 *
 * Plain ES5 on purpose: clinics run old Chromium-based browsers.
 */
(function () {
  "use strict";

  var bell = document.getElementById("notif-bell");
  var badge = document.getElementById("notif-count");
  var toasts = document.getElementById("toasts");
  if (!bell || !badge || !toasts || !window.WebSocket) {
    return;
  }

  var path = bell.getAttribute("data-ws-path") || "/ws/notifications/";
  var lastId = 0;
  var unread = parseInt(badge.textContent, 10) || 0;
  var attempt = 0;
  var socket = null;
  var offlineToast = null;
  var seen = {};
  var timer = null;
  var backlogLeft = 0;
  var resuming = false;
  var firstConnection = true;
  var MAX_DELAY = 30000;
  var TOAST_MS = 8000;
  var PING_MS = 45000;

  function label(name, fallback) {
    return toasts.getAttribute("data-label-" + name) || fallback;
  }

  function setUnread(count) {
    unread = Math.max(0, count);
    badge.textContent = unread > 99 ? "99+" : String(unread);
    if (unread > 0) {
      badge.removeAttribute("hidden");
    } else {
      badge.setAttribute("hidden", "");
    }
  }

  function bump() {
    bell.className = bell.className.replace(/\s*bump/g, "");
    void bell.offsetWidth; // restart the animation
    bell.className += " bump";
  }

  function isLocalLink(link) {
    return typeof link === "string" && link.charAt(0) === "/" && link.charAt(1) !== "/";
  }

  function removeToast(el) {
    if (el && el.parentNode) {
      el.parentNode.removeChild(el);
    }
  }

  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) {
      return decodeURIComponent(match[1]);
    }
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function ackUrlOf(n) {
    var url = n.payload && typeof n.payload === "object" ? n.payload.ack_url : "";
    return isLocalLink(url) ? url : "";
  }

  // The page's banner counts the open critical values; one fewer once acknowledged here.
  function bannerAcknowledged() {
    var banner = document.querySelector(".crit-banner[data-critical-open]");
    if (!banner) {
      return;
    }
    var left = (parseInt(banner.getAttribute("data-critical-open"), 10) || 1) - 1;
    banner.setAttribute("data-critical-open", String(left));
    if (left <= 0) {
      banner.setAttribute("hidden", "");
    }
  }

  function acknowledgeForm(el, n, url) {
    var form = document.createElement("form");
    form.className = "toast-ack";
    form.setAttribute("method", "post");
    form.setAttribute("action", url);
    var note = document.createElement("input");
    note.type = "text";
    note.name = "note";
    note.maxLength = 300;
    note.autocomplete = "off";
    note.placeholder = label("ack-note", "Action taken (optional)");
    note.setAttribute("aria-label", note.placeholder);
    note.style.cssText = "width:100%;box-sizing:border-box;font:inherit;font-size:.9rem;" +
      "padding:5px 8px;margin:4px 0 6px;border:1px solid #b9c7cf;border-radius:6px;";
    var button = document.createElement("button");
    button.type = "submit";
    button.className = "toast-ack-button";
    button.textContent = label("acknowledge", "Acknowledge");
    button.style.cssText = "font:inherit;font-size:.9rem;font-weight:600;padding:5px 14px;" +
      "border:0;border-radius:6px;background:#b42318;color:#fff;cursor:pointer;";
    var status = document.createElement("p");
    status.className = "toast-ack-status";
    status.setAttribute("role", "status");
    status.style.cssText = "margin:6px 0 0;font-size:.9rem;font-weight:600;";

    function failed(message) {
      status.textContent = message || label("ack-failed", "Could not acknowledge.");
      status.style.color = "#a12a1c";
      button.disabled = false;
    }

    form.onsubmit = function (event) {
      if (event && event.preventDefault) {
        event.preventDefault();
      }
      button.disabled = true;
      status.textContent = "";
      var xhr = new XMLHttpRequest();
      xhr.open("POST", url, true);
      xhr.setRequestHeader("Content-Type", "application/x-www-form-urlencoded");
      xhr.setRequestHeader("Accept", "application/json");
      xhr.setRequestHeader("X-CSRFToken", csrfToken());
      xhr.onload = function () {
        var answer = null;
        try {
          answer = JSON.parse(xhr.responseText);
        } catch (e) {
          answer = null;
        }
        if (xhr.status >= 200 && xhr.status < 300 && answer && answer.ok) {
          status.textContent = "\u2713 " + label("acknowledged", "Acknowledged");
          status.style.color = "#1f6a43";
          form.removeChild(note);
          form.removeChild(button);
          el.className += " toast-acknowledged";
          send({ type: "ack", ids: [n.id] });
          bannerAcknowledged();
        } else {
          failed(answer && typeof answer.message === "string" ? answer.message : "");
        }
      };
      xhr.onerror = function () { failed(""); };
      xhr.send("note=" + encodeURIComponent(note.value));
      return false;
    };

    form.appendChild(note);
    form.appendChild(button);
    form.appendChild(status);
    return form;
  }

  function showToast(n) {
    var severity = n.severity === "critical" || n.severity === "urgent" ? n.severity : "info";
    var el = document.createElement("div");
    el.className = "toast toast-" + severity;
    el.setAttribute("role", severity === "critical" ? "alert" : "status");

    var title = document.createElement("p");
    title.className = "toast-title";
    title.textContent = n.title || "";
    el.appendChild(title);

    if (n.body) {
      var body = document.createElement("p");
      body.className = "toast-body";
      body.textContent = n.body;
      el.appendChild(body);
    }

    var ackUrl = ackUrlOf(n);
    if (ackUrl) {
      el.appendChild(acknowledgeForm(el, n, ackUrl));
    }

    var actions = document.createElement("div");
    actions.className = "toast-actions";
    if (isLocalLink(n.link)) {
      var open = document.createElement("a");
      open.href = n.link;
      open.textContent = label("open", "Open");
      actions.appendChild(open);
    }
    var close = document.createElement("button");
    close.type = "button";
    close.textContent = label("close", "Close");
    close.onclick = function () { removeToast(el); };
    actions.appendChild(close);
    el.appendChild(actions);

    toasts.appendChild(el);
    // Critical values stay until someone closes them.
    if (severity !== "critical") {
      window.setTimeout(function () { removeToast(el); }, TOAST_MS);
    }
  }

  function onNotification(n) {
    if (!n || typeof n.id !== "number" || seen[n.id]) {
      return;
    }
    seen[n.id] = true;
    if (n.id > lastId) {
      lastId = n.id;
    }
    if (backlogLeft > 0 || resuming) {
      // Already counted by "hello". The first backlog is what the page was drawn with,
      // so it is not toasted; after a reconnect, unseen unread ones are news.
      if (backlogLeft > 0) {
        backlogLeft -= 1;
      }
      if (!firstConnection && !n.read) {
        showToast(n);
      }
      return;
    }
    if (!n.read) {
      setUnread(unread + 1);
      bump();
      showToast(n);
    }
  }

  function onMessage(event) {
    var message;
    try {
      message = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    if (!message || typeof message.type !== "string") {
      return;
    }
    if (message.type === "hello") {
      bell.setAttribute("data-state", "open"); // greeted: live (tests and styles read it)
      if (typeof message.unread === "number") {
        setUnread(message.unread);
      }
      backlogLeft = typeof message.backlog === "number" ? message.backlog : 0;
    } else if (message.type === "notification") {
      onNotification(message.notification);
      if (backlogLeft === 0) {
        firstConnection = false;
      }
    } else if (message.type === "resumed") {
      resuming = false;
    } else if (message.type === "acked" && typeof message.unread === "number") {
      setUnread(message.unread);
    }
  }

  function showOffline(show) {
    if (show && !offlineToast) {
      offlineToast = document.createElement("div");
      offlineToast.className = "toast toast-offline";
      offlineToast.setAttribute("role", "status");
      offlineToast.textContent = label("offline", "Reconnecting…");
      toasts.appendChild(offlineToast);
    } else if (!show && offlineToast) {
      removeToast(offlineToast);
      offlineToast = null;
    }
  }

  function send(message) {
    if (socket && socket.readyState === 1) {
      socket.send(JSON.stringify(message));
    }
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    timer = null;
    try {
      socket = new WebSocket(scheme + window.location.host + path);
    } catch (e) {
      socket = null;
      scheduleReconnect();
      return;
    }
    socket.onopen = function () {
      attempt = 0;
      showOffline(false);
      if (lastId > 0) {
        resuming = true;
        send({ type: "resume", after: lastId });
      }
    };
    socket.onmessage = onMessage;
    socket.onclose = function (event) {
      bell.setAttribute("data-state", "closed");
      socket = null;
      resuming = false;
      backlogLeft = 0;
      firstConnection = false;
      // 4401/4403: the session ended or the account was closed; reconnecting cannot help,
      // and the next page load leads to the login page.
      if (event.code === 4401 || event.code === 4403) {
        return;
      }
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    if (timer) {
      return;
    }
    attempt += 1;
    if (attempt > 2) {
      showOffline(true);
    }
    var delay = Math.min(MAX_DELAY, 1000 * Math.pow(2, attempt - 1));
    // Jitter: after an outage, every clinic of the county reconnects at once.
    delay = delay / 2 + Math.random() * delay / 2;
    timer = window.setTimeout(connect, delay);
  }

  // Keep the link alive through proxies and firewalls that drop quiet connections.
  window.setInterval(function () { send({ type: "ping" }); }, PING_MS);

  window.addEventListener("online", function () {
    if (!socket) {
      if (timer) {
        window.clearTimeout(timer);
        timer = null;
      }
      attempt = 0;
      connect();
    }
  });

  connect();
})();

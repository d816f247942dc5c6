/* Browser upload of DICOM files, folders or zips: resumable, checksummed, one bar per study.
 *
 * 1. Read each file's header (upload-helpers.js: sniff) and group the DICOM files by
 *    Study Instance UID; a zip the user chose travels as it is; anything else is not sent.
 * 2. A study's files become one uncompressed zip (ZipPlan: a Blob of the files themselves)
 *    of at most data-part-bytes; a study of one file is sent as that file.
 * 3. SHA-256 of what will be sent, in the browser. The result (and the zip's CRCs) is kept
 *    in localStorage under the files' names, sizes and dates, so after a reload the same
 *    files are not read twice.
 * 4. The upload API (docs/upload.md): POST announces {filename, size, sha256}; the server
 *    answers with the offset to send from (0, where an earlier attempt stopped, or the
 *    size if it has everything). PATCH sends chunks; a dropped link is retried with
 *    growing back-off and resumes from the offset the server reports (HEAD). The chunk
 *    size adapts to the link (about 4 s per chunk). POST finish makes the server verify
 *    the checksum and ingest; the page polls for the per-study outcome.
 *
 * Labels come from data-label-* attributes the template fills, translated.
 * Plain ES5 with Promise and XMLHttpRequest (upload progress): old Chromium is common.
 */
(function () {
  "use strict";

  var root = document.getElementById("upload");
  var H = window.TelemedUpload;
  if (!root || !H || !window.Promise || !window.FileReader) {
    return;
  }

  var API = root.getAttribute("data-api");
  var CSRF = root.getAttribute("data-csrf");
  var REQUEST = root.getAttribute("data-request") ? parseInt(root.getAttribute("data-request"), 10) : null;
  var STUDY_URL = root.getAttribute("data-study-url") || "";
  var FIRST_CHUNK = intAttr("data-chunk-bytes", 1024 * 1024);
  var MAX_CHUNK = intAttr("data-max-chunk-bytes", 8 * 1024 * 1024);
  var MIN_CHUNK = 256 * 1024;
  var PART_BYTES = intAttr("data-part-bytes", 256 * 1024 * 1024);
  var MAX_UPLOAD = intAttr("data-max-upload-bytes", 4 * 1024 * 1024 * 1024);
  var PART_FILES = 5000;
  var SECONDS_PER_CHUNK = 4;
  var MAX_DELAY = 30000;
  var SERVER_ERROR_TRIES = 5;
  var POLL_MS = 1500;
  var CACHE_PREFIX = "telemed.upload.v1:";
  var CACHE_KEEP = 200;

  var groupsEl = document.getElementById("upload-groups");
  var overallEl = document.getElementById("upload-overall");
  var overallBar = document.getElementById("upload-overall-bar");
  var overallText = document.getElementById("upload-overall-text");
  var notice = document.getElementById("upload-notice");
  var pauseButton = document.getElementById("upload-pause");
  var resumeButton = document.getElementById("upload-resume");
  var drop = document.getElementById("upload-drop");

  var groups = [];
  var prepareQueue = [];
  var uploadQueue = [];
  var preparing = false;
  var uploading = false;
  var paused = false;
  var wake = null; // resolves the current back-off wait early (online, resume)
  var currentXhr = null;

  /* The cookie's token: logging in again (in another tab) replaces the page's one. */
  function csrfToken() {
    var match = /(?:^|;\s*)csrftoken=([^;]+)/.exec(document.cookie);
    return match ? decodeURIComponent(match[1]) : CSRF;
  }

  function intAttr(name, fallback) {
    var value = parseInt(root.getAttribute(name), 10);
    return value > 0 ? value : fallback;
  }

  function label(name, values) {
    var text = root.getAttribute("data-label-" + name) || name;
    if (values) {
      text = text.replace(/\{(\w+)\}/g, function (all, key) {
        return values.hasOwnProperty(key) ? String(values[key]) : all;
      });
    }
    return text;
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = text;
    }
    return node;
  }

  function formatBytes(n) {
    if (n < 1024 * 1024) {
      return Math.max(1, Math.round(n / 1024)) + " KB";
    }
    if (n < 1024 * 1024 * 1024) {
      return (n / 1048576).toFixed(n < 10 * 1048576 ? 1 : 0) + " MB";
    }
    return (n / 1073741824).toFixed(2) + " GB";
  }

  function formatDate(dicomDate) {
    return /^\d{8}$/.test(dicomDate)
      ? dicomDate.slice(0, 4) + "-" + dicomDate.slice(4, 6) + "-" + dicomDate.slice(6, 8)
      : dicomDate;
  }

  function studyLabel(study) {
    var bits = [study.modality || (study.modalities || []).join("/"), formatDate(study.date || "")];
    bits.push(study.description || label("no-description"));
    return bits.filter(function (b) { return b; }).join(" · ");
  }

  // --- Cache of checksums (so a reload does not read the files again) -----------------------

  function signature(part) {
    var text = part.kind + "|" + part.files.length, i, f;
    for (i = 0; i < part.files.length; i++) {
      f = part.files[i];
      text += "|" + f.path + ":" + f.file.size + ":" + (f.file.lastModified || 0);
    }
    // Two 32-bit FNV-1a hashes of the signature: a key, not a security measure (the
    // server checks the SHA-256 of what arrives).
    var h1 = 0x811c9dc5, h2 = 0x01000193 ^ text.length;
    for (i = 0; i < text.length; i++) {
      h1 = Math.imul(h1 ^ text.charCodeAt(i), 16777619);
      h2 = Math.imul(h2 ^ text.charCodeAt(i), 2246822519);
    }
    return CACHE_PREFIX + (h1 >>> 0).toString(16) + (h2 >>> 0).toString(16) + ":" + part.size;
  }

  function cacheGet(key) {
    try {
      var raw = window.localStorage.getItem(key);
      return raw ? JSON.parse(raw) : null;
    } catch (e) {
      return null;
    }
  }

  function cachePut(key, value) {
    try {
      value.t = Date.now();
      window.localStorage.setItem(key, JSON.stringify(value));
      var keys = [], i, k;
      for (i = 0; i < window.localStorage.length; i++) {
        k = window.localStorage.key(i);
        if (k && k.indexOf(CACHE_PREFIX) === 0) {
          keys.push({ k: k, t: (cacheGet(k) || {}).t || 0 });
        }
      }
      keys.sort(function (a, b) { return a.t - b.t; });
      for (i = 0; i < keys.length - CACHE_KEEP; i++) {
        window.localStorage.removeItem(keys[i].k);
      }
    } catch (e) {
      // Private mode or full storage: we only lose the shortcut.
    }
  }

  function cacheDrop(key) {
    try {
      window.localStorage.removeItem(key);
    } catch (e) {
      // ignore
    }
  }

  // --- Reading and grouping the files --------------------------------------------------------

  function collectFromDrop(dataTransfer) {
    var items = dataTransfer.items, entries = [], i;
    if (items && items.length && items[0].webkitGetAsEntry) {
      for (i = 0; i < items.length; i++) {
        var entry = items[i].webkitGetAsEntry();
        if (entry) {
          entries.push(entry);
        }
      }
      return Promise.all(entries.map(walkEntry)).then(function (lists) {
        return [].concat.apply([], lists);
      });
    }
    return Promise.resolve(fromFileList(dataTransfer.files));
  }

  function walkEntry(entry) {
    if (entry.isFile) {
      return new Promise(function (resolve) {
        entry.file(function (file) {
          resolve([{ file: file, path: entry.fullPath.replace(/^\/+/, "") || file.name }]);
        }, function () { resolve([]); });
      });
    }
    if (!entry.isDirectory) {
      return Promise.resolve([]);
    }
    var reader = entry.createReader(), children = [];
    return new Promise(function (resolve) {
      function more() { // readEntries answers in batches until it answers with none
        reader.readEntries(function (batch) {
          if (!batch.length) {
            Promise.all(children.map(walkEntry)).then(function (lists) {
              resolve([].concat.apply([], lists));
            });
            return;
          }
          children = children.concat(Array.prototype.slice.call(batch));
          more();
        }, function () { resolve([]); });
      }
      more();
    });
  }

  function fromFileList(list) {
    var out = [], i;
    for (i = 0; i < list.length; i++) {
      out.push({ file: list[i], path: list[i].webkitRelativePath || list[i].name });
    }
    return out;
  }

  function addFiles(items) {
    if (!items.length) {
      return;
    }
    overallEl.hidden = false;
    overallText.textContent = label("reading");
    var sniffed = [], i = 0;
    function next() {
      if (i >= items.length) {
        return Promise.resolve();
      }
      var item = items[i];
      i += 1;
      return H.sniffFile(item.file).then(function (result) {
        item.kind = result.kind;
        item.study = result.study || null;
        sniffed.push(item);
        if (i % 50 === 0) {
          overallText.textContent = label("reading") + " " + i + "/" + items.length;
        }
        return next();
      }, function () {
        item.kind = "other";
        sniffed.push(item);
        return next();
      });
    }
    next().then(function () {
      makeGroups(sniffed);
      updateOverall();
      pumpPrepare();
    });
  }

  function makeGroups(items) {
    var byStudy = {}, order = [], skipped = [], i, item, key;
    for (i = 0; i < items.length; i++) {
      item = items[i];
      if (item.kind === "zip") {
        addGroup({ title: item.path, subtitle: label("archive"), kind: "zip", items: [item] });
      } else if (item.kind === "dicom") {
        key = item.study ? item.study.uid : "";
        if (!byStudy.hasOwnProperty(key)) {
          byStudy[key] = [];
          order.push(key);
        }
        byStudy[key].push(item);
      } else {
        skipped.push(item);
      }
    }
    for (i = 0; i < order.length; i++) {
      var list = byStudy[order[i]];
      addGroup({
        title: order[i] ? studyLabel(list[0].study) : label("unknown-study"),
        subtitle: label("files", { n: list.length }),
        kind: "study",
        items: list
      });
    }
    if (skipped.length) {
      var group = addGroup({ title: label("not-sent"), subtitle: "", kind: "skipped", items: [] });
      setState(group, "skipped", "");
      var results = el("ul", "upload-results");
      for (i = 0; i < skipped.length; i++) {
        results.appendChild(el("li", "upload-result", skipped[i].path));
      }
      group.el.appendChild(results);
    }
  }

  function splitIntoParts(group) {
    var items = group.items.slice().sort(function (a, b) {
      return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
    });
    var parts = [], current = null, i, item;
    if (group.kind === "zip" || items.length === 1) {
      return [{ kind: "file", files: items, size: items[0].file.size, name: baseName(items[0].path) }];
    }
    for (i = 0; i < items.length; i++) {
      item = items[i];
      if (!current || current.files.length >= PART_FILES ||
          (current.files.length && current.bytes + item.file.size > PART_BYTES)) {
        current = { kind: "zip", files: [], bytes: 0 };
        parts.push(current);
      }
      current.files.push(item);
      current.bytes += item.file.size;
    }
    for (i = 0; i < parts.length; i++) {
      var part = parts[i];
      part.plan = new H.ZipPlan(part.files.map(function (f) { return { file: f.file, name: f.path }; }));
      part.size = part.plan.size;
      part.name = safeName(group.title) + (parts.length > 1 ? "-" + (i + 1) : "") + ".zip";
    }
    return parts;
  }

  function baseName(path) {
    return path.split("/").pop() || path;
  }

  function safeName(text) {
    return text.replace(/[\\\/:*?"<>|\u0000-\u001f]+/g, " ").replace(/\s+/g, " ").trim().slice(0, 120) || "study";
  }

  // --- Groups on the page ----------------------------------------------------------------------

  function addGroup(spec) {
    var group = {
      title: spec.title,
      kind: spec.kind,
      items: spec.items,
      parts: [],
      state: "waiting",
      hashed: 0
    };
    group.el = el("li", "upload-group");
    group.el.setAttribute("data-group", String(groups.length));
    var head = el("div", "upload-group-head");
    head.appendChild(el("span", "upload-group-title", spec.title));
    if (spec.subtitle) {
      head.appendChild(el("span", "muted small", spec.subtitle));
    }
    group.stateEl = el("span", "upload-group-state", label("waiting"));
    head.appendChild(group.stateEl);
    group.el.appendChild(head);
    if (spec.kind !== "skipped") {
      group.bar = el("div", "progress");
      group.bar.setAttribute("role", "progressbar");
      group.bar.setAttribute("aria-valuemin", "0");
      group.bar.setAttribute("aria-valuemax", "100");
      group.bar.setAttribute("aria-valuenow", "0");
      group.bar.setAttribute("aria-label", spec.title);
      group.fill = el("span", "progress-fill");
      group.bar.appendChild(group.fill);
      group.el.appendChild(group.bar);
      group.results = el("ul", "upload-results");
      group.el.appendChild(group.results);
      group.parts = splitIntoParts(group);
      group.size = 0;
      for (var i = 0; i < group.parts.length; i++) {
        var part = group.parts[i];
        part.group = group;
        part.index = i;
        part.offset = 0;
        part.inflight = 0;
        part.done = false;
        group.size += part.size;
        if (part.size > MAX_UPLOAD) {
          part.done = true;
          part.failed = true;
        } else {
          prepareQueue.push(part);
        }
      }
      for (i = 0; i < group.parts.length; i++) {
        if (group.parts[i].failed) {
          setState(group, "failed", label("too-large"));
        }
      }
    }
    groups.push(group);
    groupsEl.appendChild(group.el);
    return group;
  }

  function setState(group, state, text) {
    group.state = state;
    group.el.setAttribute("data-state", state);
    group.stateEl.textContent = text === undefined ? label(state) : text;
    if (group.bar) {
      group.bar.className = "progress is-" + state;
    }
  }

  function setBar(bar, fill, fraction) {
    var percent = Math.max(0, Math.min(100, Math.floor(fraction * 100)));
    fill.style.width = percent + "%";
    bar.setAttribute("aria-valuenow", String(percent));
  }

  function groupSent(group) {
    var sent = 0, i, p;
    for (i = 0; i < group.parts.length; i++) {
      p = group.parts[i];
      sent += p.done ? p.size : Math.min(p.size, p.offset + p.inflight);
    }
    return sent;
  }

  function refreshGroup(group) {
    if (!group.bar) {
      return;
    }
    if (group.state === "hashing") {
      setBar(group.bar, group.fill, group.size ? group.hashed / group.size : 0);
    } else if (group.state === "processing") {
      setBar(group.bar, group.fill, 1);
    } else if (group.state === "done") {
      setBar(group.bar, group.fill, 1);
    } else {
      setBar(group.bar, group.fill, group.size ? groupSent(group) / group.size : 0);
    }
    updateOverall();
  }

  function updateOverall() {
    var total = 0, sent = 0, i, active = false;
    for (i = 0; i < groups.length; i++) {
      if (groups[i].bar && !(groups[i].parts.length === 1 && groups[i].parts[0].failed)) {
        total += groups[i].size;
        sent += groupSent(groups[i]);
        if (groups[i].state !== "done" && groups[i].state !== "failed") {
          active = true;
        }
      }
    }
    setBar(overallBar, overallBar.firstChild, total ? sent / total : 0);
    overallText.textContent = label("sent", { sent: formatBytes(sent), total: formatBytes(total) });
    pauseButton.hidden = paused || !active;
    resumeButton.hidden = !paused;
  }

  function showNotice(text, isError) {
    if (!text) {
      notice.hidden = true;
      return;
    }
    notice.textContent = text;
    notice.className = "upload-notice" + (isError ? " is-error" : "");
    notice.hidden = false;
  }

  function groupFinished(group) {
    var i, failed = false;
    for (i = 0; i < group.parts.length; i++) {
      if (!group.parts[i].done) {
        return;
      }
      failed = failed || group.parts[i].failed;
    }
    if (!failed) {
      setState(group, "done");
    }
    refreshGroup(group);
  }

  function showOutcome(part, upload, already) {
    var group = part.group, i, li;
    if (already) {
      li = el("li", "upload-result", label("already"));
      li.setAttribute("data-status", "duplicate");
      group.results.appendChild(li);
    }
    for (i = 0; i < upload.studies.length; i++) {
      var s = upload.studies[i];
      li = el("li", "upload-result");
      li.setAttribute("data-status", s.stored ? "stored" : "duplicate");
      li.setAttribute("data-study", s.study_uid);
      if (group.kind !== "study" || upload.studies.length > 1) { // else the group's title says it
        li.appendChild(el("span", "upload-result-name", studyLabel(s)));
      }
      if (s.stored) {
        li.appendChild(el("span", "status status-stored", label("stored", { n: s.stored })));
      }
      if (s.duplicate) {
        li.appendChild(el("span", "status status-duplicate", label("duplicate", { n: s.duplicate })));
      }
      if (STUDY_URL) {
        var link = el("a", "", label("open"));
        link.href = STUDY_URL.replace("{uid}", encodeURIComponent(s.study_uid));
        li.appendChild(link);
      }
      group.results.appendChild(li);
    }
    for (i = 0; i < upload.problems.length; i++) {
      var p = upload.problems[i];
      li = el("li", "upload-result");
      li.setAttribute("data-status", p.status);
      li.appendChild(el("span", "upload-result-name", p.name));
      li.appendChild(el("span", "status status-" + p.status, label("status-" + p.status)));
      li.appendChild(el("span", "", p.reason));
      group.results.appendChild(li);
    }
  }

  function failPart(part, message, retry) {
    var group = part.group;
    part.failed = true;
    part.done = true;
    setState(group, "failed");
    var box = el("p", "upload-group-error", message);
    if (retry) {
      var button = el("button", "btn", label("retry"));
      button.type = "button";
      button.onclick = function () {
        box.parentNode.removeChild(box);
        part.failed = false;
        part.done = false;
        setState(group, "waiting");
        retry();
      };
      box.appendChild(button);
    }
    group.el.appendChild(box);
    refreshGroup(group);
  }

  // --- Preparing: checksums ------------------------------------------------------------------

  function pumpPrepare() {
    if (preparing || !prepareQueue.length) {
      return;
    }
    preparing = true;
    var part = prepareQueue.shift();
    prepare(part).then(function () {
      if (part.group.state === "hashing") {
        setState(part.group, "waiting");
      }
      uploadQueue.push(part);
      pumpUpload();
    }, function () {
      failPart(part, label("failed"), null);
    }).then(function () {
      preparing = false;
      pumpPrepare();
    });
  }

  function prepare(part, fresh) {
    var group = part.group;
    part.cacheKey = signature(part);
    var cached = fresh ? null : cacheGet(part.cacheKey);
    if (cached && cached.sha256 && (part.kind === "file" || (cached.crcs && cached.crcs.length === part.files.length))) {
      part.sha256 = cached.sha256;
      part.fromCache = true;
      if (part.kind === "zip") {
        part.plan.setCrcs(cached.crcs);
      }
      group.hashed += part.size;
      part.blob = part.kind === "zip" ? part.plan.blob() : part.files[0].file;
      return Promise.resolve();
    }
    if (group.state === "waiting") {
      setState(group, "hashing");
    }
    var onBytes = function (n) {
      group.hashed += n;
      refreshGroup(group);
    };
    var hashing = part.kind === "zip" ? H.hashZip(part.plan, onBytes) : H.hashFile(part.files[0].file, onBytes);
    return hashing.then(function (sha256) {
      part.sha256 = sha256;
      part.fromCache = false;
      part.blob = part.kind === "zip" ? part.plan.blob() : part.files[0].file;
      cachePut(part.cacheKey, { sha256: sha256, crcs: part.kind === "zip" ? part.plan.crcs() : null });
    });
  }

  // --- Uploading -----------------------------------------------------------------------------

  function pumpUpload() {
    if (uploading || paused || !uploadQueue.length) {
      return;
    }
    uploading = true;
    var part = uploadQueue.shift();
    sendPart(part).then(function () {
      uploading = false;
      pumpUpload();
    }, function (error) {
      uploading = false;
      if (error && error.paused) {
        uploadQueue.unshift(part); // resume picks it up again
        return;
      }
      pumpUpload();
    });
  }

  /* An HTTP exchange; resolves {status, body, xhr}; rejects only on network failure. */
  function http(method, url, body, headers, onProgress, timeout) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      currentXhr = xhr;
      xhr.open(method, url, true);
      xhr.setRequestHeader("X-CSRFToken", csrfToken());
      xhr.setRequestHeader("Accept", "application/json");
      for (var name in headers) {
        if (headers.hasOwnProperty(name)) {
          xhr.setRequestHeader(name, headers[name]);
        }
      }
      xhr.timeout = timeout || 60000;
      if (onProgress && xhr.upload) {
        xhr.upload.onprogress = function (event) { onProgress(event.loaded); };
      }
      xhr.onload = function () {
        currentXhr = null;
        var data = null;
        try {
          data = xhr.responseText ? JSON.parse(xhr.responseText) : null;
        } catch (e) {
          data = null;
        }
        resolve({ status: xhr.status, body: data, xhr: xhr });
      };
      xhr.onerror = xhr.ontimeout = function () {
        currentXhr = null;
        reject({ network: true });
      };
      xhr.onabort = function () {
        currentXhr = null;
        reject({ paused: true });
      };
      xhr.send(body === undefined ? null : body);
    });
  }

  function json(method, url, payload) {
    return http(method, url, payload ? JSON.stringify(payload) : undefined,
      payload ? { "Content-Type": "application/json" } : {});
  }

  function wait(ms) {
    return new Promise(function (resolve) {
      var timer = window.setTimeout(done, ms);
      function done() {
        window.clearTimeout(timer);
        wake = null;
        resolve();
      }
      wake = done;
    });
  }

  /* Run an exchange until the network lets it through; HTTP answers are returned as they are. */
  function persist(part, exchange) {
    var attempt = 0, serverErrors = 0;
    function go() {
      if (paused) {
        return Promise.reject({ paused: true });
      }
      return exchange().then(function (response) {
        // 502/503/504 come from a proxy while the server restarts: wait like for a drop.
        // A server that keeps failing (500) is a bug: stop after a few tries.
        if (response.status === 500 && ++serverErrors >= SERVER_ERROR_TRIES) {
          return response;
        }
        if (response.status >= 500 || response.status === 0 || response.status === 429) {
          throw { network: true };
        }
        if (attempt > 0) {
          showNotice("");
        }
        return response;
      })["catch"](function (error) {
        if (!error || !error.network || paused) {
          throw error && error.network ? { paused: true } : error;
        }
        attempt += 1;
        var delay = Math.min(MAX_DELAY, 1000 * Math.pow(2, attempt - 1));
        delay = delay / 2 + Math.random() * delay / 2;
        if (attempt > 1) {
          showNotice(label("offline"), false);
        }
        setState(part.group, "retrying", label("retrying", { s: Math.ceil(delay / 1000) }));
        return wait(delay).then(go);
      });
    }
    return go();
  }

  function refused(part, response, retry) {
    if (response.status === 401 || response.status === 403) {
      showNotice(label("session"), true);
      pause();
      throw { paused: true };
    }
    var detail = response.body && response.body.detail ? response.body.detail : "HTTP " + response.status;
    failPart(part, label("server") + " " + detail, retry);
    throw { failed: true };
  }

  function uploadUrl(part) {
    return API + part.id + "/";
  }

  function sendPart(part) {
    var group = part.group;
    var retry = function () {
      uploadQueue.push(part);
      pumpUpload();
    };
    setState(group, "uploading", label("uploading"));
    return persist(part, function () {
      return json("POST", API, { filename: part.name, size: part.size, sha256: part.sha256, request: REQUEST });
    }).then(function (response) {
      if (response.status !== 200 && response.status !== 201) {
        refused(part, response, retry);
      }
      var resumed = !!part.id; // started earlier on this page (a pause, a refused session)
      part.id = response.body.id;
      part.offset = response.body.offset;
      if (response.body.status === "complete") {
        part.done = true;
        showOutcome(part, response.body, !resumed);
        groupFinished(group);
        return null;
      }
      return sendChunks(part).then(function () { return finish(part); });
    });
  }

  function sendChunks(part) {
    var group = part.group;
    var chunk = part.chunk || FIRST_CHUNK;
    function next() {
      if (part.offset >= part.size) {
        return Promise.resolve();
      }
      if (paused) {
        return Promise.reject({ paused: true });
      }
      setState(group, "uploading", label("uploading"));
      var start = part.offset, end = Math.min(part.size, start + chunk), began = Date.now();
      return persist(part, function () {
        return http("PATCH", uploadUrl(part), part.blob.slice(start, end), {
          "Content-Type": "application/offset+octet-stream",
          "Upload-Offset": String(start)
        }, function (loaded) {
          part.inflight = loaded;
          refreshGroup(group);
        }, 30000 + (end - start) / 8);
      }).then(function (response) {
        part.inflight = 0;
        if (response.status === 204) {
          part.offset = parseInt(response.xhr.getResponseHeader("Upload-Offset"), 10);
          // About SECONDS_PER_CHUNK seconds of the link per chunk: few requests on a fast
          // link, little lost to a drop on a slow one.
          var rate = (end - start) / Math.max(0.05, (Date.now() - began) / 1000);
          chunk = Math.max(MIN_CHUNK, Math.min(MAX_CHUNK, Math.floor(rate * SECONDS_PER_CHUNK / MIN_CHUNK) * MIN_CHUNK));
          part.chunk = chunk;
        } else if (response.status === 409 && response.body && typeof response.body.offset === "number") {
          part.offset = response.body.offset;
        } else {
          refused(part, response, function () { uploadQueue.push(part); pumpUpload(); });
        }
        refreshGroup(group);
        return next();
      }, function (error) {
        part.inflight = 0;
        refreshGroup(group);
        throw error;
      });
    }
    // Where does the server stand? (after a drop, the last chunk may have arrived)
    return persist(part, function () {
      return http("HEAD", uploadUrl(part), undefined, {});
    }).then(function (response) {
      if (response.status === 200) {
        part.offset = parseInt(response.xhr.getResponseHeader("Upload-Offset"), 10) || 0;
      } else {
        refused(part, response, function () { uploadQueue.push(part); pumpUpload(); });
      }
      return next();
    });
  }

  function finish(part) {
    var group = part.group;
    setState(group, "processing");
    refreshGroup(group);
    return persist(part, function () {
      return json("POST", uploadUrl(part) + "finish/");
    }).then(function (response) {
      if (response.status === 409 && response.body && typeof response.body.offset === "number") {
        part.offset = response.body.offset;
        return sendChunks(part).then(function () { return finish(part); });
      }
      if (response.status !== 202) {
        refused(part, response, function () { uploadQueue.push(part); pumpUpload(); });
      }
      return poll(part, response.body);
    });
  }

  function poll(part, upload) {
    var group = part.group;
    if (upload.state === "ingesting" && upload.total) {
      setState(group, "processing", label("processing-n", { done: upload.processed, total: upload.total }));
    }
    if (upload.status === "complete") {
      part.done = true;
      showOutcome(part, upload, false);
      groupFinished(group);
      return Promise.resolve();
    }
    if (upload.status === "failed") {
      cacheDrop(part.cacheKey);
      if (upload.code === "checksum_mismatch" && part.fromCache) {
        // Our remembered checksum was stale: read the files again, once.
        return prepare(part, true).then(function () { return sendPart(part); });
      }
      failPart(part, upload.reason || label("failed"), null);
      return Promise.resolve();
    }
    if (upload.state === "interrupted") {
      failPart(part, label("interrupted") + " " + (upload.reason || ""), function () {
        uploadQueue.push(part);
        pumpUpload();
      });
      return Promise.resolve();
    }
    part.polls = (part.polls || 0) + 1;
    return wait(Math.min(5000, POLL_MS + part.polls * 250)).then(function () {
      return persist(part, function () { return http("GET", uploadUrl(part), undefined, {}); });
    }).then(function (response) {
      if (response.status !== 200) {
        refused(part, response, null);
      }
      return poll(part, response.body);
    });
  }

  // --- Pause, resume, connectivity -------------------------------------------------------------

  function pause() {
    paused = true;
    if (currentXhr) {
      currentXhr.abort();
    }
    for (var i = 0; i < groups.length; i++) {
      var s = groups[i].state;
      if (s === "uploading" || s === "retrying") {
        setState(groups[i], "paused");
      }
    }
    updateOverall();
  }

  function resume() {
    paused = false;
    showNotice("");
    for (var i = 0; i < groups.length; i++) {
      if (groups[i].state === "paused") {
        setState(groups[i], "waiting");
      }
    }
    if (wake) {
      wake();
    }
    updateOverall();
    pumpUpload();
  }

  pauseButton.onclick = pause;
  resumeButton.onclick = resume;

  window.addEventListener("online", function () {
    if (wake) {
      wake(); // try now rather than at the end of the back-off
    }
  });

  window.addEventListener("beforeunload", function (event) {
    var busy = uploading || preparing || uploadQueue.length || prepareQueue.length;
    if (busy && !paused) {
      event.preventDefault();
      event.returnValue = label("leave");
      return label("leave");
    }
    return undefined;
  });

  // --- Choosing and dropping files -------------------------------------------------------------

  function onInput(event) {
    var input = event.target;
    addFiles(fromFileList(input.files));
    input.value = "";
  }

  document.getElementById("upload-files").addEventListener("change", onInput);
  document.getElementById("upload-folder").addEventListener("change", onInput);

  drop.addEventListener("dragover", function (event) {
    event.preventDefault();
    drop.className = "dropzone is-over";
  });
  drop.addEventListener("dragleave", function () {
    drop.className = "dropzone";
  });
  drop.addEventListener("drop", function (event) {
    event.preventDefault();
    drop.className = "dropzone";
    collectFromDrop(event.dataTransfer).then(addFiles);
  });

  root.setAttribute("data-ready", "1"); // tests wait for this
})();

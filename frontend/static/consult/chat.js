/* The consult room chat: the persisted history (resumed by seq after a reconnect), the
 * message box, and file sharing (multipart POST to "consult:room-file" with a progress
 * bar; the server stores the file and announces it to the room as a "chat" of kind file).
 */

function format(template, values) {
  return String(template).replace(/\{(\w+)\}/g, (all, key) => (key in values ? values[key] : all));
}

function timeOf(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function sizeOf(bytes) {
  if (!(bytes >= 0)) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export class Chat {
  /**
   * @param {object} options
   * @param {HTMLOListElement} options.log
   * @param {HTMLFormElement} options.form
   * @param {HTMLFormElement} options.fileForm
   * @param {(text: string) => boolean} options.post  send one chat message
   * @param {string} options.uploadUrl
   * @param {string} options.csrfToken
   * @param {number} options.myUserId
   * @param {object} options.labels
   */
  constructor(options) {
    Object.assign(this, options);
    this.lastSeq = 0;
    this.messages = [];
    this.uploads = 0;
    this.form.addEventListener("submit", (event) => this._submit(event));
    if (this.fileForm) {
      const input = this.fileForm.querySelector("input[type=file]");
      input.addEventListener("change", () => {
        for (const file of input.files) this.upload(file);
        input.value = "";
      });
      this.fileForm.addEventListener("submit", (event) => event.preventDefault());
    }
  }

  setEnabled(on) {
    for (const el of this.form.elements) el.disabled = !on;
    if (this.fileForm) for (const el of this.fileForm.elements) el.disabled = !on;
  }

  /** A "chat" message from the server (live or replayed); duplicates are skipped. */
  add(msg) {
    if (typeof msg.seq !== "number" || msg.seq <= 0) return;
    if (this.messages.some((m) => m.seq === msg.seq)) return;
    this.lastSeq = Math.max(this.lastSeq, msg.seq);
    this.messages.push(msg);
    this.messages.sort((a, b) => a.seq - b.seq);
    const item = this._render(msg);
    const after = [...this.log.children].find((li) => Number(li.dataset.seq) > msg.seq);
    this.log.insertBefore(item, after || null);
    if (!after) this.log.scrollTop = this.log.scrollHeight;
  }

  /** A line from this page itself (joined, left, switched to audio only…), not stored. */
  note(text) {
    const item = document.createElement("li");
    item.className = "chat-note";
    item.textContent = text;
    this.log.appendChild(item);
    this.log.scrollTop = this.log.scrollHeight;
  }

  texts() {
    return this.messages.map((m) => m.text || (m.attachment ? m.attachment.title : ""));
  }

  _render(msg) {
    const item = document.createElement("li");
    item.dataset.seq = String(msg.seq);
    const mine = msg.author && msg.author.user_id === this.myUserId;
    item.className = `chat-msg chat-${msg.kind || "text"}${mine ? " chat-mine" : ""}`;
    const head = document.createElement("div");
    head.className = "chat-head";
    const who = document.createElement("span");
    who.className = "chat-author";
    who.textContent = msg.author ? (mine ? this.labels.you : msg.author.name) : "";
    const when = document.createElement("time");
    when.dateTime = msg.at || "";
    when.textContent = timeOf(msg.at);
    head.append(who, when);
    const body = document.createElement("div");
    body.className = "chat-text";
    const title = msg.attachment ? msg.attachment.title : null;
    body.textContent = msg.text && msg.text !== title ? msg.text : "";
    item.append(head);
    if (body.textContent) item.append(body);
    if (msg.attachment) {
      const link = document.createElement("a");
      link.className = "chat-attachment";
      link.href = msg.attachment.url;
      link.textContent = msg.attachment.title;
      link.setAttribute("download", "");
      const size = document.createElement("span");
      size.className = "muted small";
      size.textContent = ` ${sizeOf(msg.attachment.size)}`;
      const line = document.createElement("div");
      line.append(link, size);
      item.append(line);
    }
    return item;
  }

  _submit(event) {
    event.preventDefault();
    const input = this.form.elements.namedItem("text");
    const text = input.value.trim();
    if (!text) return;
    if (this.post(text)) input.value = "";
  }

  /** Share ``file`` with the room; resolves to true when the server stored it. */
  upload(file) {
    const row = document.createElement("div");
    row.className = "upload-row";
    const label = document.createElement("span");
    label.textContent = format(this.labels.uploading, { name: file.name });
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    row.append(label, bar);
    this.fileForm.appendChild(row);
    this.uploads += 1;
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", this.uploadUrl);
      xhr.setRequestHeader("X-CSRFToken", this.csrfToken);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total);
      });
      const fail = (reason) => {
        row.className += " upload-failed";
        label.textContent = format(this.labels.uploadFailed, { reason });
        bar.remove();
        resolve(false);
      };
      xhr.addEventListener("load", () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          bar.value = 100;
          row.remove();
          try {
            this.add(JSON.parse(xhr.responseText)); // the room hears it too; duplicates are skipped
          } catch (e) {
            // the broadcast brings it
          }
          resolve(true);
          return;
        }
        let reason = xhr.status === 413 ? this.labels.fileTooLarge : `${xhr.status}`;
        try {
          const body = JSON.parse(xhr.responseText);
          if (body && body.message) reason = body.message;
        } catch (e) {
          // not JSON: keep the status
        }
        fail(reason);
      });
      xhr.addEventListener("error", () => fail(this.labels.reconnecting));
      const data = new FormData();
      data.append("file", file, file.name);
      xhr.send(data);
    });
  }
}

export { format };

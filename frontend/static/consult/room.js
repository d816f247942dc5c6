/* The consult room page (consult/room.html): presence, waiting room, video tiles, chat,
 * files and the shared viewer, over the room socket (contract D, docs/protocols.md).
 *
 * The page's configuration is the JSON in #room-config (consult id, socket path, who we
 * are, URLs, the consult's studies, translated labels). window.consultRoom is a small
 * debug and test API: state, stats() (framesDecoded per remote), audioOnly(), mute(),
 * chat(), dropSocket(), leave().
 */

import { Chat, format } from "./chat.js";
import { MediaSession } from "./media.js";
import { Signaling } from "./signaling.js";
import { ViewerSync } from "./viewer-sync.js";

const config = JSON.parse(document.getElementById("room-config").textContent);
const L = config.labels;
const $ = (id) => document.getElementById(id);

function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

const state = {
  connection: "connecting",
  welcomed: false,
  admitted: false,
  me: { user_id: config.me.userId, role: config.me.role, peer: `u${config.me.userId}`, name: config.me.name },
  consult: null,
  participants: new Map(),
  recording: false,
  closed: false,
  errors: [],
  reconnects: 0,
};

// --- Status line --------------------------------------------------------------------------

function setStatus(text, kind = "info") {
  const el = $("room-status");
  el.textContent = text;
  el.dataset.kind = kind;
}

function showMediaNote(key, values = {}) {
  const el = $("media-note");
  if (!key) {
    el.hidden = true;
    return;
  }
  el.textContent = format(L[key] || key, values);
  el.hidden = false;
}

// --- Socket -------------------------------------------------------------------------------

const signaling = new Signaling(config.wsPath, {
  onMessage: (msg) => handle(msg),
  onState: (connection, info) => {
    state.connection = connection;
    if (connection === "open") {
      setStatus(L.connected, "ok");
      if (info.reconnected) state.reconnects += 1;
    } else if (connection === "reconnecting") {
      setStatus(L.reconnecting, "warn");
    } else if (connection === "closed" && !state.leaving) {
      closeRoom();
    } else if (connection === "connecting") {
      setStatus(L.connecting);
    }
    chat.setEnabled(connection === "open" && state.admitted);
  },
});

// --- Media --------------------------------------------------------------------------------

const media = new MediaSession({
  send: (msg) => signaling.send(msg),
  nextRef: (prefix) => signaling.nextRef(prefix),
  onRemoteStream: (peer, stream) => attachRemote(peer, stream),
  expectsVideo: (peer) => {
    const p = [...state.participants.values()].find((x) => x.peer === peer);
    return !!p && p.online && p.publishing && !p.audio_only;
  },
  onChange: (change) => {
    signaling.send({ type: "media.state", audio_only: change.audio_only, muted: change.muted });
    renderControls();
    renderLocalTile();
  },
  onNote: (kind) => {
    if (kind === "mediaConnected") showMediaNote(media.autoAudioOnly ? "autoAudioOnly" : null);
    else if (kind === "autoAudioOnly") {
      showMediaNote("autoAudioOnly");
      chat.note(L.autoAudioOnly);
    } else showMediaNote(kind);
  },
});

// --- Chat ---------------------------------------------------------------------------------

const chat = new Chat({
  log: $("chat-log"),
  form: $("chat-form"),
  fileForm: $("file-form"),
  post: (text) => signaling.send({ type: "chat", text, ref: signaling.nextRef("chat") }),
  uploadUrl: config.urls.file,
  csrfToken: csrfToken(),
  myUserId: config.me.userId,
  labels: L,
});
chat.setEnabled(false);

// --- Viewer ---------------------------------------------------------------------------------

const viewer = config.studies.length
  ? new ViewerSync({
      mount: $("viewer"),
      studies: config.studies,
      send: (msg) => state.admitted && signaling.send(msg),
      onStatus: (key) => {
        const el = $("viewer-status");
        if (el) el.textContent = L[key] || "";
      },
      labels: L,
      csrfToken: csrfToken(),
    })
  : null;

for (const button of document.querySelectorAll("[data-study-uid]")) {
  button.addEventListener("click", () => viewer && viewer.open(button.getAttribute("data-study-uid")));
}

// --- Presence and tiles ---------------------------------------------------------------------

function publishers() {
  return [...state.participants.values()]
    .filter((p) => p.online && p.publishing && p.peer !== state.me.peer)
    .map((p) => p.peer);
}

function updateParticipants(list) {
  const before = new Map(state.participants);
  state.participants = new Map(list.map((p) => [p.user_id, p]));
  for (const p of list) {
    const old = before.get(p.user_id);
    if (p.user_id === state.me.user_id) continue;
    if (old && old.online !== p.online && state.admitted) {
      chat.note(format(p.online ? L.joined : L.left, { name: p.name }));
    }
  }
  renderPresence();
  renderTiles();
  if (!state.admitted) return;
  for (const peer of publishers()) media.subscribe(peer);
  for (const peer of media.subs.keys()) {
    if (!publishers().includes(peer)) media.unsubscribe(peer);
  }
}

function renderPresence() {
  const list = $("presence");
  list.textContent = "";
  for (const p of state.participants.values()) {
    const item = document.createElement("li");
    item.className = `presence-item ${p.online ? "is-online" : "is-offline"}`;
    item.dataset.userId = String(p.user_id);
    const dot = document.createElement("span");
    dot.className = "presence-dot";
    dot.setAttribute("aria-hidden", "true");
    const name = document.createElement("span");
    name.className = "presence-name";
    name.textContent = p.user_id === state.me.user_id ? `${p.name} (${L.you})` : p.name;
    const role = document.createElement("span");
    role.className = "presence-role muted small";
    const bits = [L[p.role] || p.role, p.online ? L.online : L.offline];
    if (!p.admitted) bits.push(L.waiting);
    if (p.audio_only) bits.push(L.audioOnly);
    if (p.muted) bits.push(L.muted);
    role.textContent = bits.join(" · ");
    item.append(dot, name, role);
    if (config.isExpert && !p.admitted && p.online && p.user_id !== state.me.user_id) {
      const admit = document.createElement("button");
      admit.type = "button";
      admit.className = "btn btn-primary btn-admit";
      admit.textContent = L.admit;
      admit.dataset.admit = String(p.user_id);
      admit.addEventListener("click", () => {
        admit.disabled = true;
        signaling.send({ type: "admit", user_id: p.user_id, ref: signaling.nextRef("admit") });
      });
      item.append(admit);
    }
    list.appendChild(item);
  }
}

function tileFor(peer, name) {
  let tile = document.querySelector(`.tile[data-peer="${peer}"]`);
  if (tile) return tile;
  tile = document.createElement("figure");
  tile.className = "tile tile-remote";
  tile.dataset.peer = peer;
  const video = document.createElement("video");
  video.autoplay = true;
  video.playsInline = true;
  const caption = document.createElement("figcaption");
  const label = document.createElement("span");
  label.className = "tile-name";
  label.textContent = name;
  const badges = document.createElement("span");
  badges.className = "tile-badges";
  caption.append(label, badges);
  const empty = document.createElement("div");
  empty.className = "tile-empty";
  empty.textContent = L.noVideo;
  tile.append(video, empty, caption);
  $("tiles").appendChild(tile);
  return tile;
}

function renderTiles() {
  const remotes = [...state.participants.values()].filter(
    (p) => p.user_id !== state.me.user_id && p.online && p.admitted,
  );
  const wanted = new Set(remotes.map((p) => p.peer));
  for (const tile of document.querySelectorAll(".tile-remote")) {
    if (!wanted.has(tile.dataset.peer)) tile.remove();
  }
  for (const p of remotes) {
    const tile = tileFor(p.peer, p.name);
    tile.querySelector(".tile-name").textContent = p.name;
    tile.classList.toggle("is-audio-only", !!p.audio_only);
    const badges = [];
    if (p.audio_only) badges.push(L.audioOnly);
    if (p.muted) badges.push(L.muted);
    tile.querySelector(".tile-badges").textContent = badges.join(" · ");
  }
  $("tiles").dataset.count = String(remotes.length + 1);
}

function attachRemote(peer, stream) {
  const p = [...state.participants.values()].find((x) => x.peer === peer);
  const tile = tileFor(peer, p ? p.name : peer);
  const video = tile.querySelector("video");
  if (video.srcObject !== stream) video.srcObject = stream;
  tile.classList.toggle("has-video", !!stream);
  if (stream) {
    video.play().catch(() => {
      // autoplay with sound refused: play muted, one click brings the sound back
      video.muted = true;
      video.play().catch(() => {});
      tile.classList.add("needs-click");
      tile.addEventListener("click", () => {
        video.muted = false;
        tile.classList.remove("needs-click");
      }, { once: true });
    });
  }
}

function renderLocalTile() {
  const tile = $("tile-local");
  const video = tile.querySelector("video");
  if (media.local && video.srcObject !== media.local) video.srcObject = media.local;
  tile.classList.toggle("has-video", !!(media.local && media.local.getVideoTracks().length));
  tile.classList.toggle("is-audio-only", media.audioOnly || media.cameraOff);
  const badges = [];
  if (media.audioOnly) badges.push(L.audioOnly);
  if (media.muted) badges.push(L.muted);
  tile.querySelector(".tile-badges").textContent = badges.join(" · ");
}

function renderControls() {
  const set = (id, pressed, onLabel, offLabel) => {
    const button = $(id);
    button.setAttribute("aria-pressed", pressed ? "true" : "false");
    button.textContent = pressed ? onLabel : offLabel;
  };
  set("btn-mute", media.muted, L.unmute, L.mute);
  set("btn-camera", media.cameraOff, L.cameraOn, L.cameraOff);
  set("btn-audio-only", media.audioOnly, L.audioOnlyOff, L.audioOnlyOn);
}

// --- Entering, leaving --------------------------------------------------------------------

function showWaiting() {
  $("waiting").hidden = false;
  $("room-main").hidden = true;
  media.openLocal().then(() => {
    const preview = $("waiting-preview");
    if (media.local && preview) preview.srcObject = media.local;
  });
}

async function enterRoom() {
  state.admitted = true;
  $("waiting").hidden = true;
  $("room-main").hidden = false;
  $("chat-card").hidden = false;
  chat.setEnabled(state.connection === "open");
  signaling.send({ type: "resume", after_seq: chat.lastSeq });
  await media.start();
  renderLocalTile();
  renderControls();
  signaling.send({ type: "media.state", audio_only: media.audioOnly, muted: media.muted });
  for (const peer of publishers()) media.subscribe(peer);
}

function closeRoom(reason) {
  if (state.closed) return;
  state.closed = true;
  media.close();
  setStatus(L.closed, "warn");
  $("closed").hidden = false;
  if (reason) $("closed-reason").textContent = reason;
  $("room-main").hidden = true;
  $("waiting").hidden = true;
  chat.setEnabled(false);
}

function leave() {
  state.leaving = true;
  signaling.send({ type: "media.leave" });
  media.close();
  signaling.close();
  window.location.assign(config.urls.leave);
}

// --- Messages from the server ----------------------------------------------------------------

function handle(msg) {
  switch (msg.type) {
    case "welcome": {
      const again = state.welcomed;
      state.welcomed = true;
      state.me = { ...state.me, ...msg.you };
      state.consult = msg.consult;
      state.recording = !!msg.recording;
      media.configure({ iceServers: msg.ice_servers, videoMaxKbps: msg.video_max_kbps });
      updateParticipants(msg.participants || []);
      $("recording-note").hidden = !state.recording;
      if (msg.you && msg.you.admitted) {
        if (!state.admitted) enterRoom();
        else {
          signaling.send({ type: "resume", after_seq: chat.lastSeq });
          signaling.send({ type: "media.state", audio_only: media.audioOnly, muted: media.muted });
          if (again) media.resync(publishers());
        }
      } else {
        showWaiting();
      }
      break;
    }
    case "presence":
      updateParticipants(msg.participants || []);
      break;
    case "admitted":
      if (msg.user_id === state.me.user_id && !state.admitted) enterRoom();
      else {
        const p = state.participants.get(msg.user_id);
        if (p) {
          p.admitted = true;
          chat.note(format(L.admitted, { name: p.name }));
          renderPresence();
          renderTiles();
        }
      }
      break;
    case "chat":
      chat.add(msg);
      break;
    case "media.answer":
      media.handleAnswer(msg.sdp, msg.ref);
      break;
    case "media.subscribed":
      media.handleSubscribed(msg.source, msg.sdp, msg.ref);
      break;
    case "media.published":
      // A working subscription carries on: the media service feeds it from the new publish.
      if (msg.peer !== state.me.peer && state.admitted) media.subscribe(msg.peer);
      break;
    case "media.left":
      media.unsubscribe(msg.peer);
      break;
    case "viewer.state":
      if (viewer) viewer.applyRemote(msg.state);
      break;
    case "error":
      state.errors.push({ code: msg.code, message: msg.message, ref: msg.ref || null });
      if (state.errors.length > 50) state.errors.shift();
      if (msg.ref && media.handleError(msg.ref, msg.code)) break;
      if (msg.code === "not_admitted" && !state.admitted) break;
      setStatus(`${L.error}: ${msg.message}`, "error");
      break;
    case "closed":
      closeRoom(msg.message || msg.reason);
      break;
    default:
      break;
  }
}

// --- Controls -----------------------------------------------------------------------------

$("btn-mute").addEventListener("click", () => media.setMuted(!media.muted));
$("btn-camera").addEventListener("click", () => media.setCameraOff(!media.cameraOff));
$("btn-audio-only").addEventListener("click", () => {
  media.setAudioOnly(!media.audioOnly);
  showMediaNote(null);
});
$("btn-leave").addEventListener("click", leave);
window.addEventListener("pagehide", () => {
  if (!state.leaving) signaling.send({ type: "media.leave" });
});

// --- The debug and test API ---------------------------------------------------------------------

window.consultRoom = {
  get state() {
    return {
      connection: state.connection,
      welcomed: state.welcomed,
      admitted: state.admitted,
      closed: state.closed,
      me: { ...state.me },
      consult: state.consult,
      participants: [...state.participants.values()].map((p) => ({ ...p })),
      publishers: publishers(),
      lastSeq: chat.lastSeq,
      chat: chat.texts(),
      errors: state.errors.slice(),
      socketReconnects: state.reconnects,
      rttMs: signaling.rtt,
      media: media.snapshot(),
      viewer: viewer ? { studyUid: viewer.studyUid, ...viewer.counts } : null,
    };
  },
  stats: () => media.stats(),
  audioOnly: (on = true) => media.setAudioOnly(on),
  mute: (on = true) => media.setMuted(on),
  cameraOff: (on = true) => media.setCameraOff(on),
  chat: (text) => signaling.send({ type: "chat", text, ref: signaling.nextRef("chat") }),
  admit: (userId) => signaling.send({ type: "admit", user_id: userId }),
  dropSocket: () => signaling.drop(),
  tuning: media.tuning,
  viewerState: () => (viewer ? viewer.getState() : null),
  openStudy: (uid) => (viewer ? viewer.open(uid) : null),
  leave,
};

renderControls();
signaling.connect();

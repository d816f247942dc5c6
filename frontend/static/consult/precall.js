/* The pre-call check (consult/precall.html): camera, microphone, TURN reachability, and
 * connectivity and upload bandwidth to the media service, each line ending in a clear
 * pass/fail in the user's language.
 *
 * - camera and microphone: getUserMedia (640x360, like the room), a preview and a level
 *   meter; the microphone passes once it hears something (5 s at most);
 * - TURN: a relay-only RTCPeerConnection (iceTransportPolicy "relay") with the ICE
 *   servers the room would get (GET precall-ice); passes when a relay candidate is
 *   gathered. No TURN configured is said plainly, not failed;
 * - media service and bandwidth: the room's own publishing connection (audio first,
 *   VP8/Opus, capped at the institution's video limit) is offered to the media service
 *   through POST precall-offer (a room of its own); connected within 10 s passes, then after
 *   5 s of sending, the upload rate is the browser's estimate of the link
 *   (availableOutgoingBitrate) or what was sent, whichever is higher (150 kbit/s or more
 *   carries video). The test stream is ended with POST precall-leave.
 * window.precall exposes {results, done} for tests.
 */

import {
  availableOutgoing,
  capVideo,
  gatheringDone,
  openCameraAndMicrophone,
  publishingConnection,
} from "./media.js";

const config = JSON.parse(document.getElementById("precall-config").textContent);
const L = config.labels;
const CONNECT_MS = 10000;
const MEASURE_MS = 5000;
const MIC_LISTEN_MS = 5000;
const RELAY_MS = 8000;
const MIN_VIDEO_KBPS = 150;

const format = (text, values) => String(text).replace(/\{(\w+)\}/g, (all, k) => (k in values ? values[k] : all));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

const results = {};

function report(check, result, message) {
  results[check] = { result, message };
  const row = document.querySelector(`[data-check="${check}"]`);
  row.dataset.result = result;
  row.querySelector(".check-mark").textContent = L[result] || result;
  row.querySelector(".check-message").textContent = message;
}

// --- Camera and microphone ---------------------------------------------------------------------

async function checkCamera(stream) {
  const track = stream ? stream.getVideoTracks()[0] : null;
  if (!track || track.readyState !== "live") {
    report("camera", "fail", L.cameraFail);
    return;
  }
  const video = document.getElementById("precall-preview");
  video.srcObject = stream;
  const deadline = Date.now() + 3000;
  while (!video.videoWidth && Date.now() < deadline) await sleep(100);
  const { width, height } = track.getSettings();
  const w = video.videoWidth || width;
  const h = video.videoHeight || height;
  if (w && h) report("camera", "pass", format(L.cameraOk, { width: w, height: h }));
  else report("camera", "fail", L.cameraFail);
}

let levelOf = null;

/** The microphone's RMS level (0..1), read on demand; also drives the meter. */
function microphoneLevel(track) {
  if (levelOf) return levelOf;
  const meter = document.getElementById("mic-level");
  const context = new AudioContext();
  const source = context.createMediaStreamSource(new MediaStream([track]));
  const analyser = context.createAnalyser();
  analyser.fftSize = 1024;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  levelOf = () => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    return Math.sqrt(sum / samples.length);
  };
  setInterval(() => {
    meter.value = Math.min(1, levelOf() * 4);
  }, 100);
  if (context.state === "suspended") context.resume().catch(() => {});
  return levelOf;
}

async function checkMicrophone(stream) {
  const track = stream ? stream.getAudioTracks()[0] : null;
  if (!track) {
    report("microphone", "fail", L.micFail);
    return;
  }
  const level = microphoneLevel(track);
  let peak = 0;
  const deadline = Date.now() + MIC_LISTEN_MS;
  while (Date.now() < deadline) {
    peak = Math.max(peak, level());
    if (peak > 0.01) break;
    await sleep(50);
  }
  if (peak > 0.01) report("microphone", "pass", L.micOk);
  else report("microphone", "info", L.micSilent);
}

// --- TURN --------------------------------------------------------------------------------------

function relayProtocol(candidate, servers) {
  const text = candidate.candidate || "";
  const url = servers.flatMap((s) => [].concat(s.urls)).find(Boolean) || "";
  if (/turns:/.test(url) && /tcp/i.test(candidate.relayProtocol || "")) return "TLS";
  return (candidate.relayProtocol || (/ udp /i.test(text) ? "udp" : "tcp")).toUpperCase();
}

async function checkTurn(ice) {
  if (!ice || !ice.turn_configured) {
    report("turn", "info", L.turnNone);
    return;
  }
  const pc = new RTCPeerConnection({ iceServers: ice.ice_servers, iceTransportPolicy: "relay" });
  let relay = null;
  pc.addEventListener("icecandidate", (event) => {
    if (event.candidate && / typ relay /.test(event.candidate.candidate) && !relay) relay = event.candidate;
  });
  pc.createDataChannel("precall");
  await pc.setLocalDescription(await pc.createOffer());
  const deadline = Date.now() + RELAY_MS;
  while (!relay && pc.iceGatheringState !== "complete" && Date.now() < deadline) await sleep(100);
  pc.close();
  if (relay) report("turn", "pass", format(L.turnOk, { protocol: relayProtocol(relay, ice.ice_servers) }));
  else report("turn", "fail", L.turnFail);
}

// --- Media service and bandwidth ---------------------------------------------------------------

async function post(url, body) {
  return fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), Accept: "application/json" },
    body: body === undefined ? "{}" : JSON.stringify(body),
  });
}

function leaveMediaService() {
  post(config.urls.leave).catch(() => {});
}

async function bytesSent(pc) {
  let total = 0;
  const stats = await pc.getStats();
  stats.forEach((s) => {
    if (s.type === "outbound-rtp") total += s.bytesSent || 0;
  });
  return total;
}

async function checkMediaService(stream, ice) {
  const kbpsCap = (ice && ice.video_max_kbps) || 400;
  const { pc, video } = publishingConnection(
    { iceServers: (ice && ice.ice_servers) || [], bundlePolicy: "max-bundle" },
    stream,
    { videoMaxKbps: kbpsCap, sendVideo: true },
  );
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringDone(pc);
    const response = await post(config.urls.offer, { type: "offer", sdp: pc.localDescription.sdp });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok || !answer.sdp) {
      report("media", "fail", answer.message ? `${L.mediaFail} (${answer.message})` : L.mediaFail);
      report("bandwidth", "fail", L.bandwidthFail);
      return;
    }
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    await capVideo(video.sender, kbpsCap);
    const deadline = Date.now() + CONNECT_MS;
    while (pc.connectionState !== "connected" && Date.now() < deadline) {
      if (pc.connectionState === "failed") break;
      await sleep(100);
    }
    if (pc.connectionState !== "connected") {
      report("media", "fail", L.mediaFail);
      report("bandwidth", "fail", L.bandwidthFail);
      return;
    }
    report("media", "pass", L.mediaOk);
    const first = await bytesSent(pc);
    const started = performance.now();
    await sleep(MEASURE_MS);
    const sent = (await bytesSent(pc)) - first;
    const seconds = (performance.now() - started) / 1000;
    const sentKbps = Math.round((sent * 8) / 1000 / seconds);
    // What was sent is limited by the picture too (a still image needs little); the
    // browser's own estimate of the link is the better measure when it has one.
    const estimate = availableOutgoing(await pc.getStats());
    const kbps = estimate ? Math.max(sentKbps, Math.round(estimate / 1000)) : sentKbps;
    results.kbps = kbps;
    results.sentKbps = sentKbps;
    if (kbps <= 0) report("bandwidth", "fail", L.bandwidthFail);
    else if (kbps < MIN_VIDEO_KBPS) report("bandwidth", "fail", format(L.bandwidthLow, { kbps }));
    else report("bandwidth", "pass", format(L.bandwidthOk, { kbps }));
  } catch (e) {
    report("media", "fail", L.mediaFail);
    if (!results.bandwidth || results.bandwidth.result === "running") report("bandwidth", "fail", L.bandwidthFail);
  } finally {
    pc.close();
    leaveMediaService();
  }
}

// --- Running it ------------------------------------------------------------------------------

async function fetchIce() {
  try {
    const response = await fetch(config.urls.ice, { credentials: "same-origin", headers: { Accept: "application/json" } });
    return response.ok ? await response.json() : null;
  } catch (e) {
    return null;
  }
}

let stream = null;

async function run() {
  const again = document.getElementById("precall-again");
  again.disabled = true;
  for (const row of document.querySelectorAll("[data-check]")) {
    report(row.dataset.check, "running", "");
  }
  document.getElementById("precall-summary").textContent = "";
  if (!stream) stream = await openCameraAndMicrophone().catch(() => null);
  const ice = await fetchIce();
  await Promise.all([
    checkCamera(stream),
    checkMicrophone(stream),
    checkTurn(ice),
    checkMediaService(stream, ice),
  ]);
  const failed = Object.entries(results).some(([key, r]) => key !== "kbps" && r.result === "fail");
  document.getElementById("precall-summary").textContent = failed ? L.someFail : L.allOk;
  results.ok = !failed;
  again.disabled = false;
  return results;
}

window.addEventListener("pagehide", () => {
  const form = new FormData();
  form.append("csrfmiddlewaretoken", csrfToken());
  if (navigator.sendBeacon) navigator.sendBeacon(config.urls.leave, form);
});
document.getElementById("precall-again").addEventListener("click", () => {
  window.precall.done = run();
});
window.precall = { results, done: run() };

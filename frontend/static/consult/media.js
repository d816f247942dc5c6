/* Media of the consult room: what this browser sends to the media service and receives.
 *
 * Contract D (docs/protocols.md): one sendonly RTCPeerConnection publishes our audio and
 * video ("media.publish" -> "media.answer"); one recvonly RTCPeerConnection per remote
 * publisher receives theirs ("media.subscribe" -> "media.subscribed"). The offers are sent
 * whole, after ICE gathering (the protocol carries no trickled candidates).
 *
 * For weak clinic links:
 * - audio goes first: its transceiver is added first with priority "high", and the video
 *   sender is capped at the institution's video_max_kbps; 640x360 from the camera;
 * - VP8 and Opus only (what the media service forwards without re-encoding);
 * - audio only by hand, or by itself when getStats says the link cannot carry video for
 *   more than 5 s: the selected candidate pair's availableOutgoingBitrate under 150 kbit/s,
 *   or outbound video limited by "bandwidth" with the picture already scaled below 180
 *   lines (a browser that merely scaled 360p down to 180p still makes a useful picture).
 *   The video sender then sends nothing (replaceTrack(null)) and the others are told
 *   with "media.state";
 * - a peer connection that fails, or stays "disconnected" for more than 3 s, or does not
 *   connect within 15 s, is replaced by a new one (publish or subscribe again); aiortc
 *   has no ICE restart, and a new connection is what recovers from a network cut.
 * ICE servers are the explicit list from "welcome" (never a browser default).
 */

const GATHER_TIMEOUT_MS = 3000;
const DISCONNECTED_GRACE_MS = 3000;
const CONNECT_TIMEOUT_MS = 15000;
const ANSWER_TIMEOUT_MS = 10000;
const STATS_EVERY_MS = 1000;
const RETRY_MS = [300, 1000, 2000, 4000, 5000];
const VIDEO_STALL_MS = 5000;

export const VIDEO_CONSTRAINTS = {
  width: { ideal: 640, max: 640 },
  height: { ideal: 360, max: 360 },
  frameRate: { ideal: 15, max: 30 },
};
export const AUDIO_CONSTRAINTS = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

/** Offer only ``mime`` (e.g. "video/vp8") on ``transceiver``, where the browser allows it. */
export function preferCodec(transceiver, kind, mime) {
  if (!transceiver.setCodecPreferences) return;
  const sources = [window.RTCRtpSender, window.RTCRtpReceiver];
  for (const source of sources) {
    const caps = source && source.getCapabilities ? source.getCapabilities(kind) : null;
    const codecs = caps ? caps.codecs.filter((c) => c.mimeType.toLowerCase() === mime) : [];
    if (!codecs.length) continue;
    try {
      transceiver.setCodecPreferences(codecs);
      return;
    } catch (e) {
      // this browser checks the list against the other capability set: try it
    }
  }
}

/** Resolve once ICE gathering is complete, or after ``timeoutMs`` with what there is. */
export function gatheringDone(pc, timeoutMs = GATHER_TIMEOUT_MS) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, timeoutMs);
    function check() {
      if (pc.iceGatheringState === "complete") done();
    }
    function done() {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/** Open the camera (640x360) and microphone; falls back to the microphone alone. */
export async function openCameraAndMicrophone() {
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: AUDIO_CONSTRAINTS, video: VIDEO_CONSTRAINTS });
  } catch (e) {
    return navigator.mediaDevices.getUserMedia({ audio: AUDIO_CONSTRAINTS, video: false });
  }
}

/** Build a sendonly publishing connection for ``stream`` (audio first, VP8/Opus, capped). */
export function publishingConnection(config, stream, { videoMaxKbps, sendVideo }) {
  const pc = new RTCPeerConnection(config);
  const audioTrack = stream ? stream.getAudioTracks()[0] : null;
  const videoTrack = stream ? stream.getVideoTracks()[0] : null;
  const streams = stream ? [stream] : [];
  const audio = pc.addTransceiver(audioTrack || "audio", {
    direction: "sendonly",
    streams,
    sendEncodings: [{ priority: "high", networkPriority: "high" }],
  });
  preferCodec(audio, "audio", "audio/opus");
  const video = pc.addTransceiver(videoTrack && sendVideo ? videoTrack : "video", {
    direction: "sendonly",
    streams,
    sendEncodings: [{ maxBitrate: videoMaxKbps * 1000, priority: "low", networkPriority: "low" }],
  });
  preferCodec(video, "video", "video/vp8");
  return { pc, audio, video };
}

/** Make sure the video sender keeps the cap (some browsers drop sendEncodings on negotiation). */
export async function capVideo(sender, videoMaxKbps) {
  try {
    const params = sender.getParameters();
    if (!params.encodings || !params.encodings.length) params.encodings = [{}];
    params.encodings[0].maxBitrate = videoMaxKbps * 1000;
    await sender.setParameters(params);
  } catch (e) {
    // the offer's sendEncodings already carry the cap
  }
}

/** The selected candidate pair's available outgoing bitrate (bit/s), or null. */
export function availableOutgoing(report) {
  let pairId = null;
  report.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
  });
  let value = null;
  report.forEach((s) => {
    if (s.type !== "candidate-pair" || typeof s.availableOutgoingBitrate !== "number") return;
    if (pairId ? s.id === pairId : s.nominated && s.state === "succeeded") value = s.availableOutgoingBitrate;
  });
  return value;
}

export class MediaSession {
  /**
   * @param {object} options
   * @param {(msg: object) => boolean} options.send  send a room message
   * @param {() => string} options.nextRef
   * @param {(peer: string, stream: MediaStream|null) => void} options.onRemoteStream
   * @param {(change: object) => void} options.onChange  local media state changed (tell the room)
   * @param {(kind: string, detail?: object) => void} options.onNote  something to tell the user
   */
  constructor(options) {
    this.send = options.send;
    this.nextRef = options.nextRef;
    this.onRemoteStream = options.onRemoteStream;
    this.onChange = options.onChange;
    this.onNote = options.onNote;
    // Whether ``peer`` should be sending us video now (not audio only): stall detection.
    this.expectsVideo = options.expectsVideo || (() => true);
    this.iceServers = [];
    this.videoMaxKbps = 400;
    this.local = null;
    this.pub = null;
    this.subs = new Map();
    this.muted = false;
    this.cameraOff = false;
    this.audioOnly = false;
    this.autoAudioOnly = false;
    this.closed = false;
    this.started = false;
    this.counts = { publish: 0, subscribe: 0, replaced: 0, stalled: 0 };
    // Thresholds of the automatic audio-only switch (tests may tighten them).
    this.tuning = { minVideoBps: 150000, minVideoHeight: 180, weakForMs: 5000 };
    this.weakSince = null;
    this.statsTimer = null;
  }

  configure({ iceServers, videoMaxKbps }) {
    this.iceServers = Array.isArray(iceServers) ? iceServers : [];
    if (videoMaxKbps > 0) this.videoMaxKbps = videoMaxKbps;
  }

  rtcConfig() {
    return { iceServers: this.iceServers, bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" };
  }

  /** Open camera and microphone once (also used for the waiting-room preview). */
  async openLocal() {
    if (this.local) return this.local;
    if (!this._opening) {
      this._opening = openCameraAndMicrophone()
        .then((stream) => {
          this.local = stream;
          if (!stream.getVideoTracks().length) this.audioOnly = true;
          return stream;
        })
        .catch((e) => {
          this.onNote("noCamera", { error: String(e && e.name) });
          return null;
        });
    }
    return this._opening;
  }

  /** Begin publishing and watching the link (after admission). */
  async start() {
    if (this.started || this.closed) return;
    this.started = true;
    await this.openLocal();
    this._applyTrackSwitches();
    this.publish();
    this.statsTimer = setInterval(() => {
      this._watchLink();
      this._watchSubscriptions();
    }, STATS_EVERY_MS);
  }

  // --- Publishing ----------------------------------------------------------------------------

  async publish() {
    if (this.closed || !this.started) return;
    if (this.pub && this.pub.awaiting) {
      this.pub.again = true; // one offer in flight at a time: publish again after its answer
      return;
    }
    const old = this.pub;
    this.pub = null;
    if (old) this._closeConnection(old);
    const sendVideo = !this.audioOnly && !this.cameraOff;
    const entry = publishingConnection(this.rtcConfig(), this.local, {
      videoMaxKbps: this.videoMaxKbps,
      sendVideo,
    });
    entry.kind = "publish";
    entry.awaiting = true;
    entry.attempt = old ? old.attempt : 0;
    this.pub = entry;
    this._watchConnection(entry, () => this._replacePublish(entry));
    try {
      await entry.pc.setLocalDescription(await entry.pc.createOffer());
      await gatheringDone(entry.pc);
    } catch (e) {
      entry.awaiting = false;
      this._replacePublish(entry);
      return;
    }
    if (this.pub !== entry) return;
    entry.ref = this.nextRef("pub");
    this.counts.publish += 1;
    if (!this.send({ type: "media.publish", sdp: entry.pc.localDescription.sdp, ref: entry.ref })) {
      entry.awaiting = false; // the socket is down: resync() publishes again when it is back
      return;
    }
    entry.answerTimer = setTimeout(() => {
      if (this.pub === entry && entry.awaiting) {
        entry.awaiting = false;
        this._replacePublish(entry);
      }
    }, ANSWER_TIMEOUT_MS);
  }

  async handleAnswer(sdp, ref) {
    const entry = this.pub;
    if (!entry || !entry.awaiting || (ref && ref !== entry.ref)) return; // a stale answer
    entry.awaiting = false;
    clearTimeout(entry.answerTimer);
    if (entry.again) {
      entry.again = false;
      this.publish();
      return;
    }
    try {
      await entry.pc.setRemoteDescription({ type: "answer", sdp });
      await capVideo(entry.video.sender, this.videoMaxKbps);
    } catch (e) {
      this._replacePublish(entry);
    }
  }

  _replacePublish(entry) {
    if (this.closed || this.pub !== entry || entry.replacing) return;
    entry.replacing = true;
    this.counts.replaced += 1;
    this.onNote("mediaReconnecting");
    const delay = RETRY_MS[Math.min(entry.attempt, RETRY_MS.length - 1)];
    setTimeout(() => {
      if (this.pub !== entry) return;
      entry.attempt += 1;
      entry.awaiting = false;
      this.publish();
    }, delay);
  }

  // --- Subscribing ----------------------------------------------------------------------------

  /** Receive ``peer``'s tracks; ``fresh`` replaces a working subscription (they re-published). */
  async subscribe(peer, { fresh = false } = {}) {
    if (this.closed) return;
    const old = this.subs.get(peer);
    if (old && !fresh && !old.failed) return;
    if (old && old.awaiting) {
      old.again = true;
      return;
    }
    if (old) this._closeConnection(old);
    const pc = new RTCPeerConnection(this.rtcConfig());
    const audio = pc.addTransceiver("audio", { direction: "recvonly" });
    const video = pc.addTransceiver("video", { direction: "recvonly" });
    preferCodec(audio, "audio", "audio/opus");
    preferCodec(video, "video", "video/vp8");
    const stream = new MediaStream();
    const entry = { kind: "subscribe", peer, pc, audio, video, stream, awaiting: true, attempt: old ? old.attempt : 0 };
    this.subs.set(peer, entry);
    pc.addEventListener("track", (event) => {
      stream.addTrack(event.track);
      this.onRemoteStream(peer, stream);
    });
    this._watchConnection(entry, () => this._replaceSubscribe(entry));
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await gatheringDone(pc);
    } catch (e) {
      entry.awaiting = false;
      this._replaceSubscribe(entry);
      return;
    }
    if (this.subs.get(peer) !== entry) return;
    entry.ref = this.nextRef("sub");
    this.counts.subscribe += 1;
    if (!this.send({ type: "media.subscribe", source: peer, sdp: pc.localDescription.sdp, ref: entry.ref })) {
      entry.awaiting = false;
      entry.failed = true;
      return;
    }
    entry.answerTimer = setTimeout(() => {
      if (this.subs.get(peer) === entry && entry.awaiting) {
        entry.awaiting = false;
        this._replaceSubscribe(entry);
      }
    }, ANSWER_TIMEOUT_MS);
  }

  async handleSubscribed(peer, sdp, ref) {
    const entry = this.subs.get(peer);
    if (!entry || !entry.awaiting || (ref && ref !== entry.ref)) return; // a stale answer
    entry.awaiting = false;
    clearTimeout(entry.answerTimer);
    if (entry.again) {
      entry.again = false;
      this.subscribe(peer, { fresh: true });
      return;
    }
    try {
      await entry.pc.setRemoteDescription({ type: "answer", sdp });
    } catch (e) {
      this._replaceSubscribe(entry);
    }
  }

  unsubscribe(peer) {
    const entry = this.subs.get(peer);
    if (!entry) return;
    this.subs.delete(peer);
    this._closeConnection(entry);
    this.onRemoteStream(peer, null);
  }

  _replaceSubscribe(entry) {
    if (this.closed || this.subs.get(entry.peer) !== entry || entry.replacing) return;
    entry.replacing = true;
    entry.failed = true;
    this.counts.replaced += 1;
    const delay = RETRY_MS[Math.min(entry.attempt, RETRY_MS.length - 1)];
    setTimeout(() => {
      if (this.subs.get(entry.peer) !== entry) return;
      entry.attempt += 1;
      entry.awaiting = false;
      this.subscribe(entry.peer, { fresh: true });
    }, delay);
  }

  /** An ``error`` answered one of our media messages (matched by ``ref``). */
  handleError(ref, code) {
    if (this.pub && this.pub.ref === ref) {
      clearTimeout(this.pub.answerTimer);
      this.pub.awaiting = false;
      this._replacePublish(this.pub);
      return true;
    }
    for (const entry of this.subs.values()) {
      if (entry.ref !== ref) continue;
      clearTimeout(entry.answerTimer);
      entry.awaiting = false;
      if (code === "not_found" || code === "unknown_source" || code === "not_publishing") {
        // they stopped publishing meanwhile: "media.published" brings them back
        this.unsubscribe(entry.peer);
      } else {
        this._replaceSubscribe(entry);
      }
      return true;
    }
    return false;
  }

  /** After the socket came back: publish and subscribe again on fresh connections. */
  resync(publishers) {
    if (!this.started || this.closed) return;
    if (this.pub) this.pub.awaiting = false;
    this.publish();
    for (const peer of [...this.subs.keys()]) {
      if (!publishers.includes(peer)) this.unsubscribe(peer);
    }
    for (const peer of publishers) {
      const entry = this.subs.get(peer);
      if (entry) entry.awaiting = false;
      this.subscribe(peer, { fresh: true });
    }
  }

  // --- Connection health -------------------------------------------------------------------

  _watchConnection(entry, replace) {
    const pc = entry.pc;
    entry.connectTimer = setTimeout(() => {
      if (pc.connectionState !== "connected") replace();
    }, CONNECT_TIMEOUT_MS);
    pc.addEventListener("connectionstatechange", () => {
      const state = pc.connectionState;
      if (state === "connected") {
        clearTimeout(entry.connectTimer);
        clearTimeout(entry.graceTimer);
        entry.attempt = 0;
        entry.failed = false;
        entry.everConnected = true;
        if (entry.kind === "publish") this.onNote("mediaConnected");
      } else if (state === "failed") {
        replace();
      } else if (state === "disconnected") {
        clearTimeout(entry.graceTimer);
        entry.graceTimer = setTimeout(() => {
          if (pc.connectionState !== "connected") replace();
        }, DISCONNECTED_GRACE_MS);
      }
    });
  }

  _closeConnection(entry) {
    clearTimeout(entry.connectTimer);
    clearTimeout(entry.graceTimer);
    clearTimeout(entry.answerTimer);
    try {
      entry.pc.close();
    } catch (e) {
      // already closed
    }
  }

  // --- Switches ------------------------------------------------------------------------------

  _applyTrackSwitches() {
    if (!this.local) return;
    for (const track of this.local.getAudioTracks()) track.enabled = !this.muted;
    const video = this.local.getVideoTracks()[0] || null;
    if (video) video.enabled = !this.cameraOff && !this.audioOnly;
    if (this.pub && this.pub.video) {
      const wanted = this.audioOnly || !video ? null : video;
      if (this.pub.video.sender.track !== wanted) {
        this.pub.video.sender.replaceTrack(wanted).catch(() => {});
      }
    }
  }

  _changed() {
    this._applyTrackSwitches();
    this.onChange({
      audio_only: this.audioOnly,
      muted: this.muted,
      camera_off: this.cameraOff,
      auto: this.autoAudioOnly,
    });
  }

  setMuted(on) {
    this.muted = !!on;
    this._changed();
  }

  setCameraOff(on) {
    this.cameraOff = !!on;
    this._changed();
  }

  /** Stop or resume sending video; ``auto`` when the link decided it. */
  setAudioOnly(on, { auto = false } = {}) {
    const hasCamera = !!(this.local && this.local.getVideoTracks().length);
    this.audioOnly = !!on || !hasCamera;
    this.autoAudioOnly = this.audioOnly && auto;
    this.weakSince = null;
    this._changed();
    if (this.audioOnly && auto) this.onNote("autoAudioOnly");
  }

  async _watchLink() {
    const entry = this.pub;
    if (!entry || this.audioOnly || entry.pc.connectionState !== "connected") {
      this.weakSince = null;
      return;
    }
    let report;
    try {
      report = await entry.pc.getStats();
    } catch (e) {
      return;
    }
    let limited = false;
    let height = null;
    report.forEach((s) => {
      if (s.type !== "outbound-rtp" || s.kind !== "video") return;
      if (s.qualityLimitationReason === "bandwidth") limited = true;
      if (typeof s.frameHeight === "number") height = s.frameHeight;
    });
    const now = Date.now();
    const available = availableOutgoing(report);
    this.lastAvailableBps = available;
    // Chrome says "bandwidth" as soon as it scales 360p down to 180p (at ~250 kbit/s),
    // which still makes a useful picture: it counts as weak only once the picture is
    // below 180 lines, i.e. the browser has scaled down all it sensibly can.
    const starved = limited && height !== null && height < this.tuning.minVideoHeight;
    const weak = starved || (available !== null && available < this.tuning.minVideoBps);
    if (!weak) {
      this.weakSince = null;
      return;
    }
    if (this.weakSince === null) this.weakSince = now;
    else if (now - this.weakSince > this.tuning.weakForMs) this.setAudioOnly(true, { auto: true });
  }

  /** A connected subscription whose video stopped arriving (while the peer sends video) is
   * made again: a new subscription asks the publisher for a key frame, which recovers a
   * forwarder that missed one. */
  async _watchSubscriptions() {
    const now = Date.now();
    for (const [peer, entry] of this.subs) {
      if (entry.pc.connectionState !== "connected" || entry.replacing || !this.expectsVideo(peer)) {
        entry.videoSince = null;
        continue;
      }
      let bytes = 0;
      try {
        (await entry.pc.getStats()).forEach((s) => {
          if (s.type === "inbound-rtp" && s.kind === "video") bytes = s.bytesReceived || 0;
        });
      } catch (e) {
        continue;
      }
      if (entry.videoSince === null || entry.videoSince === undefined || bytes > entry.videoBytes) {
        entry.videoBytes = bytes;
        entry.videoSince = now;
      } else if (now - entry.videoSince > VIDEO_STALL_MS && this.subs.get(peer) === entry) {
        this.counts.stalled += 1;
        entry.videoSince = null;
        this._replaceSubscribe(entry);
      }
    }
  }

  // --- Stats (window.consultRoom.stats) -----------------------------------------------------

  async stats() {
    const result = { publish: null, remotes: {} };
    if (this.pub) {
      const pub = { connectionState: this.pub.pc.connectionState, video: null, audio: null };
      try {
        const report = await this.pub.pc.getStats();
        report.forEach((s) => {
          if (s.type !== "outbound-rtp") return;
          const item = { bytesSent: s.bytesSent, packetsSent: s.packetsSent };
          if (s.kind === "video") {
            Object.assign(item, {
              framesEncoded: s.framesEncoded,
              frameWidth: s.frameWidth,
              frameHeight: s.frameHeight,
              qualityLimitationReason: s.qualityLimitationReason,
              targetBitrate: s.targetBitrate,
            });
          }
          pub[s.kind] = item;
        });
        pub.availableOutgoingBitrate = availableOutgoing(report);
      } catch (e) {
        // a closed connection has no stats
      }
      result.publish = pub;
    }
    for (const [peer, entry] of this.subs) {
      const remote = { connectionState: entry.pc.connectionState, framesDecoded: 0, bytesReceived: 0, audioBytesReceived: 0 };
      try {
        const report = await entry.pc.getStats();
        report.forEach((s) => {
          if (s.type !== "inbound-rtp") return;
          if (s.kind === "video") {
            remote.framesDecoded = s.framesDecoded || 0;
            remote.bytesReceived = s.bytesReceived || 0;
            remote.frameWidth = s.frameWidth;
            remote.frameHeight = s.frameHeight;
            remote.codec = s.codecId;
          } else if (s.kind === "audio") {
            remote.audioBytesReceived = s.bytesReceived || 0;
          }
        });
      } catch (e) {
        // closed meanwhile
      }
      result.remotes[peer] = remote;
    }
    return result;
  }

  snapshot() {
    const subscriptions = {};
    for (const [peer, entry] of this.subs) subscriptions[peer] = entry.pc.connectionState;
    return {
      publish: this.pub ? this.pub.pc.connectionState : null,
      subscriptions,
      audioOnly: this.audioOnly,
      autoAudioOnly: this.autoAudioOnly,
      muted: this.muted,
      cameraOff: this.cameraOff,
      hasCamera: !!(this.local && this.local.getVideoTracks().length),
      counts: { ...this.counts },
    };
  }

  /** Leave: close every connection and release camera and microphone. */
  close() {
    this.closed = true;
    clearInterval(this.statsTimer);
    if (this.pub) this._closeConnection(this.pub);
    this.pub = null;
    for (const entry of this.subs.values()) this._closeConnection(entry);
    this.subs.clear();
    if (this.local) for (const track of this.local.getTracks()) track.stop();
  }
}

/* Looking at the patient's images together: the consult's studies in the DICOM viewer
 * (docs/viewer.md), with the viewport kept in sync over the room socket.
 *
 * Our viewport changes go out as {"type":"viewer.state","state":...} (at most 10 a
 * second); a "viewer.state" from the other side is applied with setState, which does not
 * fire "viewportchange", so nothing is echoed back. If the other side opened another of
 * the consult's studies, it is opened here first (with their state as the initial one).
 * One viewer per page (Cornerstone keeps annotations page-global): switching studies
 * destroys the old one.
 */

const WAIT_FOR_BUNDLE_MS = 20000;
const THROTTLE_MS = 100;

function viewerBundle() {
  if (window.TelemedViewer) return Promise.resolve(window.TelemedViewer);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("viewer bundle did not load")), WAIT_FOR_BUNDLE_MS);
    window.addEventListener(
      "telemed-viewer-ready",
      (event) => {
        clearTimeout(timer);
        resolve(event.detail || window.TelemedViewer);
      },
      { once: true },
    );
  });
}

export class ViewerSync {
  /**
   * @param {object} options
   * @param {HTMLElement} options.mount  where the viewer goes
   * @param {Array<{id:number,title:string,studyUid:string,options:object}>} options.studies
   * @param {(msg: object) => boolean} options.send
   * @param {(text: string) => void} options.onStatus
   * @param {object} options.labels
   * @param {string} options.csrfToken
   */
  constructor(options) {
    this.mountEl = options.mount;
    this.studies = new Map(options.studies.map((s) => [s.studyUid, s]));
    this.send = options.send;
    this.onStatus = options.onStatus;
    this.labels = options.labels;
    this.csrfToken = options.csrfToken;
    this.api = null;
    this.ready = false;
    this.studyUid = null;
    this.pending = null;
    this.unsubscribe = null;
    this.counts = { sent: 0, applied: 0 };
    this.lastRemote = null;
  }

  /** Open ``studyUid`` (one of the consult's); ``remoteState`` when the other side asked. */
  async open(studyUid, remoteState = null) {
    const study = this.studies.get(studyUid);
    if (!study) return null;
    let Viewer;
    try {
      Viewer = await viewerBundle();
    } catch (e) {
      this.onStatus("viewerFailed");
      return null;
    }
    this._destroy();
    this.studyUid = studyUid;
    this.mountEl.hidden = false;
    const options = { ...study.options, csrfToken: this.csrfToken };
    if (remoteState) options.initialState = remoteState;
    const api = Viewer.mount(this.mountEl, options);
    this.api = api;
    this.ready = false;
    this.unsubscribe = api.on(
      "viewportchange",
      (state) => {
        if (this.api !== api || !state) return;
        this.counts.sent += 1;
        this.send({ type: "viewer.state", state });
      },
      { throttleMs: THROTTLE_MS },
    );
    this._markOpen(studyUid);
    await api.ready;
    if (this.api !== api) return null;
    this.ready = true;
    if (this.pending) {
      const state = this.pending;
      this.pending = null;
      await this._apply(state);
    } else if (!remoteState) {
      // We opened it: bring the other side to the same study and view.
      const state = api.getState();
      if (state) {
        this.counts.sent += 1;
        this.send({ type: "viewer.state", state });
      }
    }
    return api;
  }

  /** A "viewer.state" from the other side. */
  async applyRemote(state) {
    if (!state || typeof state !== "object" || typeof state.studyUid !== "string") return;
    this.lastRemote = state;
    if (!this.studies.has(state.studyUid)) return; // not one of this consult's studies
    if (state.studyUid !== this.studyUid || !this.api) {
      this.onStatus("syncing");
      await this.open(state.studyUid, state);
      this.counts.applied += 1;
      return;
    }
    if (!this.ready) {
      this.pending = state; // still loading: the latest state is applied once it is ready
      return;
    }
    await this._apply(state);
  }

  async _apply(state) {
    if (!this.api) return;
    try {
      await this.api.setState(state);
      this.counts.applied += 1;
    } catch (e) {
      // an image that failed to load: the next state will try again
    }
  }

  getState() {
    return this.api ? this.api.getState() : null;
  }

  _markOpen(studyUid) {
    for (const button of document.querySelectorAll("[data-study-uid]")) {
      const on = button.getAttribute("data-study-uid") === studyUid;
      button.setAttribute("aria-pressed", on ? "true" : "false");
    }
  }

  _destroy() {
    if (this.unsubscribe) this.unsubscribe();
    this.unsubscribe = null;
    if (this.api) {
      try {
        this.api.destroy();
      } catch (e) {
        // already torn down
      }
    }
    this.api = null;
    this.ready = false;
    this.pending = null;
  }
}

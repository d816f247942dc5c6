// Entry point of the zero-footprint DICOM viewer: defines window.TelemedViewer.
//
//   <link rel="stylesheet" href="{% static 'viewer/viewer.css' %}">
//   <script type="module" src="{% static 'viewer/viewer.js' %}"></script>
//   <script type="module">
//     const viewer = TelemedViewer.mount(document.getElementById('viewer'), {
//       dicomwebRoot: '/dicomweb', studyUid: '1.2.3', priors: ['1.2.2'], labels: {...},
//     });
//   </script>
//
// See docs/viewer.md for the whole API.
import './viewer.css';
import { Viewer } from './viewer.js';
import { DEFAULT_LABELS } from './labels.js';
import { WL_PRESETS } from './presets.js';

const VERSION = '1.0.0';

function ensureStylesheet() {
  const has = [...document.querySelectorAll('link[rel="stylesheet"]')].some(
    (l) => l.dataset.telemedViewer !== undefined || /\/viewer(\.[0-9a-f]{6,})?\.css(\?|$)/.test(l.href),
  );
  if (has) return;
  const link = document.createElement('link');
  link.rel = 'stylesheet';
  // (not `new URL('./viewer.css', import.meta.url)`: Vite would copy the unbuilt source)
  const here = import.meta.url;
  link.href = new URL('viewer.css', here).href;
  link.dataset.telemedViewer = '';
  document.head.append(link);
}

/**
 * Mount a viewer into `element`. Returns the API object synchronously; the study loads
 * in the background (`api.ready` resolves when the first series is shown).
 */
function mount(element, options = {}) {
  ensureStylesheet();
  return new Viewer(element, options).api;
}

const TelemedViewer = Object.freeze({
  version: VERSION,
  mount,
  defaultLabels: Object.freeze({ ...DEFAULT_LABELS }),
  presets: Object.freeze(WL_PRESETS.map((p) => Object.freeze({ ...p }))),
});

window.TelemedViewer = TelemedViewer;
window.dispatchEvent(new CustomEvent('telemed-viewer-ready', { detail: TelemedViewer }));

export { mount, VERSION as version };
export default TelemedViewer;

// English defaults for every string the viewer shows. Django templates pass translated
// strings through mount(element, { labels: {...} }); missing keys fall back to these.
// "{n}", "{total}", ... are placeholders filled by format().
export const DEFAULT_LABELS = {
  viewer: 'DICOM viewer',
  loading: 'Loading…',
  loadingEngine: 'Loading viewer…',
  loadingImages: 'Loading images {loaded}/{total}',
  noSeries: 'This study has no images.',
  loadFailed: 'Could not load the study.',
  imageFailed: 'Could not load or decode this image.',
  unsupported: 'This series cannot be displayed (no image pixel data).',
  series: 'Series',
  images: '{n} images',
  studyCurrent: 'Current study',
  studyPrior: 'Prior study',

  // tools
  tools: 'Tools',
  windowLevel: 'Window/level',
  zoom: 'Zoom',
  pan: 'Pan',
  scroll: 'Scroll',
  length: 'Length',
  angle: 'Angle',
  ellipse: 'Ellipse ROI',
  rectangle: 'Rectangle ROI',
  reset: 'Reset',
  invert: 'Invert',
  presets: 'W/L presets',
  presetDefault: 'Default (from image)',
  presetBrain: 'Brain',
  presetLung: 'Lung',
  presetBone: 'Bone',
  presetAbdomen: 'Abdomen',
  presetMediastinum: 'Mediastinum',
  cinePlay: 'Play',
  cinePause: 'Pause',
  fps: 'fps',
  compare: 'Compare with prior',
  closeCompare: 'Close prior',
  choosePrior: 'Choose a prior study',
  noPriors: 'No prior studies',
  keyImage: 'Key image',
  measurements: 'Measurements',
  noMeasurements: 'No measurements yet.',
  deleteMeasurement: 'Delete',
  keyImages: 'Key images',

  // overlay
  image: 'Im',
  frame: 'Fr',
  ww: 'W',
  wl: 'L',
  zoomShort: 'Zoom',
  area: 'Area',
  mean: 'Mean',
  stdDev: 'SD',
  min: 'Min',
  max: 'Max',
};

export function makeLabels(overrides) {
  const labels = { ...DEFAULT_LABELS };
  for (const [key, value] of Object.entries(overrides || {})) {
    if (typeof value === 'string' && value) labels[key] = value;
  }
  return labels;
}

export function format(template, values) {
  return String(template).replace(/\{(\w+)\}/g, (m, key) => (key in values ? String(values[key]) : m));
}

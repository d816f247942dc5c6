// Window/level presets (window centre / window width, Hounsfield units). They are offered
// for CT; "default" restores the VOI from the DICOM header (or the pixel range).
export const WL_PRESETS = [
  { id: 'brain', label: 'presetBrain', center: 40, width: 80 },
  { id: 'lung', label: 'presetLung', center: -600, width: 1500 },
  { id: 'bone', label: 'presetBone', center: 300, width: 1500 },
  { id: 'abdomen', label: 'presetAbdomen', center: 40, width: 400 },
  { id: 'mediastinum', label: 'presetMediastinum', center: 50, width: 350 },
];

export const PRESET_MODALITIES = new Set(['CT']);

// Minimal DICOMweb (PS3.18) client for the viewer: QIDO-RS series search, WADO-RS series
// metadata, and URL builders for thumbnails, rendered images and frames. Same-origin
// requests carry the session cookie; nothing here writes to the server.

const TAG = {
  StudyDate: '00080020',
  StudyTime: '00080030',
  StudyDescription: '00081030',
  Modality: '00080060',
  SeriesDescription: '0008103E',
  SeriesNumber: '00200011',
  SeriesDate: '00080021',
  NumberOfSeriesRelatedInstances: '00201209',
  SeriesInstanceUID: '0020000E',
  StudyInstanceUID: '0020000D',
  SOPInstanceUID: '00080018',
  SOPClassUID: '00080016',
  InstanceNumber: '00200013',
  NumberOfFrames: '00280008',
  Rows: '00280010',
  Columns: '00280011',
  ImagePositionPatient: '00200032',
  ImageOrientationPatient: '00200037',
  PatientName: '00100010',
  PatientID: '00100020',
  FrameTime: '00181063',
  CineRate: '00180040',
  RecommendedDisplayFrameRate: '00082144',
  AccessionNumber: '00080050',
  BodyPartExamined: '00180015',
};

export { TAG };

export function value(json, tag) {
  const element = json && json[tag];
  if (!element || !element.Value || !element.Value.length) return undefined;
  return element.Value[0];
}

export function values(json, tag) {
  const element = json && json[tag];
  return element && element.Value ? element.Value : [];
}

export function str(json, tag) {
  const v = value(json, tag);
  if (v === undefined || v === null) return '';
  if (typeof v === 'object') return personName(v);
  return String(v);
}

export function num(json, tag) {
  const v = value(json, tag);
  const n = typeof v === 'number' ? v : parseFloat(v);
  return Number.isFinite(n) ? n : undefined;
}

export function personName(pn) {
  if (!pn) return '';
  if (typeof pn === 'string') return pn.replace(/\^+/g, ' ').trim();
  // Chinese names are usually in the ideographic group; prefer it when present.
  const raw = pn.Ideographic || pn.Alphabetic || pn.Phonetic || '';
  return raw.replace(/\^+/g, ' ').trim();
}

export function formatDate(da) {
  if (!da || da.length !== 8) return da || '';
  return `${da.slice(0, 4)}-${da.slice(4, 6)}-${da.slice(6, 8)}`;
}

export class DicomWebClient {
  constructor(root, csrfToken) {
    const base = new URL(root || '/dicomweb', window.location.href);
    this.root = base.href.replace(/\/+$/, '');
    this.csrfToken = csrfToken || '';
  }

  studyUrl(studyUid) {
    return `${this.root}/studies/${encodeURIComponent(studyUid)}`;
  }

  seriesUrl(studyUid, seriesUid) {
    return `${this.studyUrl(studyUid)}/series/${encodeURIComponent(seriesUid)}`;
  }

  instanceUrl(studyUid, seriesUid, sopUid) {
    return `${this.seriesUrl(studyUid, seriesUid)}/instances/${encodeURIComponent(sopUid)}`;
  }

  seriesThumbnailUrl(studyUid, seriesUid) {
    return `${this.seriesUrl(studyUid, seriesUid)}/thumbnail`;
  }

  instanceThumbnailUrl(studyUid, seriesUid, sopUid) {
    return `${this.instanceUrl(studyUid, seriesUid, sopUid)}/thumbnail`;
  }

  renderedUrl(studyUid, seriesUid, sopUid) {
    return `${this.instanceUrl(studyUid, seriesUid, sopUid)}/rendered`;
  }

  /** Cornerstone image id for one frame (1-based) of an instance. */
  imageId(studyUid, seriesUid, sopUid, frame) {
    return `wadors:${this.instanceUrl(studyUid, seriesUid, sopUid)}/frames/${frame || 1}`;
  }

  async getJSON(url, signal) {
    const response = await fetch(url, {
      credentials: 'same-origin',
      headers: { Accept: 'application/dicom+json, application/json;q=0.9' },
      signal,
    });
    if (response.status === 204) return [];
    if (!response.ok) {
      const error = new Error(`${response.status} ${response.statusText} for ${url}`);
      error.status = response.status;
      throw error;
    }
    const data = await response.json();
    return Array.isArray(data) ? data : [];
  }

  /** QIDO-RS: series of a study, sorted by series number. */
  async searchSeries(studyUid, signal) {
    const list = await this.getJSON(`${this.studyUrl(studyUid)}/series`, signal);
    return list
      .map((json) => ({
        studyUid,
        seriesUid: str(json, TAG.SeriesInstanceUID),
        modality: str(json, TAG.Modality),
        description: str(json, TAG.SeriesDescription),
        number: num(json, TAG.SeriesNumber),
        count: num(json, TAG.NumberOfSeriesRelatedInstances),
        date: str(json, TAG.SeriesDate),
      }))
      .filter((s) => s.seriesUid)
      .sort((a, b) => (a.number ?? 1e9) - (b.number ?? 1e9));
  }

  /** QIDO-RS: study-level attributes (date, description) for the prior chooser; best effort. */
  async searchStudy(studyUid, signal) {
    const url = `${this.root}/studies?StudyInstanceUID=${encodeURIComponent(studyUid)}&includefield=00081030`;
    const [json] = await this.getJSON(url, signal);
    if (!json) return null;
    return {
      studyUid,
      date: str(json, TAG.StudyDate),
      description: str(json, TAG.StudyDescription),
      modalities: values(json, '00080061').join('/'),
    };
  }

  /** WADO-RS: DICOM JSON metadata, one object per instance. */
  async seriesMetadata(studyUid, seriesUid, signal) {
    return this.getJSON(`${this.seriesUrl(studyUid, seriesUid)}/metadata`, signal);
  }
}

function positionAlongNormal(json) {
  const ipp = values(json, TAG.ImagePositionPatient).map(Number);
  const iop = values(json, TAG.ImageOrientationPatient).map(Number);
  if (ipp.length !== 3 || iop.length !== 6) return undefined;
  const n = [
    iop[1] * iop[5] - iop[2] * iop[4],
    iop[2] * iop[3] - iop[0] * iop[5],
    iop[0] * iop[4] - iop[1] * iop[3],
  ];
  return ipp[0] * n[0] + ipp[1] * n[1] + ipp[2] * n[2];
}

/**
 * Turn series metadata into an ordered stack of frames. Instances without pixel data
 * (structured reports, key object selections, presentation states) are left out.
 */
export function buildStack(client, studyUid, seriesUid, instances) {
  const images = instances.filter((json) => value(json, TAG.Rows) !== undefined && str(json, TAG.SOPInstanceUID));
  images.sort((a, b) => {
    const ia = num(a, TAG.InstanceNumber);
    const ib = num(b, TAG.InstanceNumber);
    if (ia !== undefined && ib !== undefined && ia !== ib) return ia - ib;
    const pa = positionAlongNormal(a);
    const pb = positionAlongNormal(b);
    if (pa !== undefined && pb !== undefined && pa !== pb) return pa - pb;
    return str(a, TAG.SOPInstanceUID) < str(b, TAG.SOPInstanceUID) ? -1 : 1;
  });
  const frames = [];
  for (const json of images) {
    const sopUid = str(json, TAG.SOPInstanceUID);
    const count = Math.max(1, num(json, TAG.NumberOfFrames) || 1);
    for (let frame = 1; frame <= count; frame += 1) {
      frames.push({
        imageId: client.imageId(studyUid, seriesUid, sopUid, frame),
        studyUid,
        seriesUid,
        sopUid,
        frame,
        frameCount: count,
        meta: json,
      });
    }
  }
  return frames;
}

/** Frames per second for cine, from the header when it says so. */
export function defaultFps(json) {
  const rate = num(json, TAG.RecommendedDisplayFrameRate) || num(json, TAG.CineRate);
  if (rate && rate > 0) return Math.min(60, Math.round(rate));
  const frameTime = num(json, TAG.FrameTime);
  if (frameTime && frameTime > 0) return Math.max(1, Math.min(60, Math.round(1000 / frameTime)));
  return 10;
}

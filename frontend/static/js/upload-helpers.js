/* Building blocks of the browser upload (frontend/static/js/upload.js), no DOM here:
 *
 *   Sha256      incremental SHA-256: crypto.subtle.digest needs the whole file in memory
 *               and exists only on secure pages, so we hash 4 MiB slices ourselves
 *   crc32       CRC-32 (zip), incremental
 *   sniff       is this a zip, a DICOM Part 10 file (and of which study), or neither?
 *   ZipPlan     files of one study as one uncompressed zip: a Blob made of the files
 *               themselves (nothing copied into memory), identical on every run for the
 *               same files, so a reload finds the same SHA-256 and resumes
 *
 * Plain ES5 on purpose: clinics run old Chromium-based browsers.
 */
(function (global) {
  "use strict";

  // --- SHA-256 (FIPS 180-4) ----------------------------------------------------------------

  var K = new Int32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
  ]);

  function Sha256() {
    this.h = new Int32Array([
      0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
    ]);
    this.w = new Int32Array(64);
    this.buffer = new Uint8Array(64);
    this.buffered = 0;
    this.length = 0; // bytes; a double is exact far beyond any file we accept
  }

  Sha256.prototype.block = function (p, off) {
    var w = this.w, h = this.h, i, s0, s1, t1, t2, x;
    for (i = 0; i < 16; i++) {
      x = off + i * 4;
      w[i] = (p[x] << 24) | (p[x + 1] << 16) | (p[x + 2] << 8) | p[x + 3];
    }
    for (i = 16; i < 64; i++) {
      x = w[i - 15];
      s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      x = w[i - 2];
      s1 = ((x >>> 17) | (x << 15)) ^ ((x >>> 19) | (x << 13)) ^ (x >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (i = 0; i < 64; i++) {
      s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      t1 = (hh + s1 + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
      s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      hh = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    h[0] = (h[0] + a) | 0; h[1] = (h[1] + b) | 0; h[2] = (h[2] + c) | 0; h[3] = (h[3] + d) | 0;
    h[4] = (h[4] + e) | 0; h[5] = (h[5] + f) | 0; h[6] = (h[6] + g) | 0; h[7] = (h[7] + hh) | 0;
  };

  Sha256.prototype.update = function (data) {
    var pos = 0, n = data.length, take;
    this.length += n;
    if (this.buffered > 0) {
      take = Math.min(64 - this.buffered, n);
      this.buffer.set(data.subarray(0, take), this.buffered);
      this.buffered += take;
      pos = take;
      if (this.buffered < 64) {
        return this;
      }
      this.block(this.buffer, 0);
      this.buffered = 0;
    }
    for (; pos + 64 <= n; pos += 64) {
      this.block(data, pos);
    }
    if (pos < n) {
      this.buffer.set(data.subarray(pos), 0);
      this.buffered = n - pos;
    }
    return this;
  };

  Sha256.prototype.hex = function () {
    var bits = this.length * 8;
    var pad = new Uint8Array(((this.buffered < 56 ? 56 : 120) - this.buffered) + 8);
    pad[0] = 0x80;
    var hi = Math.floor(bits / 0x100000000), lo = bits >>> 0, end = pad.length;
    pad[end - 8] = hi >>> 24; pad[end - 7] = hi >>> 16; pad[end - 6] = hi >>> 8; pad[end - 5] = hi;
    pad[end - 4] = lo >>> 24; pad[end - 3] = lo >>> 16; pad[end - 2] = lo >>> 8; pad[end - 1] = lo;
    var length = this.length;
    this.update(pad);
    this.length = length;
    var out = "", i, word;
    for (i = 0; i < 8; i++) {
      word = (this.h[i] >>> 0).toString(16);
      out += "00000000".slice(word.length) + word;
    }
    return out;
  };

  // --- CRC-32 (zip) --------------------------------------------------------------------------

  var CRC_TABLE = (function () {
    var table = new Int32Array(256), c, n, k;
    for (n = 0; n < 256; n++) {
      c = n;
      for (k = 0; k < 8; k++) {
        c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      }
      table[n] = c;
    }
    return table;
  })();

  /* crc32(previous, bytes): start with 0; returns an unsigned 32-bit number. */
  function crc32(previous, data) {
    var crc = ~previous, i, n = data.length;
    for (i = 0; i < n; i++) {
      crc = (crc >>> 8) ^ CRC_TABLE[(crc ^ data[i]) & 0xff];
    }
    return ~crc >>> 0;
  }

  // --- Reading slices of a file ------------------------------------------------------------

  function readSlice(blob, start, end) {
    return new Promise(function (resolve, reject) {
      var reader = new FileReader();
      reader.onload = function () { resolve(new Uint8Array(reader.result)); };
      reader.onerror = function () { reject(reader.error || new Error("read failed")); };
      reader.readAsArrayBuffer(blob.slice(start, end));
    });
  }

  // --- DICOM sniffing --------------------------------------------------------------------------
  // Enough of PS3.5 to find the Study Instance UID, date, modality and description at the
  // top level of a Part 10 file; the server validates everything properly.

  var NEED_MORE = { needMore: true };
  var LONG_VRS = { OB: 1, OD: 1, OF: 1, OL: 1, OV: 1, OW: 1, SQ: 1, SV: 1, UC: 1, UN: 1, UR: 1, UT: 1, UV: 1 };
  var UNDEFINED = 0xffffffff;
  var WANTED = {
    0x00080005: "charset",
    0x00080020: "date",
    0x00080060: "modality",
    0x00081030: "description",
    0x0020000d: "studyUid"
  };

  function Reader(u8, explicit, little) {
    this.u8 = u8;
    this.view = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
    this.explicit = explicit;
    this.little = little;
  }

  Reader.prototype.need = function (pos, n) {
    if (pos + n > this.u8.length) {
      throw NEED_MORE;
    }
  };

  /* One element header at pos: {group, element, tag, length, value (offset of the value)}. */
  Reader.prototype.header = function (pos) {
    this.need(pos, 8);
    var v = this.view, little = this.little;
    var group = v.getUint16(pos, little), element = v.getUint16(pos + 2, little);
    var tag = group * 65536 + element;
    if (group === 0xfffe) { // items and delimiters: always tag + 4-byte length
      return { group: group, element: element, tag: tag, length: v.getUint32(pos + 4, little), value: pos + 8 };
    }
    if (!this.explicit) {
      return { group: group, element: element, tag: tag, length: v.getUint32(pos + 4, little), value: pos + 8 };
    }
    var vr = String.fromCharCode(this.u8[pos + 4], this.u8[pos + 5]);
    if (LONG_VRS[vr]) {
      this.need(pos, 12);
      return { group: group, element: element, tag: tag, length: v.getUint32(pos + 8, little), value: pos + 12 };
    }
    return { group: group, element: element, tag: tag, length: v.getUint16(pos + 6, little), value: pos + 8 };
  };

  /* Skip a sequence of undefined length whose items start at pos; returns the end. */
  Reader.prototype.skipSequence = function (pos, depth) {
    if (depth > 16) {
      throw new Error("too deep");
    }
    for (;;) {
      var item = this.header(pos);
      if (item.group !== 0xfffe) {
        throw new Error("not an item");
      }
      if (item.element === 0xe0dd) {
        return item.value; // sequence delimiter
      }
      if (item.length !== UNDEFINED) {
        pos = item.value + item.length;
        continue;
      }
      pos = item.value;
      for (;;) { // an item of undefined length: elements up to the item delimiter
        var el = this.header(pos);
        if (el.group === 0xfffe && el.element === 0xe00d) {
          pos = el.value;
          break;
        }
        pos = el.length === UNDEFINED ? this.skipSequence(el.value, depth + 1) : el.value + el.length;
      }
    }
  };

  function ascii(u8, start, length) {
    var out = "", i;
    for (i = start; i < start + length; i++) {
      out += String.fromCharCode(u8[i]);
    }
    return out.replace(/[\0 ]+$/, "").replace(/^ +/, "");
  }

  function decodeText(u8, start, length, charset) {
    var encoding = "windows-1252";
    if (/ISO_IR 192/.test(charset)) {
      encoding = "utf-8";
    } else if (/GB18030|GBK|ISO 2022 IR 58/.test(charset)) {
      encoding = "gb18030";
    }
    try {
      return new TextDecoder(encoding).decode(u8.subarray(start, start + length))
        .replace(/[\0 ]+$/, "").replace(/^ +/, "");
    } catch (e) {
      return ascii(u8, start, length);
    }
  }

  /*
   * sniff(bytes): {kind: "zip"} | {kind: "other"} | {kind: "dicom", study: {...} | null}
   * or {needMore: true} when the header runs past the bytes given.
   */
  function sniff(u8) {
    if (u8.length >= 4 && u8[0] === 0x50 && u8[1] === 0x4b &&
        ((u8[2] === 3 && u8[3] === 4) || (u8[2] === 5 && u8[3] === 6))) {
      return { kind: "zip" };
    }
    if (u8.length < 132 || ascii(u8, 128, 4) !== "DICM") {
      return { kind: "other" };
    }
    var meta = new Reader(u8, true, true), pos = 132, el, syntax = "";
    try {
      for (;;) {
        meta.need(pos, 2);
        if (meta.view.getUint16(pos, true) !== 0x0002) {
          break;
        }
        el = meta.header(pos);
        if (el.tag === 0x00020010) {
          meta.need(el.value, el.length);
          syntax = ascii(u8, el.value, el.length);
        }
        pos = el.value + el.length;
      }
      if (syntax === "1.2.840.10008.1.2.1.99") {
        return { kind: "dicom", study: null }; // deflated: the server will tell
      }
      var data = new Reader(u8, syntax !== "1.2.840.10008.1.2", syntax !== "1.2.840.10008.1.2.2");
      var found = {};
      while (pos < u8.length) {
        el = data.header(pos);
        if (el.tag > 0x0020000d) {
          break;
        }
        if (el.length === UNDEFINED) {
          pos = data.skipSequence(el.value, 0);
          continue;
        }
        if (WANTED[el.tag]) {
          data.need(el.value, el.length);
          found[WANTED[el.tag]] = el.tag === 0x00081030
            ? decodeText(u8, el.value, el.length, found.charset || "")
            : ascii(u8, el.value, el.length);
          if (el.tag === 0x0020000d) {
            break;
          }
        }
        pos = el.value + el.length;
      }
      if (!found.studyUid) {
        return { kind: "dicom", study: null };
      }
      return {
        kind: "dicom",
        study: {
          uid: found.studyUid,
          date: found.date || "",
          modality: found.modality || "",
          description: found.description || ""
        }
      };
    } catch (e) {
      if (e === NEED_MORE) {
        return NEED_MORE;
      }
      return { kind: "dicom", study: null };
    }
  }

  /* Sniff a File, reading 64 KiB first and up to 2 MiB if the header is longer. */
  function sniffFile(file) {
    function attempt(bytes) {
      return readSlice(file, 0, Math.min(file.size, bytes)).then(function (u8) {
        var result = sniff(u8);
        if (result.needMore) {
          if (bytes < 2 * 1024 * 1024 && u8.length === bytes) {
            return attempt(bytes * 8);
          }
          return u8.length < file.size ? { kind: "dicom", study: null } : { kind: "other" };
        }
        return result;
      });
    }
    return attempt(64 * 1024);
  }

  // --- An uncompressed zip of files, built as a Blob ----------------------------------------
  // Each entry: local header (CRC 0, flag 8: sizes and CRC follow in a data descriptor), the
  // file's bytes, the descriptor; then the central directory. Deterministic: names in the
  // order given, times from lastModified, so the same files always give the same bytes.

  var encoder = typeof TextEncoder !== "undefined" ? new TextEncoder() : null;

  function utf8(text) {
    if (encoder) {
      return encoder.encode(text);
    }
    var s = unescape(encodeURIComponent(text)), out = new Uint8Array(s.length), i;
    for (i = 0; i < s.length; i++) {
      out[i] = s.charCodeAt(i);
    }
    return out;
  }

  function dosDateTime(ms) {
    var d = new Date(ms || 0);
    if (isNaN(d.getTime()) || d.getFullYear() < 1980) {
      d = new Date(1980, 0, 1);
    }
    return {
      time: (d.getHours() << 11) | (d.getMinutes() << 5) | (d.getSeconds() >> 1),
      date: ((Math.min(d.getFullYear(), 2107) - 1980) << 9) | ((d.getMonth() + 1) << 5) | d.getDate()
    };
  }

  var FLAGS = 0x0808; // bit 3: data descriptor; bit 11: UTF-8 names

  function ZipPlan(entries) {
    // entries: [{file: File, name: "folder/IM0001"}]
    this.entries = [];
    var offset = 0, i;
    for (i = 0; i < entries.length; i++) {
      var name = utf8(entries[i].name.replace(/^\/+/, "")), file = entries[i].file;
      var when = dosDateTime(file.lastModified);
      var header = new Uint8Array(30 + name.length), v = new DataView(header.buffer);
      v.setUint32(0, 0x04034b50, true);
      v.setUint16(4, 20, true);
      v.setUint16(6, FLAGS, true);
      v.setUint16(8, 0, true);
      v.setUint16(10, when.time, true);
      v.setUint16(12, when.date, true);
      v.setUint16(26, name.length, true);
      header.set(name, 30);
      this.entries.push({ file: file, name: name, when: when, header: header, offset: offset, crc: null });
      offset += header.length + file.size + 16;
    }
    this.directoryOffset = offset;
    this.directorySize = 0;
    for (i = 0; i < this.entries.length; i++) {
      this.directorySize += 46 + this.entries[i].name.length;
    }
    this.size = offset + this.directorySize + 22;
  }

  ZipPlan.prototype.descriptor = function (entry) {
    var out = new Uint8Array(16), v = new DataView(out.buffer);
    v.setUint32(0, 0x08074b50, true);
    v.setUint32(4, entry.crc, true);
    v.setUint32(8, entry.file.size, true);
    v.setUint32(12, entry.file.size, true);
    return out;
  };

  ZipPlan.prototype.directory = function () {
    var out = new Uint8Array(this.directorySize + 22), v = new DataView(out.buffer), pos = 0, i;
    for (i = 0; i < this.entries.length; i++) {
      var e = this.entries[i];
      v.setUint32(pos, 0x02014b50, true);
      v.setUint16(pos + 4, 20, true);
      v.setUint16(pos + 6, 20, true);
      v.setUint16(pos + 8, FLAGS, true);
      v.setUint16(pos + 10, 0, true);
      v.setUint16(pos + 12, e.when.time, true);
      v.setUint16(pos + 14, e.when.date, true);
      v.setUint32(pos + 16, e.crc, true);
      v.setUint32(pos + 20, e.file.size, true);
      v.setUint32(pos + 24, e.file.size, true);
      v.setUint16(pos + 28, e.name.length, true);
      v.setUint32(pos + 42, e.offset, true);
      out.set(e.name, pos + 46);
      pos += 46 + e.name.length;
    }
    v.setUint32(pos, 0x06054b50, true);
    v.setUint16(pos + 8, this.entries.length, true);
    v.setUint16(pos + 10, this.entries.length, true);
    v.setUint32(pos + 12, this.directorySize, true);
    v.setUint32(pos + 16, this.directoryOffset, true);
    return out;
  };

  /* The zip as a Blob; every entry's CRC must be known. */
  ZipPlan.prototype.blob = function () {
    var parts = [], i;
    for (i = 0; i < this.entries.length; i++) {
      parts.push(this.entries[i].header, this.entries[i].file, this.descriptor(this.entries[i]));
    }
    parts.push(this.directory());
    return new Blob(parts, { type: "application/zip" });
  };

  ZipPlan.prototype.crcs = function () {
    var out = [], i;
    for (i = 0; i < this.entries.length; i++) {
      out.push(this.entries[i].crc);
    }
    return out;
  };

  ZipPlan.prototype.setCrcs = function (crcs) {
    var i;
    for (i = 0; i < this.entries.length; i++) {
      this.entries[i].crc = crcs[i];
    }
  };

  // --- Hashing what will be sent -----------------------------------------------------------

  var SLICE = 4 * 1024 * 1024;

  /* SHA-256 (and CRC-32 when crc is true) of a Blob, slice by slice. */
  function hashBlob(blob, sha, crc, onBytes) {
    var value = 0;
    function step(start) {
      if (start >= blob.size) {
        return Promise.resolve(value);
      }
      return readSlice(blob, start, Math.min(blob.size, start + SLICE)).then(function (u8) {
        sha.update(u8);
        if (crc) {
          value = crc32(value, u8);
        }
        onBytes(u8.length);
        return step(start + u8.length);
      });
    }
    return step(0);
  }

  /* The SHA-256 of a ZipPlan's bytes, learning every entry's CRC on the way. */
  function hashZip(plan, onBytes) {
    var sha = new Sha256(), i = 0;
    function next() {
      if (i >= plan.entries.length) {
        sha.update(plan.directory());
        onBytes(plan.directorySize + 22);
        return Promise.resolve(sha.hex());
      }
      var entry = plan.entries[i];
      sha.update(entry.header);
      onBytes(entry.header.length);
      return hashBlob(entry.file, sha, true, onBytes).then(function (crc) {
        entry.crc = crc;
        sha.update(plan.descriptor(entry));
        onBytes(16);
        i += 1;
        return next();
      });
    }
    return next();
  }

  function hashFile(file, onBytes) {
    var sha = new Sha256();
    return hashBlob(file, sha, false, onBytes).then(function () { return sha.hex(); });
  }

  global.TelemedUpload = {
    Sha256: Sha256,
    crc32: crc32,
    sniff: sniff,
    sniffFile: sniffFile,
    ZipPlan: ZipPlan,
    hashZip: hashZip,
    hashFile: hashFile,
    readSlice: readSlice
  };
})(window);

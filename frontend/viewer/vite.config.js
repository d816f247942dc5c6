// Build of the zero-footprint DICOM viewer (Cornerstone3D) into frontend/static/viewer/.
//
// Output layout (all URLs are resolved relative to viewer.js at runtime, so the bundle
// works under any STATIC_URL, including Django's hashed ManifestStaticFilesStorage copies):
//
//   viewer.js            entry; defines window.TelemedViewer (small: UI shell + DICOMweb client)
//   viewer.css           styles (the template links it; mount() adds the link if missing)
//   chunks/engine-*.js   the Cornerstone3D engine, loaded with import() by viewer.js
//   chunks/decodeImageFrameWorker-*.js   the dicom-image-loader decode web worker (ES module)
//   chunks/*.wasm        WebAssembly codecs (OpenJPEG for JPEG 2000, OpenJPH for HTJ2K, CharLS
//                        for JPEG-LS, libjpeg-turbo, libjxl). dicom-image-loader references
//                        them as `new URL('@cornerstonejs/codec-.../decodewasm', import.meta.url)`;
//                        Vite resolves those package exports, emits the .wasm files and
//                        rewrites the URLs relative to the worker chunk.
//   chunks/jpeg-*.js, lossless-*.js   pure-JS JPEG baseline 12-bit / JPEG lossless decoders
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const outDir = fileURLToPath(new URL('../static/viewer/', import.meta.url));

/** The npm package (name, directory) a bundled module file belongs to. */
function packageOf(file) {
  const i = file.lastIndexOf(`${sep}node_modules${sep}`);
  if (i < 0) return null;
  const rest = file.slice(i + 14).split(sep);
  const n = rest[0].startsWith('@') ? 2 : 1;
  return { name: rest.slice(0, n).join('/'), dir: file.slice(0, i + 14) + rest.slice(0, n).join(sep) };
}

/**
 * Emit THIRD-PARTY-NOTICES.txt: name, version, licence and licence text of every npm
 * package that ended up in the bundle (the main build and the decode worker).
 */
const bundled = new Map();
function thirdPartyNotices({ emit }) {
  return {
    name: 'telemed-third-party-notices',
    apply: 'build',
    generateBundle(options, bundle) {
      for (const chunk of Object.values(bundle)) {
        for (const id of Object.keys(chunk.modules || {})) {
          const pkg = packageOf(id.replace(/^\0/, '').split('?')[0]);
          if (pkg && !bundled.has(pkg.name)) bundled.set(pkg.name, pkg.dir);
        }
      }
      if (!emit) return;
      const parts = [];
      for (const [name, dir] of [...bundled].sort()) {
        const meta = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
        const file = existsSync(dir) && readdirSync(dir).find((f) => /^(licen[cs]e|copying)(\.|$)/i.test(f));
        const text = file ? readFileSync(join(dir, file), 'utf8').trim() : `(no licence file; package.json says ${meta.license})`;
        parts.push(`${name} ${meta.version} (${meta.license || 'see below'})\n\n${text}`);
      }
      this.emitFile({
        type: 'asset',
        fileName: 'THIRD-PARTY-NOTICES.txt',
        source: `Third-party software bundled in the Telemed DICOM viewer\n\n${parts.join(`\n\n${'-'.repeat(72)}\n\n`)}\n`,
      });
    },
  };
}

const chunkNames = {
  chunkFileNames: 'chunks/[name]-[hash].js',
  assetFileNames: 'chunks/[name]-[hash][extname]',
};

export default defineConfig({
  // Relative base: every URL emitted by Vite (dynamic imports, workers, preloads) is
  // computed from import.meta.url, so /static/viewer/ is not hard-coded anywhere.
  base: './',
  publicDir: false,
  logLevel: 'warn',
  plugins: [thirdPartyNotices({ emit: true })],
  resolve: {
    alias: {
      // vtk.js pulls this in for VTK XML readers we don't use; see src/stubs/xmlbuilder2.js.
      xmlbuilder2: fileURLToPath(new URL('./src/stubs/xmlbuilder2.js', import.meta.url)),
      // Node-only branches of the Emscripten codec glue (see src/stubs/empty.js).
      fs: fileURLToPath(new URL('./src/stubs/empty.js', import.meta.url)),
      path: fileURLToPath(new URL('./src/stubs/empty.js', import.meta.url)),
    },
  },
  worker: {
    // dicom-image-loader starts `new Worker(new URL(...), { type: 'module' })`.
    format: 'es',
    // The worker is built first; its packages are added to the notices of the main build.
    plugins: () => [thirdPartyNotices({ emit: false })],
    rolldownOptions: { checks: { bundlerTimings: false }, output: { entryFileNames: 'chunks/[name]-[hash].js', ...chunkNames } },
  },
  build: {
    outDir,
    emptyOutDir: true,
    sourcemap: false,
    minify: true,
    target: 'es2022',
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 4096,
    reportCompressedSize: false,
    cssCodeSplit: false,
    modulePreload: false,
    rolldownOptions: {
      // (build timing notes from Rolldown are noise here)
      checks: { bundlerTimings: false },
      input: { viewer: fileURLToPath(new URL('./src/main.js', import.meta.url)) },
      preserveEntrySignatures: 'allow-extension',
      output: {
        format: 'es',
        entryFileNames: 'viewer.js',
        ...chunkNames,
        // Nothing may import the entry: under Django's ManifestStaticFilesStorage the page
        // loads viewer.<hash>.js, and a chunk importing "../viewer.js" would evaluate the
        // module a second time. Vite's dynamic-import helper is shared by viewer.js and the
        // engine chunk, so it gets a chunk of its own.
        codeSplitting: { groups: [{ name: 'runtime', test: /preload-helper/ }] },
        assetFileNames: (info) => {
          const name = info.names?.[0] ?? info.name ?? '';
          return name.endsWith('.css') ? 'viewer.css' : 'chunks/[name]-[hash][extname]';
        },
      },
    },
  },
});

// Build of Chart.js into frontend/static/charts/ (committed, like frontend/static/viewer/).
//
// Output:
//
//   charts.js                  one classic script (IIFE, no module loader needed); defines
//                              window.TelemedCharts = { Chart } with all registerables
//   THIRD-PARTY-NOTICES.txt    licences of the bundled npm packages (Chart.js, @kurkle/color)
//
// The file name is stable (no hash): templates load it with {% static 'charts/charts.js' %}
// and Django's ManifestStaticFilesStorage adds its own hash when it collects static files.
// Minified, no source maps, and reproducible: the same package-lock.json gives the same bytes.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const outDir = fileURLToPath(new URL('../static/charts/', import.meta.url));

/** The npm package (name, directory) a bundled module file belongs to. */
function packageOf(file) {
  const i = file.lastIndexOf(`${sep}node_modules${sep}`);
  if (i < 0) return null;
  const rest = file.slice(i + 14).split(sep);
  const n = rest[0].startsWith('@') ? 2 : 1;
  return { name: rest.slice(0, n).join('/'), dir: file.slice(0, i + 14) + rest.slice(0, n).join(sep) };
}

/** Emit THIRD-PARTY-NOTICES.txt: name, version, licence and licence text of every bundled package. */
function thirdPartyNotices() {
  return {
    name: 'telemed-third-party-notices',
    apply: 'build',
    generateBundle(options, bundle) {
      const bundled = new Map();
      for (const chunk of Object.values(bundle)) {
        for (const id of Object.keys(chunk.modules || {})) {
          const pkg = packageOf(id.replace(/^\0/, '').split('?')[0]);
          if (pkg && !bundled.has(pkg.name)) bundled.set(pkg.name, pkg.dir);
        }
      }
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
        source: `Third-party software bundled in the Telemed charts (frontend/static/charts/charts.js)\n\n${parts.join(`\n\n${'-'.repeat(72)}\n\n`)}\n`,
      });
    },
  };
}

export default defineConfig({
  base: './',
  publicDir: false,
  logLevel: 'warn',
  plugins: [thirdPartyNotices()],
  build: {
    outDir,
    emptyOutDir: true,
    sourcemap: false,
    minify: true,
    // Clinics run old Chromium-based browsers: lower the syntax to ES2017.
    target: 'es2017',
    reportCompressedSize: false,
    modulePreload: false,
    rolldownOptions: {
      checks: { bundlerTimings: false },
      input: { charts: fileURLToPath(new URL('./src/index.js', import.meta.url)) },
      output: {
        format: 'iife',
        entryFileNames: 'charts.js',
      },
    },
  },
});

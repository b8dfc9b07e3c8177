// Builds dist/switchboard.js (one minified ESM file, esbuild) and dist/switchboard.d.ts
// (the declarations of src/index.ts in one file, dts-bundle-generator), prints the
// bundle's min+gzip size, and fails past 12 KB of it.
// `node build.mjs --check` builds in memory and fails if dist/ differs (the committed
// files must be what the sources build to; scripts/test.sh runs it after `npm ci`).
import { build } from 'esbuild';
import { generateDtsBundle } from 'dts-bundle-generator';
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const LIMIT = 12 * 1024;
const check = process.argv.includes('--check');
const pkg = JSON.parse(readFileSync('package.json', 'utf8'));

const js = (
  await build({
    entryPoints: ['src/index.ts'],
    bundle: true,
    format: 'esm',
    target: 'es2020',
    minify: true,
    legalComments: 'none',
    banner: { js: `// Switchboard browser client ${pkg.version} (clients/js in the Switchboard repository; MIT)` },
    write: false,
  })
).outputFiles[0].text;
const [dts] = generateDtsBundle([{ filePath: 'src/index.ts', output: { noBanner: true } }], {
  preferredConfigPath: 'tsconfig.json',
});

const gz = gzipSync(js, { level: 9 }).length;
console.log(`dist/switchboard.js: ${js.length} B minified, ${gz} B min+gzip (limit ${LIMIT} B)`);
if (gz > LIMIT) {
  console.error(`the bundle is over ${LIMIT} B min+gzip`);
  process.exit(1);
}

const out = { 'dist/switchboard.js': js, 'dist/switchboard.d.ts': dts };
if (check) {
  const stale = Object.entries(out).filter(([f, text]) => !existsSync(f) || readFileSync(f, 'utf8') !== text);
  for (const [f] of stale) console.error(`${f} differs from what the sources build to: run npm run build and commit it`);
  process.exit(stale.length ? 1 : 0);
}
mkdirSync('dist', { recursive: true });
for (const [f, text] of Object.entries(out)) writeFileSync(f, text);

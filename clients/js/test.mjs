// Runs the unit tests (vitest) and prints the summary line scripts/test.sh counts:
// "js-client: N passed, M failed". Exit status: vitest's.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'switchboard-vitest-'));
const out = join(dir, 'results.json');
const run = spawnSync(
  process.execPath,
  ['node_modules/vitest/vitest.mjs', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${out}`],
  { stdio: 'inherit' },
);
let passed = 0;
let failed = 1;
try {
  const r = JSON.parse(readFileSync(out, 'utf8'));
  passed = r.numPassedTests;
  failed = r.numFailedTests + (r.success || r.numFailedTests ? 0 : 1);
} catch {
  // No report: counted as one failure.
}
rmSync(dir, { recursive: true, force: true });
console.log(`js-client: ${passed} passed, ${failed} failed`);
process.exit(run.status ?? 1);

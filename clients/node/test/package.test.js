// The package as a user installs it: `npm pack` and an install of the tarball, and an install
// from a path (`--install-links`), each in a fresh folder; then an ES import of every export and
// a TypeScript check (NodeNext resolution) that the types are found and are the package's own.
// jose comes from npm's cache (`npm ci` here filled it) or the registry.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const tsc = join(here, 'node_modules', 'typescript', 'bin', 'tsc');
const npm = (cwd, ...args) =>
  execFileSync('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], { cwd, encoding: 'utf8' });

const USE = `import { createVerifier, createLogoutTokenVerifier, logoutReceiver, webhookReceiver, verifyWebhook, VerifyError, ReceiveError } from 'signoff-verify';
for (const f of [createVerifier, createLogoutTokenVerifier, logoutReceiver, webhookReceiver, verifyWebhook]) {
  if (typeof f !== 'function') throw new Error('missing export');
}
const e = new VerifyError('stale', 'x');
if (!(e instanceof Error) || e.code !== 'stale' || typeof ReceiveError !== 'function') throw new Error('bad classes');
console.log('imported');
`;

const TYPED = `import { createVerifier, VerifyError, type SignoffClaims } from 'signoff-verify';
export async function check(token: string): Promise<string> {
  const v = await createVerifier({ url: 'http://127.0.0.1:8080', clientId: 'id', clientSecret: 'secret' });
  try {
    const claims: SignoffClaims = await v.verify(token);
    return claims.sub.toUpperCase();
  } catch (e) {
    if (e instanceof VerifyError && e.claim === 'iss') return \`\${e.found} != \${e.expected}\`;
    throw e;
  } finally {
    await v.close();
  }
}
// @ts-expect-error: url is required (fails to compile if the types were not found)
createVerifier({ clientId: 'id', clientSecret: 'secret' });
`;

function app(t) {
  const dir = mkdtempSync(join(tmpdir(), 'signoff-verify-install-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'an-app', version: '1.0.0', private: true, type: 'module' }));
  return dir;
}

function usable(dir) {
  writeFileSync(join(dir, 'use.mjs'), USE);
  assert.equal(execFileSync(process.execPath, ['use.mjs'], { cwd: dir, encoding: 'utf8' }).trim(), 'imported');
  writeFileSync(join(dir, 'check.ts'), TYPED);
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: false, types: [] }, files: ['check.ts'] }),
  );
  try {
    execFileSync(process.execPath, [tsc, '-p', dir], { cwd: dir, encoding: 'utf8' });
  } catch (e) {
    assert.fail(`tsc: ${e.stdout}${e.stderr}`);
  }
}

test('npm pack, then npm install of the tarball: imports and type-checks', (t) => {
  const dir = app(t);
  const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: here, encoding: 'utf8' }))[0];
  const files = packed.files.map((f) => f.path).sort();
  assert.deepEqual(files, ['README.md', 'package.json', 'src/index.d.ts', 'src/index.js', 'src/metadata.js', 'src/receive.js']);
  npm(dir, 'install', join(dir, packed.filename));
  assert.ok(readdirSync(join(dir, 'node_modules')).includes('jose'), 'jose installed as a dependency');
  usable(dir);
});

test('npm install --install-links from a path: imports and type-checks', (t) => {
  const dir = app(t);
  npm(dir, 'install', '--install-links', here);
  usable(dir);
});

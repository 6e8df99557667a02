// Starting a real `signoff serve` for the tests (SIGNOFF_BIN names the binary; the suites fail
// without it), and stopping everything a test started when its file ends.

import { after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';

export const ADMIN = 'node-verifier-tests-admin-key-0123456789abcdef';
export const PASSWORD = 'correct horse battery staple';
const BIN = process.env.SIGNOFF_BIN;
assert.ok(BIN, 'SIGNOFF_BIN must name the signoff binary (cargo build --bin signoff)');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function freePort() {
  const srv = createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

// Everything a test started is stopped when the file ends, passed or failed (an open verifier
// or server would keep the test process alive).
const running = [];
export const closers = [];
after(async () => {
  for (const close of closers) await close();
  for (const s of running) s.stop();
});

export async function startSignoff(env = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'signoff-node-'));
  const port = await freePort();
  // The public URL names localhost, as by default; the libraries are given the internal
  // address (127.0.0.1), as a service on the same network would be, and learn the issuer.
  const base = `http://127.0.0.1:${port}`;
  const pub = `http://localhost:${port}`;
  const child = spawn(BIN, ['serve'], {
    env: {
      ...process.env,
      SIGNOFF_LISTEN: `127.0.0.1:${port}`,
      SIGNOFF_PUBLIC_URL: pub,
      SIGNOFF_DATABASE_URL: `sqlite://${join(dir, 'n.db')}`,
      SIGNOFF_ADMIN_TOKEN: ADMIN,
      SIGNOFF_LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const s = {
    base,
    public: pub,
    child,
    // The signoff CLI on the same database (another process: the server reads its changes
    // from the revocation feed).
    cli: (...args) =>
      JSON.parse(
        execFileSync(BIN, args, {
          env: { ...process.env, SIGNOFF_DATABASE_URL: `sqlite://${join(dir, 'n.db')}`, SIGNOFF_PUBLIC_URL: pub, SIGNOFF_LOG_LEVEL: 'warn' },
        }).toString(),
      ),
    signal: (sig) => child.kill(sig),
    stop() {
      try {
        child.kill('SIGCONT');
        child.kill('SIGKILL');
      } catch {}
      rmSync(dir, { recursive: true, force: true });
    },
    async post(path, body, bearer) {
      const headers = { 'content-type': 'application/json', accept: 'application/json' };
      if (bearer) headers.authorization = `Bearer ${bearer}`;
      const res = await fetch(base + path, { method: 'POST', headers, body: JSON.stringify(body) });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    },
  };
  running.push(s);
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if ((await fetch(`${base}/readyz`)).status === 200) break;
    } catch {}
    assert.ok(Date.now() < deadline, 'signoff did not become ready');
    await sleep(50);
  }
  return s;
}

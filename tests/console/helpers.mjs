// Helpers of the console's browser tests: a real `kiln serve` on a free port
// with a temporary data dir, seeded buckets, and Chromium driven by
// playwright-core (Debian's /usr/bin/chromium; playwright never downloads one).

import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const KILN_BIN = process.env.KILN_BIN || path.join(ROOT, 'target/debug/kiln');
export const ADMIN = 'kiln-test-admin-token-0123456789';
export const CHROMIUM = '/usr/bin/chromium';
export const SHOTS = path.join(ROOT, 'target/browser-tests/screenshots');
// Compiled plugins, shared by the tests' daemons (keyed by the wasm's sha256 and the engine).
const CACHE = path.join(ROOT, 'target/browser-tests/kiln-cache');

const require = createRequire(import.meta.url);
const children = new Set();
const dirs = new Set();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

function copyCache(from, to) {
  if (!fs.existsSync(from)) return;
  fs.mkdirSync(to, { recursive: true });
  for (const f of fs.readdirSync(from)) if (f.endsWith('.cwasm') && !fs.existsSync(path.join(to, f))) fs.copyFileSync(path.join(from, f), path.join(to, f));
}

/** Start `kiln serve` on 127.0.0.1:0 with a fresh data dir and the admin token; `config`: TOML text. */
export async function startDaemon({ config } = {}) {
  if (!fs.existsSync(KILN_BIN)) throw new Error(`${KILN_BIN} is missing: build it (cargo build -p kiln --bins) or set KILN_BIN`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-console-'));
  dirs.add(dir);
  copyCache(CACHE, path.join(dir, 'cache'));
  // KILN_CONSOLE_DIR passes through when the caller sets it (development); else the embedded console.
  const env = { ...process.env, KILN_ADMIN_TOKEN: ADMIN, KILN_LOG: process.env.KILN_LOG || 'warn' };
  const args = ['serve', '--listen', '127.0.0.1:0', '--data-dir', dir];
  if (config) {
    fs.writeFileSync(path.join(dir, 'kiln.toml'), config);
    args.push('--config', path.join(dir, 'kiln.toml'));
  }
  const child = spawn(KILN_BIN, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-20000)));
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`kiln did not start in 240 s:\n${stderr}`)), 240_000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`kiln exited with ${code}:\n${stderr}`));
    });
  });
  // On a cold compile cache the bundled plugins compile after the daemon listens.
  for (let i = 0; ; i++) {
    const r = await fetch(`${url}/readyz`).catch(() => null);
    if (r && r.ok) break;
    if (i > 3000) throw new Error(`kiln not ready after 5 min: ${r && (await r.text())}`);
    await new Promise((res) => setTimeout(res, 100));
  }
  copyCache(path.join(dir, 'cache'), CACHE);
  const daemon = {
    url,
    dir,
    stderr: () => stderr,
    /** Create a local bucket (a folder of buckets/). */
    bucket(name) {
      fs.mkdirSync(path.join(dir, 'buckets', name), { recursive: true });
      return name;
    },
    /** Write an object into a local bucket. */
    put(bucket, key, bytes) {
      const p = path.join(dir, 'buckets', bucket, key);
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.writeFileSync(p, bytes);
    },
    /** An object of a local bucket, or null. */
    read(bucket, key) {
      const p = path.join(dir, 'buckets', bucket, key);
      return fs.existsSync(p) ? fs.readFileSync(p) : null;
    },
    /** Call the API; returns the parsed JSON (or text), throws on an error status. */
    async api(method, p, body, tok = ADMIN) {
      const res = await fetch(url + p, {
        method,
        headers: { Authorization: `Bearer ${tok}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${text}`);
      return text && (res.headers.get('content-type') || '').includes('json') ? JSON.parse(text) : text;
    },
    /** Wait until the job is in one of `states` (API), and return it. */
    async waitJob(id, states, timeout = 60_000) {
      return waitFor(async () => {
        const j = await daemon.api('GET', `/v1/jobs/${id}`);
        return states.includes(j.state) ? j : null;
      }, timeout, `job ${id} to be ${states.join('/')}`);
    },
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode != null ? r() : child.once('exit', r)));
      children.delete(child);
      fs.rmSync(dir, { recursive: true, force: true });
      dirs.delete(dir);
    },
  };
  return daemon;
}

/** Poll `fn` until it returns a truthy value. */
export async function waitFor(fn, timeout = 30_000, what = 'a condition') {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** playwright-core, as scripts/console-test installs it. */
export function playwright() {
  return require(path.join(ROOT, 'target/browser-tests/node_modules/playwright-core'));
}

/** Debian's Chromium, headless, with a fresh profile. */
export async function launch() {
  const { chromium } = playwright();
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/**
 * A new page that records what must never happen: dialogs (an XSS `alert`),
 * uncaught errors, CSP violations.
 */
export async function newPage(browser, { viewport = { width: 1280, height: 900 } } = {}) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  page.dialogs = [];
  page.problems = [];
  page.on('dialog', (d) => {
    page.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) page.problems.push(`CSP: ${m.text()}`);
  });
  page.setDefaultTimeout(20_000);
  return page;
}

/** Sign in through the form. */
export async function signIn(page, url, tok = ADMIN) {
  await page.goto(url + '/');
  await page.getByLabel('Token').fill(tok);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
}

export async function screenshot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  const p = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: p, fullPage: true });
  return p;
}

/** A small valid PNG (RGB, one colour). */
export function png(w = 8, h = 8, [r, g, b] = [200, 80, 20]) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const byte of buf) c = crcTable[(c ^ byte) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const row = Buffer.concat([Buffer.from([0]), Buffer.from(Array.from({ length: w }, () => [r, g, b]).flat())]);
  const raw = Buffer.concat(Array.from({ length: h }, () => row));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

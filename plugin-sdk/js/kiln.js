// kiln-plugin-sdk for JavaScript: small, synchronous helpers over the
// `kiln:plugin@0.2.0` contract (`wit/0.2.0/kiln-plugin.wit`) for plugins built
// with `jco componentize` (componentize-js, the StarlingMonkey engine).
//
//   import { definePlugin, readAll, openOutput, invalidParams } from '../../kiln.js';
//   export const { info, validate, process } = definePlugin({ info: {...}, validate(style) {...}, process(task) {...} });
//
// How componentize-js 0.23 maps the contract to JavaScript (read from the
// bindings it generates, `jco componentize --debug-bindings`):
//
// - Exports are the module's named exports, in camelCase: `info`, `validate`,
//   `process`. Imports are ES modules named by interface and version:
//   `import { log } from 'kiln:plugin/host@0.2.0'`. The resources of
//   `kiln:plugin/types` are never constructed by the plugin: they arrive as
//   arguments (`input`, `outputs`) or results (`outputs.open` -> `output`).
// - Records are plain objects with camelCase fields (`contentType`,
//   `lastModified`); kebab-case names become camelCase everywhere, also
//   methods (`read-at` -> `readAt`).
// - `option<T>` is `T` or `undefined` (`null` is accepted when lowering). A
//   record field of option type may be left out; a `list` field may not (a
//   missing list is a TypeError, which traps: see below).
// - `u32` is a number; `u64` and `s64` are BigInt (`object.size`,
//   `object.lastModified`, `input.size()`); a number is accepted where a `u64`
//   is passed (`input.readAt(0, n)` works, it is converted with `BigInt()`).
// - `list<u8>` is a `Uint8Array` (a copy of the host's bytes); when passed in,
//   a `Uint8Array`, any typed array/ArrayBuffer or an array of numbers (slow).
//   A string is NOT accepted: encode it first (`openOutput`'s writer does).
// - `tuple<string, string>` is a two-element array, `['page', '3']`.
// - `enum` is its case name as a string: `log('info', ...)`.
// - `variant` is `{ tag: 'case-name', val }` with the WIT (kebab-case) case
//   name: `{ tag: 'invalid-params', val: 'message' }`.
// - `borrow<input>` is an object of the resource's class, valid only during
//   the call: its handle is dropped when `process` returns.
// - `result<T, E>` returned by an import (`input.read`, `output.write`,
//   `outputs.open`): the `ok` value is returned, an `err` is thrown as a
//   `ComponentError` (an `Error` whose message is the host's string and whose
//   `payload` is the `err` value).
// - `result<T, E>` of an export: a returned value is `ok`; a returned object
//   `{ tag: 'ok' | 'err', val }` is taken as the result itself; a thrown
//   value is `err` *only* if it is not an `Error` (the thrown value is the
//   `err` payload) or if it is an `Error` with an own `payload` property.
//   Any other thrown `Error` (TypeError, RangeError, ...) traps.
//
// Why `definePlugin` matters: with `-d all` (no WASI: the only way past Kiln's
// import check), the engine has no stderr, so an uncaught exception is a bare
// wasm trap with no message. `definePlugin` therefore catches everything and
// returns it as the contract's error (`failed` with the exception's message),
// and it turns a `ComponentError` that a host call threw, which would otherwise
// become a `string` payload where a `process-error` variant is expected (a
// trap), into `failed`. `info` cannot fail in the contract: it is normalised
// here so that a missing list does not trap.

import { log as hostLog } from 'kiln:plugin/host@0.2.0';
import { StyleError, parseStyle } from './style.js';

export { Action, StyleError, parseStyle, unknownAction } from './style.js';

/** The most one `input.read` or `read-at` returns (the host's cap, docs/sandbox.md). */
export const MAX_READ = 1024 * 1024;
/** `output.write` is called with at most this many bytes at a time. */
export const WRITE_CHUNK = 1024 * 1024;
/** Small writes are gathered up to this size before crossing to the host. */
const WRITE_BUFFER = 64 * 1024;
/** The largest task result the host keeps (64 KiB of JSON). */
export const MAX_RESULT = 64 * 1024;

const encoder = new TextEncoder();

// ---- errors ------------------------------------------------------------

/**
 * An error `process` reports with its kind: `invalid-params`,
 * `unsupported-input` or `failed`. Its own `payload` property is the
 * `process-error` variant, so even thrown outside `definePlugin` it is lowered
 * as the contract's error rather than trapping.
 */
export class ProcessError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = 'ProcessError';
    this.kind = kind;
    Object.defineProperty(this, 'payload', { value: { tag: kind, val: String(message) } });
  }
}
/** The style parameters are wrong (name the action and key). */
export const invalidParams = (message) => new ProcessError('invalid-params', message);
/** The object cannot be processed by this plugin (wrong format, corrupt, too large). */
export const unsupportedInput = (message) => new ProcessError('unsupported-input', message);
/** Anything else. */
export const failed = (message) => new ProcessError('failed', message);

/** Text of any thrown value, for a message. */
function describe(e) {
  if (e instanceof Error) return e.message || e.name;
  return typeof e === 'string' ? e : JSON.stringify(e) ?? String(e);
}

/** Any thrown value as a `process-error` variant. */
function toProcessError(e) {
  if (e instanceof ProcessError) return e.payload;
  if (e instanceof StyleError) return { tag: 'invalid-params', val: e.message };
  if (e && typeof e === 'object' && ['invalid-params', 'unsupported-input', 'failed'].includes(e.tag)) {
    return { tag: e.tag, val: String(e.val) };
  }
  return { tag: 'failed', val: describe(e) };
}

// ---- the task's log ------------------------------------------------------

/** Lines in the task's log (`kiln:plugin/host.log`): `log.info('...')`. */
export const log = Object.freeze({
  trace: (m) => hostLog('trace', String(m)),
  debug: (m) => hostLog('debug', String(m)),
  info: (m) => hostLog('info', String(m)),
  warn: (m) => hostLog('warn', String(m)),
  error: (m) => hostLog('error', String(m)),
});

// ---- reading the source ------------------------------------------------

/** Call a host method, turning its `err` string into `failed` with context. */
function host(what, f) {
  try {
    return f();
  } catch (e) {
    if (e instanceof ProcessError) throw e;
    throw failed(`${what}: ${describe(e)}`);
  }
}

/** The object's size as a number, or `undefined` when the bucket does not know it. */
export function sizeOf(input) {
  const s = host('input.size', () => input.size());
  return s === undefined ? undefined : Number(s);
}

/**
 * The source in chunks of at most `size` bytes (default and cap: 1 MiB), from
 * where the last read stopped: `for (const chunk of chunks(input)) ...`.
 */
export function* chunks(input, size = MAX_READ) {
  const max = Math.max(1, Math.min(size, MAX_READ));
  for (;;) {
    const chunk = host('input.read', () => input.read(max));
    if (chunk.length === 0) return;
    yield chunk;
  }
}

/**
 * The whole (rest of the) source as one `Uint8Array`. More than `max` bytes
 * (default 64 MiB) is refused as `unsupported-input` before it is all read
 * when the size is known, else as soon as the cap is passed.
 */
export function readAll(input, { max = 64 * 1024 * 1024 } = {}) {
  const known = sizeOf(input);
  const tooLarge = (n) => unsupportedInput(`the object is ${n} bytes or more; this style reads at most ${max}`);
  if (known !== undefined && known > max) throw tooLarge(known);
  const parts = [];
  let total = 0;
  for (const c of chunks(input)) {
    total += c.length;
    if (total > max) throw tooLarge(total);
    parts.push(c);
  }
  return concat(parts, total);
}

/** The whole source decoded as UTF-8 (invalid sequences become U+FFFD), capped like `readAll`. */
export function readText(input, opts) {
  return new TextDecoder().decode(readAll(input, opts));
}

/**
 * `len` bytes from byte `offset` (a number or BigInt), fewer at the end of the
 * object, none past it. Does not move `read`'s position. Calls `read-at` as
 * many times as the host's 1 MiB cap needs.
 */
export function readAt(input, offset, len) {
  const parts = [];
  let got = 0;
  const start = BigInt(offset);
  while (got < len) {
    const want = Math.min(len - got, MAX_READ);
    const c = host('input.read-at', () => input.readAt(start + BigInt(got), want));
    if (c.length === 0) break;
    parts.push(c);
    got += c.length;
  }
  return concat(parts, got);
}

function concat(parts, total) {
  if (parts.length === 1) return parts[0];
  const all = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return all;
}

// ---- writing outputs -----------------------------------------------------

// Writers opened during the current `process` call: `definePlugin` flushes
// them before it returns `ok` (the host commits an output only then).
let openWriters = [];

/**
 * Open the task's next output (`{index}` = 1, 2, ...) and return a writer:
 *
 *   const out = openOutput(outputs, { extension: 'txt', contentType: 'text/plain; charset=utf-8' });
 *   out.write('text');            // a string (UTF-8) or bytes
 *
 * `variables` is an object or a list of pairs (`{ page: 3 }`, `[['page', '3']]`)
 * of the output variables `info` declares. Small writes are buffered (64 KiB)
 * and large ones cut into 1 MiB `output.write` calls; `flush()` sends what is
 * buffered, and `definePlugin` flushes every writer when `process` returns.
 */
export function openOutput(outputs, { extension, contentType, variables = [] } = {}) {
  const pairs = Array.isArray(variables) ? variables : Object.entries(variables);
  const options = {
    extension: extension ?? undefined,
    contentType: contentType ?? undefined,
    variables: pairs.map(([k, v]) => [String(k), String(v)]),
  };
  const output = host('outputs.open', () => outputs.open(options));
  const writer = new Writer(output);
  openWriters.push(writer);
  return writer;
}

/** A buffered, chunking writer over one `output` resource. */
export class Writer {
  constructor(output) {
    this.output = output;
    this.buffer = new Uint8Array(WRITE_BUFFER);
    this.buffered = 0;
    /** Bytes written so far (buffered included). */
    this.bytesWritten = 0;
  }

  /** Write a string (as UTF-8) or bytes (`Uint8Array`, any typed array, `ArrayBuffer`). */
  write(data) {
    let bytes;
    if (typeof data === 'string') bytes = encoder.encode(data);
    else if (data instanceof Uint8Array) bytes = data;
    else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    else if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
    else throw new TypeError('write: expected a string or bytes');
    this.bytesWritten += bytes.length;
    if (this.buffered + bytes.length <= WRITE_BUFFER) {
      this.buffer.set(bytes, this.buffered);
      this.buffered += bytes.length;
      return;
    }
    this.flush();
    if (bytes.length < WRITE_BUFFER) {
      this.buffer.set(bytes, 0);
      this.buffered = bytes.length;
      return;
    }
    for (let at = 0; at < bytes.length; at += WRITE_CHUNK) {
      this.send(bytes.subarray(at, at + WRITE_CHUNK));
    }
  }

  /** Send what is buffered to the host. */
  flush() {
    if (this.buffered > 0) {
      const pending = this.buffer.subarray(0, this.buffered);
      this.buffered = 0;
      this.send(pending);
    }
  }

  send(bytes) {
    host('output.write', () => this.output.write(bytes));
  }
}

// ---- the plugin ----------------------------------------------------------

function normaliseInfo(i) {
  const list = (v) => (v ?? []).map(String);
  const opt = (v) => (v === undefined || v === null ? undefined : String(v));
  // 0.2.0 describes the actions as one JSON string (empty for none): the SDK
  // takes them as objects, fills in what was left out and serialises them.
  let actions = i.actions ?? '';
  if (typeof actions !== 'string') {
    actions = actions.length === 0 ? '' : JSON.stringify(
      actions.map((a) => ({
        name: String(a.name),
        description: String(a.description ?? ''),
        params: (a.params ?? []).map((p) => ({
          name: String(p.name),
          kind: String(p.kind ?? 'string'),
          description: String(p.description ?? ''),
          default: opt(p.default),
          range: opt(p.range),
          choices: list(p.choices),
        })),
      })),
    );
  }
  return {
    name: String(i.name),
    version: String(i.version ?? '0.0.0'),
    description: String(i.description ?? ''),
    reads: list(i.reads),
    writes: list(i.writes),
    variables: list(i.variables),
    actions,
  };
}

/**
 * The three exports of a plugin, from friendlier callbacks:
 *
 * - `info`: an object (or a function returning one) in the shape of the WIT's
 *   `plugin-info`, where every list and description may be left out, and
 *   `actions` is a list of `{ name, description, params: [{ name, kind,
 *   description, default, range, choices }] }` (serialised to the JSON string
 *   the contract carries) or that JSON string itself.
 * - `validate(style, params)`: gets the parsed style (`parseStyle`); throws a
 *   `StyleError` (or anything: its message) to refuse it; returns `undefined`,
 *   an extension string, or `{ extension }` (the `checked-style`).
 * - `process({ params, style, object, input, outputs })`: `validate` has
 *   already accepted `style` (a refusal is `invalid-params`); throw
 *   `ProcessError`s (`invalidParams`, `unsupportedInput`, `failed`) or
 *   anything else (`failed`); return `undefined` (no task result) or any
 *   JSON-serialisable value (the task result, at most 64 KiB as JSON).
 *
 * Usage: `export const { info, validate, process } = definePlugin({...})`.
 */
export function definePlugin({ info, validate = () => undefined, process }) {
  const check = (params) => {
    const style = parseStyle(params);
    const r = validate(style, params);
    return { style, extension: typeof r === 'string' ? r : r?.extension };
  };
  return {
    info() {
      return normaliseInfo(typeof info === 'function' ? info() : info);
    },
    validate(params) {
      try {
        return { tag: 'ok', val: { extension: check(params).extension } };
      } catch (e) {
        return { tag: 'err', val: describe(e) };
      }
    },
    process(params, object, input, outputs) {
      openWriters = [];
      try {
        let style;
        try {
          style = check(params).style;
        } catch (e) {
          throw e instanceof ProcessError ? e : invalidParams(describe(e));
        }
        const value = process({ params, style, object, input, outputs });
        for (const w of openWriters) w.flush();
        if (value === undefined) return { tag: 'ok', val: undefined };
        const json = JSON.stringify(value);
        if (encoder.encode(json).length > MAX_RESULT) {
          throw failed(`the task result is ${json.length} characters of JSON; at most ${MAX_RESULT} bytes are kept`);
        }
        return { tag: 'ok', val: json };
      } catch (e) {
        return { tag: 'err', val: toProcessError(e) };
      } finally {
        openWriters = [];
      }
    },
  };
}

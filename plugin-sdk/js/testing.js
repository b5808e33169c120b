// Run a built plugin component in Node, no Kiln needed: the component is
// transpiled with jco (`transpile`, from `@bytecodealliance/jco`, passed in)
// and instantiated against a small in-memory host of `kiln:plugin@0.2.0` that
// behaves like Kiln's where a plugin can tell: `read` and `read-at` hand out at
// most 1 MiB, `size` may be unknown, `open` refuses a bad extension.
//
//   import { transpile } from '@bytecodealliance/jco';
//   const plugin = await loadPlugin('dist/text.wasm', { transpile });
//   const r = plugin.run('upper', 'hello\n');  // { outputs: [{ options, bytes, text }], result, error, logs }
//
// Node-only (it writes the transpiled files to a temporary folder).

import { mkdtemp, readFile, writeFile, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

const MAX_READ = 1024 * 1024;
const encoder = new TextEncoder();

export async function loadPlugin(wasmPath, { transpile }) {
  const { files } = await transpile(await readFile(wasmPath), { name: 'plugin', instantiation: 'sync' });
  const dir = await mkdtemp(join(tmpdir(), 'kiln-js-plugin-'));
  for (const [name, bytes] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), bytes);
  }
  const { instantiate } = await import(pathToFileURL(join(dir, 'plugin.js')).href);
  const modules = {};
  for (const name of Object.keys(files).filter((n) => n.endsWith('.wasm'))) {
    modules[name] = new WebAssembly.Module(files[name]);
  }
  await rm(dir, { recursive: true, force: true });

  let task; // what the current `process` call sees and does

  class Input {
    read(max) {
      const c = task.bytes.slice(task.pos, task.pos + Math.min(max, MAX_READ));
      task.pos += c.length;
      task.bytesRead += c.length;
      return c;
    }
    size() {
      return task.sizeKnown ? BigInt(task.bytes.length) : undefined;
    }
    readAt(offset, len) {
      const at = Number(offset);
      const c = task.bytes.slice(at, at + Math.min(len, MAX_READ));
      task.bytesRead += c.length;
      return c;
    }
  }
  class Output {
    constructor(record) {
      this.record = record;
    }
    write(bytes) {
      this.record.chunks.push(Uint8Array.from(bytes));
    }
  }
  class Outputs {
    open(options) {
      if (options.extension !== undefined && !/^[A-Za-z0-9]{1,16}$/.test(options.extension)) {
        throw `extension \`${options.extension}\`: 1 to 16 ASCII letters or digits`;
      }
      const record = { options, chunks: [] };
      task.outputs.push(record);
      return new Output(record);
    }
  }
  const imports = {
    'kiln:plugin/host': { log: (level, message) => task?.logs.push(`${level}: ${message}`) },
    'kiln:plugin/types': { Input, Output, Outputs },
  };
  imports['kiln:plugin/host@0.2.0'] = imports['kiln:plugin/host'];
  imports['kiln:plugin/types@0.2.0'] = imports['kiln:plugin/types'];

  // A fresh instance per call, as Kiln does per task.
  const fresh = () => instantiate((name) => modules[name], imports);

  return {
    info: () => fresh().info(),
    /** `{ ok: checked-style }` or `{ err: message }`. */
    validate(params) {
      try {
        return { ok: fresh().validate(params) };
      } catch (e) {
        return { err: e.payload ?? e };
      }
    },
    /**
     * Process `data` (string or bytes) as object `key`. Returns the outputs
     * (options, bytes, text), the task result (parsed JSON or undefined), the
     * error (`{ tag, val }`) if `process` failed, the log lines and the bytes read.
     */
    run(params, data, { key = 'in.txt', sizeKnown = true } = {}) {
      const bytes = typeof data === 'string' ? encoder.encode(data) : data;
      task = { bytes, pos: 0, bytesRead: 0, sizeKnown, outputs: [], logs: [] };
      const object = { bucket: 'local', key, size: sizeKnown ? BigInt(bytes.length) : undefined };
      let result;
      let error;
      try {
        const r = fresh().process(params, object, new Input(), new Outputs());
        result = r === undefined ? undefined : JSON.parse(r);
      } catch (e) {
        if (e.payload === undefined) throw e; // a trap
        error = e.payload;
      }
      const outputs = task.outputs.map(({ options, chunks }) => {
        const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
        let at = 0;
        for (const c of chunks) {
          all.set(c, at);
          at += c.length;
        }
        return { options, bytes: all, text: new TextDecoder().decode(all), writes: chunks.length };
      });
      return { outputs, result, error, logs: task.logs, bytesRead: task.bytesRead };
    },
  };
}

// The built component (`npm run build`), run in Node through lib/testing.js.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { transpile } from '@bytecodealliance/jco';
import { loadPlugin } from '../lib/testing.js';

const plugin = await loadPlugin(process.env.KILN_JS_PLUGIN ?? 'dist/{{name}}.wasm', { transpile });

test('upper, count, and a refused action', () => {
  assert.equal(plugin.run('upper', 'hello kiln\n').outputs[0].text, 'HELLO KILN\n');
  assert.deepEqual(plugin.run('count', 'a\nb\n').result, { bytes: 4, lines: 2 });
  assert.match(plugin.validate('shout').err, /unknown action `shout`/);
});

// The example plugin, built (scripts/build-js-example or `npm run build`), run
// in Node through plugin-sdk/js/testing.js:
//   KILN_JS_PLUGIN=dist/text.wasm node --test test/
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { transpile } from '@bytecodealliance/jco';
import { loadPlugin } from '../../testing.js';

const plugin = await loadPlugin(process.env.KILN_JS_PLUGIN ?? 'dist/text.wasm', { transpile });
const POEM = 'the quick brown fox\njumps over\nthe lazy dog\n';

test('info describes the actions', () => {
  const info = plugin.info();
  assert.equal(info.name, 'text');
  const actions = JSON.parse(info.actions); // 0.2.0: one JSON string
  assert.deepEqual(actions.map((a) => a.name), ['upper', 'lower', 'lines', 'tail', 'stats']);
  assert.deepEqual(actions[2].params[0], {
    name: 'n', kind: 'int', description: 'How many lines', default: '10', range: '1..=1000000', choices: [],
  });
});

test('validate gives the extension, or names the action and key', () => {
  assert.deepEqual(plugin.validate('upper'), { ok: { extension: 'txt' } });
  assert.deepEqual(plugin.validate('stats'), { ok: { extension: undefined } });
  assert.match(plugin.validate('upper,zz_1').err, /action `upper`: unknown parameter `zz`/);
  assert.match(plugin.validate('lines,n_0').err, /parameter `n` has invalid value `0`: must be between 1 and 1000000/);
  assert.match(plugin.validate('shout').err, /unknown action `shout`; expected one of: upper, lower, lines, tail, stats/);
  assert.match(plugin.validate('a//b').err, /empty action at position 2/);
});

test('upper and lower, with the content type', () => {
  const r = plugin.run('upper', 'Grüße, ÉTÉ\n');
  assert.equal(r.error, undefined);
  assert.equal(r.outputs.length, 1);
  assert.equal(r.outputs[0].text, 'GRÜSSE, ÉTÉ\n');
  assert.deepEqual(r.outputs[0].options, { extension: 'txt', contentType: 'text/plain; charset=utf-8', variables: [] });
  assert.equal(plugin.run('lower', 'ABC É\n').outputs[0].text, 'abc é\n');
});

test('upper streams: a character split between two 1 MiB reads stays whole', () => {
  const text = 'a'.repeat(1024 * 1024 - 1) + 'é' + 'b'.repeat(10);
  const r = plugin.run('upper', text);
  assert.equal(r.outputs[0].text, text.toUpperCase());
});

test('lines and tail', () => {
  assert.equal(plugin.run('lines,n_2', POEM).outputs[0].text, 'the quick brown fox\njumps over\n');
  assert.equal(plugin.run('lines,n_9', POEM).outputs[0].text, POEM);
  assert.equal(plugin.run('tail,n_2', POEM).outputs[0].text, 'jumps over\nthe lazy dog\n');
  assert.equal(plugin.run('tail,n_2', 'a\nb\nc').outputs[0].text, 'b\nc');
  assert.equal(plugin.run('tail,n_5', POEM).outputs[0].text, POEM);
  assert.equal(plugin.run('tail,n_2', POEM, { sizeKnown: false }).outputs[0].text, 'jumps over\nthe lazy dog\n');
});

test('tail reads only the end of a large object with read-at', () => {
  const big = 'x'.repeat(100).concat('\n').repeat(50000) + 'last\n';
  const r = plugin.run('tail,n_2', big);
  assert.equal(r.outputs[0].text, 'x'.repeat(100) + '\nlast\n');
  assert.ok(r.bytesRead <= 64 * 1024, `read ${r.bytesRead} bytes`);
});

test('stats is the task result, with no output', () => {
  const r = plugin.run('stats', POEM);
  assert.deepEqual(r.result, { bytes: 44, lines: 3, words: 9 });
  assert.equal(r.outputs.length, 0);
  assert.deepEqual(r.logs, ['info: text/stats: in.txt: 44 bytes']);
});

test('bad parameters in process are invalid-params', () => {
  const r = plugin.run('upper,zz_1', POEM);
  assert.equal(r.error.tag, 'invalid-params');
  assert.match(r.error.val, /unknown parameter `zz`/);
});

test('large outputs are written in chunks of at most 1 MiB', () => {
  const text = 'y'.repeat(3 * 1024 * 1024 + 5);
  const r = plugin.run('upper', text);
  assert.equal(r.outputs[0].bytes.length, text.length);
  assert.ok(r.outputs[0].writes >= 4, `${r.outputs[0].writes} writes`);
});

// The style parser, as the Rust SDK's tests have it: `node --test plugin-sdk/js/test`.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseStyle, unknownAction } from '../style.js';

test('parses actions, keys and bare values', () => {
  const s = parseStyle('resize,w_200,h_100/format,webp');
  assert.equal(s.actions.length, 2);
  assert.equal(s.actions[0].name, 'resize');
  assert.equal(s.actions[0].int('w'), 200);
  assert.equal(s.actions[0].int('h'), 100);
  assert.deepEqual(s.actions[1].values(), ['webp']);
  assert.equal(s.toString(), 'resize,w_200,h_100/format,webp');
  assert.equal(parseStyle('').actions.length, 0);
  assert.equal(parseStyle('text,t_hello_world').actions[0].raw('t'), 'hello_world');
});

test('errors name the action and key', () => {
  const a = parseStyle('resize,w_abc').actions[0];
  assert.throws(() => a.int('w'), /action `resize`: parameter `w` has invalid value `abc`/);
  assert.throws(() => a.expectKeys(['h']), /unknown parameter `w`; expected one of: h/);
  assert.throws(() => a.require('h'), /`h` is required/);
  assert.throws(() => parseStyle('quality,q_150').actions[0].int('q', { min: 1, max: 100 }), /between 1 and 100/);
  assert.throws(() => parseStyle('format,webp').actions[0].expectKeys([]), /action `format`: unexpected value `webp`/);
  assert.equal(unknownAction('x', ['a', 'b']).message, 'unknown action `x`; expected one of: a, b');
});

test('malformed styles are refused', () => {
  assert.throws(() => parseStyle('a//b'), /empty action at position 2/);
  assert.throws(() => parseStyle('/a'), /empty action at position 1/);
  assert.throws(() => parseStyle('a,,b'), /empty argument/);
  assert.throws(() => parseStyle('a,w_1,w_2'), /parameter `w` is given twice/);
});

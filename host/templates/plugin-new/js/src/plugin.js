// `{{name}}`: a Kiln processing plugin in JavaScript (kiln:plugin@0.2.0), made
// by `kiln plugin new`. Build: `npm install && npm run build`.
//
//   {{name}}/upper   the text, upper-cased (the default)
//   {{name}}/copy    the object unchanged
//   {{name}}/count   no output; the task's result is {"bytes": N, "lines": N}

import { chunks, definePlugin, openOutput, unknownAction } from '../lib/kiln.js';

const ACTIONS = [
  { name: 'upper', description: 'The text, upper-cased', params: [] },
  { name: 'copy', description: 'The object unchanged', params: [] },
  { name: 'count', description: 'No output; the task result is {"bytes","lines"}', params: [] },
];
const NAMES = ACTIONS.map((a) => a.name);

function action(style) {
  const a = style.actions[style.actions.length - 1];
  if (!a) return 'upper';
  if (!NAMES.includes(a.name)) throw unknownAction(a.name, NAMES);
  a.expectKeys([], false);
  return a.name;
}

export const { info, validate, process } = definePlugin({
  info: {
    name: '{{name}}',
    version: '0.1.0',
    description: 'Upper-cases or copies an object, or counts its lines',
    writes: ['txt'],
    actions: ACTIONS,
  },
  validate(style) {
    return action(style) === 'upper' ? 'txt' : undefined;
  },
  process({ style, input, outputs }) {
    const name = action(style);
    if (name === 'count') {
      let bytes = 0;
      let lines = 0;
      for (const chunk of chunks(input)) {
        bytes += chunk.length;
        for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
      }
      return { bytes, lines };
    }
    const out = openOutput(outputs, name === 'upper' ? { extension: 'txt', contentType: 'text/plain; charset=utf-8' } : {});
    for (const chunk of chunks(input)) {
      if (name === 'upper') {
        // ASCII letters only: a chunk may end inside a multi-byte character.
        for (let i = 0; i < chunk.length; i++) if (chunk[i] >= 97 && chunk[i] <= 122) chunk[i] -= 32;
      }
      out.write(chunk);
    }
    return undefined;
  },
});

// The style grammar, `action,k_v,k_v/action,k_v`, as the Rust SDK parses it
// (`plugin-sdk/src/style.rs`), with the same error messages. Pure JavaScript:
// no WIT import, so it also runs under Node (`node --test plugin-sdk/js/test`).
//
// A style such as `text/lines,n_10` names the plugin in its first segment; the
// plugin receives the rest (`lines,n_10`) as its parameters. Actions are
// separated by `/`, arguments by `,`. An argument is `key_value` or a bare
// value (`webp`); a value may contain `_` (`t_hello_world` is `t` = `hello_world`).

/** Why a style or one of its values was refused. The message names the action and the key. */
export class StyleError extends Error {
  constructor(message) {
    super(message);
    this.name = 'StyleError';
  }
}

/** An `unknown action` error listing what the plugin accepts (Rust: `style::unknown_action`). */
export function unknownAction(action, expected) {
  return new StyleError(`unknown action \`${action}\`; expected one of: ${expected.join(', ')}`);
}

/** One action of a style and its arguments, in the order given. */
export class Action {
  constructor(name, args) {
    /** @type {string} */
    this.name = name;
    /** @type {{key: string|undefined, value: string}[]} */
    this.args = args;
  }

  /** The raw value of `key`, or `undefined`. */
  raw(key) {
    const a = this.args.find((a) => a.key === key);
    return a === undefined ? undefined : a.value;
  }

  /** The bare values (arguments without `key_`), in order. */
  values() {
    return this.args.filter((a) => a.key === undefined).map((a) => a.value);
  }

  /** A `StyleError` for `key` of this action. */
  invalid(key, value, reason) {
    return new StyleError(`action \`${this.name}\`: parameter \`${key}\` has invalid value \`${value}\`: ${reason}`);
  }

  /**
   * An integer: `undefined` when absent (or `def` if given), an error naming the
   * action and key when it is not an integer or lies outside `min..=max`.
   */
  int(key, { min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER, def } = {}) {
    const v = this.raw(key);
    if (v === undefined) return def;
    if (!/^[+-]?[0-9]+$/.test(v)) throw this.invalid(key, v, 'not an integer');
    const n = Number(v);
    if (!(n >= min && n <= max)) throw this.invalid(key, v, `must be between ${min} and ${max}`);
    return n;
  }

  /** A number (`1.5`, `-2`, `1e3`), with optional bounds, like `int`. */
  float(key, { min = -Infinity, max = Infinity, def } = {}) {
    const v = this.raw(key);
    if (v === undefined) return def;
    const n = /^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/.test(v) ? Number(v) : NaN;
    if (Number.isNaN(n)) throw this.invalid(key, v, 'not a number');
    if (!(n >= min && n <= max)) throw this.invalid(key, v, `must be between ${min} and ${max}`);
    return n;
  }

  /** `true`/`false` (also `1`/`0`). */
  bool(key, { def } = {}) {
    const v = this.raw(key);
    if (v === undefined) return def;
    if (v === 'true' || v === '1') return true;
    if (v === 'false' || v === '0') return false;
    throw this.invalid(key, v, 'expected true or false');
  }

  /** One of `choices`. */
  oneOf(key, choices, { def } = {}) {
    const v = this.raw(key);
    if (v === undefined) return def;
    if (!choices.includes(v)) throw this.invalid(key, v, `expected one of ${choices.join(', ')}`);
    return v;
  }

  /** Throw `parameter is required` when `key` is absent (Rust: `Action::require`). */
  require(key) {
    const v = this.raw(key);
    if (v === undefined) throw new StyleError(`action \`${this.name}\`: parameter \`${key}\` is required`);
    return v;
  }

  /** Refuse any key not in `allowed`, and any bare value unless `allowValues`. */
  expectKeys(allowed, allowValues = false) {
    for (const a of this.args) {
      if (a.key !== undefined && !allowed.includes(a.key)) {
        const expected = allowed.length ? allowed.join(', ') : '(none)';
        throw new StyleError(`action \`${this.name}\`: unknown parameter \`${a.key}\`; expected one of: ${expected}`);
      }
      if (a.key === undefined && !allowValues) {
        throw new StyleError(`action \`${this.name}\`: unexpected value \`${a.value}\``);
      }
    }
  }
}

/**
 * Parse a plugin's parameters. An empty string is a style with no actions.
 * @returns {{actions: Action[], toString(): string}}
 */
export function parseStyle(params) {
  const text = String(params ?? '').trim();
  const actions = [];
  if (text !== '') {
    text.split('/').forEach((segment, i) => {
      const parts = segment.split(',');
      const name = parts.shift().trim();
      if (name === '') {
        throw new StyleError(
          `empty action at position ${i + 1} (two \`/\` in a row, or a leading or trailing \`/\`)`,
        );
      }
      const args = [];
      for (let part of parts) {
        part = part.trim();
        if (part === '') throw new StyleError(`action \`${name}\`: empty argument (two \`,\` in a row or a trailing \`,\`)`);
        const u = part.indexOf('_');
        if (u > 0) {
          const key = part.slice(0, u);
          if (args.some((a) => a.key === key)) {
            throw new StyleError(`action \`${name}\`: parameter \`${key}\` is given twice`);
          }
          args.push({ key, value: part.slice(u + 1) });
        } else {
          args.push({ key: undefined, value: part });
        }
      }
      actions.push(new Action(name, args));
    });
  }
  return {
    actions,
    toString() {
      return actions
        .map((a) => [a.name, ...a.args.map((x) => (x.key === undefined ? x.value : `${x.key}_${x.value}`))].join(','))
        .join('/');
    },
  };
}

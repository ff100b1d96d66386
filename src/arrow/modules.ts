// Which apache-arrow to use. The package ships a CommonJS build and an ES module build, and a
// process that imports it as an ES module while memseal requires it gets two copies whose classes
// differ: a Table from one, written by the other's writer, yields corrupt metadata (its types are
// not recognised). So the ES facade of memseal/arrow (dist/arrow/index.mjs, scripts/gen-esm.js)
// registers the ES build it imported, and each call uses the copy the table came from.
import { MemsealError } from '../kernel/errors';

export type Arrow = typeof import('apache-arrow');

// The ES module build first when registered (ES importers get its tables back), then CommonJS.
const modules: Arrow[] = [];
let required = false;

/** @internal Called by the ES facade with the apache-arrow it imported. */
export function registerArrow(module: Arrow): void {
  if (!modules.includes(module)) modules.unshift(module);
}

function requireArrow(): void {
  if (required) return;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- an optional peer dependency, loaded on first use
    const module = require('apache-arrow') as Arrow;
    if (!modules.includes(module)) modules.push(module);
    required = true;
  } catch (err) {
    if (modules.length > 0) return;
    throw new MemsealError('ERR_MEMSEAL_UNSUPPORTED', "memseal/arrow needs the 'apache-arrow' package",
      { hint: 'npm install apache-arrow (an optional peer dependency of memseal)', cause: err });
  }
}

/**
 * The apache-arrow whose Table `table` is (by prototype), else the preferred one: the ES module
 * build if the ES facade registered it, else the CommonJS build (loaded on first use).
 * @throws MemsealError ERR_MEMSEAL_UNSUPPORTED when apache-arrow is not installed
 */
export function arrowFor(table?: unknown): Arrow {
  if (modules.length === 0 || table !== undefined) requireArrow();
  if (table !== null && typeof table === 'object') {
    const proto: unknown = Object.getPrototypeOf(table);
    const own = modules.find((m) => m.Table.prototype === proto);
    if (own !== undefined) return own;
  }
  return modules[0]!;
}

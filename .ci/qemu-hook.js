// Preloaded (NODE_OPTIONS=--require) into an aarch64 Node running under
// qemu-aarch64 user mode without binfmt_misc: there, exec of an aarch64 binary
// fails (ENOEXEC), so every child the tests start with process.execPath is
// started as `qemu-aarch64 -L <sysroot> <node> ...` instead. Children inherit
// NODE_OPTIONS and so this hook. Other commands (setpriv, sh, x86_64 tools)
// run natively as usual.
'use strict';
const cp = require('node:child_process');

const QEMU = process.env.MEMSEAL_QEMU;
const SYSROOT = process.env.MEMSEAL_QEMU_SYSROOT || '/usr/aarch64-linux-gnu';
const NODE = process.execPath;
const prefix = ['-L', SYSROOT, NODE];

/** [file, args] with a leading node (or setpriv ... node) routed through qemu. */
function route(file, args) {
  if (file === NODE) return [QEMU, [...prefix, ...args]];
  // setpriv/env wrappers that end in our node: `setpriv --reuid=... <node> args`
  const i = args.indexOf(NODE);
  if (i >= 0 && (file === 'setpriv' || file === 'env' || file.endsWith('/setpriv') || file.endsWith('/env'))) {
    return [file, [...args.slice(0, i), QEMU, ...prefix, ...args.slice(i + 1)]];
  }
  return [file, args];
}

function wrap(name) {
  const original = cp[name];
  cp[name] = function (file, args, ...rest) {
    if (!Array.isArray(args)) { rest.unshift(args); args = []; }
    const [f, a] = route(file, args);
    return original.call(this, f, a, ...rest);
  };
}

if (QEMU && process.arch === 'arm64') {
  for (const name of ['spawn', 'spawnSync', 'execFile', 'execFileSync']) wrap(name);
  const fork = cp.fork;
  cp.fork = function (modulePath, args, options) {
    if (!Array.isArray(args)) { options = args; args = []; }
    options = { ...options };
    options.execArgv = [...prefix.slice(0, 2), options.execPath || NODE, ...(options.execArgv ?? process.execArgv)];
    options.execPath = QEMU;
    return fork.call(this, modulePath, args, options);
  };
}

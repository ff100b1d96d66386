// The summed PSS of some processes, sampled every MS ms until standard input ends; prints the peak (bytes).
// Usage: node bench/pss-sampler.js MS PID...   lib.pssSampler() runs it in a process of its own, so reading
// /proc/PID/smaps_rollup (as long as the kernel takes to walk each page table) never blocks the measured
// process's event loop. A process that has exited counts 0.
'use strict';
const { pss } = require('./lib');

const [ms, ...pids] = process.argv.slice(2).map(Number);
const read = (pid) => {
  try {
    return pss(pid);
  } catch {
    return 0;
  }
};
let peak = 0;
const sample = () => { peak = Math.max(peak, pids.reduce((s, pid) => s + read(pid), 0)); };
sample();
const timer = setInterval(sample, ms);
process.stdin.on('end', () => {
  clearInterval(timer);
  sample();
  process.stdout.write(String(peak));
}).resume();

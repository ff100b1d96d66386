// Runs the fuzz targets of the groups named on the command line, in this
// (child) process, so that a crash is the parent test's failure rather than a
// dead mocha. Prints one JSON line: { runs, targets, failures }. Exit 1 on a
// broken invariant, 0 otherwise.
//   node --require tsx/cjs test/fuzz/run.ts memfd mapping ...
// MEMSEAL_FUZZ_RUNS sets the cases per target (default 60); MEMSEAL_FUZZ_SEED replays a run.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import fc from 'fast-check';
import { checkThrown, Ctx, GROUPS } from './targets';

const runsPerTarget = Number(process.env.MEMSEAL_FUZZ_RUNS ?? 60);
const seed = process.env.MEMSEAL_FUZZ_SEED === undefined ? (Date.now() % 2 ** 31) : Number(process.env.MEMSEAL_FUZZ_SEED);

/** Our descriptors: all but tsx's own (it opens and closes its cache directory on its own schedule). */
const countFds = (): number => [...fdTable().values()].filter((what) => !what.startsWith('/tmp/tsx-')).length;
const fdTable = (): Map<string, string> => new Map(readdirSync('/proc/self/fd').map((fd) => {
  try { return [fd, readlinkSync(`/proc/self/fd/${fd}`)]; } catch { return [fd, '?']; }
}));
const fdDiff = (a: Map<string, string>, b: Map<string, string>): string => {
  const gone = [...a].filter(([fd, what]) => b.get(fd) !== what).map(([fd, what]) => `-${fd}:${what}`);
  const added = [...b].filter(([fd, what]) => a.get(fd) !== what).map(([fd, what]) => `+${fd}:${what}`);
  return [...gone, ...added].join(' ');
};
const memfdMappings = (): number => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('/memfd:')).length;
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});

async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
}

/** A promise that neither resolves nor rejects within 5 s is a broken invariant too. */
function withDeadline<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(what), { hung: true })), 5000);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

async function main(): Promise<void> {
  const groups = process.argv.slice(2);
  process.stderr.write(`fuzz: MEMSEAL_FUZZ_SEED=${seed} MEMSEAL_FUZZ_RUNS=${runsPerTarget} ${groups.join(' ')}\n`);
  const failures: string[] = [];
  let runs = 0;
  let targets = 0;
  for (const g of groups) {
    const list = GROUPS[g];
    if (!list) { failures.push(`unknown group ${g}`); continue; }
    for (const t of list) {
      targets++;
      if (process.env.MEMSEAL_FUZZ_VERBOSE) process.stderr.write(`fuzz: ${g}: ${t.name}\n`);
      await settle();
      const fds0 = countFds();
      const before = fdTable();
      const maps0 = memfdMappings();
      const r = await fc.check(fc.asyncProperty(t.args, async (args) => {
        const ctx = new Ctx();
        try {
          const real = args.map((a) => ctx.materialize(a));
          let result: unknown;
          try {
            result = t.call(ctx, real);
            if (result instanceof Promise) result = await withDeadline(result, `${t.name} never settled`);
            if (t.returnsFd || typeof result !== 'number') ctx.adopt(result);
          } catch (err) {
            if ((err as { hung?: boolean }).hung) throw err;
            checkThrown(err, t.name);
          }
        } finally {
          ctx.cleanup();
        }
      }), { numRuns: runsPerTarget, seed: seed + targets, endOnFailure: true });
      runs += r.numRuns;
      if (r.failed) {
        failures.push(`${t.name}: ${fc.defaultReportMessage(r) ?? 'failed'}`.slice(0, 4000));
        continue;
      }
      await settle();
      const fds1 = countFds();
      const maps1 = memfdMappings();
      if (fds1 !== fds0) failures.push(`${t.name}: descriptors ${fds0} -> ${fds1} after ${r.numRuns} cases: ${fdDiff(before, fdTable())}`);
      if (maps1 > maps0) failures.push(`${t.name}: memfd mappings ${maps0} -> ${maps1} after ${r.numRuns} cases`);
    }
  }
  process.stdout.write(`${JSON.stringify({ seed, runs, targets, failures })}\n`);
  // Channels left by a failing case must not keep the process alive.
  process.exit(failures.length === 0 ? 0 : 1);
}

main().catch((err) => {
  process.stdout.write(`${JSON.stringify({ runs: 0, targets: 0, failures: [`runner: ${(err as Error).stack}`] })}\n`);
  process.exit(1);
});

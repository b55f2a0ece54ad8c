// temp: pre-enqueued drain rate (not part of the deliverable)
import { makeWorkerUtils, run, Logger } from 'graphile-worker';
const url = process.argv[2]; const N = 20000; const C = Number(process.argv[3] ?? 24);
const logger = new Logger(() => (l, m) => { if (l === 'error' || l === 'warning') console.error(m); });
const u = await makeWorkerUtils({ connectionString: url, logger });
for (let round = 0; round < 2; round++) {
  await u.withPgClient((c) => c.query('truncate graphile_worker._private_jobs'));
  for (let k = 0; k < N; k += 2000) await u.addJobs(Array.from({ length: 2000 }, () => ({ identifier: 'noop', payload: {} })));
  let done = 0; let resolve!: () => void; const all = new Promise<void>((r) => (resolve = r));
  const t0 = performance.now();
  const runner = await run({ connectionString: url, concurrency: C, maxPoolSize: C + 1, noHandleSignals: true, logger, taskList: { noop: () => {} },
    preset: { worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } } });
  runner.events.on('job:success', () => { if (++done === N) resolve(); });
  await all;
  while ((await u.withPgClient((c) => c.query('select count(*)::int n from graphile_worker._private_jobs'))).rows[0].n > 0) await new Promise((r) => setTimeout(r, 1));
  const t = performance.now() - t0;
  await runner.stop();
  console.log(`round ${round}: drained ${N} pre-queued jobs in ${(t / 1000).toFixed(3)} s = ${Math.round(N / (t / 1000))}/s (incl. runner start)`);
}
await u.release();

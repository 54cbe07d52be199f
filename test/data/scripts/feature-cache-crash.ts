/**
 * Dies mid-run: opens a feature cache under argv[2], writes 5 rows and flushes (index covers 5), writes 10
 * more that reach rows.bin without an index update (the last one still pending in memory), then SIGKILLs
 * itself, leaving its writer lock behind.
 */
import { FeatureCache } from '../../../src/data/feature-cache.js';
import { testHash, testRow } from './feature-rows.js';

const dim = 16;
const cache = await FeatureCache.open({ modelId: 'crash-model', layer: 'pool', preprocess: { size: 8 }, dim, dir: process.argv[2], appendBytes: 1 });
for (let i = 0; i < 5; i++) cache.put(testHash(i), testRow(i, dim));
await cache.flush();
for (let i = 5; i < 15; i++) cache.put(testHash(i), testRow(i, dim));
process.stdout.write(`writable ${cache.writable}\n`, () => process.kill(process.pid, 'SIGKILL'));

/** graft's lockstep loop around a step that only counts its calls, for test/bench/lockstep.test.ts. */
import { lockstepLoop } from '../../../bench/lib/measure.js';

let calls = 0;
const stats = await lockstepLoop(
  async () => {
    calls++;
  },
  4,
  { warmup: 2 },
);
process.stdout.write(JSON.stringify({ ...stats, calls }) + '\n');

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Side } from '../../bench/lib/jobs.js';
import { Lockstepped } from '../../bench/lib/lockstep.js';

const scripts = join(import.meta.dirname, 'scripts');
// the two ends bench/finetune/paired.ts drives: graft's loop (node + tsx) and PyTorch's (python3, stdlib only here)
const sides: Record<string, Side> = {
  graft: { cmd: process.execPath, args: ['--import', 'tsx', join(scripts, 'lockstep-child.ts')] },
  python: { cmd: 'python3', args: [join(scripts, 'lockstep_child.py')] },
};

describe('the lockstep protocol (bench/finetune/paired.ts)', () => {
  for (const [name, side] of Object.entries(sides)) {
    it(`${name}: warms up, runs one timed step per request, and reports only those on end`, async () => {
      const p = new Lockstepped(name, side);
      try {
        await p.ready();
        const steps = [await p.step(), await p.step(), await p.step()];
        for (const s of steps) {
          expect(s.wall).toBeGreaterThanOrEqual(0);
          expect(s.cpu).toBeGreaterThanOrEqual(0);
        }
        const end = await p.end();
        expect(end.calls).toBe(5); // 2 warm-up + 3 asked for
        expect(end.iters).toBe(3); // the warm-up is not timed
        expect(end.img_s).toBeGreaterThan(0);
      } finally {
        p.kill();
      }
    });
  }

  it('says which side died, and what it printed, when a process exits before it is ready', async () => {
    const p = new Lockstepped('broken', { cmd: process.execPath, args: ['-e', 'console.error("no model here"); process.exit(3)'] });
    await expect(p.ready()).rejects.toThrow(/broken exited early: no model here/);
  });

  it('says so when a side cannot start at all', async () => {
    const p = new Lockstepped('missing', { cmd: join(scripts, 'no-such-interpreter'), args: [] });
    await expect(p.ready()).rejects.toThrow(/missing exited early: .*ENOENT/);
  });
});

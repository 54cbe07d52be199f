import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('./scripts/run-and-exit.ts', import.meta.url));
const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

/** Runs the script in a fresh node; resolves when the process ends on its own (or is killed after 60 s). */
function runScript(...args: string[]): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', tsx, script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

describe('process lifetime', () => {
  it('exits by itself after runtime.close(), with no handles left and ORT quiet', async () => {
    const r = await runScript('close', 'error');
    expect(r.signal).toBeNull(); // not killed by the 60 s timeout
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('result 5');
    expect(r.stdout).toContain('resources []');
    expect(r.stderr).not.toContain('onnxruntime');
  });

  it('(control) at log level warning the same model makes ORT speak', async () => {
    const r = await runScript('close', 'warning');
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("Removing initializer 'unused_weights'");
  });

  it('does not keep the process alive when close() is forgotten: idle workers are unref’d', async () => {
    const r = await runScript('no-close', 'error');
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('result 5');
  });
});

/**
 * `npm ci` must work offline on any machine. onnxruntime-node's install script downloads CUDA providers
 * when it finds a CUDA toolkit (nvcc), which fails without internet and which graft never uses. CI's
 * `npm ci` exercises the setting its own npm reads; these pin both, for npm versions CI does not run.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('onnxruntime-node install script', () => {
  it('is told to skip its downloads by the repository .npmrc (npm 10 and 11 run install scripts)', () => {
    const settings = readFileSync(join(root, '.npmrc'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() && !l.trim().startsWith('#'))
      .map((l) => l.split('=').map((s) => s.trim()));
    expect(settings).toContainEqual(['onnxruntime-node-install', 'skip']);
  });

  it('is denied in package.json allowScripts (npm 12 runs only the install scripts a project allows)', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { allowScripts?: Record<string, boolean | string> };
    expect(pkg.allowScripts?.['onnxruntime-node']).toBe(false);
  });
});

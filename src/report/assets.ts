/**
 * The plotting library (uPlot: ~51 kB minified, no dependencies, canvas line charts) read from its npm
 * package once per process, for inlining into reports.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { inlineScript } from './html.js';

export interface PlotAssets {
  js: string;
  css: string;
}

let cached: PlotAssets | undefined;

export function plotAssets(): PlotAssets {
  if (!cached) {
    const require = createRequire(import.meta.url);
    const js = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
    const css = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
    cached = { js: inlineScript(js, 'uPlot'), css };
  }
  return cached;
}

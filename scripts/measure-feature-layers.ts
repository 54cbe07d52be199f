/**
 * Which layer of a builtin transfers best? For each candidate feature layer, extract features on real
 * image sets made here (emoji categories, and scikit-image / scikit-learn photos under augmentation when
 * Debian's python3-skimage is installed), train the same head, and print validation accuracy.
 *
 *   npx tsx scripts/measure-feature-layers.ts [builtin] [--layers a,b,c] [--per-class 60]
 *
 * The numbers in README.md ("Choosing the feature layer") come from this script.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { featureCandidates } from '../src/graph/surgery.js';
import { resolveModel } from '../src/models/sources.js';
import { Runtime } from '../src/runtime/index.js';
import { train } from '../src/train/train.js';
import { makeEmojiDataset } from '../test/helpers/emoji.js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { layers: { type: 'string' }, 'per-class': { type: 'string', default: '100' }, seeds: { type: 'string', default: '1,2' } } });
const model = positionals[0] ?? 'mobilenet_v2';
const perClass = Number(values['per-class']);
const seeds = values.seeds!.split(',').map(Number);

const root = mkdtempSync(join(tmpdir(), 'graft-layers-'));
const sets: Record<string, string> = {};
sets['emoji-4'] = join(root, 'emoji4');
await makeEmojiDataset(sets['emoji-4'], { categories: ['Flags', 'Smileys & Emotion', 'Animals & Nature', 'Food & Drink'], perClass, seed: 3, size: 96 });
sets['emoji-4-aug'] = join(root, 'emoji4aug');
await makeEmojiDataset(sets['emoji-4-aug'], { categories: ['Animals & Nature', 'Food & Drink', 'Travel & Places', 'Flags'], perClass, seed: 3, augment: true, size: 96 });
sets['emoji-6-aug'] = join(root, 'emoji6');
await makeEmojiDataset(sets['emoji-6-aug'], { categories: ['Smileys & Emotion', 'People & Body', 'Animals & Nature', 'Food & Drink', 'Activities', 'Symbols'], perClass, seed: 4, augment: true, size: 96 });

const resolved = await resolveModel(model);
const candidates = values.layers
  ? values.layers.split(',')
  : featureCandidates(resolved.model)
      .filter((c) => (c.blockEnd && /add$|relu$|project_BN$|mixed\d+$|flatten/.test(c.value)) || /expand_relu$|out_relu/.test(c.value))
      .map((c) => c.value);
const runtime = await Runtime.create();
console.log(`model ${model}; ${candidates.length} layers; sets ${Object.keys(sets).join(', ')}; seeds ${seeds.join(',')}`);
console.log(['layer', ...Object.keys(sets), 'mean'].join('\t'));
for (const layer of candidates) {
  const accs: number[] = [];
  for (const [name, data] of Object.entries(sets)) {
    let sum = 0;
    for (const seed of seeds) {
      const r = await train({ data, out: join(root, `out-${name}`), overwrite: true, model, layer, runtime, seed, cacheDir: join(root, 'cache') });
      sum += r.metrics.accuracy ?? NaN;
    }
    accs.push(sum / seeds.length);
  }
  console.log([layer, ...accs.map((a) => a.toFixed(3)), (accs.reduce((a, b) => a + b, 0) / accs.length).toFixed(3)].join('\t'));
}
await runtime.close();

/** Op type → gradient rule. Each family of ops keeps its rules in one file under rules/. */
import { isDefaultDomain, type Node } from '../graph/ir.js';
import type { GradRule } from './rule.js';
import { activationRules } from './rules/activation.js';
import { convRules } from './rules/conv.js';
import { elementwiseRules } from './rules/elementwise.js';
import { matmulRules } from './rules/matmul.js';
import { normRules } from './rules/norm.js';
import { poolRules } from './rules/pool.js';
import { reduceRules } from './rules/reduce.js';
import { shapeRules } from './rules/shape.js';

const RULES = new Map<string, GradRule>(
  Object.entries({
    ...activationRules,
    ...convRules,
    ...elementwiseRules,
    ...matmulRules,
    ...normRules,
    ...poolRules,
    ...reduceRules,
    ...shapeRules,
  }),
);

export function ruleFor(node: Node): GradRule | undefined {
  if (!isDefaultDomain(node.domain)) return undefined;
  return RULES.get(node.opType);
}

/** Op types graft can differentiate (for `graft inspect` and error messages). */
export function differentiableOps(): string[] {
  return [...RULES.keys()].sort();
}

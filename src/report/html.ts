/**
 * Small helpers for writing HTML by hand safely: every string that came from a user (class names,
 * paths, model names, error messages) goes through `esc`, and data for scripts through `scriptJson`.
 */

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for element content and for quoted attribute values alike. */
export function esc(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

/**
 * JSON that is safe inside <script type="application/json">: `<` can never start `</script>` or `<!--`,
 * and the two line separators JavaScript once treated as newlines are escaped too.
 */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/**
 * Code inlined into a <script> must not contain `</script` (it would end the element early) or `<!--`
 * (it can switch the HTML parser into a state where `</script>` no longer ends it). Rewriting such code
 * safely needs a JavaScript parser, so this only checks; the inlined code is ours and the plotting
 * library's, and the tests catch a library update that breaks the rule.
 */
export function inlineScript(code: string, name: string): string {
  if (/<\/script|<!--/i.test(code)) throw new Error(`${name} contains "</script" or "<!--" and cannot be inlined into the report.`);
  return code;
}

export function pct(x: number | null | undefined, digits = 1): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '–' : `${(x * 100).toFixed(digits)}%`;
}

export function fixed(x: number | null | undefined, digits = 4): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits);
}

/** 0.4 s, 12.3 s, 4 min 05 s, 2 h 03 min. */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '–';
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;
}

import { describe, expect, it } from 'vitest';
import { duration, esc, inlineScript, pct, scriptJson } from '../../src/report/html.js';

describe('report HTML helpers', () => {
  it('escapes the five characters that matter in text and quoted attributes', () => {
    expect(esc(`<a href="x" onclick='y'>&amp;</a>`)).toBe('&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;');
    expect(esc(42)).toBe('42');
  });

  it('makes JSON that cannot close its <script> element and still parses to the same value', () => {
    const value = { name: '</script><script>alert(1)</script><!-- & \u2028\u2029' };
    const text = scriptJson(value);
    expect(text).not.toMatch(/[<>&\u2028\u2029]/);
    expect(JSON.parse(text)).toEqual(value);
  });

  it('refuses to inline code that would end the script element', () => {
    expect(() => inlineScript('var s = "</script>";', 'x')).toThrow(/cannot be inlined/);
    expect(() => inlineScript('a <!-- b', 'x')).toThrow(/cannot be inlined/);
    expect(inlineScript('var a = 1 < 2;', 'x')).toBe('var a = 1 < 2;');
  });

  it('formats percentages, missing values and durations', () => {
    expect(pct(0.98765, 2)).toBe('98.77%');
    expect(pct(null)).toBe('–');
    expect(pct(NaN)).toBe('–');
    expect(duration(4.25)).toBe('4.3 s');
    expect(duration(245)).toBe('4 min 05 s');
    expect(duration(7380)).toBe('2 h 03 min');
  });
});

// WCAG contrast of each visible text node: its computed colour against the background
// actually behind it (the nearest opaque ancestor background, translucent ones blended in).
() => {
  const parse = c => { const p = c.match(/[\d.]+/g).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const over = (top, base) => [0, 1, 2].map(i => top[i] * top[3] + base[i] * (1 - top[3])).concat(1);
  const lin = v => (v /= 255) <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  const lum = c => 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2]);
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const canvas = () => {  // what shows through when no element paints: the root's or the body's, else the UA's
    for (const el of [document.documentElement, document.body]) {
      const c = parse(getComputedStyle(el).backgroundColor);
      if (c[3]) return c;
    }
    const dark = matchMedia('(prefers-color-scheme: dark)').matches && getComputedStyle(document.documentElement).colorScheme.includes('dark');
    return dark ? [18, 18, 18, 1] : [255, 255, 255, 1];
  };
  const background = el => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    let bg = layers.length && layers[layers.length - 1][3] >= 1 ? layers.pop() : canvas();
    while (layers.length) bg = over(layers.pop(), bg);
    return bg;
  };
  const out = [], walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let checked = 0;
  for (let n; (n = walk.nextNode());) {
    const el = n.parentElement;
    if (!n.data.trim() || !el.checkVisibility({opacityProperty: true, visibilityProperty: true})) continue;
    const range = document.createRange();
    range.selectNodeContents(n);
    if (!range.getClientRects().length) continue;
    const bg = background(el), fg = over(parse(getComputedStyle(el).color), bg), r = ratio(fg, bg);
    checked++;
    if (r < 4.5) out.push(`${r.toFixed(2)}:1 "${n.data.trim().slice(0, 40)}" (${getComputedStyle(el).color} on rgb(${bg.slice(0, 3).map(Math.round)}))`);
  }
  return {checked, failing: out};
}

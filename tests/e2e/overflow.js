// Every element's box and every line of text inside the viewport. A card with
// overflow:hidden does not make the page scroll; it cuts the text, so boxes are measured.
() => {
  const width = document.documentElement.clientWidth, out = [];
  const name = el => el.tagName.toLowerCase() + (typeof el.className === 'string' && el.className ? '.' + el.className.split(' ')[0] : '');
  if (document.documentElement.scrollWidth > width) out.push(`the page scrolls: ${document.documentElement.scrollWidth}px`);
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width && r.height && (r.right > width + 1 || r.left < -1)) out.push(`${name(el)} ${Math.round(r.left)}..${Math.round(r.right)}`);
  }
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n; (n = walk.nextNode());) {
    const range = document.createRange();
    range.selectNodeContents(n);
    for (const r of range.getClientRects())
      if (r.width && (r.right > width + 1 || r.left < -1)) { out.push(`text "${n.data.trim().slice(0, 30)}" to ${Math.round(r.right)}`); break; }
  }
  return out;
}

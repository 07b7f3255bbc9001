"""Draw the sample newsletter's logo, issues/img/logo.png, with the headless Chromium the tests use.

Run once: ``.venv/bin/python tools/make_logo.py``; the PNG is committed. It is drawn at
twice the size it is shown (88 px tall for 44), white on the accent colour, so it reads
on the light page and in dark mode alike; its corners are transparent.
"""

from pathlib import Path

from playwright.sync_api import sync_playwright

OUT = Path(__file__).resolve().parent.parent / "issues" / "img" / "logo.png"
ACCENT = "#1a5fb4"

SVG = f"""<svg xmlns="http://www.w3.org/2000/svg" width="460" height="88" viewBox="0 0 460 88">
  <rect width="460" height="88" rx="18" fill="{ACCENT}"/>
  <g fill="none" stroke="#fff" stroke-width="4" stroke-linecap="round" opacity=".9">
    <path d="M30 26 L58 44 L30 62 M58 44 L86 26 M58 44 L86 62"/>
  </g>
  <g fill="#fff">
    <circle cx="30" cy="26" r="7"/><circle cx="30" cy="62" r="7"/><circle cx="58" cy="44" r="9"/>
    <circle cx="86" cy="26" r="7"/><circle cx="86" cy="62" r="7"/>
  </g>
  <text x="110" y="57" fill="#fff" font-family="DejaVu Sans, Liberation Sans, sans-serif"
        font-size="33" font-weight="700" letter-spacing=".5">Akira's ML News</text>
</svg>"""


def main() -> None:
    OUT.parent.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 460, "height": 88})
        page.set_content(f"<body style='margin:0'>{SVG}</body>")
        page.locator("svg").screenshot(path=str(OUT), omit_background=True)
        browser.close()
    print(OUT, OUT.stat().st_size, "bytes")


if __name__ == "__main__":
    main()

"""A small web on 127.0.0.1 for the enrich tests and bench: fixture pages (OpenGraph,
Twitter-only, JSON-LD-only, bare <title>, relative images, redirects, errors, a slow page,
images big and endless), a fake arXiv API that answers Atom like the real one, and feeds.
It counts every request, so a test can assert that a rerun made none."""

from __future__ import annotations

import io
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from newsletter.ports import free_port

# id (without version) -> (latest version, title as arXiv writes it, authors)
PAPERS = {
    "2109.10686": (2, "Scale Efficiently: Insights from Pre-training and Fine-tuning\n  Transformers",
                   ["Yi Tay", "Mostafa Dehghani", "Jinfeng Rao", "William Fedus"]),
    "2109.13228": (1, "PASS: An ImageNet replacement for self-supervised pretraining without humans",
                   ["Yuki M. Asano", "Christian Rupprecht"]),
    "2106.08265": (2, "Towards Total Recall in Industrial Anomaly Detection", ["Karsten Roth"]),
    "cs/0112017": (1, "An old-style paper", ["Ada Lovelace Jr."]),
}
FOREVER_CAP = 64 * 1024 * 1024  # the endless image stops here, in case a client never does
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def stay_offline(monkeypatch) -> None:
    """Only loopback from here on: code that tried to reach the internet fails instead."""
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        if (host.decode() if isinstance(host, bytes) else host) not in LOOPBACK:
            raise OSError(f"the tests stay offline; refused to look up {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):
        if isinstance(address, tuple) and address[0] not in LOOPBACK:
            raise OSError(f"the tests stay offline; refused to connect to {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)


def configure(ws, web: FakeWeb, **enrich) -> None:
    """Point the workspace's enrich settings at ``web`` (its arXiv API), with a short timeout."""
    settings = {"arxiv_api": web.url("/api/query"), "timeout": 0.5, **enrich}
    ws.configure(extra="enrich:\n" + "".join(f"  {k}: {v}\n" for k, v in settings.items()))


def page(title: str = "", head: str = "", body: str = "<p>Hello.</p>") -> bytes:
    t = f"<title>{title}</title>" if title else ""
    return f"<!doctype html><html><head><meta charset='utf-8'>{t}{head}</head><body>{body}</body></html>".encode()


def og(title: str, description: str, image: str, site: str = "Open Graph Weekly") -> str:
    return (f'<meta property="og:title" content="{title}"><meta property="og:description" content="{description}">'
            f'<meta property="og:image" content="{image}"><meta property="og:site_name" content="{site}">')


def image_bytes(width: int, height: int, fmt: str, noise: bool = False, mode: str = "RGB") -> bytes:
    from PIL import Image

    if noise:
        image = Image.frombytes(mode, (width, height), random.Random(1).randbytes(width * height * len(mode)))
    else:
        image = Image.new(mode, (width, height), (200, 80, 40, 128)[: len(mode)])
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "Fake Camera Co."  # Make: metadata a thumbnail must not carry along
    image.save(out, fmt, **({"exif": exif.tobytes()} if fmt == "JPEG" else {}))
    return out.getvalue()


class FakeWeb:
    def __init__(self, host: str = "127.0.0.1", delay: float = 0.0) -> None:
        self.port = free_port()
        self.base = f"http://{host}:{self.port}"
        self.delay = delay  # seconds before each answer under /gen/ (a page or image far away)
        self.requests: list[tuple[float, str]] = []
        self.agents: set[str] = set()
        self.sent: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.feed_rss = b""
        self.feed_atom = b""
        self.pages = self._pages()
        self.images = {
            "/img/photo.jpg": (image_bytes(1200, 800, "JPEG"), "image/jpeg"),
            "/img/wide.png": (image_bytes(900, 300, "PNG"), "image/png"),
            "/img/alpha.png": (image_bytes(400, 400, "PNG", mode="RGBA"), "image/png"),
            "/assets/pic.png": (image_bytes(800, 600, "PNG"), "image/png"),
            "/img/big.jpg": (image_bytes(3000, 2000, "JPEG", noise=True), "image/jpeg"),
            "/img/not-an-image.png": (b"<html>surprise</html>", "image/png"),
        }
        self.server = ThreadingHTTPServer((host, self.port), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeWeb:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str) -> str:
        return self.base + path

    def count(self, prefix: str = "/") -> int:
        with self.lock:
            return sum(path.startswith(prefix) for _, path in self.requests)

    def times(self, prefix: str) -> list[float]:
        with self.lock:
            return [t for t, path in self.requests if path.startswith(prefix)]

    def _pages(self) -> dict[str, bytes]:
        b = self.base
        return {
            "/og.html": page("The title tag", og("An OpenGraph title", "What the OpenGraph page says.",
                                                 "/img/photo.jpg")),
            "/og-redirected.html": page("", og("Where redirects end", "The final page.", "/img/wide.png")),
            "/twitter.html": page("", '<meta name="twitter:card" content="summary_large_image">'
                                      '<meta name="twitter:title" content="A Twitter card title">'
                                      '<meta name="twitter:description" content="Said in a Twitter card.">'
                                      f'<meta name="twitter:image" content="{b}/img/wide.png">'),
            "/jsonld.html": page("", '<script type="application/ld+json">{"@context": "https://schema.org", '
                                     '"@graph": [{"@type": "WebSite", "name": "LD Site"}, {"@type": "NewsArticle",'
                                     ' "headline": "A JSON-LD headline", "description": "Said in JSON-LD.",'
                                     ' "image": {"@type": "ImageObject", "url": "/img/alpha.png"},'
                                     ' "publisher": {"@type": "Organization", "name": "LD Publisher"}}]}</script>'),
            "/title.html": page("  Just a <title>\n  element ".replace("<", "&lt;").replace(">", "&gt;")),
            "/relative.html": page("", '<base href="/assets/deep/">'
                                       + og("Relative image", "An image given relative to base.", "../pic.png")),
            "/big-image.html": page("", og("A big photo", "Three thousand pixels wide.", "/img/big.jpg")),
            "/forever.html": page("", og("An endless image", "Its image never ends.", "/img/forever.png")),
            "/declared-huge.html": page("", og("A huge image", "It says 50 MB.", "/img/declared-huge.png")),
            "/bad-image.html": page("", og("A bad image", "HTML served as PNG.", "/img/not-an-image.png")),
            "/notitle.html": page("", '<meta name="description" content="No title anywhere.">'),
            "/latin1.html": "<html><head><meta charset='iso-8859-1'><title>Caf\xe9 cr\xe8me</title></head></html>"
                            .encode("latin-1"),
        }

    def _handler(self):
        web = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = urlsplit(self.path).path
                with web.lock:
                    web.requests.append((time.time(), self.path))
                    web.agents.add(self.headers.get("User-Agent", ""))
                    web.in_flight += 1
                    web.max_in_flight = max(web.max_in_flight, web.in_flight)
                try:
                    web._serve(self, path)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with web.lock:
                        web.in_flight -= 1

        return Handler

    def _serve(self, h: BaseHTTPRequestHandler, path: str) -> None:
        redirects = {"/old": (301, "/older"), "/older": (302, "/og-redirected.html"),
                     "/loop": (302, "/loop"), "/to-ftp": (302, "ftp://example.com/file")}
        if path in redirects:
            status, where = redirects[path]
            return self._send(h, status, b"", "text/plain", {"Location": where})
        if path == "/broken":
            return self._send(h, 500, b"oops", "text/plain")
        if path == "/slow.html":
            time.sleep(3)
            return self._send(h, 200, page("Too late"), "text/html")
        if path.startswith("/wait/"):  # for the concurrency limits
            time.sleep(0.3)
            return self._send(h, 200, page(f"Waited {path}"), "text/html; charset=utf-8")
        if path.startswith("/gen/"):  # /gen/N.html: a page with its own image, /gen/N.jpg
            time.sleep(self.delay)
            n = path[5:].split(".")[0]
            if path.endswith(".jpg"):
                return self._send(h, 200, image_bytes(800 + int(n) % 7, 500, "JPEG"), "image/jpeg")
            body = page(f"Page {n}", og(f"Generated page {n}", f"Page number {n}.", f"/gen/{n}.jpg", "Gen"))
            return self._send(h, 200, body, "text/html; charset=utf-8")
        if path == "/paper.pdf":
            return self._send(h, 200, b"%PDF-1.4" + b"x" * 5000, "application/pdf")
        if path == "/api/query":
            return self._send(h, 200, self.atom(parse_qs(urlsplit(h.path).query)), "application/atom+xml")
        if path in ("/feed.rss", "/feed.atom"):
            body = self.feed_rss if path.endswith("rss") else self.feed_atom
            return self._send(h, 200, body, "application/rss+xml" if path.endswith("rss") else "application/atom+xml")
        if path == "/img/forever.png":
            return self._forever(h)
        if path == "/img/declared-huge.png":
            h.send_response(200)
            h.send_header("Content-Type", "image/png")
            h.send_header("Content-Length", str(50 * 1024 * 1024))
            h.end_headers()
            h.wfile.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 1024)
            return None
        if path in self.images:
            return self._send(h, 200, *self.images[path])
        if path in self.pages:
            charset = "" if path == "/latin1.html" else "; charset=utf-8"
            return self._send(h, 200, self.pages[path], "text/html" + charset)
        return self._send(h, 404, b"not here", "text/plain")

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str,
              headers: dict[str, str] | None = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def _forever(self, h: BaseHTTPRequestHandler) -> None:
        """An image with no length that never ends (until FOREVER_CAP or the client leaves)."""
        h.send_response(200)
        h.send_header("Content-Type", "image/png")
        h.end_headers()
        chunk = b"\0" * 65536
        sent = 0
        try:
            h.wfile.write(b"\x89PNG\r\n\x1a\n")
            while sent < FOREVER_CAP:
                h.wfile.write(chunk)
                sent += len(chunk)
        finally:
            with self.lock:
                self.sent["/img/forever.png"] = sent

    @staticmethod
    def atom(query: dict[str, list[str]]) -> bytes:
        """An answer in the real API's shape (Atom with opensearch and arxiv namespaces)."""
        ids = [i for i in (query.get("id_list") or [""])[0].split(",") if i]
        entries = []
        for wanted in ids:
            base, _, version = wanted.partition("v") if "/" not in wanted else (wanted.split("v")[0], "", "")
            if wanted not in PAPERS and base not in PAPERS:
                continue
            latest, title, authors = PAPERS.get(base) or PAPERS[wanted]
            full = wanted if version else f"{base}v{latest}"
            names = "".join(f"\n    <author>\n      <name>{a}</name>\n    </author>" for a in authors)
            entries.append(f"""  <entry>
    <id>http://arxiv.org/abs/{full}</id>
    <updated>2021-10-05T17:59:58Z</updated>
    <published>2021-09-22T12:29:15Z</published>
    <title>{title}</title>
    <summary>  An abstract.
</summary>{names}
    <link href="http://arxiv.org/abs/{full}" rel="alternate" type="text/html"/>
    <link title="pdf" href="http://arxiv.org/pdf/{full}" rel="related" type="application/pdf"/>
    <arxiv:primary_category xmlns:arxiv="http://arxiv.org/schemas/atom" term="cs.CL" \
scheme="http://arxiv.org/schemas/atom"/>
    <category term="cs.CL" scheme="http://arxiv.org/schemas/atom"/>
  </entry>""")
        return f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <link href="http://arxiv.org/api/query?id_list={','.join(ids)}" rel="self" type="application/atom+xml"/>
  <title type="html">ArXiv Query: search_query=&amp;id_list={','.join(ids)}&amp;start=0&amp;max_results=10</title>
  <id>http://arxiv.org/api/cHxbiOdZaP56ODnBPIenZhzg5f8</id>
  <updated>2021-10-10T00:00:00-04:00</updated>
  <opensearch:totalResults xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">{len(entries)}\
</opensearch:totalResults>
  <opensearch:startIndex xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">0</opensearch:startIndex>
{chr(10).join(entries)}
</feed>
""".encode()

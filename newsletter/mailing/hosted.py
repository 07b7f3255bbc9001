"""Before a send: what the email links on the web side must be there. With ``base_url``
(and ``images: hosted``, the default) the email shows its images from
``{base_url}/{number}/{src}`` and links the web version at ``{base_url}/{number}/``; a
reader of a send made before the archive was deployed sees broken images and a 404. So
each such URL is asked (through ``linkcheck``, as `check --links` asks: HEAD, then GET,
concurrently, within ``enrich.timeout``) and the send refuses unless every one answers.

``links.check_hosted: false`` skips the check, for a sending machine that cannot reach
base_url (a site behind a firewall, say); the author then vouches for the images.
"""

from __future__ import annotations

from newsletter.authoring.linkcheck import fetch_all
from newsletter.authoring.render import Rendered
from newsletter.config import Settings
from newsletter.errors import NewsletterError


def hosted_urls(rendered: Rendered, settings: Settings) -> list[str]:
    """The URLs under base_url that the email needs: its local images (the brand's logo
    included) and its web version. None when images are embedded or nothing is hosted."""
    if not settings.base_url or settings.images == "embed":
        return []
    number = rendered.issue.number
    urls = [f"{settings.base_url}/{number}/{image.src}" for image in rendered.issue.images if image.file is not None]
    return [*dict.fromkeys(urls), f"{settings.base_url}/{number}/"]


def check_hosted(rendered: Rendered, settings: Settings) -> None:
    """Refuse (NewsletterError) unless every hosted URL of the email answers."""
    if not settings.links.check_hosted:
        return
    urls = hosted_urls(rendered, settings)
    if not urls:
        return
    outcomes = fetch_all(urls, settings)
    missing = [f"{url} ({outcome.status or outcome.failure})" for url, outcome in outcomes.items() if outcome.error]
    if missing:
        shown = "\n  ".join(missing[:10]) + (f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise NewsletterError(
            f"issue {rendered.issue.number}: {len(missing)} of {len(urls)} URL(s) the email needs do not answer"
            f" 200 at {settings.base_url}; readers would see broken images or a missing web version:\n  {shown}",
            hint="run `newsletter archive` and deploy `site/` to base_url (or `newsletter serve` publishes"
                 " them there); or set `images: embed` in newsletter.yaml to attach the images instead")

#!/usr/bin/env bash
# `make demo`: check and build the sample issues, start a local SMTP server that saves
# what it receives to outbox/, import the sample subscribers and send issue 33 to them.
# Everything the demo stores lives in build/demo/, so it never touches your own list.
# The capture server and the web side keep running so the loop can be clicked through:
# open an unsubscribe link from outbox/, sign up on the archive; `make demo-stop` ends them.
set -euo pipefail
cd "$(dirname "$0")/.."
NL=.venv/bin/newsletter
PY=.venv/bin/python
export NEWSLETTER_SECRET="${NEWSLETTER_SECRET:-demo-secret-not-for-a-real-list}"

$NL check issues/*.yaml
$NL build issues/033.yaml
$NL build issues/034.yaml

tools/demo-stop.sh >/dev/null 2>&1 || true  # what an earlier demo left running
rm -rf build/demo outbox
mkdir -p build/demo
ln -s "$PWD/issues" build/demo/issues
config=build/demo/newsletter.yaml
sed '/^subscribers:/d' newsletter.yaml > "$config"
printf 'subscribers: %s\nlayouts: %s\n' "$PWD/build/demo/subscribers.db" "$PWD/layouts" >> "$config"

nohup $NL capture --port 8025 --outbox outbox > build/demo/capture.log 2>&1 &
echo $! > build/demo/capture.pid
$PY -c "from newsletter.ports import wait_for_port; wait_for_port(8025)"

$NL --config "$config" subscribers import samples/subscribers.csv
$NL --config "$config" publish 34  # as if sent elsewhere: the archive lists it

# The web side first: the email shows its images from base_url, and `send` checks they answer.
nohup $NL --config "$config" serve --port 8000 > build/demo/serve.log 2>&1 &
echo $! > build/demo/serve.pid
$PY -c "from newsletter.ports import wait_for_port; wait_for_port(8000, timeout=30)"
$PY -c "
import time, urllib.request
for _ in range(300):  # serve writes the archive (drafts too, unlisted) right after it starts
    try:
        urllib.request.urlopen('http://127.0.0.1:8000/33/', timeout=2); break
    except OSError:
        time.sleep(0.1)
"
$NL --config "$config" send --yes issues/033.yaml  # publishes 33: serve lists it within a second
$NL --config "$config" status issues/033.yaml

cat <<MSG

Done. Look at:
  build/33/email.html     the email as subscribers see it (email.txt: its text part)
  build/33/index.html     the web version (build/34/: the Chinese sample)
  outbox/                 every message the local SMTP server received, one .eml each
  http://127.0.0.1:8000/  the archive, with sign-up; the unsubscribe links in outbox/*.eml
                          work there (sign-up confirmations land in outbox/ too)
Still running: the SMTP capture (127.0.0.1:8025) and the web side (127.0.0.1:8000).
Stop them with: make demo-stop
Next: .venv/bin/newsletter preview issues/033.yaml   (a live preview while you edit)
MSG

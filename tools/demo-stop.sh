#!/usr/bin/env bash
# Stop the SMTP capture and the web side that `make demo` left running.
cd "$(dirname "$0")/.."
for name in serve capture; do
  pid_file=build/demo/$name.pid
  if [ -f "$pid_file" ]; then
    kill "$(cat "$pid_file")" 2>/dev/null && echo "stopped $name"
    rm -f "$pid_file"
  fi
done

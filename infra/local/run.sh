#!/usr/bin/env bash
# `make run`: the bot, the demo website with the chat widget, and the Microsoft 365 Agents
# Playground as the local Teams, all on this machine. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/../.."

BOT_PORT=${PORT:-3978}
PLAYGROUND_PORT=${PLAYGROUND_PORT:-56150}
NODE_DIR=tests/e2e/node

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

wait_for() {  # url, name, pid
  for _ in $(seq 1 200); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    if ! kill -0 "$3" 2>/dev/null; then echo "$2 exited; see the output above" >&2; exit 1; fi
    sleep 0.1
  done
  echo "$2 did not start on $1" >&2
  exit 1
}

.venv/bin/python app.py --port "$BOT_PORT" &
pids+=($!)
wait_for "http://127.0.0.1:$BOT_PORT/healthz" "the bot" "${pids[0]}"

# The Playground reads .m365agentsplayground.yml (team, channel, users) from its working folder
# and logs to devTools/m365agentsplayground.log there. BROWSER=none: we print the URL instead.
(
  cd "$NODE_DIR"
  TEAMSAPPTESTER_BROWSER=none TEAMSAPPTESTER_PORT="$PLAYGROUND_PORT" \
    exec node_modules/.bin/agentsplayground -e "http://127.0.0.1:$BOT_PORT/api/messages" \
      -c msteams --disable-telemetry
) &
pids+=($!)
wait_for "http://127.0.0.1:$PLAYGROUND_PORT/" "the Agents Playground" "${pids[1]}"

cat <<BANNER

  Ready.
    Website + chat widget (the visitor):  http://127.0.0.1:$BOT_PORT/
    Agents Playground (the specialist):    http://127.0.0.1:$PLAYGROUND_PORT/
      open it first and go to the "Contoso Support - Customer support" channel: the
      Playground only shows bot posts that arrive while a browser has it open.

  In the widget, say "can I talk to a human": a thread with the context card appears in the
  channel. Click "Join conversation", then reply in the thread (mention @Handoff Bot: the
  Playground only delivers mentioned messages; real Teams with RSC needs no mention).
  Ctrl-C stops everything.

BANNER
wait -n "${pids[@]}"

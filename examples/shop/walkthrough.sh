#!/usr/bin/env bash
# Train DARE on a shop's event log (string user ids, 64-bit item ids, no simulated world),
# then ask it for recommendations. Needs recstream (or RECSTREAM=path), kcat and python3.
set -euo pipefail
recstream=${RECSTREAM:-recstream}
[[ $recstream == */* ]] && recstream=$(realpath "$recstream")
cd "$(dirname "$0")"
work=$(mktemp -d)

# A broker with the model's topics (shop.feedback, .requests, .recommendations,
# .dead-letter, .model) and the catalog's, shop.items. On your cluster, create them (the
# catalog's compacted), and pass --brokers to each role.
"$recstream" broker --prefix shop --topics shop.items --partitions 3 >"$work/address" 2>"$work/broker.log" &
broker=$!
trap 'kill $broker 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do [ -s "$work/address" ] && break; sleep 0.1; done
B=$(head -1 "$work/address")
[ -n "$B" ] || { cat "$work/broker.log"; exit 1; }

# Three days of the shop's log, keyed by user (and one line that is not JSON), and its
# catalog: each item's category, keyed by item id (an item's latest record wins).
python3 events.py | kcat -P -b "$B" -t shop.feedback -K $'\t'
printf 'u_00042\tnot json\n' | kcat -P -b "$B" -t shop.feedback -K $'\t'
python3 events.py --catalog | kcat -P -b "$B" -t shop.items -K $'\t'

# Train until the stream has been quiet for 3 s, taking each item's category from the
# catalog in event time. Without --exit-when-idle it runs until stopped; started again
# with the same checkpoint, it resumes where it stopped.
"$recstream" train --model model.json --mapping mapping.json --brokers "$B" --items-topic shop.items \
  --checkpoint "$work/shop.ckpt" --exit-when-idle 3 --quiet

# A server takes in the trainer's model, then answers requests in the stream's own ids.
"$recstream" serve --model model.json --mapping mapping.json --brokers "$B" --exit-when-idle 3 --quiet &
server=$!
printf '%s\n' '{"user_id": "u_0014b", "timestamp": 1511798400}' '{"user_id": "someone-new", "slateSize": 3}' \
  | kcat -P -b "$B" -t shop.requests
timeout 60 kcat -C -b "$B" -t shop.recommendations -c 2 -q   # two slates of item ids
timeout 60 kcat -C -b "$B" -t shop.dead-letter -c 1 -q -f '%h\n'   # where the bad line was, and why
wait $server

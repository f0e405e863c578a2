#!/usr/bin/env bash
# Attach mode under kill -9: while a known stream of JSON events flows, the trainer is
# killed at random points (every third run inside its checkpoint replace) and restarted
# from its checkpoint, which must exist after every kill once first written; its final
# checkpoint must be byte for byte the one an uninterrupted trainer writes (no event lost,
# none applied twice). A second trainer on a held checkpoint is refused. Then SIGTERM: a clean stop,
# exit 0, a checkpoint that resumes.
# Usage: attach-kill.sh path/to/recstream [world|model]
#   world: a scenario's DARE arm on integer ids (the default);
#   model: a model without a world (Tests/cli/kill-model.json) on string user ids and
#          64-bit item ids that come and go, so rows expire and are reused between kills.
set -u
bin=${1:?usage: attach-kill.sh path/to/recstream [world|model]}
mode=${2:-world}
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
broker=""
cleanup() {
    jobs -p | xargs -r kill 2>/dev/null  # SIGTERM: trainers and the broker stop cleanly
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: attach: $*"; exit 1; }

"$bin" broker --topics ev,attach.model,attach.dead-letter,shop.model,shop.dead-letter --partitions 3 >"$tmp/addr" 2>"$tmp/broker.err" &
broker=$!
for _ in $(seq 50); do [ -s "$tmp/addr" ] && break; sleep 0.1; done
brokers=$(head -1 "$tmp/addr")
[ -n "$brokers" ] || fail "the broker printed no address"
if [ "$mode" = model ]; then
    name=shop key=user_id last_tick=419911
    args=(train --model Tests/cli/kill-model.json --mapping examples/shop/mapping.json --brokers "$brokers" --topic ev --quiet)
else
    name=dare key=user last_tick=39
    args=(train Tests/cli/attach-world.json --arm dare --brokers "$brokers" --topic ev --format json --quiet)
fi
train() { "$bin" "${args[@]}" "$@"; }

# 40 ticks of events (about 1,200 a tick, a few malformed), sent over about 8 seconds.
# model: a shop's log, an hour a tick, whose users and items drift (so ids expire).
python3 - "$tmp/events" "$mode" <<'PY'
import json, random, sys
random.seed(11)
model = sys.argv[2] == "model"
with open(sys.argv[1], "w") as out:
    for t in range(40):
        for _ in range(200):
            u = random.randrange(300)
            for _ in range(5):
                i = random.randrange(400)
                if model:
                    user, item = "u_%04x" % (u + 20 * t), 9_100_000_000_000 + 7919 * (i + 15 * t)
                    event = {"user_id": user, "item_id": item, "category_id": item % 13, "timestamp": 1511539200 + 3600 * t + random.randrange(3600)}
                    out.write(json.dumps(dict(event, behavior_type="pv")) + "\n")
                    if random.random() < 0.2:
                        out.write(json.dumps(dict(event, behavior_type="cart")) + "\n")
                else:
                    out.write(json.dumps({"user": u, "item": i, "event": "impression", "timestamp": t}) + "\n")
                    if random.random() < 0.2:
                        out.write(json.dumps({"user": u, "item": i, "event": "click", "timestamp": t, "viewSeconds": 30}) + "\n")
        if t % 10 == 5:
            out.write('{"user": 1, "item": \n')
PY
python3 -c '
import sys, time
for i, line in enumerate(open(sys.argv[1])):
    sys.stdout.write(line)
    if i % 1500 == 0: sys.stdout.flush(); time.sleep(0.25)
' "$tmp/events" | "$bin" produce --brokers "$brokers" --topic ev --key "$key" 2>"$tmp/produce.err" &
producer=$!

kills=0 after_checkpoint=0 crashes=0
points=(written linked renamed)
while kill -0 "$producer" 2>/dev/null || [ "$kills" -lt 6 ]; do
    # Every third run dies inside its own checkpoint replace (RECSTREAM_CRASH_AT), at each
    # step in turn; the others at a random moment. The binary itself in the background
    # (not a shell function), so $! is its pid.
    crash=""
    [ $((kills % 3)) = 2 ] && crash=${points[$(( (kills / 3) % 3 ))]}
    RECSTREAM_CRASH_AT=$crash "$bin" "${args[@]}" --checkpoint "$tmp/killed.ckpt" --checkpoint-every 0.1 >/dev/null 2>"$tmp/killed.err" &
    pid=$!
    if [ -n "$crash" ]; then
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    else
        sleep "$(python3 -c 'import random; print(round(random.uniform(0.4, 1.6), 2))')"
    fi
    # Gone before this kill: it died at its crash point (SIGKILL, exit 137).
    kill -0 "$pid" 2>/dev/null && alive=1 || alive=0
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    status=$?
    [ -n "$crash" ] && [ "$alive" = 0 ] && [ "$status" = 137 ] && crashes=$((crashes + 1))
    kills=$((kills + 1))
    if [ "$after_checkpoint" -gt 0 ]; then
        # Once there is a checkpoint, no kill, wherever it lands, may leave none.
        [ -s "$tmp/killed.ckpt" ] || fail "kill $kills${crash:+ (at '$crash')} left no checkpoint; $(ls "$tmp")"
    fi
    [ -s "$tmp/killed.ckpt" ] && after_checkpoint=$((after_checkpoint + 1))
    if grep -q "^error: " "$tmp/killed.err"; then fail "run $kills: $(cat "$tmp/killed.err")"; fi
done 2>/dev/null  # bash's "Killed" notices for the runs that killed themselves
wait "$producer" || fail "the producer failed: $(cat "$tmp/produce.err")"
[ "$after_checkpoint" -ge 3 ] || fail "only $after_checkpoint of $kills kills came after a checkpoint"
[ "$crashes" -ge 2 ] || fail "only $crashes runs died at their RECSTREAM_CRASH_AT point"
[ -s "$tmp/killed.ckpt.prev" ] || fail "no previous generation beside the checkpoint"

train --checkpoint "$tmp/killed.ckpt" --exit-when-idle 1 >"$tmp/resumed.out" 2>&1 || fail "the resumed trainer failed: $(cat "$tmp/resumed.out")"
# A trainer whose checkpoint is lost, in the group that committed offsets, is refused.
train --checkpoint "$tmp/lost.ckpt" --exit-when-idle 1 >"$tmp/lost.out" 2>&1 && fail "a trainer with a lost checkpoint started over silently"
grep -q "no checkpoint at $tmp/lost.ckpt, but consumer group recstream-train-$name has committed offsets" "$tmp/lost.out" || fail "lost checkpoint: $(cat "$tmp/lost.out")"
# The others each have a group of their own.
train --checkpoint "$tmp/straight.ckpt" --group straight --exit-when-idle 1 >"$tmp/straight.out" 2>&1 || fail "the uninterrupted trainer failed: $(cat "$tmp/straight.out")"
lines=$(wc -l <"$tmp/events")
grep -q "^applied through tick $last_tick: $((lines - 4)) events" "$tmp/straight.out" || fail "expected $((lines - 4)) events applied: $(cat "$tmp/straight.out")"
grep -q "4 dead letters" "$tmp/straight.out" || fail "expected 4 dead letters: $(cat "$tmp/straight.out")"
if [ "$mode" = model ]; then
    grep -qE "^ids: users [0-9]+ of 2000 rows \([0-9]+ created, [1-9][0-9]* expired.*; items [0-9]+ of 600 rows \([0-9]+ created, [1-9][0-9]* expired" "$tmp/straight.out" \
        || fail "expected users and items to expire: $(cat "$tmp/straight.out")"
fi
cmp -s "$tmp/killed.ckpt" "$tmp/straight.ckpt" || fail "after $kills kill -9s the checkpoint differs from an uninterrupted run's"
diff <(head -1 "$tmp/resumed.out") <(head -1 "$tmp/straight.out") >/dev/null || fail "counters differ: $(head -1 "$tmp/resumed.out") vs $(head -1 "$tmp/straight.out")"

# SIGTERM: stop at a clean point, checkpoint, exit 0; the checkpoint resumes to the same end.
"$bin" "${args[@]}" --checkpoint "$tmp/stopped.ckpt" --group stopped >"$tmp/stopped.out" 2>&1 &
pid=$!
sleep 2
# A second trainer on the same checkpoint is refused at start, naming the holder.
train --checkpoint "$tmp/stopped.ckpt" --group stopped --exit-when-idle 1 >"$tmp/second.out" 2>&1 && fail "a second trainer on a held checkpoint started"
grep -q "in use by another trainer (pid $pid" "$tmp/second.out" || fail "second trainer: $(cat "$tmp/second.out")"
kill -TERM "$pid"
wait "$pid"
status=$?
[ "$status" = 0 ] || fail "SIGTERM: exit $status (want 0): $(cat "$tmp/stopped.out")"
grep -q "stopped by signal" "$tmp/stopped.out" || fail "SIGTERM: no 'stopped by signal' in: $(cat "$tmp/stopped.out")"
train --checkpoint "$tmp/stopped.ckpt" --group stopped --exit-when-idle 1 >/dev/null 2>&1 || fail "resuming after SIGTERM failed"
cmp -s "$tmp/stopped.ckpt" "$tmp/straight.ckpt" || fail "after SIGTERM and a resume, the checkpoint differs from an uninterrupted run's"
# /metrics: Prometheus text with the counters the trainer applied.
"$bin" "${args[@]}" --checkpoint "$tmp/metrics.ckpt" --group metrics --metrics-port 0 --quiet >"$tmp/metrics.out" 2>"$tmp/metrics.err" &
pid=$!
url=""
for _ in $(seq 100); do
    url=$(grep -o 'http://[0-9.]*:[0-9]*/metrics' "$tmp/metrics.err" | head -1)
    [ -n "$url" ] && grep -q "^applied" "$tmp/metrics.out" 2>/dev/null; [ -n "$url" ] && break
    sleep 0.1
done
[ -n "$url" ] || { kill "$pid"; fail "no metrics address in: $(cat "$tmp/metrics.err")"; }
python3 - "$url" "$((lines - 4))" "$name" "$mode" <<'PY' || { kill "$pid"; fail "metrics: see above"; }
import sys, time, urllib.request
want = int(sys.argv[2])
deadline = time.time() + 60
while True:  # until every tick is applied (the last after the idle flush)
    text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    events = sum(v for k, v in values.items() if k.startswith("recstream_train_events_total{"))
    if events == want or time.time() > deadline:
        break
    time.sleep(0.5)
assert events == want, f"events_total {events}, want {want}\n{text}"
assert values.get('recstream_train_dead_letters_total{arm="%s"}' % sys.argv[3]) == 4, text
if sys.argv[4] == "model":
    assert values.get('recstream_train_ids_total{arm="shop",table="users",outcome="expired"}', 0) > 0, text
    assert values.get('recstream_train_table_rows{arm="shop",table="items"}', 0) > 0, text
assert any(k.startswith("recstream_train_consumer_lag{") for k in values), text
assert any(k.startswith("recstream_model_auc{") for k in values), text
assert any(k.startswith("recstream_train_tick_duration_seconds_bucket{") for k in values), text
PY
kill -TERM "$pid"; wait "$pid" || fail "the metrics trainer did not exit 0 on SIGTERM"

echo "attach ($mode): $kills kill -9s ($after_checkpoint after a checkpoint, $crashes inside a checkpoint replace), a refused second trainer, a refused lost checkpoint and a SIGTERM; the checkpoint equals an uninterrupted run's; /metrics serves the counters"

#!/usr/bin/env bash
# The attach roles as processes on one standalone broker: two DARE servers (instances 0
# and 1 of 2: they split the requests' partitions), a CTR server, a trainer per arm publishing model
# updates, and the simulated users. Every request must be answered once, every event
# applied once, and each server must end on its trainer's last tick with no update lost.
# Usage: attach-roles.sh path/to/recstream
set -u
bin=${1:?usage: attach-roles.sh path/to/recstream}
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
cleanup() {
    jobs -p | xargs -r kill 2>/dev/null
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: roles: $*"; for f in "$tmp"/*.out "$tmp"/*.err; do echo "--- $f"; tail -5 "$f"; done; exit 1; }

"$bin" broker --prefix roles --partitions 3 >"$tmp/addr" 2>"$tmp/broker.err" &
for _ in $(seq 50); do [ -s "$tmp/addr" ] && break; sleep 0.1; done
brokers=$(head -1 "$tmp/addr")
[ -n "$brokers" ] || fail "the broker printed no address"
world=Tests/cli/roles-world.json
# The DARE arm's updates are signed (its servers take only those); the CTR arm's are not,
# and share the model topic: the DARE servers must pass them over, not count them.
head -c 32 /dev/urandom >"$tmp/dare.key"
sign_dare=(--model-key-file "$tmp/dare.key")
sign_ctr=()
pids=()
for arm in dare ctr; do
    sign="sign_$arm[@]"
    "$bin" train "$world" --arm "$arm" --brokers "$brokers" --checkpoint "$tmp/$arm.ckpt" --exit-when-idle 3 --publish-every 0.2 --quiet "${!sign}" \
        >"$tmp/train-$arm.out" 2>"$tmp/train-$arm.err" &
    pids+=($!)
done
for server in dare-0-2 dare-1-2 ctr-0-1; do
    IFS=- read -r arm instance instances <<<"$server"
    sign="sign_$arm[@]"
    "$bin" serve "$world" --arm "$arm" --instance "$instance" --instances "$instances" --brokers "$brokers" --exit-when-idle 8 --quiet "${!sign}" \
        >"$tmp/serve-$server.out" 2>"$tmp/serve-$server.err" &
    pids+=($!)
done
"$bin" simulate "$world" --brokers "$brokers" --answer-timeout 30 --out "$tmp/report" --quiet >"$tmp/simulate.out" 2>"$tmp/simulate.err" \
    || fail "simulate failed"
for pid in "${pids[@]}"; do wait "$pid" || fail "a role exited with $?"; done

grep -q "view seconds / user" "$tmp/simulate.out" || fail "simulate printed no results table"
[ -s "$tmp/report/report.json" ] || fail "simulate wrote no report"
line=$(grep -E "^12 ticks: " "$tmp/simulate.out") || fail "no summary line from simulate"
requests=$(sed -E 's/^12 ticks: ([0-9]+) requests.*/\1/' <<<"$line")
feedback=$(sed -E 's/.* ([0-9]+) feedback events$/\1/' <<<"$line")
grep -q " 0 unanswered; 0 late, 0 duplicate and 0 bad slates" <<<"$line" || fail "requests went unanswered: $line"

served=0
for server in dare-0-2 dare-1-2 ctr-0-1; do
    out=$(head -1 "$tmp/serve-$server.out")
    n=$(sed -E 's/^served ([0-9]+) requests.*/\1/' <<<"$out")
    [ "$n" -gt 0 ] || fail "$server served nothing (the instances did not split the partitions?): $out"
    served=$((served + n))
    grep -qE "\(0 repeats skipped, 0 errors, 0 gaps, 0 parts abandoned(, 0 unauthenticated dropped)?\)" <<<"$out" || fail "$server: model updates went wrong: $out"
    if [ "${server%%-*}" = dare ]; then grep -q ", 0 unauthenticated dropped)" <<<"$out" || fail "$server does not require signed updates: $out"; fi
    arm=${server%%-*}
    tick=$(sed -E 's/^applied through tick ([0-9]+):.*/\1/' "$tmp/train-$arm.out" | head -1)
    grep -q "model through tick $tick after" <<<"$out" || fail "$server did not end on its trainer's tick $tick: $out"
done
[ "$served" = "$requests" ] || fail "servers answered $served requests, the users made $requests"

# Each trainer sees every event once: it applies its arm's (and, in the warm-up, everyone's)
# and skips the rest.
for arm in dare ctr; do
    out=$(head -1 "$tmp/train-$arm.out")
    n=$(sed -E 's/^applied through tick [0-9]+: ([0-9]+) events.*/\1/' <<<"$out")
    skipped=0
    if grep -qE "[0-9]+ of other arms skipped" <<<"$out"; then
        skipped=$(sed -E 's/.* ([0-9]+) of other arms skipped.*/\1/' <<<"$out")
    fi
    [ "$n" -gt 0 ] && [ "$skipped" -gt 0 ] || fail "train $arm: applied $n, skipped $skipped: $out"
    [ $((n + skipped)) = "$feedback" ] || fail "train $arm applied $n events and skipped $skipped, the users sent $feedback"
    grep -q "; 0 dead letters" <<<"$out" || fail "train $arm: dead letters: $out"
    grep -qE "[1-9][0-9]* model updates on roles.model" "$tmp/train-$arm.out" || fail "train $arm published no model updates"
done
echo "roles: $requests requests answered by 3 servers (DARE's following signed updates), each of $feedback events seen once by each of 2 trainers, servers on their trainers' last tick"

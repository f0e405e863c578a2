#!/usr/bin/env bash
# The command line's contract: exit codes, messages, outputs.
# Usage: cli-tests.sh BINARY [FUZZ_BINARY] (the fuzz harness defaults to BINARY's directory).
set -u
bin=${1:?usage: cli-tests.sh path/to/recstream [path/to/recstream-fuzz]}
fuzz_bin=${2:-$(dirname "$bin")/recstream-fuzz}
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0

check() {  # check NAME EXPECTED_STATUS GREP_PATTERN COMMAND...
    local name=$1 want=$2 pattern=$3
    shift 3
    "$@" >"$tmp/out" 2>&1
    local got=$?
    if [ "$got" = "$want" ] && { [ -z "$pattern" ] || grep -qE -- "$pattern" "$tmp/out"; }; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: $name: exit $got (want $want), output:"; sed 's/^/    /' "$tmp/out" | head -20
    fi
}

check "validate accepts every example scenario" 0 "quickstart.json: ok" "$bin" validate scenarios/*.json
check "validate skips the schema among the scenarios" 0 "schema.json: skipped \(a JSON Schema, not a scenario\)" "$bin" validate scenarios/*.json
printf '{"name": "x", "ticks": 0, "arms": [{"name": "a", "share": 1, "polcy": {}}]}' >"$tmp/bad.json"
check "validate reports every error with its path" 2 "bad.json: ticks: must be between 1 and 1000000, got 0" "$bin" validate "$tmp/bad.json"
check "validate suggests the key meant" 2 "arms\[0\]\.polcy: unknown key \(did you mean 'policy'\?\)" "$bin" validate "$tmp/bad.json"
check "a missing file is one line" 2 "^nope.json: \(top level\): no such file$" "$bin" validate nope.json
printf '{"name": "big", "population": {"users": 10000000, "history": {"median": 1000, "spread": 0, "max": 1000}}, "arms": [{"name": "a", "share": 1}]}' >"$tmp/big.json"
check "validate refuses a world larger than the machine, with the estimate and its knobs" 2 "big.json: needs an estimated [0-9.]+ GB of memory, above [0-9.]+ GB, this machine's physical memory .--max-memory.; what drives it:" "$bin" validate "$tmp/big.json"
check "the refusal names the knobs of its largest part" 2 "logged histories: 74.5 GB .population.users 10000000 x about 1000 entries" "$bin" validate "$tmp/big.json"
check "validate takes a world within --max-memory" 0 "big.json: ok" "$bin" validate "$tmp/big.json" --max-memory 1T
check "run refuses a scenario above --max-memory before building anything" 2 "quickstart.json: needs an estimated .* above --max-memory 1M" "$bin" run scenarios/quickstart.json --max-memory 1M
check "a malformed --max-memory is bad input" 2 "--max-memory must be a size such as 16G, 512M or 1000000 .bytes., got 'lots'" "$bin" validate scenarios/quickstart.json --max-memory lots
check "run rejects a malformed scenario with exit 2" 2 "ticks: must be between" "$bin" run "$tmp/bad.json"
check "run rejects bad --partitions" 2 "partitions must be between 1 and 1024, got 0" "$bin" run scenarios/quickstart.json --partitions 0
check "run rejects a seed beyond the schema's range" 2 "--seed must be at most 9223372036854775807" "$bin" run scenarios/quickstart.json --seed 18446744073709551615
check "run rejects a malformed -X" 2 "-X expects key=value" "$bin" run scenarios/quickstart.json -X nonsense
check "an unknown librdkafka property is a runtime error naming it" 1 "kafka property 'no.such'" "$bin" run scenarios/quickstart.json -X no.such=1 --quiet
sed 's/"stallTimeoutSeconds": *[0-9.]*/"stallTimeoutSeconds": 2/; s/"partitions": 4 }/"partitions": 4, "stallTimeoutSeconds": 2 }/' scenarios/quickstart.json >"$tmp/short-stall.json"
check "unreachable --brokers fails with exit 1 after a bounded wait" 1 "cannot reach Kafka at 127.0.0.1:1 \(waited 2 s\)" "$bin" run "$tmp/short-stall.json" --brokers 127.0.0.1:1 --quiet
check "schema prints the committed schema" 0 "" bash -c "'$bin' schema | diff - scenarios/schema.json"
check "run prints the results table and writes the report" 0 "view seconds / user" "$bin" run scenarios/quickstart.json --quiet --out "$tmp/out-dir" --seed 3 --partitions 2 --stats
cp "$tmp/out" "$tmp/run.out"
check "--stats prints jemalloc's figures" 0 "memory \(jemalloc\): [0-9.]+ MiB allocated" cat "$tmp/run.out"
check "the report is JSON with results and run sections" 0 '"results"' python3 -c "import json,sys; r=json.load(open('$tmp/out-dir/report.json')); assert r['run']['partitions']==2 and r['results']['scenario']['seed']==3; print('\"results\"')"
check "--export-truth writes items and users as JSON lines" 0 '"kind": ?"user"' bash -c "'$bin' run scenarios/quickstart.json --quiet --out '$tmp/truth' --export-truth >/dev/null && head -c 300 '$tmp/truth/truth.jsonl' && grep -m1 '\"kind\":\"user\"' '$tmp/truth/truth.jsonl' | sed 's/\"kind\":/\"kind\": /'"
check "the run wrote report.html and a CSV per arm" 0 "ticks-popularity.csv" ls "$tmp/out-dir"
check "report re-renders the table the run printed" 0 "" bash -c "diff <('$bin' report '$tmp/out-dir' --no-write) <(sed -n '1,/^Users per arm/p' '$tmp/run.out')"
check "report rewrites the HTML and CSVs" 0 "Wrote 3 files: ticks-random.csv, ticks-popularity.csv, report.html" "$bin" report "$tmp/out-dir"
check "report on a directory without report.json is bad input" 2 "cannot read $tmp/report.json: no such file" "$bin" report "$tmp"
mkdir -p "$tmp/old" && echo '{"recstream": {"reportVersion": 1}}' >"$tmp/old/report.json"
check "report names a report version it cannot read" 2 "report version 1; this recstream reads version 3" "$bin" report "$tmp/old"
touch "$tmp/a-file"
check "an unwritable report directory is bad input, found before the run" 2 "cannot create the report directory $tmp/a-file/out" "$bin" run scenarios/quickstart.json --quiet --out "$tmp/a-file/out"
check "--seeds runs the scenario over seeds and writes seeds.json" 0 "aa-test over 3 seeds \(1000-1002\), split design: how often each pair differs" "$bin" run scenarios/aa-test.json --seeds 3 --quiet --out "$tmp/seeds"
check "seeds.json has every seed" 0 "1000, 1001, 1002" python3 -c "import json; print(', '.join(map(str, json.load(open('$tmp/seeds/seeds.json'))['seeds'])))"
check "--seeds 1 is bad input" 2 "--seeds must be between 2 and 100000, got 1" "$bin" run scenarios/aa-test.json --seeds 1
check "calibrate measures a truth and covers it, split and paired" 0 "oracle-1 vs random:" "$bin" calibrate scenarios/planted-effect.json --seeds 2 --truth-scale 1 --quiet --out "$tmp/calibration"
check "calibrate writes calibration.json with both designs" 0 "split paired" python3 -c "import json; m = json.load(open('$tmp/calibration/calibration.json'))['comparisons'][0]['metrics']['clicks']; print(*[k for k in ('split', 'paired') if k in m])"
check "calibrate --seeds 1 is bad input" 2 "--seeds must be between 2 and 100000, got 1" "$bin" calibrate scenarios/planted-effect.json --seeds 1
check "power sizes a run from a pilot" 0 "For 80% power at alpha 0.05 .two-sided. on a lift of .5.00%: [0-9]+ users .all arms." "$bin" power scenarios/planted-effect.json --metric clicks --lift 5 --quiet
check "power names the metrics it knows" 2 "--metric must be one of viewSeconds, gmv, clicks" "$bin" power scenarios/planted-effect.json --metric ctr --lift 5
printf '{"name": "no-output", "ticks": 2, "arms": [{"name": "a", "share": 1}]}' >"$tmp/no-output.json"
check "--export-truth without an output directory is bad input" 2 "needs an output directory" "$bin" run "$tmp/no-output.json" --export-truth
check "an empty --out is bad input" 2 "--out must not be empty" "$bin" run "$tmp/no-output.json" --out ""
check "offline refuses a scenario without sequence models or towers" 2 "no arm ranks with a sequence model \(dare, twin, twin-proj or din\) or retrieves with towers" "$bin" offline scenarios/quickstart.json
check "bench rejects an unknown name" 2 "unknown benchmark 'nope'; one of kafka, models, population, wire, e2e, sparc" "$bin" bench nope
check "bench sparc --quick reports retrieval percentiles" 0 '"retrieval 4 x top-200' bash -c "'$bin' bench sparc --quick --json | python3 -c \"import json,sys; r=json.load(sys.stdin); assert r['bench']=='sparc' and any('p99' in x['name'] for x in r['results']); print(json.dumps(r))\""
check "bench --json has the documented shape" 0 '"ratio"' bash -c "'$bin' bench kafka --json --messages 20000 --repeats 1 | python3 -c \"import json,sys; r=json.load(sys.stdin); assert r['bench']=='kafka'; assert all(set(x)>={'name','unit','median','baseline','ratio'} for x in r['results']); print(json.dumps(r))\""

# The standalone broker prints its address, serves kcat-style clients, stops on SIGTERM.
"$bin" broker --topics demo --partitions 2 >"$tmp/broker.out" 2>"$tmp/broker.err" &
broker_pid=$!
for _ in $(seq 50); do [ -s "$tmp/broker.out" ] && break; sleep 0.1; done
address=$(head -n 1 "$tmp/broker.out")
if [[ "$address" =~ ^127\.0\.0\.1:[0-9]+$ ]]; then
    check "run uses a standalone broker through --brokers" 0 "view seconds / user" "$bin" run scenarios/quickstart.json --quiet --brokers "$address"
else
    failed=$((failed + 1)); echo "FAIL: broker printed '$address', not an address"
fi
kill -TERM "$broker_pid"; wait "$broker_pid"; status=$?
if [ "$status" = 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: broker exited $status on SIGTERM"; fi

# Attach mode: kill -9 and SIGTERM against a flowing stream (its own script: it runs a broker).
if bash Tests/cli/attach-kill.sh "$bin"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
if bash Tests/cli/attach-kill.sh "$bin" model; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
# The roles as processes: simulate, serve (two in a group), train, following model updates.
if bash Tests/cli/attach-roles.sh "$bin"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
# The README's walkthrough of a real stream (string user ids, 64-bit item ids, --model), as it stands.
if diff <(awk '/^<!-- examples\/shop\/walkthrough.sh -->$/ {on = 1; next} on && /^```sh$/ {next} on && /^```$/ {exit} on' README.md) \
        examples/shop/walkthrough.sh >"$tmp/walk.diff" 2>&1; then passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "FAIL: the README's walkthrough differs from examples/shop/walkthrough.sh:"; sed 's/^/    /' "$tmp/walk.diff" | head -20
fi
RECSTREAM="$bin" bash examples/shop/walkthrough.sh >"$tmp/walk.out" 2>&1
walk=$?
for pattern in '^ids: users [0-9]+ of 100000 rows \([0-9]+ created, [1-9][0-9]* expired' '"user": "u_0014b", "arm": "shop", "tick": 419944, "request": 0, "items": \[91[0-9]{11}(, 91[0-9]{11}){4}\]' \
               '"user": "someone-new", .*"items": \[91[0-9]{11}(, 91[0-9]{11}){2}\]' 'recstream-error=shop.feedback \[[0-2]\] @[0-9]+: not JSON' \
               'model through tick 419943 after [0-9]+ updates \(0 repeats skipped, 0 errors' \
               '; item records 1199 of 100000 \(1260 taken, 1 deleted, 0 refused\)'; do
    if [ "$walk" = 0 ] && grep -qE -- "$pattern" "$tmp/walk.out"; then passed=$((passed + 1)); else
        failed=$((failed + 1)); echo "FAIL: the real-stream walkthrough (exit $walk) lacks /$pattern/:"; sed 's/^/    /' "$tmp/walk.out" | head -20
    fi
done
check "validate reads a model file as one" 0 'model.json: ok \(a model without a world: shop, ranked by "dare"\)' "$bin" validate examples/shop/model.json
check "train takes a scenario or --model, not both" 2 "a scenario and --model: give one" "$bin" train Tests/cli/attach-world.json --model examples/shop/model.json --brokers 127.0.0.1:1 --checkpoint "$tmp/x.ckpt"
check "train with --model refuses --arm" 2 "--arm names an arm of a scenario; a --model is one arm already" "$bin" train --model examples/shop/model.json --arm dare --brokers 127.0.0.1:1 --checkpoint "$tmp/x.ckpt"
check "train needs a scenario or --model" 2 "give a scenario file and --arm, or --model FILE" "$bin" train --brokers 127.0.0.1:1 --checkpoint "$tmp/x.ckpt"
printf '{"name": "m", "ranking": {"type": "poly"}, "tables": {"users": {"capacity": 0}}}' >"$tmp/bad-model.json"
check "a bad model file reports every issue with its path" 2 "bad-model.json: tables.users.capacity: must be between 1 and" "$bin" train --model "$tmp/bad-model.json" --brokers 127.0.0.1:1 --checkpoint "$tmp/x.ckpt"
check "a scenario refuses a mapping of string ids, pointing to --model" 2 "--mapping reads string ids, which a scenario's world does not have" \
    "$bin" train Tests/cli/attach-world.json --arm dare --brokers 127.0.0.1:1 --format json --mapping examples/shop/mapping.json --checkpoint "$tmp/x.ckpt"
check "--model reads JSON events only" 2 "a model without a world trains on JSON events" "$bin" train --model examples/shop/model.json --format wire --brokers 127.0.0.1:1 --checkpoint "$tmp/x.ckpt"
check "--items-topic needs a mapping that reads categories" 2 "--items-topic: the mapping names no category field" "$bin" train --model examples/shop/model.json --items-topic shop.items --brokers 127.0.0.1:1 --checkpoint "$tmp/x.ckpt"
check "--items-topic is for a model without a world" 2 "--items-topic reads item records for a model without a world" "$bin" train Tests/cli/attach-world.json --arm dare --items-topic items --brokers 127.0.0.1:1 --checkpoint "$tmp/x.ckpt"
check "train without --brokers says what is missing" 2 "--brokers is required" "$bin" train Tests/cli/attach-world.json --arm dare --checkpoint "$tmp/x.ckpt"
check "train with an unknown format is a usage error" 2 "--format must be wire or json, got 'xml'" "$bin" train Tests/cli/attach-world.json --arm dare --brokers 127.0.0.1:1 --format xml --checkpoint "$tmp/x.ckpt"
sed 's/"topicPrefix": "attach"/"topicPrefix": "attach", "stallTimeoutSeconds": 2/' Tests/cli/attach-world.json >"$tmp/attach-short.json"
check "train fails with exit 1 when the topic never appears" 1 "topic attach.feedback did not appear within 2 s" \
    "$bin" train "$tmp/attach-short.json" --arm dare --brokers 127.0.0.1:1 --checkpoint "$tmp/x.ckpt" \
    -X security.protocol=SASL_PLAINTEXT -X sasl.mechanisms=PLAIN -X sasl.username=me -X sasl.password=hunter2
if grep -q "sasl.password=\[redacted\]" "$tmp/out" && ! grep -q hunter2 "$tmp/out"; then
    passed=$((passed + 1))
else
    failed=$((failed + 1)); echo "FAIL: train logs a secret, or not the redacted configuration:"; sed 's/^/    /' "$tmp/out"
fi
# Secrets off the command line: a typed secret is warned about; @FILE, --kafka-properties
# and RECSTREAM_KAFKA_* carry them without a warning, and none is ever printed.
if grep -q "warning: -X sasl.password: a secret on the command line is visible" "$tmp/out"; then passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "FAIL: a secret typed after -X is not warned about:"; sed 's/^/    /' "$tmp/out"
fi
printf 'hunter3\n' >"$tmp/password"
printf '# client.properties\nsecurity.protocol = SASL_PLAINTEXT\nsasl.mechanisms=PLAIN\n\nsasl.username=me\n' >"$tmp/client.properties"
RECSTREAM_KAFKA_SASL_OAUTHBEARER_CLIENT_ID=hunter4 "$bin" train "$tmp/attach-short.json" --arm dare --brokers 127.0.0.1:1 --checkpoint "$tmp/x.ckpt" \
    --kafka-properties "$tmp/client.properties" -X sasl.password=@"$tmp/password" >"$tmp/out" 2>&1
if grep -q "sasl.password=\[redacted\]" "$tmp/out" && grep -q "security.protocol=SASL_PLAINTEXT" "$tmp/out" \
   && grep -q "sasl.oauthbearer.client.id=hunter4" "$tmp/out" && ! grep -q "hunter3\|warning: -X" "$tmp/out"; then
    passed=$((passed + 1))
else
    failed=$((failed + 1)); echo "FAIL: properties from a file, @FILE and the environment:"; sed 's/^/    /' "$tmp/out"
fi
printf 'no equals sign here\n' >"$tmp/bad.properties"
check "a malformed properties file names its line" 2 "properties file .*bad.properties: line 1: expected key=value" \
    "$bin" train Tests/cli/attach-world.json --arm dare --brokers 127.0.0.1:1 --checkpoint "$tmp/x.ckpt" --kafka-properties "$tmp/bad.properties"
check "an unreadable @FILE is bad input naming the property" 2 "kafka property 'sasl.password': cannot read $tmp/nope" \
    "$bin" train Tests/cli/attach-world.json --arm dare --brokers 127.0.0.1:1 --checkpoint "$tmp/x.ckpt" -X sasl.password=@"$tmp/nope"
check "serve refuses an arm the scenario lacks, naming its arms" 2 "--arm nope: the scenario has no such arm; its arms: dare" "$bin" serve Tests/cli/attach-world.json --arm nope --brokers 127.0.0.1:1
check "serve rejects an instance number out of range" 2 "--instance must be between 0 and --instances - 1 .1., got 2" "$bin" serve Tests/cli/attach-world.json --arm dare --brokers 127.0.0.1:1 --instance 2 --instances 2
check "serve without --brokers says what is missing" 2 "--brokers is required" "$bin" serve Tests/cli/attach-world.json --arm dare
check "serve fails with exit 1 when the requests topic never appears" 1 "topic attach.requests did not appear within 2 s" \
    "$bin" serve "$tmp/attach-short.json" --arm dare --brokers 127.0.0.1:1 --quiet
check "simulate rejects a tick count out of range" 2 "--ticks must be between 1 and 10000000, got 0" "$bin" simulate Tests/cli/attach-world.json --brokers 127.0.0.1:1 --ticks 0
check "simulate fails with exit 1 when the topics never appear" 1 "topic attach.requests did not appear within 2 s" \
    "$bin" simulate "$tmp/attach-short.json" --brokers 127.0.0.1:1 --quiet
"$bin" broker --topics lonely,attach.requests >"$tmp/broker2.out" 2>/dev/null &
broker2=$!
for _ in $(seq 50); do [ -s "$tmp/broker2.out" ] && break; sleep 0.1; done
check "train says how to go on when the model topic is missing" 1 "model topic attach.model does not exist: create it .recstream broker --prefix creates every topic of a prefix., or train with --no-publish" \
    "$bin" train "$tmp/attach-short.json" --arm dare --brokers "$(head -1 "$tmp/broker2.out")" --topic lonely --checkpoint "$tmp/y.ckpt" --quiet
check "train says how to go on when the dead-letter topic is missing" 1 "dead-letter topic attach.dead-letter does not exist: create it .recstream broker --prefix creates every topic of a prefix." \
    "$bin" train "$tmp/attach-short.json" --arm dare --brokers "$(head -1 "$tmp/broker2.out")" --topic lonely --checkpoint "$tmp/y.ckpt" --quiet --no-publish
check "serve says how to go on when the dead-letter topic is missing" 1 "dead-letter topic attach.dead-letter does not exist" \
    "$bin" serve "$tmp/attach-short.json" --arm dare --brokers "$(head -1 "$tmp/broker2.out")" --quiet
kill -TERM "$broker2"; wait "$broker2"
printf 'short' >"$tmp/short.key"
check "a model key shorter than 32 bytes is bad input" 2 "--model-key-file .*short.key: the model key has 5 bytes; it needs at least 32" \
    "$bin" serve Tests/cli/attach-world.json --arm dare --brokers 127.0.0.1:1 --model-key-file "$tmp/short.key"
check "train rejects a --max-event-lead below one tick" 2 "--max-event-lead must be at least 1 tick, got 0" \
    "$bin" train Tests/cli/attach-world.json --arm dare --brokers 127.0.0.1:1 --checkpoint "$tmp/x.ckpt" --max-event-lead 0
printf '{"usr": "u"}' >"$tmp/mapping.json"
check "a bad mapping file names the key" 2 "mapping.json: usr: unknown key" "$bin" train Tests/cli/attach-world.json --arm dare --brokers 127.0.0.1:1 --format json --mapping "$tmp/mapping.json" --checkpoint "$tmp/x.ckpt"

# Every saved fuzz input (a crash once found, kept once fixed) runs through its target.
for dir in Tests/Fuzz/regressions/*/; do
    target=$(basename "$dir")
    check "fuzz regressions of $target replay without a crash" 0 "^$target: [0-9]+ inputs replayed" "$fuzz_bin" replay "$target" "$dir"
done

echo "cli: $passed passed, $failed failed"
[ "$failed" = 0 ]

#!/usr/bin/env python3
"""A shop's event log, as public e-commerce logs have it: user_id (a string), item_id (a
64-bit integer), behavior_type (pv, fav, cart, buy) and a unix timestamp. Three days;
users come and go, popular items are Zipf-popular. Deterministic: the same lines every
time. Each line is "user_id<TAB>event" for `kcat -K '\t'` (keyed by user).

With --catalog, the shop's catalog instead: a record per item (item_id, category_id,
updated_at), keyed by item id; on the first evening the shop re-files every twentieth
item, and it withdraws one (an empty record: a tombstone).

    python3 events.py [--users N] [--hours H] | kcat -P -b BROKER -t shop.feedback -K $'\t'
    python3 events.py --catalog | kcat -P -b BROKER -t shop.items -K $'\t'
"""
import argparse, json, random

parser = argparse.ArgumentParser()
parser.add_argument("--users", type=int, default=1500)
parser.add_argument("--items", type=int, default=1200)
parser.add_argument("--hours", type=int, default=72)
parser.add_argument("--seed", type=int, default=7)
parser.add_argument("--catalog", action="store_true", help="print the catalog's item records, not events")
args = parser.parse_args()

rng = random.Random(args.seed)
start = 1511539200  # 2017-11-25 00:00 UTC
weights = [1 / (k + 1) ** 0.9 for k in range(args.items)]
items = [9_100_000_000_000 + 7919 * k for k in range(args.items)]
category = {item: 1000 + (k * 37) % 60 for k, item in enumerate(items)}
if args.catalog:
    for item in items:
        print(f"{item}\t{json.dumps({'item_id': item, 'category_id': category[item], 'updated_at': start})}")
    for k, item in enumerate(items[::20]):
        print(f"{item}\t{json.dumps({'item_id': item, 'category_id': 2000 + k % 7, 'updated_at': start + 20 * 3600})}")
    print(f"{items[-1]}\t")
    raise SystemExit
for hour in range(args.hours):
    # Users arrive over the three days: each hour's visitors come from a sliding window.
    first = hour * args.users // (2 * args.hours)
    for _ in range(40):
        user = "u_%05x" % (first + rng.randrange(args.users // 2))
        for item in rng.choices(items, weights, k=rng.randint(2, 6)):
            t = start + hour * 3600 + rng.randrange(3600)
            for behavior in ["pv"] + (["cart"] if rng.random() < 0.12 else []) + (["buy"] if rng.random() < 0.03 else []):
                event = {"user_id": user, "item_id": item, "behavior_type": behavior, "timestamp": t}
                print(f"{user}\t{json.dumps(event)}")

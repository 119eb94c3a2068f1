"""Print N sample users as JSONL (default 20,000) for the demo: `python crowd.py 20000 | campaign users import -`."""

import json
import sys

COUNTRIES = ["FR", "DE", "US", "GB", "JP", "BR"]

count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
for i in range(count):
    user = {"id": f"user-{i:06d}", "name": f"User {i}", "country": COUNTRIES[i % len(COUNTRIES)]}
    if i % 10 == 0:
        user["devices"] = [{"id": f"device-{i}", "push_provider": "firebase"}]
    print(json.dumps(user))

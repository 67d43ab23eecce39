#!/usr/bin/env python3
"""Usage: validate-eve.py SCHEMA FILE -- check every line of FILE (EVE JSON lines) against SCHEMA."""
import collections
import json
import sys

import jsonschema


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip())
    schema_path, eve_path = sys.argv[1:]
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    # Suricata's schema has no "$schema" and uses "$defs": draft 2020-12 unless it says otherwise.
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    validator = cls(schema)
    counts = collections.Counter()
    with open(eve_path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                event = json.loads(line)
            except ValueError as e:
                sys.exit(f"{eve_path}:{n}: not JSON: {e}")
            error = jsonschema.exceptions.best_match(validator.iter_errors(event))
            if error is not None:
                path = "/" + "/".join(str(p) for p in error.absolute_path)
                sys.exit(f"{eve_path}:{n}: at {path}: {error.message}\n  line: {line.rstrip()}")
            counts[event.get("event_type")] += 1
    total = sum(counts.values())
    if total == 0:
        sys.exit(f"{eve_path}: no lines")
    print(f"ok {total} lines (" + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) + ")")


if __name__ == "__main__":
    try:
        main()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, jsonschema.SchemaError) as e:
        sys.exit(f"validate-eve: {type(e).__name__}: {e}")

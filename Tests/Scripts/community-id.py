#!/usr/bin/env python3
"""Usage: smtpcap --json ... | community-id.py -- check each session's community_id (v1, TCP, seed 0) against the communityid package."""
import json
import sys

import communityid


def split_endpoint(text):
    """'198.51.100.2:25' or '[2001:db8::1]:25' -> (address, port)."""
    address, _, port = text.rpartition(":")
    return address.removeprefix("[").removesuffix("]"), int(port)


def main():
    if len(sys.argv) != 1:
        sys.exit(__doc__.strip())
    algo = communityid.CommunityID(seed=0)
    checked, skipped, bad = 0, 0, []
    for n, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            sys.exit(f"stdin:{n}: not JSON: {e}")
        if not isinstance(obj, dict) or obj.get("type") != "session":
            continue
        if "community_id" not in obj:
            skipped += 1
            continue
        checked += 1
        where = f"stdin:{n}: session {obj.get('id')} {obj.get('client')} -> {obj.get('server')}"
        try:
            (saddr, sport), (daddr, dport) = split_endpoint(obj["client"]), split_endpoint(obj["server"])
            expected = algo.calc(communityid.FlowTuple.make_tcp(saddr, daddr, sport, dport))
            if expected is None:
                raise ValueError(algo.get_error())
        except (KeyError, AttributeError, ValueError, communityid.Error) as e:
            bad.append(f"{where}: cannot compute: {type(e).__name__}: {e}")
            continue
        if obj["community_id"] != expected:
            bad.append(f"{where}: community_id {obj['community_id']!r}, expected {expected!r}")
    if bad:
        sys.exit("\n".join(bad))
    if checked == 0:
        sys.exit("no session had a community_id")
    print(f"ok {checked} sessions" + (f" ({skipped} without community_id skipped)" if skipped else ""))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Usage: parse-tlsrpt.py FILE -- parse an RFC 8460 TLS report (JSON, gzip or zip) with parsedmarc; print the result as JSON."""
import json
import sys

import parsedmarc


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip())
    try:
        with open(sys.argv[1], "rb") as f:
            content = f.read()
        if content.startswith((parsedmarc.MAGIC_GZIP, parsedmarc.MAGIC_ZIP)):
            content = parsedmarc.extract_report(content)  # what parse_report_file does
        report = parsedmarc.parse_smtp_tls_report_json(content)
    except (OSError, parsedmarc.ParserError) as e:  # InvalidSMTPTLSReport is a ParserError
        sys.exit(f"{sys.argv[1]}: {type(e).__name__}: {e}")
    json.dump(report, sys.stdout, indent=2, ensure_ascii=False)
    print()


if __name__ == "__main__":
    main()

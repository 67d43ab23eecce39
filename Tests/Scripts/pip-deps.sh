#!/usr/bin/env bash
# Usage: pip-deps.sh -- install the test oracles' pip packages (jsonschema, parsedmarc, communityid) for python3 ($PYTHON) when missing.
set -u
py=${PYTHON:-python3}
missing=()
for pkg in jsonschema parsedmarc communityid; do   # each imports under its own name
    "$py" -c "import $pkg" 2>/dev/null || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

pip=("$py" -m pip install -q --disable-pip-version-check --root-user-action=ignore)
if ! out=$("${pip[@]}" "${missing[@]}" 2>&1); then
    # Debian's python3 (PEP 668) refuses installs outside a virtual environment.
    if ! grep -q externally-managed <<<"$out" \
        || ! out=$("${pip[@]}" --break-system-packages "${missing[@]}" 2>&1); then
        printf 'pip-deps: installing %s with %s failed:\n%s\n' "${missing[*]}" "$py" "$out" >&2
        exit 1
    fi
fi
for pkg in "${missing[@]}"; do
    "$py" -c "import $pkg" || { echo "pip-deps: $pkg installed but does not import in $py" >&2; exit 1; }
done

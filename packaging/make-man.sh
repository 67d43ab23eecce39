#!/bin/sh
# Writes the manual page. swift-argument-parser's generate-manual renders what the argument
# definitions of the built binary know (NAME, SYNOPSIS, every option, the subcommands); the
# sections they cannot know are written by hand in doc/man/*.mdoc and put around them.
# Usage: packaging/make-man.sh SMTPCAP GENERATE_MANUAL YYYY-MM-DD OUT
set -eu
bin=$1 gen=$2 date=$3 out=$4
src=doc/man
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/single" "$tmp/multi"
"$gen" "$bin" --date "$date" --output-directory "$tmp/single"
# One page per subcommand too, only for their synopsis lines.
"$gen" "$bin" --date "$date" --multi-page --output-directory "$tmp/multi"
version=$("$bin" --version)

# Every finding code has its line in FINDINGS: a new code must not go undocumented.
codes=$(sed -n 's/^ *case [A-Za-z]* = "\([a-z-]*\)"$/\1/p' Sources/SMTPCapCore/FindingCodes.swift)
[ -n "$codes" ] || { echo "no finding codes found in Sources/SMTPCapCore/FindingCodes.swift" >&2; exit 1; }
for code in $codes; do
	grep -qx ".It Li $code" $src/findings.mdoc || { echo "$src/findings.mdoc lacks finding $code" >&2; exit 1; }
done

# The generated page: its DESCRIPTION holds the root command's discussion (replaced by
# doc/man/description.mdoc), then one list of the options and, as items of it, the
# subcommands (split off into OPTIONS and COMMANDS); its EXIT STATUS is the generic
# "0 on success" (replaced). The help text's plain-text blocks (blank lines, indented
# EXAMPLES) become mdoc paragraphs and literal displays, which render without warnings.
awk -v src="$src" -v multi="$tmp/multi" -v version="$version" '
function hand(name,   f, line) {
	f = src "/" name ".mdoc"
	while ((getline line < f) > 0) print line
	close(f)
}
function synopsis(cmd,   f, line, on) {
	f = multi "/smtpcap." cmd ".1"
	print ".Nm"; print ".Cm " cmd
	while ((getline line < f) > 0) {
		if (line ~ /^\.Sh /) { on = (line == ".Sh SYNOPSIS"); continue }
		if (on && line != ".Nm") print line
	}
	close(f)
}
function endliteral() { if (literal) { print ".Ed"; literal = 0 } }
function text(line,   h) {
	if (line ~ /^\./) { endliteral(); pp = 0; print line; return }
	if (line == "") { endliteral(); pp = 1; return }
	if (line ~ /^ /) {
		if (!literal) { print ".Bd -literal -offset indent"; literal = 1 }
		sub(/^  /, "", line)
		if (line ~ /^[.\047]/) line = "\\&" line
		print line; pp = 0; return
	}
	endliteral()
	if (pp) { print ".Pp"; pp = 0 }
	if (line ~ /^[A-Z][A-Z ]*$/) line = ".Sy \"" substr(line, 1, 1) tolower(substr(line, 2)) "\" :"
	print line
}
FNR == NR { if ($1 == ".It" && $2 == "Em" && $3 != "help") subs[++nsubs] = $3; next }
/^\.Sh / { section = substr($0, 5); gsub(/"/, "", section) }
section == "" {
	if ($1 == ".Dd") {
		print ".\\\" smtpcap(1), written by make man (packaging/make-man.sh): NAME, SYNOPSIS, OPTIONS and"
		print ".\\\" COMMANDS from the argument definitions by swift-argument-parser generate-manual, the"
		print ".\\\" other sections from doc/man/*.mdoc. Edit those, not this file."
	}
	if ($1 == ".Os") $0 = ".Os smtpcap " version
	if ($1 != ".\\\"") print
	next
}
# The one-line description unquoted (whatis(1) shows the quotes), without its full stop, and
# words that are mdoc macro names escaped.
section == "NAME" && $1 == ".Nd" {
	line = substr($0, 5); gsub(/^"|"$/, "", line); sub(/\.$/, "", line)
	n = split(line, w, " "); line = ".Nd"
	for (i = 1; i <= n; i++) line = line " " (w[i] ~ /^[A-Z][a-z]$/ ? "\\&" : "") w[i]
	print line; next
}
section == "NAME" { print; next }
section == "SYNOPSIS" && $0 != ".Ar subcommand" { print; next }
section == "DESCRIPTION" {
	if ($1 == ".Sh") {
		for (i = 1; i <= nsubs; i++) synopsis(subs[i])
		next
	}
	if (done) next
	if ($1 == ".Bl") {
		if (++depth == 1) { hand("description"); print ".Sh OPTIONS" }
	}
	if (depth == 0) next
	if ($1 == ".El" && --depth == 0) { endliteral(); print; done = 1; next }
	if (depth == 1 && $1 == ".It" && $2 == "Em") {
		endliteral()
		if (!incommands) { print ".El"; print ".Sh COMMANDS"; print ".Bl -tag -width Ds"; incommands = 1 }
		skip = ($3 == "help")
		if (!skip) print ".It Cm " $3
		next
	}
	if (!skip) text($0)
	next
}
END {
	hand("findings"); hand("files"); hand("exit-status"); hand("examples"); hand("see-also")
}
' "$tmp/single/smtpcap.1" "$tmp/single/smtpcap.1" > "$tmp/smtpcap.1"
mv "$tmp/smtpcap.1" "$out"

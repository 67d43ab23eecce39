#!/bin/sh
# Makes the Debian package from the tree that `make deb` installed in WORK/debian/smtpcap
# (usr/bin/smtpcap, the man page, the completions) with dpkg-deb alone, no debhelper: strips the
# binary, adds copyright and changelog, and the control file with Depends from dpkg-shlibdeps.
# Usage: packaging/build-deb.sh WORK VERSION YYYY-MM-DD OUT.deb
set -eu
work=$1 version=$2 date=$3 deb=$4
root=$work/debian/smtpcap
bin=$root/usr/bin/smtpcap

# A binary that needs the toolchain installs fine and then fails to start: refuse it.
if readelf -d "$bin" | grep -E 'R(UN)?PATH' | grep -q /opt/swift; then
	echo "$bin has a RUNPATH into the Swift toolchain" >&2; exit 1
fi
if readelf -d "$bin" | grep NEEDED | grep -Eq 'libswift|libFoundation|libdispatch|libBlocksRuntime'; then
	echo "$bin loads the Swift runtime: build it with --static-swift-stdlib" >&2; exit 1
fi

umask 022
# As dh_strip does for executables.
strip --remove-section=.comment --remove-section=.note "$bin"
install -d "$root/DEBIAN" "$root/usr/share/doc/smtpcap" "$(dirname "$deb")"
install -m 0644 packaging/copyright "$root/usr/share/doc/smtpcap/copyright"
# The version has no Debian revision (upstream builds its own package): a native package, whose
# changelog is changelog.gz (Policy 12.7; lintian's wrong-name-for-changelog-of-native-package).
# Dated with the release date (doc/man/date), not the clock: the same tree, the same package.
sed -e "s/@VERSION@/$version/" -e "s/@DATE@/$(LC_ALL=C date -u -d "$date" -R)/" packaging/changelog.in |
	gzip -9n > "$root/usr/share/doc/smtpcap/changelog.gz"
chmod 0644 "$root/usr/share/doc/smtpcap/changelog.gz"

# dpkg-shlibdeps reads a debian/control: a minimal one beside the tree.
printf 'Source: smtpcap\n\nPackage: smtpcap\nArchitecture: any\n' > "$work/debian/control"
depends=$(cd "$work" && dpkg-shlibdeps -O debian/smtpcap/usr/bin/smtpcap | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "dpkg-shlibdeps found no dependencies" >&2; exit 1; }

sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$(dpkg --print-architecture)/" \
	-e "s/@INSTALLED_SIZE@/$(du -sk "$root/usr" | cut -f1)/" -e "s/@DEPENDS@/$depends/" \
	packaging/control.in > "$root/DEBIAN/control"
(cd "$root" && find usr -type f | LC_ALL=C sort | xargs md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"

SOURCE_DATE_EPOCH=$(date -u -d "$date" +%s) dpkg-deb --root-owner-group -Zxz --build "$root" "$deb"

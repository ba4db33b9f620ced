#!/usr/bin/env bash
# Build the Xen testbed: Debian's Xen 4.17 hypervisor as a multiboot image QEMU
# can boot, Debian's 6.1 kernel as dom0, and a dom0 initramfs holding the xl
# toolstack (see dom0-init). Cached outside the repo, keyed by the package
# versions and this directory's files.
#
# Usage: guest-linux/xen/build.sh [--no-install]
# Env:   MCG_CACHE (default ~/.cache/mcg)
# Prints progress on stderr and, last on stdout, the artifact directory
# (xen.elf, vmlinuz, dom0.cpio.gz).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${MCG_CACHE:-$HOME/.cache/mcg}
install=1
while [ $# -gt 0 ]; do
	case "$1" in
	--no-install) install=0; shift ;;
	-h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "xen/build.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done

say() { printf '[xen-build %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# Debian's current 4.17.7 hypervisor is built without shadow paging, so its
# `xl migrate` fails ("Failed to enable logdirty"); 4.17.5 from bookworm works
# with the 4.17.7 tools (shared FINDINGS). Fall back to the current one.
xen_pinned=4.17.5+72-g01140da4e8-1
debs="xen-utils-4.17 xenstore-utils busybox-static bash qemu-system-x86 iproute2 cpio gzip kmod"

# shellcheck source=guest-linux/debs.sh
. "$here/../debs.sh"
ensure_debs "$install" --no-install-recommends $debs

dom0_pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -1)
[ -n "$dom0_pkg" ] || die "cannot find Debian's current linux-image package (apt-get update?)"
dom0_ver=$(apt-cache policy "$dom0_pkg" | sed -n 's/.*Candidate: //p')
if apt-cache madison xen-hypervisor-4.17-amd64 | grep -q " $xen_pinned "; then
	xen_ver=$xen_pinned
else
	xen_ver=$(apt-cache policy xen-hypervisor-4.17-amd64 | sed -n 's/.*Candidate: //p')
	say "warning: xen-hypervisor $xen_pinned is gone from the archive; using $xen_ver (xl migrate may fail)"
fi
tools_ver=$(dpkg-query -W -f='${Version}' xen-utils-4.17)

key=$( {
	echo "$dom0_pkg $dom0_ver xen $xen_ver tools $tools_ver"
	dpkg-query -W -f='${Version}' busybox-static
	cat "$here/build.sh" "$here/dom0-init"
} | sha256sum | cut -c1-16)
out="$cache/xen-$key"
if [ -f "$out/dom0.cpio.gz" ]; then
	say "xen testbed cached: $out"
	echo "$out"
	exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say "fetching xen-hypervisor $xen_ver and $dom0_pkg $dom0_ver"
(cd "$work" && apt-get download -q "xen-hypervisor-4.17-amd64=$xen_ver" "$dom0_pkg=$dom0_ver" >/dev/null 2>&1) ||
	die "apt-get download failed (run apt-get update?)"
mkdir -p "$work/x" "$work/k"
dpkg-deb -x "$work"/xen-hypervisor-*.deb "$work/x"
dpkg-deb -x "$work/${dom0_pkg}"_*.deb "$work/k"
mkdir -p "$out.tmp"
# QEMU's -kernel takes the ELF32 multiboot image inside xen.gz, not xen.gz itself.
zcat "$work"/x/boot/xen-4.17-amd64.gz >"$out.tmp/xen.elf"
cp "$work"/k/boot/vmlinuz-* "$out.tmp/vmlinuz"

say "building the dom0 initramfs"
root=$work/root
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,etc,run,var/log/xen/console,var/lib/xen,var/run/xen,lib/modules,guest}
cp /bin/busybox "$root/bin/busybox"
for a in $(/bin/busybox --list); do
	[ "$a" = busybox ] || ln -s busybox "$root/bin/$a"
done
xenbin=/usr/lib/xen-4.17/bin
progs="/bin/bash /usr/bin/flock $xenbin/xl $xenbin/xenstored $xenbin/xenconsoled $xenbin/xen-init-dom0
	$xenbin/libxl-save-helper /usr/bin/xenstore-read /usr/bin/xenstore-write /usr/bin/xenstore-ls
	/usr/bin/xenstore-rm /usr/bin/xenstore-exists /usr/bin/xenstore-list /usr/bin/xenstore-chmod /usr/bin/xenstore"
for p in $progs; do
	[ -e "$p" ] || die "$p not found (xen-utils-4.17 / xenstore-utils installed?)"
	# bash and the xen binaries replace busybox's applets of the same name.
	rm -f "$root/bin/$(basename "$p")"
	cp -L "$p" "$root/bin/"
done
# Every shared library they load, plus libgcc_s, which libxl dlopens (else xl create aborts).
libs=$(for p in $progs; do ldd "$p" | awk '/=>/ { print $3 } /^\t\/lib64/ { print $1 }'; done | sort -u)
for l in $libs $(ls /lib/x86_64-linux-gnu/libgcc_s.so.1); do
	mkdir -p "$root$(dirname "$l")"
	cp -L "$l" "$root$l"
done
mkdir -p "$root/lib64" "$root/usr/lib"
cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"
ln -s ../lib/x86_64-linux-gnu "$root/usr/lib/x86_64-linux-gnu"
# xl finds its helpers (libxl-save-helper) and scripts at Debian's paths.
mkdir -p "$root$xenbin"
ln -s /bin/libxl-save-helper "$root$xenbin/libxl-save-helper"
cp -a /etc/xen "$root/etc/"

modules="xen-privcmd xenfs xen-evtchn xen-gntdev xen-gntalloc xen-netback llc stp bridge tun e1000"
for m in $modules; do
	f=$(find "$work/k/lib/modules" -name "$m.ko*" | head -1)
	[ -n "$f" ] || die "module $m not in $dom0_pkg"
	cp "$f" "$root/lib/modules/"
done
echo "$modules" >"$root/lib/modules/load-order"
install -m 0755 "$here/dom0-init" "$root/init"

(cd "$root" && find . -print0 | sort -z | cpio --null -o -H newc --quiet --reproducible) |
	gzip -6n >"$out.tmp/dom0.cpio.gz"
rm -rf "$out" && mv "$out.tmp" "$out"
say "artifacts: $out (xen.elf, vmlinuz, dom0.cpio.gz: $(du -h "$out/dom0.cpio.gz" | cut -f1))"
echo "$out"

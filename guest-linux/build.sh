#!/usr/bin/env bash
# Build the mcg guest: a Linux 6.1 kernel (Debian's linux-source-6.1 + our patch
# series + config fragment) and an initramfs (busybox, the in-guest helper, an
# optional overlay). Artifacts are cached outside the repo, keyed by the hash of
# every input, so a second run with the same inputs does no work.
#
# Usage: guest-linux/build.sh [--overlay DIR] [--no-install]
# Env:   MCG_CACHE (default ~/.cache/mcg), MCG_JOBS (default nproc)
# Prints progress on stderr and, last on stdout, the artifact directory.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${MCG_CACHE:-$HOME/.cache/mcg}
jobs=${MCG_JOBS:-$(nproc)}
overlay=""
install=1
while [ $# -gt 0 ]; do
	case "$1" in
	--overlay) overlay=$(cd "$2" && pwd); shift 2 ;;
	--no-install) install=0; shift ;;
	-h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "build.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done

say() { printf '[guest-build %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

src_tar=/usr/src/linux-source-6.1.tar.xz
# What the guest is built from, and what runs it (QEMU, ip for the test network).
debs="linux-source-6.1 busybox-static build-essential bc flex bison libelf-dev libssl-dev cpio gzip xz-utils qemu-system-x86 iproute2"

# shellcheck source=guest-linux/debs.sh
. "$here/debs.sh"
ensure_debs "$install" "" $debs
[ -f "$src_tar" ] || die "$src_tar not found after installing linux-source-6.1"

mkdir -p "$cache"
src_version=$(dpkg-query -W -f='${Version}' linux-source-6.1)

# --- kernel -----------------------------------------------------------------
kernel_key=$( {
	echo "linux-source-6.1 $src_version"
	cat "$here/config.fragment"
	for p in "$here"/patches/*.patch; do
		if [ -e "$p" ]; then basename "$p"; cat "$p"; fi
	done
} | sha256sum | cut -c1-16)
kernel_dir="$cache/kernel-$kernel_key"
tree="$cache/linux-tree-$src_version"

if [ -f "$kernel_dir/bzImage" ]; then
	say "kernel cached: $kernel_dir"
else
	if [ ! -f "$tree/.mcg-extracted" ]; then
		say "extracting linux-source $src_version (once)"
		rm -rf "$tree" && mkdir -p "$tree"
		tar -xf "$src_tar" -C "$tree" --strip-components=1
		mkdir -p "$tree/.mcg-applied"
		touch "$tree/.mcg-extracted"
	fi
	# Swap the previously applied series for the current one, keeping the
	# patches both share from the start: make then only rebuilds what the
	# changed patches touch (re-applying one that edits a common header would
	# rebuild most of the kernel).
	mapfile -t applied < <(ls "$tree/.mcg-applied"/*.patch 2>/dev/null || true)
	mapfile -t series < <(ls "$here"/patches/*.patch 2>/dev/null || true)
	keep=0
	while [ "$keep" -lt "${#applied[@]}" ] && [ "$keep" -lt "${#series[@]}" ] &&
		[ "$(basename "${applied[$keep]}")" = "$(basename "${series[$keep]}")" ] &&
		cmp -s "${applied[$keep]}" "${series[$keep]}"; do
		keep=$((keep + 1))
	done
	for ((i = ${#applied[@]} - 1; i >= keep; i--)); do
		p=${applied[$i]}
		say "reverting $(basename "$p")"
		patch -d "$tree" -p1 -R -s <"$p" || die "could not revert $p"
		rm -f "$p"
	done
	for p in "${series[@]:$keep}"; do
		say "applying $(basename "$p")"
		patch -d "$tree" -p1 -s -N <"$p" || die "patch $(basename "$p") does not apply to linux $src_version"
		cp "$p" "$tree/.mcg-applied/"
	done
	cfg_key=$(sha256sum <"$here/config.fragment" | cut -c1-16)
	if [ "$(cat "$tree/.mcg-config" 2>/dev/null)" != "$cfg_key" ]; then
		say "configuring: tinyconfig + config.fragment"
		make -C "$tree" -s tinyconfig >&2
		"$tree/scripts/kconfig/merge_config.sh" -m -O "$tree" "$tree/.config" "$here/config.fragment" >/dev/null
		make -C "$tree" -s olddefconfig >&2
		for opt in $(grep -o '^CONFIG_[A-Z0-9_]*=y' "$here/config.fragment"); do
			grep -qx "$opt" "$tree/.config" || say "warning: $opt did not stick in .config"
		done
		echo "$cfg_key" >"$tree/.mcg-config"
	fi
	say "building bzImage with $jobs jobs (first build ~7 min, later ones seconds)"
	start=$(date +%s)
	make -C "$tree" -j"$jobs" bzImage >"$cache/kernel-build.log" 2>&1 ||
		{ tail -30 "$cache/kernel-build.log" >&2; die "kernel build failed; log: $cache/kernel-build.log"; }
	say "kernel built in $(( $(date +%s) - start )) s"
	mkdir -p "$kernel_dir.tmp"
	cp "$tree/arch/x86/boot/bzImage" "$tree/.config" "$kernel_dir.tmp/"
	cp "$tree/include/generated/utsrelease.h" "$kernel_dir.tmp/" 2>/dev/null || true
	rm -rf "$kernel_dir" && mv "$kernel_dir.tmp" "$kernel_dir"
fi

# --- initramfs --------------------------------------------------------------
helper_srcs=$(ls "$here"/helper/*.c "$here"/helper/*.h "$repo"/native/include/mcg/*.h "$repo"/native/src/*.c 2>/dev/null || true)
initrd_key=$( {
	echo "$kernel_key"
	dpkg-query -W -f='${Version}' busybox-static
	cat "$here/init" $helper_srcs
	if [ -n "$overlay" ]; then (cd "$overlay" && find . -type f -print0 | sort -z | xargs -0 sha256sum); fi
} | sha256sum | cut -c1-16)
out="$cache/guest-$initrd_key"
if [ -f "$out/initramfs.cpio.gz" ]; then
	say "initramfs cached: $out"
else
	say "building initramfs"
	stage=$(mktemp -d)
	trap 'rm -rf "$stage" "$stage.uapi"' EXIT
	mkdir -p "$stage"/{bin,sbin,dev,proc,sys,tmp,etc,root}
	cp /bin/busybox "$stage/bin/busybox"
	for a in $(/bin/busybox --list); do
		[ "$a" = busybox ] || ln -s busybox "$stage/bin/$a"
	done
	if ls "$here"/helper/*.c >/dev/null 2>&1; then
		# The helper needs the patched kernel's snapshot ioctls, nothing else from it.
		mkdir -p "$stage.uapi/linux"
		cp "$tree/include/uapi/linux/suspend_ioctls.h" "$stage.uapi/linux/"
		make -s -C "$here/helper" OUT="$stage/bin" UAPI_INC="$stage.uapi" >&2 || die "in-guest helper failed to build"
		rm -rf "$stage.uapi"
	fi
	install -m 0755 "$here/init" "$stage/init"
	if [ -n "$overlay" ]; then cp -a "$overlay"/. "$stage/root/"; fi
	mkdir -p "$out.tmp"
	(cd "$stage" && find . -print0 | sort -z | cpio --null -o -H newc --quiet --reproducible) |
		gzip -9n >"$out.tmp/initramfs.cpio.gz"
	cp "$kernel_dir/bzImage" "$out.tmp/bzImage"
	rm -rf "$out" && mv "$out.tmp" "$out"
fi
say "artifacts: $out (bzImage, initramfs.cpio.gz)"
echo "$out"

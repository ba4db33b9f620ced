# Sourced by the build scripts: ensure_debs INSTALL APT_FLAGS PACKAGES... installs the
# Debian packages that are missing (INSTALL=1, as root; APT_FLAGS may be "") or names
# them and fails. Needs the caller's say and die.
ensure_debs() {
	local install=$1 flags=$2 missing="" d
	shift 2
	for d in "$@"; do dpkg -s "$d" >/dev/null 2>&1 || missing="$missing $d"; done
	[ -n "$missing" ] || return 0
	[ "$install" = 1 ] || die "missing Debian packages:$missing (run: apt-get install$missing)"
	[ "$(id -u)" = 0 ] || die "missing Debian packages:$missing; run as root or: sudo apt-get install$missing"
	say "installing$missing"
	apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $flags $missing >&2
}

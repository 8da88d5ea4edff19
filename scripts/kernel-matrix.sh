#!/usr/bin/env bash
# The kernel matrix: runs the agent on Debian's kernels under qemu (TCG; no KVM
# needed) and on this machine's kernel, and checks real traffic end to end on
# each (scripts/kernel-matrix-check.sh: HTTP both sides, HTTPS through the
# OpenSSL uprobes, DNS, Redis, the probe_status table and /readyz).
#
#   scripts/kernel-matrix.sh [--debug] [KERNEL...]
#
# KERNEL: 5.10 (bullseye), 6.1 (bookworm), 6.12 (bookworm's 6.12 line, from
# bookworm-security), host (this machine's kernel, run directly). Default: all.
# --debug puts target/debug/sonde in the guests instead of target/release/sonde
# (either is built first if needed: a cold release build takes ~25 minutes).
#
# Prints one line per kernel, `VERSION: pass|fail|refused: detail`, then
# `N passed, M failed`; exits non-zero if any kernel failed.
#
# Everything is installed and cached by the script itself (root needed):
# qemu-system-x86, debootstrap and cpio from Debian; the kernel packages with
# `apt-get download` through a private apt configuration that adds the
# bullseye, bookworm-security and bookworm-backports suites (the machine's own
# apt sources are not touched); a bookworm root filesystem (debootstrap, once)
# with nginx, curl, openssl, redis, dnsmasq and dig, booted as the guest's
# initramfs.
# Cache: target/kmatrix/ (KMATRIX_CACHE). Logs: target/kmatrix/runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${KMATRIX_CACHE:-$ROOT/target/kmatrix}
MIRROR=${KMATRIX_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${KMATRIX_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# Guest resources and time limit (TCG: verifying the BPF programs alone takes
# minutes on an emulated CPU).
GUEST_MEM_MIB=${KMATRIX_GUEST_MEM_MIB:-3072}
GUEST_CPUS=${KMATRIX_GUEST_CPUS:-2}
GUEST_TIMEOUT=${KMATRIX_GUEST_TIMEOUT:-2400}
ALL_KERNELS=(5.10 6.1 6.12 host)
# What the guest runs besides the agent: the same servers and clients as the e2e tests.
ROOTFS_PACKAGES=nginx,curl,openssl,redis-server,redis-tools,dnsmasq-base,bind9-dnsutils,iproute2,procps

profile=release
kernels=()
for arg in "$@"; do
    case "$arg" in
    --debug) profile=debug ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    5.10 | 6.1 | 6.12 | host) kernels+=("$arg") ;;
    *)
        echo "kernel-matrix: unknown argument '$arg' (kernels: ${ALL_KERNELS[*]}; flags: --debug)" >&2
        exit 2
        ;;
    esac
done
[ ${#kernels[@]} -gt 0 ] || kernels=("${ALL_KERNELS[@]}")

log() { echo "kernel-matrix: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    log "needs root (debootstrap, the agent on this machine's kernel); rerun with sudo"
    exit 2
fi

need_packages() { # package...
    local missing=() pkg
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

qemu_wanted=false
host_wanted=false
for k in "${kernels[@]}"; do
    if [ "$k" = host ]; then host_wanted=true; else qemu_wanted=true; fi
done
if $qemu_wanted; then
    need_packages qemu-system-x86 debootstrap cpio binutils
fi
if $host_wanted; then
    need_packages nginx curl openssl redis-server redis-tools dnsmasq-base bind9-dnsutils iproute2
fi

# --- the agent binary: built when missing (an existing one is used as is) ---
AGENT=$ROOT/target/$profile/sonde
if [ ! -x "$AGENT" ]; then
    flags=(-p sonde)
    if [ "$profile" = release ]; then
        flags+=(--release)
        log "building the release agent (a cold build takes ~25 minutes here)"
    fi
    cargo build --quiet "${flags[@]}"
elif [ -n "$(find collector collector-ebpf protocols query web k8s -newer "$AGENT" \
    \( -name '*.rs' -o -name '*.c' -o -name '*.h' \) -print -quit)" ]; then
    log "warning: $AGENT is older than the sources; rebuild it to test the current tree"
fi

# --- kernels: Debian's packages, through a private apt configuration ---
APT_DIR=$CACHE/apt
apt_private() { # apt-get|apt-cache args...
    local tool=$1
    shift
    "$tool" -o Dir::Etc::SourceList="$APT_DIR/sources.list" -o Dir::Etc::SourceParts="$APT_DIR/empty" \
        -o Dir::State::Lists="$APT_DIR/lists" -o Dir::Cache="$APT_DIR/cache" \
        -o Debug::NoLocking=1 -o APT::Sandbox::User=root "$@"
}
apt_ready=false
apt_prepare() {
    $apt_ready && return
    mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/empty" "$APT_DIR/debs"
    cat >"$APT_DIR/sources.list" <<EOF
deb $MIRROR bullseye main
deb $SECURITY_MIRROR bullseye-security main
deb $MIRROR bookworm main
deb $SECURITY_MIRROR bookworm-security main
deb $MIRROR bookworm-backports main
EOF
    log "updating the private apt lists (bullseye, bookworm, -security, -backports)"
    apt_private apt-get update -qq
    apt_ready=true
}

# The newest Debian kernel image package of a series (5.10, 6.1, 6.12): the
# dependency of the highest linux-image-amd64 (or linux-image-SERIES-amd64,
# bookworm's 6.12 line) version in that series. Prints "package version".
resolve_kernel() { # series
    apt_private apt-cache show linux-image-amd64 "linux-image-$1-amd64" 2>/dev/null |
        awk -v series="$1" '
            /^Version: / { version = $2 }
            /^Depends: / {
                if (index(version, series ".") == 1) {
                    split($2, dep, " ")
                    print version, dep[1]
                }
            }' |
        sort -V | tail -n 1 | awk '{ print $2, $1 }'
}

# Leaves target/kmatrix/kernels/SERIES/{vmlinuz,version}.
fetch_kernel() { # series
    local series=$1 dir=$CACHE/kernels/$1
    [ -s "$dir/vmlinuz" ] && [ -s "$dir/version" ] && return
    apt_prepare
    local package version
    read -r package version < <(resolve_kernel "$series")
    if [ -z "${package:-}" ]; then
        log "no Debian kernel package found for $series"
        return 1
    fi
    log "downloading $package ($version)"
    (cd "$APT_DIR/debs" && apt_private apt-get download -qq "$package")
    local deb
    deb=$(ls "$APT_DIR/debs/${package}_"*.deb | head -n 1)
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp/extract"
    dpkg-deb -x "$deb" "$dir.tmp/extract"
    cp "$dir.tmp/extract"/boot/vmlinuz-* "$dir.tmp/vmlinuz"
    grep -E '^CONFIG_(DEBUG_INFO_BTF|BPF_SYSCALL|BPF_EVENTS|FTRACE_SYSCALLS)=' \
        "$dir.tmp/extract"/boot/config-* >"$dir.tmp/config" || true
    # Only vmlinuz is kept (modules are not needed: the guest's root is its initramfs).
    rm -rf "$dir.tmp/extract" "$deb"
    # Upstream version (5.10.262 of 5.10.262-1): what the matrix reports.
    echo "${version%%-*} $package" >"$dir.tmp/version"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
}

# --- the guest's root filesystem: bookworm, built once, as an initramfs ---
ROOTFS_CPIO=$CACHE/rootfs.cpio
build_rootfs() {
    local stamp="bookworm $ROOTFS_PACKAGES"
    if [ -s "$ROOTFS_CPIO" ] && [ "$(cat "$ROOTFS_CPIO.stamp" 2>/dev/null)" = "$stamp" ]; then
        return
    fi
    local tree=$CACHE/rootfs
    rm -rf "$tree" "$ROOTFS_CPIO"
    log "building the guest root filesystem (debootstrap bookworm; a few minutes, once)"
    debootstrap --variant=minbase --include="$ROOTFS_PACKAGES" bookworm "$tree" "$MIRROR" \
        >"$CACHE/debootstrap.log" 2>&1 || {
        log "debootstrap failed; see $CACHE/debootstrap.log"
        tail -n 20 "$CACHE/debootstrap.log" >&2
        return 1
    }
    # Only what the guest runs: no package caches, docs or translations.
    rm -rf "$tree"/var/cache/apt/* "$tree"/var/lib/apt/lists/* "$tree"/usr/share/doc \
        "$tree"/usr/share/man "$tree"/usr/share/locale "$tree"/usr/share/info
    (cd "$tree" && find . -print0 | cpio --null -o -H newc --quiet) >"$ROOTFS_CPIO.tmp"
    mv "$ROOTFS_CPIO.tmp" "$ROOTFS_CPIO"
    echo "$stamp" >"$ROOTFS_CPIO.stamp"
    rm -rf "$tree"
}

# The part of the initramfs that changes with each build: the agent, the check
# and the init that runs it. Appended to the rootfs archive (the kernel
# unpacks concatenated cpio archives in order).
build_initrd() { # output
    local payload=$CACHE/payload
    rm -rf "$payload"
    mkdir -p "$payload/kmatrix" "$payload/usr/local/bin"
    strip --strip-debug -o "$payload/usr/local/bin/sonde" "$AGENT"
    cp scripts/kernel-matrix-check.sh "$payload/kmatrix/check.sh"
    cat >"$payload/kmatrix/init" <<'EOF'
#!/bin/bash
# The guest's init: mount the basics, run the check, power off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mkdir -p /dev/pts /dev/shm
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
ip link set lo up
echo "KMATRIX-BOOTED $(uname -r) after $(cut -d' ' -f1 /proc/uptime)s"
SONDE_BIN=/usr/local/bin/sonde KMATRIX_WORK=/tmp/kmatrix bash /kmatrix/check.sh
echo o >/proc/sysrq-trigger
sleep 60
EOF
    chmod +x "$payload/kmatrix/init" "$payload/kmatrix/check.sh"
    {
        cat "$ROOTFS_CPIO"
        (cd "$payload" && find . -print0 | cpio --null -o -H newc --quiet)
    } >"$1"
}

# --- running one kernel ---
RUNS=$CACHE/runs
mkdir -p "$RUNS"
passed=0
failed=0
refused=0
lines=()

report() { # version status detail
    local line="$1: $2: $3"
    lines+=("$line")
    echo "$line"
    case "$2" in
    pass) passed=$((passed + 1)) ;;
    refused) refused=$((refused + 1)) ;;
    *) failed=$((failed + 1)) ;;
    esac
}

# The check's last line: "KMATRIX-RESULT status: detail" -> "status" "detail".
parse_result() { # log -> sets result_status, result_detail
    local line
    line=$(grep -a '^KMATRIX-RESULT ' "$1" | tail -n 1 | tr -d '\r')
    if [ -z "$line" ]; then
        result_status=""
        result_detail=""
        return
    fi
    line=${line#KMATRIX-RESULT }
    result_status=${line%%:*}
    result_detail=${line#*: }
}

run_guest() { # series
    local series=$1 version package
    if ! fetch_kernel "$series"; then
        report "$series" fail "cannot download Debian's $series kernel"
        return
    fi
    read -r version package <"$CACHE/kernels/$series/version"
    local log=$RUNS/$series.log
    log "booting $package ($version) under qemu (TCG); console: $log"
    local started=$SECONDS rc=0
    timeout --foreground "$GUEST_TIMEOUT" qemu-system-x86_64 \
        -nodefaults -no-user-config -display none -no-reboot \
        -machine pc -accel tcg,thread=multi -cpu max -smp "$GUEST_CPUS" -m "$GUEST_MEM_MIB" \
        -kernel "$CACHE/kernels/$series/vmlinuz" -initrd "$INITRD" \
        -append "console=ttyS0 rdinit=/kmatrix/init panic=-1 quiet loglevel=4" \
        -serial "file:$log" </dev/null || rc=$?
    local took=$((SECONDS - started))
    parse_result "$log"
    if [ -n "$result_status" ]; then
        report "$version" "$result_status" "$result_detail (guest ${took}s)"
    elif [ "$rc" -eq 124 ]; then
        report "$version" fail "no result within ${GUEST_TIMEOUT}s; last console line: $(grep -av '^\s*$' "$log" | tail -n 1 | tr -d '\r')"
    else
        report "$version" fail "guest ended (qemu exit $rc) without a result; last console line: $(grep -av '^\s*$' "$log" | tail -n 1 | tr -d '\r')"
    fi
}

run_host() {
    local log=$RUNS/host.log started=$SECONDS
    log "running on this machine's kernel ($(uname -r)); log: $log"
    SONDE_BIN=$AGENT KMATRIX_WORK=$CACHE/host-work bash scripts/kernel-matrix-check.sh >"$log" 2>&1 || true
    parse_result "$log"
    if [ -n "$result_status" ]; then
        report "$(uname -r)" "$result_status" "$result_detail (host $((SECONDS - started))s)"
    else
        report "$(uname -r)" fail "the check ended without a result; see $log"
    fi
}

INITRD=$CACHE/initrd.cpio
if $qemu_wanted; then
    build_rootfs
    build_initrd "$INITRD"
fi
started=$SECONDS
for k in "${kernels[@]}"; do
    if [ "$k" = host ]; then run_host; else run_guest "$k"; fi
done

echo
echo "kernel matrix ($profile agent, $(date -u +%Y-%m-%d), $((SECONDS - started))s):"
printf '  %s\n' "${lines[@]}"
summary="$passed passed, $failed failed"
[ "$refused" -eq 0 ] || summary="$summary ($refused refused)"
echo "$summary"
[ "$failed" -eq 0 ]

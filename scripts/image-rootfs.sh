#!/usr/bin/env bash
# Assembles the root filesystem of ringway's container image from a built
# binary and Debian 12's runtime packages, with no container runtime:
#
#   scripts/image-rootfs.sh BINARY ROOTFS
#
# The packages are the ones that own the libraries `ldd BINARY` names on this
# machine (dpkg -S), plus ca-certificates and base-files; they are fetched with
# `apt-get download` (the versions apt's lists name: run apt-get update before
# for the latest security fixes; it runs by itself when a download fails) and
# unpacked with `dpkg-deb` in a scratch folder. ROOTFS then gets only:
#   /usr/bin/ringway, the dynamic loader and exactly the shared libraries the
#   loader resolves for it (soname links and files), the CA bundle
#   /etc/ssl/certs/ca-certificates.crt (+ /etc/ssl/cert.pem, the file the
#   Debian BoringSSL's default verify path opens), /etc/passwd and /etc/group
#   with root and nonroot (65532), /home/nonroot, /tmp (1777), /etc/nsswitch.conf,
#   /etc/os-release and /etc/debian_version, each package's copyright file,
#   and /var/lib/dpkg/status.d/<package> (the package's control fields, as in
#   distroless images, so image scanners know the versions).
# No shell, no package manager, no coreutils. Every file's mtime is
# SOURCE_DATE_EPOCH (default: the last commit's time).
#
# Used by the Containerfile's build stage and by scripts/build-image.sh, so
# both images hold the same files. Runs as root (ownership of 65532's home).
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 BINARY ROOTFS" >&2
    exit 2
fi
bin=$(realpath "$1")
root=$2
here=$(cd "$(dirname "$0")/.." && pwd)
: "${SOURCE_DATE_EPOCH:=$(git -C "$here" log -1 --format=%ct 2>/dev/null || echo 0)}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/stage # every package unpacked together, merged-/usr like Debian 12
mkdir -p "$stage/usr/lib" "$stage/usr/lib64" "$work/debs"
ln -s usr/lib "$stage/lib"
ln -s usr/lib64 "$stage/lib64"

# Packages owning the libraries the binary loads here.
pkgs=()
while read -r lib; do
    owner=$(dpkg -S "$(realpath "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null) || {
        echo "image-rootfs: no Debian package owns $lib" >&2
        exit 1
    }
    pkgs+=("${owner%%:*}")
done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
pkgs+=(ca-certificates base-files)
mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)

unpacked=()
unpack() { # packages...: downloaded (one apt-get) and unpacked into the stage
    local p
    # The archive's current versions (Debian 12 keeps sonames and ABI within
    # the release, so newer security fixes are the ones to ship).
    (cd "$work/debs" && { apt-get download -qq "$@" 2>/dev/null ||
        { rm -f ./*.deb && apt-get update -qq && apt-get download -qq "$@"; }; }) || {
        echo "image-rootfs: apt-get download $* failed" >&2
        exit 1
    }
    for p in "$@"; do
        dpkg-deb --fsys-tarfile "$work"/debs/"${p}"_*.deb | tar -x -C "$stage" --keep-directory-symlink
        unpacked+=("$p")
    done
}
unpack "${pkgs[@]}"
# A package whose doc folder is a link to another's (libstdc++6 -> gcc-12-base)
# has its copyright there: fetch that package too, for the file.
more=()
for p in "${pkgs[@]}"; do
    d=$stage/usr/share/doc/$p
    if [ -L "$d" ]; then more+=("$(basename "$(readlink "$d")")"); fi
done
if [ ${#more[@]} -gt 0 ]; then
    mapfile -t more < <(printf '%s\n' "${more[@]}" | sort -u)
    unpack "${more[@]}"
fi

rm -rf "$root"
mkdir -p "$root"/{usr/bin,usr/lib,usr/lib64,etc/ssl/certs,tmp,home/nonroot,proc,sys,dev,var/lib/dpkg/status.d}
ln -s usr/lib "$root/lib"
ln -s usr/lib64 "$root/lib64"

put() { # path in the stage (absolute inside it): copied with its chain of symlinks
    local p=$1 dir name
    dir=$(realpath "$stage$(dirname "$p")")
    dir=${dir#"$stage"}
    name=$(basename "$p")
    mkdir -p "$root$dir"
    [ -e "$root$dir/$name" ] || [ -L "$root$dir/$name" ] || cp -a "$stage$dir/$name" "$root$dir/$name"
    if [ -L "$stage$dir/$name" ]; then
        local t
        t=$(readlink "$stage$dir/$name")
        case $t in
        /*) put "$t" ;;
        *) put "$dir/$t" ;;
        esac
    fi
}

install -m 0755 "$bin" "$root/usr/bin/ringway"
interp=$(readelf -l "$bin" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
put "$interp"
# The libraries as the packaged loader resolves them inside the stage (the
# binary's RUNPATH names the android/ folder of BoringSSL; --library-path is
# searched first, so nothing comes from this machine's /usr/lib).
libdirs=$(find "$stage/usr/lib" -name '*.so*' -printf '%h\n' | sort -u | paste -sd:)
while read -r name arrow path _; do
    if [ "$arrow" != "=>" ] || [ "${path#"$stage"/}" = "$path" ]; then
        echo "image-rootfs: $name not resolved from the runtime packages ($arrow $path)" >&2
        exit 1
    fi
    put "${path#"$stage"}"
done < <("$stage$interp" --library-path "$libdirs" --list "$bin" | grep -v -e "^[[:space:]]*$interp" -e linux-vdso)

# CA certificates: the bundle update-ca-certificates would write from the
# package's certificates (all of them, sorted, each ending in a newline).
find "$stage/usr/share/ca-certificates" -name '*.crt' | LC_ALL=C sort | while read -r c; do
    sed -e '$a\' "$c"
done >"$root/etc/ssl/certs/ca-certificates.crt"
chmod 0644 "$root/etc/ssl/certs/ca-certificates.crt"
ln -s certs/ca-certificates.crt "$root/etc/ssl/cert.pem"

cp -a "$stage/usr/lib/os-release" "$root/usr/lib/os-release"
ln -s ../usr/lib/os-release "$root/etc/os-release"
cp -a "$stage/etc/debian_version" "$root/etc/debian_version"

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
nonroot:x:65532:
EOF
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
chmod 0644 "$root"/etc/{passwd,group,nsswitch.conf}
chown 65532:65532 "$root/home/nonroot"
chmod 0700 "$root/home/nonroot"
chmod 1777 "$root/tmp"

for p in "${unpacked[@]}"; do
    src=$(realpath "$stage/usr/share/doc/$p/copyright")
    mkdir -p "$root/usr/share/doc/$p"
    cp "$src" "$root/usr/share/doc/$p/copyright"
    dpkg-deb -f "$work"/debs/"${p}"_*.deb >"$root/var/lib/dpkg/status.d/$p"
done

find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
echo "image-rootfs: $root from ${unpacked[*]}"

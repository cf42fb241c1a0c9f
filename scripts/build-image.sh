#!/usr/bin/env bash
# Builds ringway's container image without a container runtime, on a Debian 12
# machine (as root) that reaches only Debian's package archive:
#
#   scripts/build-image.sh [--out DIR]      # default DIR: build-image
#
# 1. installs the build dependencies (scripts/install-deps.sh) and umoci,
#    skopeo (Debian 12 packages);
# 2. builds a release ringway in DIR/ringway (scripts/start.sh's options);
# 3. assembles the root with scripts/image-rootfs.sh (the same step the
#    Containerfile's build stage runs): the binary, its shared libraries from
#    the Debian runtime packages, CA certificates, user 65532, no shell;
# 4. packs it with umoci as one layer, with the Containerfile's config (user
#    65532:65532, entrypoint /usr/bin/ringway, port 8080, OCI labels), and
#    exports it with skopeo.
#
# Outputs, all named ringway:0.1.0 (the version comes from meson.build):
#   DIR/oci/                       OCI layout, tag 0.1.0 (umoci, skopeo oci:DIR/oci:0.1.0)
#   DIR/ringway-0.1.0.oci.tar      oci-archive (podman load, skopeo)
#   DIR/ringway-0.1.0.docker.tar   docker-archive (ctr -n k8s.io images import, podman/docker load)
#   DIR/rootfs/                    the root filesystem, as packed
# Timestamps are SOURCE_DATE_EPOCH (default: the last commit's time), so two
# builds of one commit with the same packages give the same layer digest.
# Labels: org.opencontainers.image.source from IMAGE_SOURCE (default: git's
# origin URL, if any).
set -euo pipefail
cd "$(dirname "$0")/.."

out=build-image
while [ $# -gt 0 ]; do
    case $1 in
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-image: unknown argument $1" >&2; exit 2 ;;
    esac
done

start=$(date +%s)
./scripts/install-deps.sh
missing=()
for p in umoci skopeo git; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

version=$(sed -n "s/^ *version : '\([^']*\)'.*/\1/p" meson.build | head -n 1)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$revision" != unknown ] && ! git diff --quiet HEAD -- 2>/dev/null; then revision+=-dirty; fi
source_url=${IMAGE_SOURCE:-$(git remote get-url origin 2>/dev/null || true)}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
tag=$version

mkdir -p "$out"
if [ ! -f "$out/ringway/build.ninja" ]; then
    meson setup "$out/ringway" --buildtype=release -Db_lto=true -Dtests=false >/dev/null
fi
ninja -C "$out/ringway" ringway >/dev/null

./scripts/image-rootfs.sh "$out/ringway/ringway" "$out/rootfs"

oci=$out/oci
rm -rf "$oci"
umoci init --layout "$oci"
umoci new --image "$oci:$tag"
# The root as one layer: unpack the empty image, fill its bundle, repack.
bundle=$out/bundle
rm -rf "$bundle"
umoci unpack --image "$oci:$tag" "$bundle" >/dev/null
cp -a "$out/rootfs/." "$bundle/rootfs/"
touch -h -d "@$SOURCE_DATE_EPOCH" "$bundle/rootfs"
umoci repack --image "$oci:$tag" --history.created "$created" \
    --history.created_by "scripts/image-rootfs.sh ringway /" "$bundle"
rm -rf "$bundle"
labels=(
    --config.label "org.opencontainers.image.title=ringway"
    --config.label "org.opencontainers.image.description=HTTP/1.1 API gateway for Linux"
    --config.label "org.opencontainers.image.version=$version"
    --config.label "org.opencontainers.image.revision=$revision"
    --config.label "org.opencontainers.image.licenses=Apache-2.0"
    --config.label "org.opencontainers.image.created=$created"
    --config.label "org.opencontainers.image.base.name=scratch"
)
if [ -n "$source_url" ]; then labels+=(--config.label "org.opencontainers.image.source=$source_url"); fi
# The same config as the Containerfile's final stage.
umoci config --image "$oci:$tag" --created "$created" --author "" --architecture "$(dpkg --print-architecture)" --os linux \
    --history.created "$created" --history.created_by "config (Containerfile: USER, ENTRYPOINT, EXPOSE, LABEL)" \
    --config.user 65532:65532 --config.workingdir / \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.entrypoint /usr/bin/ringway --config.exposedports 8080/tcp --config.stopsignal SIGTERM \
    "${labels[@]}"
umoci gc --layout "$oci"

rm -f "$out/ringway-$tag.oci.tar" "$out/ringway-$tag.docker.tar"
skopeo copy -q "oci:$oci:$tag" "oci-archive:$out/ringway-$tag.oci.tar:ringway:$tag"
skopeo copy -q "oci:$oci:$tag" "docker-archive:$out/ringway-$tag.docker.tar:ringway:$tag"

layer=$(python3 - "$oci" "$tag" 2>/dev/null <<'EOF' || true
import json, sys
d = sys.argv[1]
idx = json.load(open(d + "/index.json"))
m = [m for m in idx["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == sys.argv[2]][0]
man = json.load(open(d + "/blobs/" + m["digest"].replace(":", "/")))
print(m["digest"], sum(l["size"] for l in man["layers"]))
EOF
)
echo "build-image: ringway:$tag (revision $revision) in $(($(date +%s) - start)) s"
echo "  manifest, compressed layer bytes: ${layer:-?}"
echo "  unpacked root: $(du -sh --apparent-size "$out/rootfs" | cut -f1)"
ls -l "$out/ringway-$tag.oci.tar" "$out/ringway-$tag.docker.tar" | awk '{ print "  " $NF ": " $5 " bytes" }'

#!/usr/bin/env bash
# Refreshes the vendored charting library of the dashboard from npm.
#
# The files it writes under vendor/ are committed, so `cargo build` needs
# neither npm nor the network: the agent embeds them (web/src/dashboard.rs).
# Run this only to change the version, then check the dashboard and its
# browser tests (scripts/browser-test.sh) and commit vendor/.
#
#   web/dashboard/update-vendor.sh            # the pinned version below
#   ECHARTS_VERSION=6.1.0 web/dashboard/update-vendor.sh
#
# Apache ECharts (Apache-2.0): line charts for the RED views and the graph
# series for the service map, so one library covers every panel. The full
# build is needed: echarts.common.min.js has no graph series.
set -euo pipefail
ECHARTS_VERSION="${ECHARTS_VERSION:-6.1.0}"

here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "echarts@${ECHARTS_VERSION}" >/dev/null)
tar -xzf "$work/echarts-${ECHARTS_VERSION}.tgz" -C "$work"
pkg="$work/package"

vendor="$here/vendor"
rm -rf "$vendor"
mkdir -p "$vendor/echarts"
cp "$pkg/dist/echarts.min.js" "$vendor/echarts/"
# The licence and notice go with the code (Apache-2.0 section 4), with the
# licence of the d3 code ECharts bundles.
cp "$pkg/LICENSE" "$pkg/NOTICE" "$vendor/echarts/"
cp "$pkg/licenses/LICENSE-d3" "$vendor/echarts/"
printf 'echarts %s (npm), dist/echarts.min.js\n' "$ECHARTS_VERSION" >"$vendor/VERSIONS"
echo "update-vendor: vendored echarts ${ECHARTS_VERSION} into ${vendor#"$PWD"/}"

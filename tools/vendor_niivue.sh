#!/usr/bin/env bash
# Re-create src/intrepid/app/static/vendor/niivue/niivue.min.js from npm (network needed only here, never at
# run time): the ES module bundle of @niivue/niivue, minified with esbuild. Usage: tools/vendor_niivue.sh
set -euo pipefail
VERSION=0.69.0
ESBUILD=0.24.0
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack "@niivue/niivue@${VERSION}" >/dev/null
tar xzf "niivue-niivue-${VERSION}.tgz"
npm install --no-save --no-audit --no-fund "esbuild@${ESBUILD}" >/dev/null
./node_modules/.bin/esbuild package/dist/index.js --minify --format=esm --legal-comments=none \
  --outfile="$here/src/intrepid/app/static/vendor/niivue/niivue.min.js"
echo "wrote src/intrepid/app/static/vendor/niivue/niivue.min.js (NiiVue ${VERSION})"

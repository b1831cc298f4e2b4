#!/usr/bin/env bash
# Rebuilds plotly-neuroclip.min.js (see plotly-neuroclip.README.md): plotly.js's core with
# the scattergl and heatmap traces, built from the plotly.js package on the npm registry
# with the esbuild options of plotly.js's own esbuild-config.js, minified, in the UMD
# wrapper of its dist bundles. Needs node and npm (the npm registry only).
#
#   bash dashboard/assets/plotly-neuroclip.build.sh            # plotly.js 4.1.1
#   PLOTLYJS=4.2.0 bash dashboard/assets/plotly-neuroclip.build.sh
#
# Keep PLOTLYJS equal to the plotly.js of the pinned plotly Python package
# (python -c "from plotly.offline import get_plotlyjs_version as v; print(v())").
set -euo pipefail
PLOTLYJS="${PLOTLYJS:-4.1.1}"
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
npm init -y >/dev/null
# plotly.js's own build dependencies (its devDependencies), pinned
npm install --no-audit --no-fund --loglevel=error "plotly.js@$PLOTLYJS" esbuild@0.28.2 \
    esbuild-plugin-glsl@1.4.2 esbuild-plugin-environment@0.5.0 \
    esbuild-plugin-inline-css@0.0.1 stream-browserify@3.0.0 buffer@6.0.3 assert@2.1.0
cat >entry.js <<'EOF'
'use strict';
// the core (scatter, shapes, annotations, legend, modebar...) and the dashboard's other traces
var Plotly = require('plotly.js/lib/core');
Plotly.register([require('plotly.js/lib/scattergl'), require('plotly.js/lib/heatmap')]);
module.exports = Plotly;
EOF
cat >build.mjs <<'EOF'
import * as esbuild from 'esbuild';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const { environmentPlugin } = require('esbuild-plugin-environment');
const { glsl } = require('esbuild-plugin-glsl');
const InlineCSSPlugin = require('esbuild-plugin-inline-css');
const version = require('plotly.js/package.json').version;
const header = `/**
* plotly.js (neuroclip: scatter, scattergl, heatmap - minified) v${version}
* Copyright 2012-2026, Plotly, Inc.
* All rights reserved.
* Licensed under the MIT license
*/
(
 function(root, factory) {
  if (typeof module === "object" && module.exports) {
   module.exports = factory();
  } else {
   root.moduleName = factory();
  }
} (typeof self !== "undefined" ? self : this, () => {`;
await esbuild.build({
    entryPoints: ['./entry.js'],
    outfile: process.argv[2],
    format: 'iife',
    globalName: 'Plotly',
    bundle: true,
    minify: true,
    sourcemap: false,
    legalComments: 'eof',
    plugins: [InlineCSSPlugin(), glsl({ minify: true }), environmentPlugin({ NODE_DEBUG: false })],
    alias: { regl: '@plotly/regl', stream: 'stream-browserify' },
    define: { global: 'window', 'define.amd': 'false' },
    target: 'es2016',
    banner: { js: header },
    footer: { js: '\nwindow.Plotly = Plotly;\nreturn Plotly;\n}));' },
    logLevel: 'warning',
});
EOF
node build.mjs "$HERE/plotly-neuroclip.min.js"
cp node_modules/plotly.js/LICENSE "$HERE/plotly.js-LICENSE.txt"
ls -l "$HERE/plotly-neuroclip.min.js"
sha256sum "$HERE/plotly-neuroclip.min.js"

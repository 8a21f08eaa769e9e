// plotly.js with only the traces the run and compare pages draw (scatter, heatmap), built the way
// plotly.js builds its own bundles (its esbuild-config.js): `npm install && npm run build`.
const esbuild = require("esbuild");
const { environmentPlugin } = require("esbuild-plugin-environment");
const InlineCSSPlugin = require("esbuild-plugin-inline-css");
const { version } = require("plotly.js/package.json");

const outfile = `../../static/vendor/plotly-scatter-heatmap-${version}.min.js`;
esbuild
  .build({
    entryPoints: ["./entry.js"],
    outfile,
    format: "iife",
    globalName: "Plotly",
    bundle: true,
    minify: true,
    plugins: [InlineCSSPlugin(), environmentPlugin({ NODE_DEBUG: false })],
    alias: { regl: "@plotly/regl", stream: "stream-browserify" },
    define: { global: "window", "define.amd": "false" },
    target: "es2016",
    logLevel: "info",
    banner: {
      js: `/**\n* plotly.js (scatter + heatmap) v${version}\n* Copyright 2012-2026, Plotly, Inc.\n* All rights reserved.\n* Licensed under the MIT license\n*/`,
    },
  })
  .catch(() => process.exit(1));

// plotly.js with only the traces each page draws, built the way plotly.js builds its own bundles
// (its esbuild-config.js): `npm install && npm run build`. regl is plotly's precompiled fork, so
// no bundle needs eval (the pages' CSP has no 'unsafe-eval').
//   plotly-scatter-heatmap-X.min.js   run and compare pages (entry.js)
//   plotly-scatter-parcoords-X.min.js sweep page (entry-sweep.js)
const esbuild = require("esbuild");
const { environmentPlugin } = require("esbuild-plugin-environment");
const InlineCSSPlugin = require("esbuild-plugin-inline-css");
const { version } = require("plotly.js/package.json");

const bundles = [
  { entry: "./entry.js", name: "scatter-heatmap", traces: "scatter + heatmap" },
  { entry: "./entry-sweep.js", name: "scatter-parcoords", traces: "scatter + parcoords" },
];

Promise.all(
  bundles.map(({ entry, name, traces }) =>
    esbuild.build({
      entryPoints: [entry],
      outfile: `../../static/vendor/plotly-${name}-${version}.min.js`,
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
        js: `/**\n* plotly.js (${traces}) v${version}\n* Copyright 2012-2026, Plotly, Inc.\n* All rights reserved.\n* Licensed under the MIT license\n*/`,
      },
    }),
  ),
).catch(() => process.exit(1));

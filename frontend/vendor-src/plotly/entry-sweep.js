'use strict';
// parcoords' strict flavour: its WebGL shaders precompiled, so no eval (as plotly's strict bundle)
var Plotly = require('plotly.js/lib/core');
Plotly.register([require('plotly.js/src/traces/parcoords/strict')]);
module.exports = Plotly;

// plotly.js without waiting for it: a page lists its bundle as an async script
// (<script src="/static/vendor/plotly-…min.js" async data-plotly>), so the browser compiles it
// as soon as it arrives while the page's modules load and ask the API; they draw once this
// resolves. (Measured on the run page: sooner than a deferred script after the modules.)

/** Resolves to window.Plotly once the page's plotly.js has run, or null if it did not load. */
export const plotlyReady = new Promise((resolve) => {
  const settle = () => resolve(window.Plotly || null);
  if (window.Plotly || document.readyState === "complete") {
    settle();
    return;
  }
  const script = document.querySelector("script[data-plotly]");
  if (script) {
    script.addEventListener("load", settle, { once: true });
    script.addEventListener("error", settle, { once: true });
  }
  // the window's load event waits for every script, loaded or failed: nothing waits forever
  window.addEventListener("load", settle, { once: true });
});

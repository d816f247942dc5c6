// Build-time stand-in for Node built-ins (`fs`, `path`) that the Emscripten codec glue
// only touches when running under Node.js, never in the browser.
export default {};

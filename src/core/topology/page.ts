/**
 * The /topology page (on --metrics-address and the admin socket): the SVG of svg.ts inlined in
 * a small HTML page that reloads itself (meta refresh: no script), with a link to /topology.svg.
 */
/** how often the page reloads: each load reads the status, one kernel check included */
export const TOPOLOGY_REFRESH_S = 10;

/** `svg` is renderTopologySvg's (its title and first line say when it was drawn). */
export function renderTopologyPage(svg: string, refreshSeconds = TOPOLOGY_REFRESH_S): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="${refreshSeconds}">
<title>truss topology</title>
<style>body { font-family: DejaVu Sans, Verdana, sans-serif; margin: 12px; background: #ffffff; } p { color: #555555; font-size: 12px; }</style>
</head>
<body>
<p>truss topology · reloads every ${refreshSeconds} s · <a href="/topology.svg">topology.svg</a></p>
${svg}</body>
</html>
`;
}

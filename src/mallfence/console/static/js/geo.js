// Longitude/latitude to a local plane in metres around the venue anchor (x east, y north), as the server
// does (spatial/projection.py): equirectangular scaled by the WGS84 radii of curvature at the anchor.
const A = 6378137.0;
const E2 = 6.69437999014e-3;
const RAD = Math.PI / 180;

export function projection([lon0, lat0]) {
  const phi = lat0 * RAD;
  const w = 1 - E2 * Math.sin(phi) ** 2;
  const kx = RAD * (A / Math.sqrt(w)) * Math.cos(phi);
  const ky = RAD * (A * (1 - E2)) / w ** 1.5;
  return {
    toLocal: ([lon, lat]) => [(lon - lon0) * kx, (lat - lat0) * ky],
    toLonLat: ([x, y]) => [x / kx + lon0, y / ky + lat0],
  };
}

// The polygons of a GeoJSON geometry, each a list of rings (outer first, then holes).
export function polygons(geometry) {
  if (geometry.type === "Polygon") return [geometry.coordinates];
  if (geometry.type === "MultiPolygon") return geometry.coordinates;
  return [];
}

// Area-weighted centroid of a ring of [x, y]; the vertex mean when the ring has no area.
export function centroid(ring) {
  let area = 0, cx = 0, cy = 0;
  for (let i = 0; i < ring.length; i++) {
    const [x0, y0] = ring[i];
    const [x1, y1] = ring[(i + 1) % ring.length];
    const cross = x0 * y1 - x1 * y0;
    area += cross;
    cx += (x0 + x1) * cross;
    cy += (y0 + y1) * cross;
  }
  if (Math.abs(area) < 1e-9) {
    const n = ring.length || 1;
    return [ring.reduce((s, p) => s + p[0], 0) / n, ring.reduce((s, p) => s + p[1], 0) / n];
  }
  return [cx / (3 * area), cy / (3 * area)];
}

// Unsigned area of a ring of [x, y] (shoelace).
export function area(ring) {
  let twice = 0;
  for (let i = 0; i < ring.length; i++) {
    const [x0, y0] = ring[i];
    const [x1, y1] = ring[(i + 1) % ring.length];
    twice += x0 * y1 - x1 * y0;
  }
  return Math.abs(twice) / 2;
}

export function bounds(points) {
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  return { minX: Math.min(...xs), maxX: Math.max(...xs), minY: Math.min(...ys), maxY: Math.max(...ys) };
}

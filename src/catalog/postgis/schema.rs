//! The PostgreSQL schema of a catalog: tables in a schema `gridstore` of their own, so a
//! catalog can live in a database that holds other things.

/// The version of the tables below; a catalog of another version is refused.
pub const VERSION: i32 = 1;

/// Creates the tables and indexes (idempotent). Text that orders results (collection, id)
/// uses the "C" collation: byte order, as resume tokens compare.
pub const CREATE: &str = r#"
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE SCHEMA IF NOT EXISTS gridstore;
CREATE TABLE IF NOT EXISTS gridstore.meta (
    key text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE IF NOT EXISTS gridstore.crs (
    crs_id serial PRIMARY KEY,
    key text NOT NULL UNIQUE,
    wkt text NOT NULL,
    epsg integer
);
CREATE TABLE IF NOT EXISTS gridstore.items (
    collection text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    t_start bigint NOT NULL,
    t_end bigint NOT NULL,
    crs_id integer NOT NULL REFERENCES gridstore.crs,
    native_wkb bytea NOT NULL,
    native_bounds float8[] NOT NULL,
    wgs84_wkb bytea NOT NULL,
    boxes float8[] NOT NULL,
    centroid_lon float8 NOT NULL,
    props jsonb NOT NULL,
    extra jsonb,
    bands jsonb,
    href text,
    PRIMARY KEY (collection, id)
);
CREATE INDEX IF NOT EXISTS items_time ON gridstore.items (t_start, collection, id);
CREATE TABLE IF NOT EXISTS gridstore.parts (
    collection text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    box geometry(Polygon, 4326) NOT NULL
);
CREATE INDEX IF NOT EXISTS parts_box ON gridstore.parts USING gist (box);
CREATE INDEX IF NOT EXISTS parts_item ON gridstore.parts (collection, id);
CREATE INDEX IF NOT EXISTS items_group ON gridstore.items (collection, crs_id);
CREATE TABLE IF NOT EXISTS gridstore.summaries (
    collection text COLLATE "C" NOT NULL,
    crs_id integer NOT NULL REFERENCES gridstore.crs,
    count bigint NOT NULL,
    t_start bigint NOT NULL,
    t_end bigint NOT NULL,
    longest bigint NOT NULL,
    minx float8 NOT NULL,
    miny float8 NOT NULL,
    maxx float8 NOT NULL,
    maxy float8 NOT NULL,
    west float8 NOT NULL,
    south float8 NOT NULL,
    east float8 NOT NULL,
    north float8 NOT NULL,
    PRIMARY KEY (collection, crs_id)
);
"#;

/// The staging table a batch is copied into, gone at the end of its transaction.
pub const STAGE: &str = r#"
CREATE TEMP TABLE stage (
    collection text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    t_start bigint NOT NULL,
    t_end bigint NOT NULL,
    crs_id integer NOT NULL,
    native_wkb bytea NOT NULL,
    native_bounds float8[] NOT NULL,
    wgs84_wkb bytea NOT NULL,
    boxes float8[] NOT NULL,
    centroid_lon float8 NOT NULL,
    props jsonb NOT NULL,
    extra jsonb,
    bands jsonb,
    href text
) ON COMMIT DROP
"#;

/// Moves the staged items into the table, replacing items of the same collection and id.
pub const MERGE_STAGE: &str = r#"
INSERT INTO gridstore.items
SELECT collection, id, t_start, t_end, crs_id, native_wkb, native_bounds,
       wgs84_wkb, boxes, centroid_lon, props, extra, bands, href
FROM stage
ON CONFLICT (collection, id) DO UPDATE SET
    t_start = EXCLUDED.t_start, t_end = EXCLUDED.t_end, crs_id = EXCLUDED.crs_id,
    native_wkb = EXCLUDED.native_wkb, native_bounds = EXCLUDED.native_bounds,
    wgs84_wkb = EXCLUDED.wgs84_wkb, boxes = EXCLUDED.boxes, centroid_lon = EXCLUDED.centroid_lon,
    props = EXCLUDED.props, extra = EXCLUDED.extra, bands = EXCLUDED.bands, href = EXCLUDED.href
"#;

/// One box per 4326 part of each staged item (`boxes` holds west, south, east, north of
/// each part in turn).
pub const STAGE_PARTS: &str = r#"
INSERT INTO gridstore.parts
SELECT s.collection, s.id,
       ST_MakeEnvelope(s.boxes[4*k+1], s.boxes[4*k+2], s.boxes[4*k+3], s.boxes[4*k+4], 4326)
FROM stage s, generate_series(0, array_length(s.boxes, 1) / 4 - 1) AS k
"#;

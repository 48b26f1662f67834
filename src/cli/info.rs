//! `gridstore info`: a human-readable summary of a store.

use std::fmt::Write;

use gridstore::manifest::Manifest;
use gridstore::storage::LocalStorage;
use gridstore::store::Snapshot;
use gridstore::text::printable;

/// The CRS's name: the first quoted string of its WKT.
fn crs_name(wkt: &str) -> &str {
    wkt.split('"').nth(1).unwrap_or("(none)")
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// What `gridstore info` prints: the store, its grid and data, extent and levels, time
/// axis, bands and what it holds.
pub fn describe(snapshot: &Snapshot) -> String {
    let m = snapshot.manifest();
    let mut s = String::new();
    let _ = writeln!(s, "Store:      {}", snapshot.location().display());
    let _ = writeln!(
        s,
        "Snapshot:   {} ({}, {})",
        m.snapshot.id,
        printable(&m.snapshot.created),
        printable(&m.snapshot.writer)
    );
    describe_grid(&mut s, m);
    describe_extent(&mut s, snapshot);
    if let Some(line) = time_line(m) {
        let _ = writeln!(s, "Time:       {line}");
    }
    if let Some(d) = m.time.as_ref().and_then(|t| t.series_block) {
        let _ = writeln!(
            s,
            "Series:     closed blocks of {d} ticks kept as time blocks too (gridstore compact)"
        );
    }
    describe_bands(&mut s, m);
    describe_holdings(&mut s, snapshot);
    s
}

/// The CRS, the grid and how data is stored.
fn describe_grid(s: &mut String, m: &Manifest) {
    let g = &m.grid;
    let _ = writeln!(s, "CRS:        {}", printable(crs_name(&g.crs_wkt)));
    let _ = writeln!(
        s,
        "Grid:       origin ({}, {}), cell size ({}, {}), tiles of {}x{} pixels",
        g.origin[0], g.origin[1], g.cell_size[0], g.cell_size[1], g.tile_size, g.tile_size
    );
    let _ = writeln!(
        s,
        "Data:       {} band(s) of {}, {} level {}, predictor {:?}",
        m.bands.len(),
        m.data_type.name(),
        m.encoding.compression.option_name(),
        m.encoding.level,
        m.encoding.predictor
    );
}

/// The extent, in pixels and in the CRS, and the size of each level.
fn describe_extent(s: &mut String, snapshot: &Snapshot) {
    let m = snapshot.manifest();
    let (Some(e), Some(layout)) = (m.extent, snapshot.layout()) else {
        let _ = writeln!(s, "Extent:     empty (no data yet)");
        return;
    };
    let geo = m.georef();
    let t0 = geo.geotransform(0, e.x0, e.y0);
    let t1 = geo.geotransform(0, e.x1, e.y1);
    let _ = writeln!(
        s,
        "Extent:     {} x {} pixels (grid pixels {}..{}, {}..{}), from ({}, {}) to ({}, {})",
        e.width(),
        e.height(),
        e.x0,
        e.x1,
        e.y0,
        e.y1,
        t0[0],
        t0[3],
        t1[0],
        t1[3]
    );
    let sizes: Vec<String> = (0..=layout.top)
        .map(|z| {
            let (w, h) = layout.level_size(z);
            format!("{w}x{h}")
        })
        .collect();
    let _ = writeln!(
        s,
        "Levels:     {} ({})",
        layout.level_count(),
        sizes.join(", ")
    );
}

/// A line per band: colour, nodata, how its levels are made, colour table, description.
fn describe_bands(s: &mut String, m: &Manifest) {
    for (i, b) in m.bands.iter().enumerate() {
        let nodata = b.nodata.map_or("none".to_string(), |v| v.to_string());
        let table = match b.color_table.is_some() {
            true => ", colour table",
            false => "",
        };
        let description = match b.description.is_empty() {
            true => String::new(),
            false => format!(", \"{}\"", printable(&b.description)),
        };
        let _ = writeln!(
            s,
            "Band {}:     {}, nodata {}, levels by {}{table}{description}",
            i + 1,
            printable(&b.color_interp),
            nodata,
            m.pyramids[0].resampling[i].gdal_name(),
        );
    }
}

/// The tiles and bytes the snapshot holds, and on local disk what the store takes.
fn describe_holdings(s: &mut String, snapshot: &Snapshot) {
    let m = snapshot.manifest();
    let _ = writeln!(
        s,
        "Stored:     {} tiles, {} of chunks",
        m.index.tiles,
        human_bytes(m.index.bytes)
    );
    // Walking the directory is the one thing here that grows with the store; it runs only
    // for this command, never when a store is opened. On object storage it would be a
    // listing of every object: not done.
    if gridstore::storage::is_vsi_path(snapshot.location()) {
        return;
    }
    let (files, bytes) = LocalStorage::new(snapshot.location()).usage();
    let _ = writeln!(
        s,
        "On disk:    {} in {} files (every snapshot kept, index and manifests included)",
        human_bytes(bytes),
        files
    );
}

/// The time axis in one line: kind, steps, first and last, step, calendar, units, holes.
fn time_line(m: &Manifest) -> Option<String> {
    let spec = m.time.as_ref()?;
    let axis = spec.axis().ok()?;
    let span = match (spec.first, spec.last) {
        (Some(f), Some(l)) => format!(
            ", {} to {}",
            axis.label(f).unwrap_or_default(),
            axis.label(l).unwrap_or_default()
        ),
        _ => String::new(),
    };
    let step = match spec.kind {
        gridstore::time::AxisKind::Regular => format!("step {}", spec.step),
        gridstore::time::AxisKind::Irregular => format!("resolution {}", spec.step),
    };
    Some(format!(
        "{} axis, {} step(s){span}; {step}, {} calendar, values in {}; {} hole(s)",
        spec.kind.name(),
        spec.steps,
        printable(&spec.calendar),
        printable(&spec.units),
        spec.holes()
    ))
}

//! `gridstore catalog`: make a catalog, add rasters or STAC items to it, search it, ask
//! for extents, remove items.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use gridstore::catalog::raster::{raster_item, RasterOptions};
use gridstore::catalog::stac_input::items_from_text;
use gridstore::catalog::when::format_us;
use gridstore::catalog::{
    self, Area, Catalog, Day, Item, Order, PropertyFilter, ResumeToken, Search, TimeRange,
};

#[derive(Args)]
pub struct CatalogCmd {
    #[command(subcommand)]
    command: CatalogCommand,
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Create a catalog: a SQLite file (catalog.sqlite) or a postgresql:// database
    Init { catalog: String },
    /// Add rasters (read with GDAL) or STAC items; an item with the same collection and
    /// id is replaced
    Add(AddArgs),
    /// Find items by place, time and properties, in time order, as JSON lines
    Search(SearchArgs),
    /// Print the time range and bounding box of collections
    Extent {
        catalog: String,
        /// Only this collection (repeatable; all when absent)
        #[arg(long)]
        collection: Vec<String>,
        /// The CRS of the bounding box [default: EPSG:4326, west > east across 180°]
        #[arg(long)]
        crs: Option<String>,
    },
    /// Remove items of a collection: the ids given, or the whole collection
    Rm {
        catalog: String,
        #[arg(long)]
        collection: String,
        /// Item ids (all items of the collection when none)
        ids: Vec<String>,
    },
}

#[derive(Args)]
struct AddArgs {
    catalog: String,
    /// Rasters, or with --stac STAC item files (Item, ItemCollection or JSON lines; - for
    /// standard input)
    #[arg(required = true)]
    files: Vec<String>,
    /// The collection of the items [default for rasters: "default"; STAC items keep their own]
    #[arg(long)]
    collection: Option<String>,
    /// The files are STAC items
    #[arg(long)]
    stac: bool,
    /// The rasters' time (START/END or one instant or date), instead of their metadata
    #[arg(long)]
    time: Option<String>,
    /// Items per transaction
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    batch: u64,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// One STAC-like item per line
    Jsonl,
    /// RFC 8142 GeoJSON text sequence (each record after an RS character)
    GeojsonSeq,
    /// One STAC ItemCollection (FeatureCollection)
    Itemcollection,
}

#[derive(Clone, Copy, ValueEnum)]
enum OrderArg {
    Asc,
    Desc,
}

#[derive(Args)]
struct SearchArgs {
    catalog: String,
    /// Only this collection (repeatable)
    #[arg(long)]
    collection: Vec<String>,
    /// WEST,SOUTH,EAST,NORTH (in degrees unless --bbox-crs; west > east crosses 180°)
    #[arg(long, allow_hyphen_values = true, value_name = "W,S,E,N")]
    bbox: Option<String>,
    /// The CRS of --bbox
    #[arg(long, requires = "bbox")]
    bbox_crs: Option<String>,
    /// A POLYGON or MULTIPOLYGON as WKT, or a file holding one
    #[arg(long, conflicts_with = "bbox")]
    polygon: Option<String>,
    /// The CRS of --polygon [default: EPSG:4326, longitude/latitude]
    #[arg(long, requires = "polygon")]
    polygon_crs: Option<String>,
    /// Items whose time overlaps START/END (half-open; either side may be ..)
    #[arg(long)]
    time: Option<String>,
    /// Items whose time overlaps this calendar day (YYYY-MM-DD) in --tz
    #[arg(long, requires = "tz")]
    day: Option<String>,
    /// Time zone of --day: an IANA name (Europe/Amsterdam, UTC) or `solar` (each item's
    /// longitude / 15 h)
    #[arg(long, requires = "day")]
    tz: Option<String>,
    /// A property comparison 'KEY OP VALUE', OP one of < <= = != >= > (repeatable: all hold)
    #[arg(long = "where", value_name = "KEY OP VALUE")]
    filters: Vec<String>,
    #[arg(long, value_enum, default_value = "asc")]
    order: OrderArg,
    /// At most N items; a resume token for the rest goes to standard error
    #[arg(long)]
    limit: Option<u64>,
    /// Continue a search after the item a resume token names
    #[arg(long, value_name = "TOKEN")]
    after: Option<String>,
    #[arg(long, value_enum, default_value = "jsonl")]
    format: Format,
    /// Print only the number of matching items
    #[arg(long)]
    count: bool,
}

pub fn run(cmd: CatalogCmd) -> Result<()> {
    match cmd.command {
        CatalogCommand::Init { catalog } => {
            let c = catalog::init(&catalog)?;
            println!("catalog ready: {}", c.location());
            Ok(())
        }
        CatalogCommand::Add(args) => add(args),
        CatalogCommand::Search(args) => search(args),
        CatalogCommand::Extent {
            catalog,
            collection,
            crs,
        } => extent(&catalog, &collection, crs.as_deref()),
        CatalogCommand::Rm {
            catalog,
            collection,
            ids,
        } => {
            let mut c = catalog::open(&catalog)?;
            let n = c.remove(&collection, (!ids.is_empty()).then_some(&ids[..]))?;
            println!("removed {n} item(s) from {collection}");
            Ok(())
        }
    }
}

fn add(args: AddArgs) -> Result<()> {
    let mut cat = catalog::open(&args.catalog)?;
    let batch = args.batch as usize;
    let mut pending: Vec<Item> = Vec::with_capacity(batch.min(100_000));
    let mut total = 0usize;
    let mut flush = |pending: &mut Vec<Item>, cat: &mut Box<dyn Catalog>| -> Result<()> {
        cat.add_batch(pending)?;
        total += pending.len();
        pending.clear();
        Ok(())
    };
    if args.stac {
        for file in &args.files {
            let text = read_text(file)?;
            for item in items_from_text(&text, args.collection.as_deref(), file)? {
                pending.push(item);
                if pending.len() >= batch {
                    flush(&mut pending, &mut cat)?;
                }
            }
        }
    } else {
        let options = RasterOptions {
            collection: args.collection.clone().unwrap_or_else(|| "default".into()),
            time: args.time.as_deref().map(TimeRange::parse).transpose()?,
        };
        for file in &args.files {
            pending.push(raster_item(file, &options)?);
            if pending.len() >= batch {
                flush(&mut pending, &mut cat)?;
            }
        }
    }
    flush(&mut pending, &mut cat)?;
    println!("added {total} item(s) to {}", cat.location());
    Ok(())
}

fn read_text(file: &str) -> Result<String> {
    if file == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("reading STAC items from standard input")?;
        return Ok(s);
    }
    std::fs::read_to_string(file).with_context(|| format!("{file}: cannot read it"))
}

fn build_search(args: &SearchArgs) -> Result<Search> {
    let area = match (&args.bbox, &args.polygon) {
        (Some(b), _) => {
            let v: Vec<f64> = b
                .split(',')
                .map(|x| x.trim().parse::<f64>())
                .collect::<std::result::Result<_, _>>()
                .ok()
                .filter(|v: &Vec<f64>| v.len() == 4)
                .with_context(|| {
                    format!("--bbox {b:?}: give four numbers WEST,SOUTH,EAST,NORTH")
                })?;
            Some(Area::Bbox {
                bbox: [v[0], v[1], v[2], v[3]],
                crs: args.bbox_crs.clone(),
            })
        }
        (None, Some(p)) => {
            let wkt = if Path::new(p).is_file() {
                std::fs::read_to_string(p).with_context(|| format!("{p}: cannot read it"))?
            } else {
                p.clone()
            };
            Some(Area::Polygon {
                wkt: wkt.trim().to_string(),
                crs: args.polygon_crs.clone(),
            })
        }
        (None, None) => None,
    };
    let day = match (&args.day, &args.tz) {
        (Some(d), Some(z)) => Some(Day::parse(d, z)?),
        _ => None,
    };
    let order = match args.order {
        OrderArg::Asc => Order::Asc,
        OrderArg::Desc => Order::Desc,
    };
    Ok(Search {
        collections: args.collection.clone(),
        area,
        time: args.time.as_deref().map(TimeRange::parse).transpose()?,
        day,
        properties: args
            .filters
            .iter()
            .map(|f| PropertyFilter::parse(f))
            .collect::<gridstore::Result<_>>()?,
        order,
        after: args.after.as_deref().map(ResumeToken::decode).transpose()?,
        limit: args.limit,
    })
}

fn search(args: SearchArgs) -> Result<()> {
    let search = build_search(&args)?;
    let cat = catalog::open(&args.catalog)?;
    if args.count {
        let counting = Search {
            limit: None,
            ..search.clone()
        };
        let n = cat.count(&counting)?;
        println!("{}", search.limit.map_or(n, |l| n.min(l)));
        return Ok(());
    }
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let collection = matches!(args.format, Format::Itemcollection);
    if collection {
        write!(out, "{{\"type\":\"FeatureCollection\",\"features\":[")?;
    }
    let mut n = 0u64;
    let mut last: Option<Item> = None;
    for item in cat.search(&search)? {
        let item = item?;
        let text = item.to_stac().to_string();
        match args.format {
            Format::Jsonl => writeln!(out, "{text}")?,
            Format::GeojsonSeq => writeln!(out, "\u{1e}{text}")?,
            Format::Itemcollection => write!(out, "{}{text}", if n > 0 { "," } else { "" })?,
        }
        n += 1;
        last = Some(item);
    }
    if collection {
        writeln!(out, "]}}")?;
    }
    out.flush()?;
    if let (Some(limit), Some(item)) = (search.limit, last) {
        if n == limit {
            eprintln!(
                "next: {} (more items may follow: pass --after with this token)",
                ResumeToken::after(&item, search.order).encode()
            );
        }
    }
    Ok(())
}

fn extent(catalog: &str, collections: &[String], crs: Option<&str>) -> Result<()> {
    let cat = catalog::open(catalog)?;
    if let Some(missing) = collections.iter().find(|c| {
        cat.collections()
            .map(|all| !all.contains(c))
            .unwrap_or(false)
    }) {
        bail!(
            "{catalog}: no collection {missing:?}; `gridstore catalog extent {catalog}` lists all"
        );
    }
    let e = cat.extent(collections, crs)?;
    let (start, end) = match e.time {
        Some((a, b)) => (json!(format_us(a)), json!(format_us(b))),
        None => (json!(null), json!(null)),
    };
    let out = json!({
        "count": e.count,
        "time": {"start": start, "end": end, "end_excluded": true},
        "bbox": e.bbox,
        "crs": e.crs,
        "collections": if collections.is_empty() { cat.collections()? } else { collections.to_vec() },
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

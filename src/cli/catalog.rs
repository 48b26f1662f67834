//! `gridstore catalog`: make a catalog, add rasters or STAC items to it, search it, ask
//! for extents, remove items.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};

use rayon::prelude::*;
use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use gridstore::catalog::raster::{raster_item, RasterOptions};
use gridstore::catalog::stac_input::{item_from_stac, items_from_text};
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
    /// standard input), or with --store stores
    #[arg(required = true)]
    files: Vec<String>,
    /// The collection of the items [default for rasters: "default"; STAC items keep their
    /// own; a store's sources: the store's name]
    #[arg(long)]
    collection: Option<String>,
    /// The files are STAC items
    #[arg(long, conflicts_with = "store")]
    stac: bool,
    /// The files are stores: add the sources their writes recorded, as of their current
    /// state (or --snapshot)
    #[arg(long)]
    store: bool,
    /// With --store: the sources of this snapshot's state instead of the current one
    #[arg(long, requires = "store")]
    snapshot: Option<u64>,
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

/// What items a search (or an ingest or append from a catalog) takes, time apart.
#[derive(Args)]
pub struct Criteria {
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
}

impl Criteria {
    /// Whether any criterion was given.
    pub fn any(&self) -> bool {
        !self.collection.is_empty()
            || self.bbox.is_some()
            || self.polygon.is_some()
            || self.day.is_some()
            || !self.filters.is_empty()
    }

    /// The search these criteria and a time range (`START/END`) make, in time order.
    pub fn search(&self, time: Option<&str>, order: Order) -> Result<Search> {
        Ok(Search {
            collections: self.collection.clone(),
            area: self.area()?,
            time: time.map(TimeRange::parse).transpose()?,
            day: match (&self.day, &self.tz) {
                (Some(d), Some(z)) => Some(Day::parse(d, z)?),
                _ => None,
            },
            properties: self
                .filters
                .iter()
                .map(|f| PropertyFilter::parse(f))
                .collect::<gridstore::Result<_>>()?,
            order,
            after: None,
            limit: None,
        })
    }

    fn area(&self) -> Result<Option<Area>> {
        Ok(match (&self.bbox, &self.polygon) {
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
                    crs: self.bbox_crs.clone(),
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
                    crs: self.polygon_crs.clone(),
                })
            }
            (None, None) => None,
        })
    }
}

#[derive(Args)]
struct SearchArgs {
    catalog: String,
    #[command(flatten)]
    criteria: Criteria,
    /// Items whose time overlaps START/END (half-open; either side may be ..)
    #[arg(long)]
    time: Option<String>,
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
    /// Print to standard error how long the search (or count) took, from opening the
    /// catalog to the last item written (what a program using the library would wait; the
    /// command's own start comes before)
    #[arg(long)]
    timing: bool,
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

/// After adding this many items at once, the catalog's statistics are brought up to date
/// (a smaller add leaves that to the database's own schedule).
const REFRESH_STATISTICS_AFTER: usize = 10_000;

fn add(args: AddArgs) -> Result<()> {
    let mut cat = catalog::open(&args.catalog)?;
    let batch = args.batch as usize;
    let mut pending: Vec<Item> = Vec::with_capacity(batch.min(100_000));
    let mut total = 0usize;
    // Adds the pending items and hands them back, to be freed where the caller chooses.
    let mut flush = |pending: &mut Vec<Item>, cat: &mut Box<dyn Catalog>| -> Result<Vec<Item>> {
        cat.add_batch(pending)?;
        total += pending.len();
        Ok(std::mem::take(pending))
    };
    if args.store {
        for store in &args.files {
            for item in store_sources(store, args.snapshot, args.collection.as_deref())? {
                pending.push(item);
                if pending.len() >= batch {
                    flush(&mut pending, &mut cat)?;
                }
            }
        }
    } else if args.stac {
        stac_batches(&args.files, batch, args.collection.as_deref(), |items| {
            pending.extend(items);
            // `batch` items per transaction, however many a file's lines held.
            let mut added = Vec::new();
            while pending.len() >= batch {
                let rest = pending.split_off(batch);
                let mut full = std::mem::replace(&mut pending, rest);
                added.append(&mut flush(&mut full, &mut cat)?);
            }
            Ok(added)
        })?;
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
    if total >= REFRESH_STATISTICS_AFTER {
        cat.refresh_statistics()?;
    }
    println!("added {total} item(s) to {}", cat.location());
    Ok(())
}

/// Hands the items of the STAC files `files`, `batch` lines at a time, to `take`, while
/// the next batch is being made: reading the items (their footprints) and adding them to
/// the catalog overlap. What `take` gives back, items it is done with, is freed by the
/// thread that reads the files, so that the adding thread never waits on the allocator's
/// locks of the threads that made them.
///
/// On an error of `take` it returns at once, without waiting for the reading thread: that
/// thread may be waiting for a line on standard input that never comes (a pipe kept
/// open), and ends when it next tries to hand over items, or with the process.
fn stac_batches(
    files: &[String],
    batch: usize,
    collection: Option<&str>,
    mut take: impl FnMut(Vec<Item>) -> Result<Vec<Item>>,
) -> Result<()> {
    // Up to 3 batches made ahead: the writer's pace varies from batch to batch (the log's
    // checkpoints), and the makers keep going meanwhile, at the cost of two more batches
    // of items in memory.
    let (made, ready) = std::sync::mpsc::sync_channel::<Result<Vec<Item>>>(3);
    let (spent, to_free) = std::sync::mpsc::channel::<Vec<Item>>();
    let (files, collection) = (files.to_vec(), collection.map(str::to_string));
    let reader = std::thread::Builder::new()
        .name("item reader".into())
        .spawn(move || {
            let make = || -> Result<()> {
                let makers = makers()?;
                for file in &files {
                    let mut lines = StacLines::open(file)?;
                    while let Some(items) =
                        lines.next_items(batch, collection.as_deref(), &makers)?
                    {
                        // Refused when the taker has stopped (on an error of its own).
                        if made.send(Ok(items)).is_err() {
                            return Ok(());
                        }
                        to_free.try_iter().for_each(drop);
                    }
                }
                Ok(())
            };
            if let Err(e) = make() {
                let _ = made.send(Err(e));
            }
        })
        .context("cannot start the thread that reads the items")?;
    // Stops at the first error; the reader then finds no one to send to and stops.
    ready.into_iter().try_for_each(|items| -> Result<()> {
        // The reader may have ended already: then the adding thread frees them.
        let _ = spent.send(take(items?)?);
        Ok(())
    })?;
    // Every batch was taken, so the reader has ended (or panicked).
    reader
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    Ok(())
}

/// The threads that make items, and the one that reads their lines, give way to the one
/// that adds them: a catalog has one writer, and on a machine with few cores the makers
/// would otherwise take its core while it writes, and the add would wait on it.
fn makers() -> Result<rayon::ThreadPool> {
    give_way();
    rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("item maker {i}"))
        .start_handler(|_| give_way())
        .build()
        .context("cannot start the threads that make items")
}

/// Lowers the calling thread's scheduling priority (nice 10). Best effort: where it
/// cannot, the thread keeps its priority.
fn give_way() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on the calling thread's own id; no memory is passed. On
    // Linux a nice value belongs to a thread, so no other thread's priority changes.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10);
    }
}

/// The sources a store's writes recorded (docs/FORMAT.md §12) that its state at `snapshot`
/// (default: the current one) holds, as items of `collection` (default: the store's name),
/// each with the snapshot that wrote it as `gridstore:snapshot`.
fn store_sources(
    store: &str,
    snapshot: Option<u64>,
    collection: Option<&str>,
) -> Result<Vec<Item>> {
    let root = gridstore::store::resolve_store_path(store);
    let state = gridstore::store::Snapshot::open(&root, snapshot)?;
    let collection = match collection {
        Some(c) => c.to_string(),
        None => gridstore::stac::facts::collection_id(state.storage().location()),
    };
    let records = gridstore::store::sources::sources_in(&state)?;
    if records.is_empty() {
        eprintln!(
            "{store}: its writes recorded no sources (stores written before sources were \
             recorded, or only by GDAL in update mode)"
        );
    }
    let mut items = Vec::with_capacity(records.len());
    for (id, record) in records {
        let mut item = item_from_stac(&record, Some(&collection))
            .with_context(|| format!("{store}: a source recorded by snapshot {id}"))?;
        // A record holds no user data: its assets are the href the item already has.
        item.extra = serde_json::Value::Null;
        item.properties.insert(
            "gridstore:snapshot".into(),
            gridstore::catalog::item::Value::Int(id as i64),
        );
        items.push(item);
    }
    Ok(items)
}

/// A file of STAC items read a batch at a time: JSON lines (or a GeoJSON text sequence)
/// are streamed, each batch's items made on all cores; a single JSON document (an Item or
/// an ItemCollection over several lines) is read whole.
struct StacLines {
    origin: String,
    reader: Box<dyn BufRead>,
    /// The first line, read to tell the two forms apart.
    first: Option<String>,
    line: usize,
}

impl StacLines {
    fn open(file: &str) -> Result<StacLines> {
        let mut reader: Box<dyn BufRead> = match file {
            "-" => Box::new(BufReader::new(std::io::stdin())),
            _ => Box::new(BufReader::new(
                std::fs::File::open(file).with_context(|| format!("{file}: cannot read it"))?,
            )),
        };
        let mut first = String::new();
        reader
            .read_line(&mut first)
            .with_context(|| format!("{file}: cannot read it"))?;
        Ok(StacLines {
            origin: file.to_string(),
            reader,
            first: Some(first),
            line: 0,
        })
    }

    /// The items of the next `batch` lines; `None` at the end.
    fn next_items(
        &mut self,
        batch: usize,
        collection: Option<&str>,
        makers: &rayon::ThreadPool,
    ) -> Result<Option<Vec<Item>>> {
        if let Some(first) = self.first.take() {
            if serde_json::from_str::<serde_json::Value>(first.trim_start_matches('\u{1e}'))
                .is_err()
                && !first.trim().is_empty()
            {
                // Not a line of its own: one document over several lines.
                let mut text = first;
                self.reader
                    .read_to_string(&mut text)
                    .with_context(|| format!("{}: cannot read it", self.origin))?;
                return Ok(Some(items_from_text(&text, collection, &self.origin)?));
            }
            return self.items_of(vec![first], collection, makers).map(Some);
        }
        let mut lines = Vec::with_capacity(batch.min(100_000));
        while lines.len() < batch {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .with_context(|| format!("{}: cannot read it", self.origin))?;
            if n == 0 {
                break;
            }
            lines.push(line);
        }
        match lines.is_empty() {
            true => Ok(None),
            false => self.items_of(lines, collection, makers).map(Some),
        }
    }

    /// The items of some lines, made in parallel (footprints cost GDAL work each).
    fn items_of(
        &mut self,
        lines: Vec<String>,
        collection: Option<&str>,
        makers: &rayon::ThreadPool,
    ) -> Result<Vec<Item>> {
        let first = self.line;
        self.line += lines.len();
        let file = &self.origin;
        let per_line: Vec<gridstore::Result<Vec<Item>>> = makers.install(|| {
            lines
                .par_iter()
                .enumerate()
                .map(|(n, l)| match l.trim().is_empty() {
                    true => Ok(Vec::new()),
                    false => {
                        let origin = format!("{file}, line {}", first + n + 1);
                        items_from_text(l, collection, &origin)
                    }
                })
                .collect()
        });
        let mut items = Vec::with_capacity(lines.len());
        for r in per_line {
            items.extend(r?);
        }
        Ok(items)
    }
}

fn build_search(args: &SearchArgs) -> Result<Search> {
    let order = match args.order {
        OrderArg::Asc => Order::Asc,
        OrderArg::Desc => Order::Desc,
    };
    Ok(Search {
        after: args.after.as_deref().map(ResumeToken::decode).transpose()?,
        limit: args.limit,
        ..args.criteria.search(args.time.as_deref(), order)?
    })
}

fn search(args: SearchArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let search = build_search(&args)?;
    let cat = catalog::open(&args.catalog)?;
    if args.count {
        let counting = Search {
            limit: None,
            ..search.clone()
        };
        let n = cat.count(&counting)?;
        println!("{}", search.limit.map_or(n, |l| n.min(l)));
        if args.timing {
            eprintln!("counted in {:.1} ms", started.elapsed().as_secs_f64() * 1e3);
        }
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
        match args.format {
            Format::Jsonl => {}
            Format::GeojsonSeq => write!(out, "\u{1e}")?,
            Format::Itemcollection if n > 0 => write!(out, ",")?,
            Format::Itemcollection => {}
        }
        serde_json::to_writer(&mut out, &item.stac_feature())?;
        if !matches!(args.format, Format::Itemcollection) {
            writeln!(out)?;
        }
        n += 1;
        last = Some(item);
    }
    if collection {
        writeln!(out, "]}}")?;
    }
    out.flush()?;
    if args.timing {
        let ms = started.elapsed().as_secs_f64() * 1e3;
        eprintln!("searched in {ms:.1} ms: {n} item(s)");
    }
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

//! `gridstore create`: an empty store on an explicit grid, ready for data to arrive.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Result};

use gridstore::dtype::DataType;
use gridstore::gdal::crs::{register_drivers, wkt_from_user_input};
use gridstore::ingest::{new_store_manifest, SourceInfo};
use gridstore::manifest::BandSpec;
use gridstore::options::{split_pairs, CreateOptions};
use gridstore::store::{check_store_name, NewStore, Transaction};

/// `gridstore create`'s arguments.
#[derive(clap::Args)]
pub struct CreateCmd {
    /// The new store's directory (named *.gridstore)
    store: PathBuf,
    /// CRS: EPSG code, PROJ string or WKT
    #[arg(long)]
    crs: String,
    /// X and Y of the grid's top-left corner (data may later extend beyond it)
    #[arg(long, num_args = 2, allow_negative_numbers = true, value_names = ["X", "Y"])]
    origin: Vec<f64>,
    /// Cell size: one number for square north-up cells, or X and Y (Y negative)
    #[arg(long, num_args = 1..=2, allow_negative_numbers = true)]
    cell_size: Vec<f64>,
    /// Number of bands
    #[arg(long, default_value_t = 1)]
    bands: usize,
    /// Data type: Byte, UInt16, Int16, UInt32, Int32, Float32, Float64
    #[arg(long = "type", default_value = "Float32")]
    data_type: String,
    /// Nodata value of every band (without one, a mask marks missing pixels)
    #[arg(long, allow_negative_numbers = true)]
    nodata: Option<f64>,
    /// Tile size in pixels
    #[arg(long, default_value_t = 512)]
    tile_size: u32,
    /// Compression: ZSTD, DEFLATE, LZ4 or NONE
    #[arg(long, default_value = "ZSTD")]
    compress: String,
    /// More creation options as KEY=VALUE (LEVEL, PREDICTOR, RESAMPLING), as with -co
    #[arg(long = "co", value_name = "KEY=VALUE")]
    options: Vec<String>,
}

pub fn run(args: CreateCmd) -> Result<()> {
    check_store_name(&args.store)?;
    register_drivers();
    let crs_wkt = wkt_from_user_input(&args.crs)?;
    let [ox, oy] = args.origin[..] else {
        bail!("--origin takes two numbers: X Y of the grid's top-left corner");
    };
    let (cx, cy) = match args.cell_size[..] {
        // North-up: rows go south.
        [c] => (c, -c),
        [cx, cy] => (cx, cy),
        _ => bail!("--cell-size takes one number (square cells) or two (X Y)"),
    };
    if !(cx.is_finite() && cy.is_finite()) || cx == 0.0 || cy == 0.0 {
        bail!("--cell-size must be non-zero numbers");
    }
    if args.bands == 0 {
        bail!("--bands must be at least 1");
    }
    let data_type = DataType::from_name(&args.data_type)?;
    let mut options = args.options.clone();
    options.push(format!("BLOCKSIZE={}", args.tile_size));
    options.push(format!("COMPRESS={}", args.compress));
    let opts = CreateOptions::parse(&split_pairs(&options))?;
    let source = SourceInfo {
        description: args.store.display().to_string(),
        width: 0,
        height: 0,
        data_type,
        geotransform: Some([ox, cx, 0.0, oy, 0.0, cy]),
        crs_wkt,
        bands: vec![BandSpec::gray(args.nodata); args.bands],
        metadata: BTreeMap::new(),
    };
    let manifest = new_store_manifest(&source, &opts)?;
    let txn = Transaction::create(
        NewStore {
            path: args.store.clone(),
            manifest,
        },
        "gridstore create",
    )?;
    txn.commit()?;
    println!(
        "created {} (empty): add data with `gridstore ingest` or gdal_translate -of GRIDSTORE",
        args.store.display()
    );
    Ok(())
}

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

pub struct CreateArgs {
    pub store: PathBuf,
    pub crs: String,
    pub origin: Vec<f64>,
    pub cell_size: Vec<f64>,
    pub bands: usize,
    pub data_type: String,
    pub nodata: Option<f64>,
    /// `KEY=VALUE` creation options (BLOCKSIZE, COMPRESS, LEVEL, PREDICTOR, RESAMPLING).
    pub options: Vec<String>,
}

pub fn run(args: CreateArgs) -> Result<()> {
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
    let opts = CreateOptions::parse(&split_pairs(&args.options))?;
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

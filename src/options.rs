//! Creation and open options: their GDAL option lists, and parsing into checked values.
//!
//! Options arrive as `KEY=VALUE` strings (GDAL `-co` / `-oo`, or CLI flags mapped onto the
//! same names), are checked here once, and everything after works with typed values.

use crate::aggregate::Resampling;
use crate::codec::{Compression, Predictor};
use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::grid::{MAX_TILE_SIZE, MIN_TILE_SIZE};
use crate::manifest::{Manifest, FORMAT_VERSION};
use crate::store::lock::LockWait;

pub const DEFAULT_TILE_SIZE: u32 = 512;

/// The creation options of the GDAL driver, as the XML list GDAL shows and validates.
pub fn creation_option_list() -> String {
    format!(
        "<CreationOptionList>\
<Option name='BLOCKSIZE' type='int' min='{MIN_TILE_SIZE}' max='{MAX_TILE_SIZE}' default='{DEFAULT_TILE_SIZE}' \
description='Tile width and height in pixels, a multiple of 16'/>\
<Option name='COMPRESS' type='string-select' default='ZSTD' description='Chunk compression'>\
<Value>ZSTD</Value><Value>DEFLATE</Value><Value>LZ4</Value><Value>NONE</Value></Option>\
<Option name='LEVEL' type='int' description='Compression level: ZSTD 1-22 (default 1), DEFLATE 1-9 (default 6)'/>\
<Option name='PREDICTOR' type='string-select' default='YES' \
description='YES: horizontal differencing for integers, floating point predictor for floats'>\
<Value>YES</Value><Value>NO</Value><Value>STANDARD</Value><Value>FLOATING_POINT</Value></Option>\
<Option name='RESAMPLING' type='string' default='AVERAGE' \
description='How levels are aggregated: AVERAGE, NEAREST, MIN, MAX or MODE; a comma-separated list gives one per band. Bands with a colour table default to NEAREST'/>\
<Option name='NUM_THREADS' type='string' default='ALL_CPUS' description='Worker threads: a number from 1 to {MAX_THREADS}, or ALL_CPUS'/>\
<Option name='WARP_RESAMPLING' type='string-select' default='NEAREST' \
description='How a source in another CRS, cell size or alignment is warped onto the grid of an existing store (gdalwarp -r)'>\
<Value>NEAREST</Value><Value>BILINEAR</Value><Value>CUBIC</Value><Value>CUBICSPLINE</Value><Value>LANCZOS</Value>\
<Value>AVERAGE</Value><Value>RMS</Value><Value>MODE</Value><Value>MAX</Value><Value>MIN</Value><Value>MED</Value>\
<Value>Q1</Value><Value>Q3</Value><Value>SUM</Value></Option>\
<Option name='LOCK_TIMEOUT' type='float' default='0' \
description='If another writer holds an existing store, wait up to this many seconds for it (0: fail at once, naming the holder)'/>\
<Option name='FORMAT_VERSION' type='int' min='3' max='{FORMAT_VERSION}' default='{FORMAT_VERSION}' \
description='New store: the format version. 3 stores every chunk as an object of its own, for gridstore builds from before packs (version 4) to read'/>\
<Option name='TIME' type='string' description='Write the source as the time step at this instant (ISO 8601) of a time store'/>\
<Option name='TIME_REPLACE' type='boolean' default='NO' description='Replace a time step the store already holds'/>\
<Option name='TIME_INSERT' type='boolean' default='NO' description='Allow a time step before the last one'/>\
<Option name='TIME_STEP' type='string' description='New time store: the step of a regular axis (ISO 8601 duration: PT5M, PT1H, P1D, P1M); without it the axis is irregular'/>\
<Option name='TIME_CALENDAR' type='string' description='New time store: the CF calendar (standard, proleptic_gregorian, noleap, all_leap, 360_day)'/>\
<Option name='TIME_UNITS' type='string' description='New time store: the CF units of time values, e.g. minutes since 2020-01-01'/>\
</CreationOptionList>"
    )
}

/// The open options of the GDAL driver.
pub fn open_option_list() -> String {
    format!(
        "<OpenOptionList>\
<Option name='SNAPSHOT' type='int' description='Open this snapshot of the history (read-only) instead of the current state'/>\
<Option name='NUM_THREADS' type='string' default='ALL_CPUS' description='Threads decoding the blocks of one read request: a number from 1 to {MAX_THREADS}, or ALL_CPUS'/>\
<Option name='LOCK_TIMEOUT' type='float' default='0' \
description='In update mode, if another writer holds the store, wait up to this many seconds for it (0: fail at once, naming the holder)'/>\
<Option name='BAND' type='string' description='Time stores: the store band (variable) to show as one dataset whose bands are its time steps: its number from 1, or its name'/>\
<Option name='TIME' type='string' description='Time stores: open the one time step at this ISO 8601 instant, with every store band as a band'/>\
<Option name='TIME_RANGE' type='string' description='Time stores: show the steps from START to END (ISO 8601, both included), written START/END'/>\
<Option name='LAST' type='int' min='1' max='{MAX_SHOWN_STEPS}' description='Time stores: show only the last N time steps (of TIME_RANGE when given)'/>\
<Option name='MAX_BANDS' type='int' min='1' max='{MAX_SHOWN_STEPS}' default='10000' description='Time stores: without LAST, show at most this many time steps (the last ones), with a warning'/>\
</OpenOptionList>"
    )
}

/// Looks up `name` (case-insensitively) in `KEY=VALUE` pairs.
/// The format version a new store is made in: this build's unless `value` asks for 3, the
/// last without packs.
fn parse_format_version(value: Option<&str>) -> Result<u32> {
    let Some(v) = value else {
        return Ok(FORMAT_VERSION);
    };
    match v.parse::<u32>() {
        Ok(n) if (3..=FORMAT_VERSION).contains(&n) => Ok(n),
        _ => Err(Error::option(
            "FORMAT_VERSION",
            v,
            format!("3 or {FORMAT_VERSION}"),
        )),
    }
}

pub fn find<'a>(options: &'a [(String, String)], name: &str) -> Option<&'a str> {
    options
        .iter()
        .rev()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Splits `KEY=VALUE` strings; entries without `=` are kept with an empty value.
pub fn split_pairs<S: AsRef<str>>(items: &[S]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|s| match s.as_ref().split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => (s.as_ref().trim().to_string(), String::new()),
        })
        .collect()
}

/// Creation options after checking. Some depend on the data (type, colour tables), so
/// they are resolved by the `resolve_*` methods once the source is known.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateOptions {
    pub tile_size: u32,
    pub compression: Compression,
    pub level: i32,
    predictor: Option<String>,
    resampling: Option<Vec<Resampling>>,
    pub threads: usize,
    /// `gdalwarp -r` name for sources that must be warped onto an existing store's grid.
    pub warp_resampling: Option<String>,
    /// What a write into an existing store does while another writer holds it.
    pub lock_wait: LockWait,
    /// The format version of a new store (docs/FORMAT.md): this build's, or 3.
    pub format_version: u32,
}

impl CreateOptions {
    pub fn parse(options: &[(String, String)]) -> Result<CreateOptions> {
        let tile_size = match find(options, "BLOCKSIZE") {
            Some(v) => parse_tile_size(v)?,
            None => DEFAULT_TILE_SIZE,
        };
        let compression = match find(options, "COMPRESS") {
            Some(v) => Compression::from_option(v)?,
            None => Compression::Zstd,
        };
        let level = match find(options, "LEVEL") {
            Some(v) => {
                let l: i32 = v.parse().map_err(|_| {
                    Error::option("LEVEL", v, "a whole number (ZSTD 1-22, DEFLATE 1-9)")
                })?;
                compression.check_level(l)?;
                l
            }
            None => compression.default_level(),
        };
        let resampling = match find(options, "RESAMPLING") {
            Some(v) => Some(
                v.split(',')
                    .map(Resampling::from_gdal_name)
                    .collect::<Result<Vec<_>>>()?,
            ),
            None => None,
        };
        let threads = match find(options, "NUM_THREADS") {
            Some(v) => parse_threads(v)?,
            None => all_cpus(),
        };
        Ok(CreateOptions {
            tile_size,
            compression,
            level,
            predictor: find(options, "PREDICTOR").map(str::to_string),
            resampling,
            threads,
            warp_resampling: find(options, "WARP_RESAMPLING").map(str::to_string),
            lock_wait: parse_lock_wait(find(options, "LOCK_TIMEOUT"))?,
            format_version: parse_format_version(find(options, "FORMAT_VERSION"))?,
        })
    }

    /// Refuses options that contradict an existing store: its tiles, compression,
    /// predictor and level methods were fixed when it was made. Only options given
    /// explicitly (`given`, the raw pairs) count.
    pub fn check_against(&self, given: &[(String, String)], m: &Manifest) -> Result<()> {
        let mut conflicts = Vec::new();
        let mut differs = |name: &str, wanted: String, has: String| {
            if find(given, name).is_some() && wanted != has {
                conflicts.push(format!("{name}={wanted} (the store has {has})"));
            }
        };
        differs(
            "BLOCKSIZE",
            self.tile_size.to_string(),
            m.grid.tile_size.to_string(),
        );
        differs(
            "FORMAT_VERSION",
            self.format_version.to_string(),
            m.format_version.to_string(),
        );
        differs(
            "COMPRESS",
            self.compression.option_name().into(),
            m.encoding.compression.option_name().into(),
        );
        differs(
            "LEVEL",
            self.level.to_string(),
            m.encoding.level.to_string(),
        );
        differs(
            "PREDICTOR",
            format!("{:?}", self.resolve_predictor(m.data_type)?),
            format!("{:?}", m.encoding.predictor),
        );
        let tables: Vec<bool> = m.bands.iter().map(|b| b.color_table.is_some()).collect();
        let names = |r: &[Resampling]| {
            r.iter()
                .map(|r| r.gdal_name())
                .collect::<Vec<_>>()
                .join(",")
        };
        differs(
            "RESAMPLING",
            names(&self.resolve_resampling(&tables)?),
            names(&m.pyramids[0].resampling),
        );
        if conflicts.is_empty() {
            return Ok(());
        }
        Err(Error::InvalidInput(format!(
            "the store already exists and its encoding is fixed; these creation options \
             contradict it: {}. Leave them out to add data to the store, or write to a new \
             store",
            conflicts.join(", ")
        )))
    }

    pub fn resolve_predictor(&self, dtype: DataType) -> Result<Predictor> {
        match &self.predictor {
            Some(v) => Predictor::from_option(v, dtype),
            None => Ok(Predictor::default_for(dtype)),
        }
    }

    /// One method per band. Without `RESAMPLING`, bands with a colour table get NEAREST
    /// (averaging class codes makes no sense) and the others AVERAGE.
    pub fn resolve_resampling(&self, has_color_table: &[bool]) -> Result<Vec<Resampling>> {
        let n = has_color_table.len();
        match &self.resampling {
            None => Ok(has_color_table
                .iter()
                .map(|ct| {
                    if *ct {
                        Resampling::Nearest
                    } else {
                        Resampling::Average
                    }
                })
                .collect()),
            Some(one) if one.len() == 1 => Ok(vec![one[0]; n]),
            Some(list) if list.len() == n => Ok(list.clone()),
            Some(list) => Err(Error::option(
                "RESAMPLING",
                list.iter()
                    .map(|r| r.gdal_name())
                    .collect::<Vec<_>>()
                    .join(","),
                format!("one method, or one per band ({n} bands)"),
            )),
        }
    }
}

fn parse_tile_size(v: &str) -> Result<u32> {
    let expected = format!("a multiple of 16 from {MIN_TILE_SIZE} to {MAX_TILE_SIZE}");
    let n: u32 = v
        .parse()
        .map_err(|_| Error::option("BLOCKSIZE", v, &expected))?;
    if !(MIN_TILE_SIZE..=MAX_TILE_SIZE).contains(&n) || n % 16 != 0 {
        return Err(Error::option("BLOCKSIZE", v, expected));
    }
    Ok(n)
}

/// `LOCK_TIMEOUT`: seconds to wait for another writer; absent or 0 fails at once.
pub fn parse_lock_wait(value: Option<&str>) -> Result<LockWait> {
    let Some(v) = value else {
        return Ok(LockWait::Fail);
    };
    match v.trim().parse::<f64>() {
        Ok(0.0) => Ok(LockWait::Fail),
        Ok(s) if s > 0.0 && s.is_finite() && s < 1e9 => {
            Ok(LockWait::Wait(std::time::Duration::from_secs_f64(s)))
        }
        _ => Err(Error::option(
            "LOCK_TIMEOUT",
            v,
            "a number of seconds to wait for another writer, 0 to fail at once",
        )),
    }
}

/// Most threads `NUM_THREADS` may ask for. A fixed number rather than a multiple of the
/// CPUs, so that a value that works on one machine works on all (scripts move between
/// laptops and servers, and containers may see few CPUs): above any machine's useful
/// count even for reads waiting on slow storage, and low enough that starting that many
/// threads takes milliseconds, not minutes.
pub const MAX_THREADS: usize = 1024;

/// `NUM_THREADS`: a number from 1 to [`MAX_THREADS`], or `ALL_CPUS`.
pub fn parse_threads(v: &str) -> Result<usize> {
    if v.eq_ignore_ascii_case("ALL_CPUS") {
        return Ok(all_cpus());
    }
    match v.parse::<usize>() {
        Ok(n) if (1..=MAX_THREADS).contains(&n) => Ok(n),
        _ => Err(Error::option(
            "NUM_THREADS",
            v,
            format!("a number of threads from 1 to {MAX_THREADS}, or ALL_CPUS"),
        )),
    }
}

/// The CPUs this process may use. Asked once: the standard library reads the cgroup
/// files anew on every call, and every open of a store would pay for it.
pub fn all_cpus() -> usize {
    static CPUS: once_cell::sync::Lazy<usize> = once_cell::sync::Lazy::new(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    CPUS.min(MAX_THREADS)
}

/// How many reads (and, writing there, writes) of a store on the network are in flight at
/// once by default: fetching is waiting, not computing, so more than the cores (GDAL's own
/// multi-range reads send all ranges of a request at once).
pub const REMOTE_THREADS: usize = 16;

/// The worker threads when none are asked for: the cores, or at least [`REMOTE_THREADS`]
/// for a store on GDAL's virtual file systems.
pub fn default_threads(store: &std::path::Path) -> usize {
    match crate::storage::is_vsi_path(store) {
        true => all_cpus().max(REMOTE_THREADS),
        false => all_cpus(),
    }
}

/// Open options after checking.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenOptions {
    pub snapshot: Option<u64>,
    pub threads: usize,
    /// What opening in update mode does while another writer holds the store.
    pub lock_wait: LockWait,
    /// Which variable and time steps of a time store are shown.
    pub time: TimeSelection,
}

/// The open options that choose what a time store shows (docs/DRIVER.md, "Time stores").
/// Instants stay text here: they are read in the store's calendar once it is open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeSelection {
    /// `BAND`: a store band's number from 1, or its name.
    pub band: Option<String>,
    /// `TIME`: one step, shown with every store band.
    pub at: Option<String>,
    /// `TIME_RANGE=START/END`.
    pub range: Option<(String, String)>,
    /// `LAST`: only the last this many steps.
    pub last: Option<usize>,
    /// `MAX_BANDS`: without `LAST`, at most this many steps (default 10,000).
    pub max_bands: Option<usize>,
}

/// Most time steps a dataset may show as bands, whatever `LAST` and `MAX_BANDS` ask: GDAL's
/// own limit on band counts (`GDAL_MAX_BAND_COUNT`), and a bound on what an open allocates.
pub const MAX_SHOWN_STEPS: usize = 65_536;

/// The names of the open options that select time steps or a variable: the ones a
/// connection string may carry, and a subdataset's name repeats.
pub const TIME_SELECTION_OPTIONS: [&str; 5] = ["BAND", "TIME", "TIME_RANGE", "LAST", "MAX_BANDS"];

impl TimeSelection {
    fn parse(options: &[(String, String)]) -> Result<TimeSelection> {
        let range = match find(options, "TIME_RANGE") {
            Some(v) => match v.split_once('/') {
                Some((a, b)) if !a.trim().is_empty() && !b.trim().is_empty() => {
                    Some((a.trim().to_string(), b.trim().to_string()))
                }
                _ => {
                    return Err(Error::option(
                        "TIME_RANGE",
                        v,
                        "START/END, two ISO 8601 instants (e.g. \
                         2024-06-01T00:00:00Z/2024-06-02T00:00:00Z)",
                    ))
                }
            },
            None => None,
        };
        let count = |name: &str| match find(options, name) {
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_SHOWN_STEPS).contains(&n) => Ok(Some(n)),
                _ => Err(Error::option(
                    name,
                    v,
                    format!("a number of time steps from 1 to {MAX_SHOWN_STEPS}"),
                )),
            },
            None => Ok(None),
        };
        let (last, max_bands) = (count("LAST")?, count("MAX_BANDS")?);
        let at = find(options, "TIME").map(str::to_string);
        if at.is_some() && (range.is_some() || last.is_some()) {
            return Err(Error::InvalidInput(
                "TIME opens one time step; it cannot be combined with TIME_RANGE or LAST".into(),
            ));
        }
        Ok(TimeSelection {
            band: find(options, "BAND").map(str::to_string),
            at,
            range,
            last,
            max_bands,
        })
    }

    /// True when no option chose anything.
    pub fn is_empty(&self) -> bool {
        *self == TimeSelection::default()
    }
}

/// Splits a GDAL name into the store's name and the open options it carries. A plain name
/// carries none; `GRIDSTORE:"<path>":KEY=VALUE,KEY=VALUE` carries the selection options
/// ([`TIME_SELECTION_OPTIONS`]) after the quoted path. Commas separate them because ISO 8601
/// times hold colons.
pub fn split_connection(name: &str) -> Result<(String, Vec<(String, String)>)> {
    let Some(quoted) = name
        .strip_prefix(crate::store::NAME_PREFIX)
        .and_then(|rest| rest.strip_prefix('"'))
    else {
        return Ok((name.to_string(), Vec::new()));
    };
    let bad = |why: &str| {
        Error::InvalidInput(format!(
            "{name}: {why}; write GRIDSTORE:\"<path>\":KEY=VALUE,KEY=VALUE with keys among {}",
            TIME_SELECTION_OPTIONS.join(", ")
        ))
    };
    let (path, rest) = quoted
        .split_once('"')
        .ok_or_else(|| bad("the path's closing quote is missing"))?;
    let items = match rest {
        "" => "",
        _ => rest
            .strip_prefix(':')
            .ok_or_else(|| bad("something other than ':' follows the quoted path"))?,
    };
    let mut pairs = Vec::new();
    for item in items.split(',').filter(|i| !i.trim().is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| bad(&format!("{item:?} is not KEY=VALUE")))?;
        let known = TIME_SELECTION_OPTIONS
            .iter()
            .any(|o| o.eq_ignore_ascii_case(k.trim()));
        if !known {
            return Err(bad(&format!("{:?} is not a selection option", k.trim())));
        }
        pairs.push((k.trim().to_ascii_uppercase(), v.trim().to_string()));
    }
    Ok((path.to_string(), pairs))
}

/// A connection string naming the store at `path` with the selection `pairs`.
pub fn connection_string(path: &str, pairs: &[(&str, String)]) -> String {
    let items: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    match items.is_empty() {
        true => format!("{}\"{path}\"", crate::store::NAME_PREFIX),
        false => format!(
            "{}\"{path}\":{}",
            crate::store::NAME_PREFIX,
            items.join(",")
        ),
    }
}

impl OpenOptions {
    pub fn parse(options: &[(String, String)]) -> Result<OpenOptions> {
        let snapshot = match find(options, "SNAPSHOT") {
            Some(v) => Some(v.parse().map_err(|_| {
                Error::option("SNAPSHOT", v, "a snapshot id, as listed by `gridstore log`")
            })?),
            None => None,
        };
        let threads = match find(options, "NUM_THREADS") {
            Some(v) => parse_threads(v)?,
            None => all_cpus(),
        };
        Ok(OpenOptions {
            snapshot,
            threads,
            lock_wait: parse_lock_wait(find(options, "LOCK_TIMEOUT"))?,
            time: TimeSelection::parse(options)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(items: &[&str]) -> Vec<(String, String)> {
        split_pairs(items)
    }

    #[test]
    fn defaults() {
        let o = CreateOptions::parse(&[]).unwrap();
        assert_eq!(o.tile_size, 512);
        assert_eq!(o.compression, Compression::Zstd);
        assert_eq!(o.level, 1);
        assert_eq!(
            o.resolve_predictor(DataType::Float32).unwrap(),
            Predictor::FloatingPoint
        );
        assert_eq!(
            o.resolve_resampling(&[false, true]).unwrap(),
            vec![Resampling::Average, Resampling::Nearest]
        );
    }

    #[test]
    fn values_are_checked_with_helpful_messages() {
        for (bad, hint) in [
            ("BLOCKSIZE=100", "multiple of 16"),
            ("BLOCKSIZE=abc", "multiple of 16"),
            ("COMPRESS=JPEG", "ZSTD"),
            ("LEVEL=x", "whole number"),
            ("RESAMPLING=CUBIC", "AVERAGE"),
            ("NUM_THREADS=0", "ALL_CPUS"),
            ("LOCK_TIMEOUT=-1", "seconds"),
            ("LOCK_TIMEOUT=soon", "seconds"),
        ] {
            let e = CreateOptions::parse(&opts(&[bad])).unwrap_err().to_string();
            assert!(e.contains(hint), "{bad}: {e}");
        }
        let e = CreateOptions::parse(&opts(&["COMPRESS=DEFLATE", "LEVEL=12"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("1 to 9"), "{e}");
    }

    #[test]
    fn thread_counts_are_bounded() {
        for good in ["1", "1024", "ALL_CPUS", "all_cpus"] {
            let o = OpenOptions::parse(&opts(&[&format!("NUM_THREADS={good}")])).unwrap();
            assert!((1..=MAX_THREADS).contains(&o.threads), "{good}");
        }
        for bad in [
            "0",
            "1025",
            "100000",
            "18446744073709551616",
            "-1",
            "2.5",
            "",
        ] {
            let item = format!("NUM_THREADS={bad}");
            for e in [
                OpenOptions::parse(&opts(&[&item])).unwrap_err(),
                CreateOptions::parse(&opts(&[&item])).unwrap_err(),
            ] {
                assert!(matches!(e, Error::InvalidOption { .. }), "{bad}: {e}");
                assert!(e.to_string().contains("from 1 to 1024"), "{bad}: {e}");
            }
        }
        assert!(all_cpus() <= MAX_THREADS);
    }

    #[test]
    fn per_band_resampling_lists() {
        let o = CreateOptions::parse(&opts(&["RESAMPLING=max,MODE"])).unwrap();
        assert_eq!(
            o.resolve_resampling(&[false, false]).unwrap(),
            vec![Resampling::Max, Resampling::Mode]
        );
        assert!(o.resolve_resampling(&[false, false, false]).is_err());
    }

    #[test]
    fn time_selections_are_checked() {
        let o = OpenOptions::parse(&opts(&["TIME_RANGE=2024-01-01/2024-02-01", "LAST=3"]))
            .unwrap()
            .time;
        assert_eq!(o.range, Some(("2024-01-01".into(), "2024-02-01".into())));
        assert_eq!(o.last, Some(3));
        for (bad, hint) in [
            ("TIME_RANGE=2024-01-01", "START/END"),
            ("TIME_RANGE=/2024-01-01", "START/END"),
            ("LAST=0", "from 1 to 65536"),
            ("LAST=many", "from 1 to 65536"),
            ("LAST=65537", "from 1 to 65536"),
            ("MAX_BANDS=-3", "from 1 to 65536"),
        ] {
            let e = OpenOptions::parse(&opts(&[bad])).unwrap_err().to_string();
            assert!(e.contains(hint), "{bad}: {e}");
        }
        let e = OpenOptions::parse(&opts(&["TIME=2024-01-01", "LAST=2"])).unwrap_err();
        assert!(e.to_string().contains("cannot be combined"), "{e}");
    }

    #[test]
    fn connection_strings_carry_selections() {
        let (path, pairs) =
            split_connection("GRIDSTORE:\"/d/a:b.gridstore\":band=2,TIME=2024-01-01T00:05:00Z")
                .unwrap();
        assert_eq!(path, "/d/a:b.gridstore");
        assert_eq!(
            pairs,
            vec![
                ("BAND".to_string(), "2".to_string()),
                ("TIME".to_string(), "2024-01-01T00:05:00Z".to_string())
            ]
        );
        let name = connection_string("/d/x.gridstore", &[("BAND", "1".into())]);
        assert_eq!(name, "GRIDSTORE:\"/d/x.gridstore\":BAND=1");
        assert_eq!(split_connection(&name).unwrap().1.len(), 1);
        for plain in ["GRIDSTORE:/d/x.gridstore", "/d/x.gridstore"] {
            assert_eq!(
                split_connection(plain).unwrap(),
                (plain.to_string(), vec![])
            );
        }
        for bad in [
            "GRIDSTORE:\"/d/x.gridstore",
            "GRIDSTORE:\"/d/x.gridstore\"BAND=1",
            "GRIDSTORE:\"/d/x.gridstore\":SNAPSHOT=3",
            "GRIDSTORE:\"/d/x.gridstore\":BAND",
        ] {
            let e = split_connection(bad).unwrap_err().to_string();
            assert!(e.contains("KEY=VALUE"), "{bad}: {e}");
        }
    }

    #[test]
    fn option_lists_are_well_formed() {
        for xml in [creation_option_list(), open_option_list()] {
            assert_eq!(
                xml.matches("<Option ").count(),
                xml.matches("<Option name=").count()
            );
            assert!(!xml.contains('"'));
        }
    }
}

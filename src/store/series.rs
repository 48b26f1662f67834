//! Point time series: one pixel's values over many time steps.
//!
//! The read is [`read_series_window`] of one pixel: a closed block of ticks compacted into
//! time blocks costs its time block's head and one frame per band (and the mask) holding
//! the pixel's D values; every other step its chunk's head and the frames holding the
//! pixel (docs/FORMAT.md §5, §8).

use crate::dtype::Sample;
use crate::error::Result;
use crate::grid::PixelRect;
use crate::tile::{BandValidity, ValidityTest};
use crate::with_sample_type;

use super::series_window::{read_series_window, SeriesRead, TickOut};
use super::Snapshot;

/// One step of a point series: its tick, and each band's value (`None`: no data there).
#[derive(Debug, Clone, PartialEq)]
pub struct PointSample {
    pub tick: u32,
    pub values: Vec<Option<f64>>,
}

/// The values at level-0 grid pixel (`x`, `y`) at each of `ticks`, in their order.
pub fn point_series(snap: &Snapshot, ticks: &[u32], x: i64, y: i64) -> Result<Vec<PointSample>> {
    point_series_counted(snap, ticks, x, y).map(|(samples, _)| samples)
}

/// [`point_series`], and what the read touched (time blocks and per-step chunks).
pub fn point_series_counted(
    snap: &Snapshot,
    ticks: &[u32],
    x: i64,
    y: i64,
) -> Result<(Vec<PointSample>, SeriesRead)> {
    let m = snap.manifest();
    let (bands, dsize) = (m.bands.len(), m.data_type.size());
    let mut data = vec![0u8; ticks.len() * bands * dsize];
    let mut mask = vec![0u8; ticks.len()];
    let mut outs: Vec<TickOut<'_>> = data
        .chunks_mut(bands * dsize)
        .zip(mask.chunks_mut(1))
        .zip(ticks)
        .map(|((d, m), &tick)| TickOut {
            tick,
            bands: d.chunks_mut(dsize).enumerate().collect(),
            mask: Some(m),
        })
        .collect();
    let read = read_series_window(snap, 0, PixelRect::new(x, y, x + 1, y + 1), &mut outs)?;
    drop(outs);
    let validity = snap.validity();
    let samples = ticks
        .iter()
        .enumerate()
        .map(|(i, &tick)| PointSample {
            tick,
            values: (0..bands)
                .map(|b| {
                    let v = value(&data, m.data_type, i * bands + b, &validity[b]);
                    v.filter(|_| mask[i] != 0 || validity[b].nodata.is_some())
                })
                .collect(),
        })
        .collect();
    Ok((samples, read))
}

/// Sample `i` of `bytes` as `f64`, `None` when the band's validity says it holds no data.
fn value(bytes: &[u8], dtype: crate::dtype::DataType, i: usize, v: &BandValidity) -> Option<f64> {
    with_sample_type!(dtype, T => {
        let n = std::mem::size_of::<T>();
        let x: T = bytemuck::pod_read_unaligned(&bytes[i * n..(i + 1) * n]);
        ValidityTest::<T>::new(v).holds_data(x).then(|| x.to_f64())
    })
}

use std::path::Path;

use super::*;
use crate::area::Area;
use crate::dtype::Sample;
use crate::tile::{BandValidity, Tile};
use crate::with_sample_type;
use proptest::prelude::*;

fn random_tile(dtype: DataType, bands: usize, size: usize, seed: u64, mask: bool) -> Tile {
    let v: Vec<BandValidity> = (0..bands).map(|_| BandValidity { nodata: None }).collect();
    let mut t = Tile::empty(dtype, &v, size);
    let mut x = seed | 1;
    with_sample_type!(dtype, T => {
        for (i, s) in t.data.typed_mut::<T>().iter_mut().enumerate() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            // Mix smooth and noisy values so the predictors see both.
            let smooth = (i % size) as f64 * 0.5 + (i / size) as f64;
            *s = T::from_f64_round(if x % 3 == 0 { (x % 200) as f64 } else { smooth });
        }
    });
    t.mask = mask.then(|| {
        (0..size * size)
            .map(|i| if i % 7 == 0 { 0 } else { 255 })
            .collect()
    });
    t
}

fn expected(t: &Tile) -> Expected {
    Expected {
        dtype: t.dtype,
        bands: t.bands,
        size: t.size,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn every_type_codec_and_predictor_round_trips(
        dtype in prop::sample::select(DataType::ALL.to_vec()),
        compression in prop::sample::select(vec![Compression::None, Compression::Zstd,
                                                 Compression::Deflate, Compression::Lz4]),
        predictor in prop::sample::select(vec![Predictor::None, Predictor::Horizontal,
                                               Predictor::FloatingPoint]),
        bands in 1usize..4, seed in any::<u64>(), mask in any::<bool>()) {
        let tile = random_tile(dtype, bands, 16, seed, mask);
        let enc = Encoding { compression, level: compression.default_level(), predictor };
        let obj = encode(&tile, &enc).unwrap();
        let back = decode(&obj, &expected(&tile), Path::new("t")).unwrap();
        prop_assert_eq!(back, tile);
    }

    #[test]
    fn any_flipped_byte_is_detected(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let tile = random_tile(DataType::Float32, 2, 32, 7, true);
        let enc = Encoding { compression: Compression::Zstd, level: 3,
                             predictor: Predictor::FloatingPoint };
        let mut obj = encode(&tile, &enc).unwrap();
        let i = pos.index(obj.len());
        obj[i] ^= 1 << bit;
        prop_assert!(decode(&obj, &expected(&tile), Path::new("t")).is_err());
    }
}

/// A chunk as the first stores wrote it: the whole content as one compressed stream.
fn encode_version_1(tile: &Tile, enc: &Encoding) -> Vec<u8> {
    let mut raw = Vec::new();
    for b in 0..tile.bands {
        enc.predictor
            .encode(tile.dtype.size(), tile.size, tile.band_bytes(b), &mut raw);
    }
    if let Some(mask) = &tile.mask {
        pack_bits(mask, &mut raw);
    }
    let mut out = MAGIC.to_vec();
    out.extend([1, enc.compression.code(), enc.predictor.code()]);
    out.push(tile.dtype.gdal_code() as u8);
    out.extend((tile.bands as u16).to_le_bytes());
    out.extend((tile.mask.is_some() as u16).to_le_bytes());
    out.extend((tile.size as u32).to_le_bytes());
    out.extend((tile.size as u32).to_le_bytes());
    let mut packed = Vec::new();
    enc.compression
        .compress(enc.level, &raw, &mut packed)
        .unwrap();
    out.extend((packed.len() as u32).to_le_bytes());
    out.extend([0u8; 4]);
    out.extend(packed);
    let crc = crc32c::crc32c(&out);
    out.extend(crc.to_le_bytes());
    out
}

/// A chunk as version 2 wrote it: each band in strips of `rows` rows as wide as the tile,
/// 8-byte table entries, no base field.
fn encode_version_2(tile: &Tile, enc: &Encoding, rows: usize) -> Vec<u8> {
    let width = tile.dtype.size();
    let row_bytes = tile.size * width;
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for b in 0..tile.bands {
        for strip in tile.band_bytes(b).chunks(rows * row_bytes) {
            let mut raw = Vec::new();
            enc.predictor.encode(width, tile.size, strip, &mut raw);
            let mut out = Vec::new();
            enc.compression.compress(enc.level, &raw, &mut out).unwrap();
            frames.push(out);
        }
    }
    if let Some(mask) = &tile.mask {
        let mut packed = Vec::new();
        pack_bits(mask, &mut packed);
        let mut out = Vec::new();
        enc.compression
            .compress(enc.level, &packed, &mut out)
            .unwrap();
        frames.push(out);
    }
    let body: Vec<u8> = frames.concat();
    let mut out = MAGIC.to_vec();
    out.extend([2, enc.compression.code(), enc.predictor.code()]);
    out.push(tile.dtype.gdal_code() as u8);
    out.extend((tile.bands as u16).to_le_bytes());
    out.extend((tile.mask.is_some() as u16).to_le_bytes());
    out.extend((tile.size as u32).to_le_bytes());
    out.extend((tile.size as u32).to_le_bytes());
    let payload = V2_TABLE_ENTRY_LEN * frames.len() + 4 + body.len();
    out.extend((payload as u32).to_le_bytes());
    out.extend((rows as u16).to_le_bytes());
    out.extend([0u8; 2]);
    for f in &frames {
        out.extend((f.len() as u32).to_le_bytes());
        out.extend(crc32c::crc32c(f).to_le_bytes());
    }
    let head_crc = crc32c::crc32c(&out);
    out.extend(head_crc.to_le_bytes());
    out.extend(body);
    let crc = crc32c::crc32c(&out);
    out.extend(crc.to_le_bytes());
    out
}

/// `tile` with the pixels of `area` of every band (and the mask) taken from `other`.
fn with_area_of(tile: &Tile, other: &Tile, area: &Area) -> Tile {
    let mut out = tile.clone();
    let w = tile.dtype.size();
    let plane = tile.size * tile.size * w;
    for b in 0..tile.bands {
        for y in area.rows.clone() {
            let at = b * plane + (y * tile.size + area.cols.start) * w;
            let r = at..at + area.cols.len() * w;
            out.data.bytes_mut()[r.clone()].copy_from_slice(&other.data.bytes()[r]);
        }
    }
    if let (Some(m), Some(o)) = (out.mask.as_mut(), other.mask.as_ref()) {
        for y in area.rows.clone() {
            let r = y * tile.size + area.cols.start..y * tile.size + area.cols.end;
            m[r.clone()].copy_from_slice(&o[r]);
        }
    }
    out
}

fn zstd_float() -> Encoding {
    Encoding {
        compression: Compression::Zstd,
        level: 1,
        predictor: Predictor::FloatingPoint,
    }
}

/// The object [`encode_parts`] describes, its copied ranges taken from `old` and
/// `old_base`.
fn assemble(parts: &Parts, old: &[u8], old_base: &[u8]) -> Vec<u8> {
    let out = parts.object(old, old_base);
    assert_eq!(out.len(), parts.len);
    out
}

fn head_of(object: &[u8], t: &Tile) -> Head {
    Chunk::parse(object, &expected(t), Path::new("t"))
        .unwrap()
        .head()
        .clone()
}

/// Decodes `object`, reading its base frames from `base` (the whole base object).
fn decode_with(object: &[u8], base: &[u8], t: &Tile) -> crate::error::Result<Tile> {
    let chunk = Chunk::parse(object, &expected(t), Path::new("c"))?;
    match chunk.head().base_span() {
        Some(span) => {
            let bytes = base.get(span.clone()).unwrap_or(&[]);
            chunk.with_base(bytes, span.start, Path::new("b")).decode()
        }
        None => chunk.decode(),
    }
}

/// (length, CRC) of every frame: the same frames wherever each is kept.
fn frames_of(object: &[u8], t: &Tile) -> Vec<(usize, u32)> {
    head_of(object, t)
        .frames
        .iter()
        .map(|f| (f.len, f.crc))
        .collect()
}

fn reuse(old: &Head, old_seq: u64, changed: Area) -> Option<Reuse<'_>> {
    Some(Reuse {
        old,
        old_seq,
        changed,
        referable: true,
    })
}

/// The frames of the whole tile, encoded in the blocks of `like` (as an update keeps them).
fn frames_like(tile: &Tile, enc: &Encoding, like: &Head) -> Vec<(usize, u32)> {
    let everything = Reuse {
        old: like,
        old_seq: 1,
        changed: Area::whole(tile.size),
        referable: true,
    };
    let parts = encode_parts(tile, enc, Some(everything)).unwrap();
    let obj = assemble(&parts, &[], &[]);
    frames_of(&obj, tile)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Re-encoding only the blocks of a changed area gives a chunk that reads as the new
    /// tile and holds the frames a whole encode gives, wherever it keeps them.
    #[test]
    fn reencoding_a_changed_area_equals_encoding_the_tile(
        dtype in prop::sample::select(DataType::ALL.to_vec()),
        compression in prop::sample::select(vec![Compression::None, Compression::Zstd,
                                                 Compression::Deflate, Compression::Lz4]),
        bands in 1usize..3, mask in any::<bool>(),
        r0 in 0usize..32, h in 0usize..32, c0 in 0usize..32, w in 0usize..32,
        seed in any::<u64>()) {
        let old = random_tile(dtype, bands, 32, seed, mask);
        let changed = Area::new(r0.min(32 - h)..(r0 + h).min(32), c0.min(32 - w)..(c0 + w).min(32));
        let new = with_area_of(&old, &random_tile(dtype, bands, 32, seed ^ 99, mask), &changed);
        let enc = Encoding { compression, level: compression.default_level(),
                             predictor: Predictor::default_for(dtype) };
        let old_obj = encode(&old, &enc).unwrap();
        let head = head_of(&old_obj, &old);
        prop_assert!(head.frames_reusable(&enc));
        let parts = encode_parts(&new, &enc, reuse(&head, 7, changed)).unwrap();
        prop_assert!(parts.base == 0 || parts.base == 7);
        let obj = assemble(&parts, &old_obj, &[]);
        prop_assert_eq!(decode_with(&obj, &old_obj, &new).unwrap(), new.clone());
        prop_assert_eq!(frames_of(&obj, &new), frames_of(&encode(&new, &enc).unwrap(), &new));
    }
}

#[test]
fn tiles_are_cut_in_square_blocks_of_the_target_size() {
    // Unit tests aim at 64-byte blocks.
    assert_eq!(block_size(32, 4), 4);
    assert_eq!(block_size(32, 1), 8);
    assert_eq!(block_size(4, 4), 4, "a tile that fits is one block");
    let tile = random_tile(DataType::Float32, 2, 32, 1, true);
    let head = head_of(&encode(&tile, &zstd_float()).unwrap(), &tile);
    assert_eq!(head.block_shape(), (4, 4));
    assert!(head.predicts_whole_blocks());
    assert_eq!(head.blocks(), 64);
    assert_eq!(head.frames().len(), 2 * 64 + 1);
    assert_eq!(head.block_area(9), Area::new(4..8, 4..8));
    assert_eq!(head.blocks_meeting(&Area::new(3..5, 30..32)), [7, 15]);
}

#[test]
fn a_small_change_keeps_the_other_blocks_in_the_old_chunk() {
    let (a, b) = (
        random_tile(DataType::Float32, 2, 32, 1, true),
        random_tile(DataType::Float32, 2, 32, 2, true),
    );
    let enc = zstd_float();
    let old = encode(&a, &enc).unwrap();
    let head = head_of(&old, &a);
    let changed = Area::new(8..12, 4..12);
    assert_eq!(head.blocks_meeting(&changed), [17, 18]);
    // Told that only that area changed, the encoder refers to every other block in the
    // old chunk, whatever the tile holds there, and copies nothing (the mask is always
    // encoded afresh).
    let parts = encode_parts(&b, &enc, reuse(&head, 5, changed.clone())).unwrap();
    assert_eq!(parts.base, 5);
    assert!(parts.copies_nothing(), "{:?}", parts.pieces);
    let new = assemble(&parts, &old, &[]);
    let new_head = head_of(&new, &a);
    assert_eq!(new_head.base(), Some(5));
    // 2 blocks in each of 2 bands, and the mask.
    assert_eq!(new_head.frames.iter().filter(|f| !f.in_base).count(), 5);
    assert!(new.len() < old.len() / 3, "{} of {}", new.len(), old.len());
    let back = decode_with(&new, &old, &a).unwrap();
    let mut want = with_area_of(&a, &b, &Area::new(8..12, 4..12));
    want.mask = b.mask.clone(); // the mask is always encoded whole
    assert_eq!(back, want);
    // Without the base, the new chunk cannot be read.
    let e = Chunk::parse(&new, &expected(&a), Path::new("c"))
        .unwrap()
        .decode()
        .unwrap_err();
    assert!(e.to_string().contains("base"), "{e}");
}

#[test]
fn an_update_of_an_update_refers_to_the_first_chunk_and_copies_what_the_second_held() {
    let tiles: Vec<Tile> = (0..3)
        .map(|i| random_tile(DataType::Float32, 1, 32, 10 + i, false))
        .collect();
    let enc = zstd_float();
    // Seq 1 holds everything; seq 2 changed the top left block; seq 3 changes another.
    let first = encode(&tiles[0], &enc).unwrap();
    let (a2, a3) = (Area::new(0..4, 0..4), Area::new(8..12, 16..20));
    let t2 = with_area_of(&tiles[0], &tiles[1], &a2);
    let p2 = encode_parts(&t2, &enc, reuse(&head_of(&first, &t2), 1, a2)).unwrap();
    let second = assemble(&p2, &first, &[]);
    assert_eq!(p2.base, 1);
    let t3 = with_area_of(&t2, &tiles[2], &a3);
    let h2 = head_of(&second, &t3);
    let p3 = encode_parts(&t3, &enc, reuse(&h2, 2, a3)).unwrap();
    // Still based on seq 1, never on seq 2: the block seq 2 held is copied from it.
    assert_eq!(p3.base, 1);
    let held = h2.frames[0];
    assert!(p3
        .pieces
        .contains(&Piece::Old(held.offset..held.offset + held.len)));
    let third = assemble(&p3, &second, &first);
    assert_eq!(decode_with(&third, &first, &t3).unwrap(), t3);
    assert_eq!(
        frames_of(&third, &t3),
        frames_of(&encode(&t3, &enc).unwrap(), &t3)
    );
}

#[test]
fn a_chunk_that_would_keep_little_in_its_base_holds_everything() {
    let (a, b) = (
        random_tile(DataType::Float32, 1, 32, 3, false),
        random_tile(DataType::Float32, 1, 32, 4, false),
    );
    let enc = zstd_float();
    let old = encode(&a, &enc).unwrap();
    let head = head_of(&old, &a);
    // Rows 4..32 change: the 8 blocks left are under a quarter of the chunk.
    let changed = Area::new(4..32, 0..32);
    let parts = encode_parts(&b, &enc, reuse(&head, 3, changed.clone())).unwrap();
    assert_eq!(parts.base, 0);
    let new = assemble(&parts, &old, &[]);
    assert_eq!(head_of(&new, &a).base(), None);
    assert_eq!(
        decode(&new, &expected(&a), Path::new("c")).unwrap(),
        with_area_of(&a, &b, &changed)
    );
}

#[test]
fn a_version_2_chunk_still_decodes_and_an_update_keeps_its_strips() {
    let (a, b) = (
        random_tile(DataType::Int16, 2, 32, 5, true),
        random_tile(DataType::Int16, 2, 32, 6, true),
    );
    let enc = Encoding {
        compression: Compression::Zstd,
        level: 1,
        predictor: Predictor::Horizontal,
    };
    let v2 = encode_version_2(&a, &enc, 4);
    assert_eq!(decode(&v2, &expected(&a), Path::new("t")).unwrap(), a);
    let head = head_of(&v2, &a);
    assert!(head.frames_reusable(&enc));
    assert_eq!(
        head.block_shape(),
        (4, 32),
        "strips are blocks as wide as the tile"
    );
    let changed = Area::new(0..2, 0..6);
    let parts = encode_parts(&b, &enc, reuse(&head, 9, changed.clone())).unwrap();
    assert_eq!(parts.base, 9);
    let new = assemble(&parts, &v2, &[]);
    assert_eq!(head_of(&new, &a).block_shape(), (4, 32));
    let mut want = with_area_of(&a, &b, &Area::new(0..4, 0..32));
    want.mask = b.mask.clone();
    assert_eq!(decode_with(&new, &v2, &a).unwrap(), want);
    assert_eq!(frames_of(&new, &want), frames_like(&want, &enc, &head));
}

#[test]
fn a_tile_encoded_block_row_by_block_row_is_the_chunk_encode_gives() {
    for (dtype, bands, mask) in [(DataType::Float32, 2, false), (DataType::Byte, 3, true)] {
        let tile = random_tile(dtype, bands, 32, 4, mask);
        let enc = zstd_float();
        let blocks = Blocks::for_new(32, dtype);
        let plane = 32 * 32 * dtype.size();
        let rows = blocks.rows() * 32 * dtype.size();
        let frames: Vec<Vec<NewFrame>> = (0..blocks.block_rows())
            .map(|i| {
                let band_rows: Vec<&[u8]> = (0..bands)
                    .map(|b| {
                        let start = b * plane + i * rows;
                        &tile.data.bytes()[start..(start + rows).min((b + 1) * plane)]
                    })
                    .collect();
                encode_block_row(&blocks, &enc, dtype, &band_rows, i).unwrap()
            })
            .collect();
        let streamed =
            encode_from_frames(&blocks, &enc, dtype, bands, frames, tile.mask.as_deref()).unwrap();
        assert!(streamed.copies_nothing());
        assert_eq!(
            streamed.object(&[], &[]),
            encode(&tile, &enc).unwrap(),
            "{dtype:?}"
        );
    }
}

#[test]
fn blocks_encoded_in_parallel_give_the_same_chunk() {
    let tile = random_tile(DataType::Float32, 3, 32, 9, true);
    let enc = zstd_float();
    let alone = encode(&tile, &enc).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let together = pool.install(|| encode(&tile, &enc).unwrap());
    assert_eq!(alone, together);
    let head = head_of(&alone, &tile);
    let parts = pool
        .install(|| encode_parts(&tile, &enc, reuse(&head, 1, Area::new(4..20, 0..32))).unwrap());
    let new = assemble(&parts, &alone, &[]);
    assert_eq!(frames_of(&new, &tile), frames_of(&alone, &tile));
}

#[test]
fn a_damaged_frame_in_the_base_or_copied_from_it_is_detected() {
    let (a, b) = (
        random_tile(DataType::Float32, 1, 32, 1, false),
        random_tile(DataType::Float32, 1, 32, 2, false),
    );
    let enc = zstd_float();
    let mut old = encode(&a, &enc).unwrap();
    let head = head_of(&old, &a);
    let kept = head.frames[head.frames.len() - 1];
    // Kept in the base: the damage is found when the new chunk is read.
    let parts = encode_parts(&b, &enc, reuse(&head, 1, Area::new(0..2, 0..2))).unwrap();
    assert_eq!(parts.base, 1);
    let new = assemble(&parts, &old, &[]);
    old[kept.offset + kept.len / 2] ^= 0x10;
    let e = decode_with(&new, &old, &a).unwrap_err();
    assert!(e.to_string().contains("checksum mismatch"), "{e}");
    // Copied without being read (too little would stay in the base): the new object's
    // checksum, combined from the frames' own, does not match the damaged bytes.
    let parts = encode_parts(&b, &enc, reuse(&head, 1, Area::new(0..28, 0..32))).unwrap();
    assert_eq!(parts.base, 0);
    let copied = assemble(&parts, &old, &[]);
    let e = decode(&copied, &expected(&a), Path::new("c")).unwrap_err();
    assert!(e.to_string().contains("checksum mismatch"), "{e}");
}

#[test]
fn reading_blocks_fetches_and_checks_only_their_frames() {
    let tile = random_tile(DataType::Int16, 2, 32, 5, true);
    let mut obj = encode(&tile, &zstd_float()).unwrap();
    let head = head_of(&obj, &tile);
    // Unit tests write blocks of 4 x 4: rows 5..9 of columns 2..6 lie in four of them.
    let blocks = head.blocks_meeting(&Area::new(5..9, 2..6));
    assert_eq!(blocks, [8, 9, 16, 17]);
    let mut data = vec![0xAAu8; tile.data.len()];
    let mut mask = vec![0u8; 32 * 32];
    let mut fetched = Vec::new();
    let read = |at: Location, offset: usize, len: usize| {
        assert_eq!(at, Location::Object);
        fetched.push(offset..offset + len);
        Ok(obj[offset..offset + len].to_vec())
    };
    let p = Path::new("t");
    read_blocks(&head, &blocks, read, &mut data, Some(&mut mask), p).unwrap();
    // Two runs of neighbouring frames per band, and the mask.
    assert_eq!(fetched.len(), 5, "{fetched:?}");
    assert_eq!(Some(mask), tile.mask.clone());
    let decoded = Area::new(4..12, 0..8);
    let w = 2;
    for b in 0..2 {
        for y in 0..32 {
            for x in 0..32 {
                let at = (b * 32 * 32 + y * 32 + x) * w;
                let here = &data[at..at + w];
                if decoded.contains(&Area::new(y..y + 1, x..x + 1)) {
                    assert_eq!(here, &tile.data.bytes()[at..at + w], "band {b} ({y}, {x})");
                } else {
                    assert!(here.iter().all(|v| *v == 0xAA), "band {b} ({y}, {x})");
                }
            }
        }
    }
    // A damaged frame it reads is reported; one it does not read cannot matter to it.
    let f = head.frames[head.frame_of(1, 16)];
    obj[f.offset] ^= 1;
    let read = |_: Location, offset: usize, len: usize| Ok(obj[offset..offset + len].to_vec());
    let e = read_blocks(&head, &blocks, read, &mut data, None, p).unwrap_err();
    assert!(
        e.to_string().contains("frame") && e.to_string().contains("damaged"),
        "{e}"
    );
    let read = |_: Location, offset: usize, len: usize| Ok(obj[offset..offset + len].to_vec());
    assert!(read_blocks(&head, &[40], read, &mut data, None, p).is_ok());
}

#[test]
fn reading_blocks_of_an_updated_chunk_takes_each_frame_from_where_it_is() {
    let (a, b) = (
        random_tile(DataType::Float32, 1, 32, 7, false),
        random_tile(DataType::Float32, 1, 32, 8, false),
    );
    let enc = zstd_float();
    let old = encode(&a, &enc).unwrap();
    let changed = Area::new(4..8, 4..8);
    let parts = encode_parts(&b, &enc, reuse(&head_of(&old, &a), 1, changed.clone())).unwrap();
    let new = assemble(&parts, &old, &[]);
    let head = head_of(&new, &a);
    let mut data = vec![0u8; a.data.len()];
    let mut from = Vec::new();
    let read = |at: Location, offset: usize, len: usize| {
        from.push(at);
        let object = if at == Location::Base { &old } else { &new };
        Ok(object[offset..offset + len].to_vec())
    };
    read_blocks(&head, &[8, 9, 10], read, &mut data, None, Path::new("t")).unwrap();
    // Block 9 (rows 4..8, columns 4..8) is in the new chunk, its neighbours in the base.
    assert_eq!(from, [Location::Base, Location::Object, Location::Base]);
    let want = with_area_of(&a, &b, &changed);
    let got = Tile {
        data: crate::tile::SampleBuf::from_words(bytemuck::cast_slice(&data).to_vec(), data.len()),
        ..want.clone()
    };
    for y in 4..8 {
        let r = y * 32 * 4..(y * 32 + 12) * 4;
        assert_eq!(got.data.bytes()[r.clone()], want.data.bytes()[r], "row {y}");
    }
}

#[test]
fn version_1_chunks_still_decode_and_are_reencoded_whole() {
    for mask in [false, true] {
        let tile = random_tile(DataType::Float32, 2, 32, 11, mask);
        let enc = zstd_float();
        let v1 = encode_version_1(&tile, &enc);
        assert_eq!(decode(&v1, &expected(&tile), Path::new("t")).unwrap(), tile);
        let head = head_of(&v1, &tile);
        assert!(!head.frames_reusable(&enc));
        assert_eq!(head.blocks(), 1, "one stream: all or nothing");
        let other = random_tile(DataType::Float32, 2, 32, 12, mask);
        let parts = encode_parts(&other, &enc, reuse(&head, 1, Area::new(0..2, 0..2))).unwrap();
        assert!(parts.copies_nothing());
        assert_eq!(parts.base, 0);
        assert_eq!(assemble(&parts, &v1, &[]), encode(&other, &enc).unwrap());
    }
}

#[test]
fn a_frame_table_that_does_not_add_up_is_corruption() {
    let tile = random_tile(DataType::Byte, 1, 32, 3, false);
    let mut obj = encode(&tile, &zstd_float()).unwrap();
    // One byte more for the first frame, and checksums that match again: the frames
    // now run past the payload.
    let table = HEADER_LEN + BASE_FIELD_LEN;
    let first = u32::from_le_bytes(obj[table..table + 4].try_into().unwrap());
    obj[table..table + 4].copy_from_slice(&(first + 1).to_le_bytes());
    let head_end = Head::len_from(&obj).unwrap() - 4;
    let crc = crc32c::crc32c(&obj[..head_end]);
    obj[head_end..head_end + 4].copy_from_slice(&crc.to_le_bytes());
    let end = obj.len() - 4;
    let crc = crc32c::crc32c(&obj[..end]);
    obj[end..].copy_from_slice(&crc.to_le_bytes());
    let e = decode(&obj, &expected(&tile), Path::new("c/1")).unwrap_err();
    assert!(e.to_string().contains("past the payload"), "{e}");
    // One byte fewer: the frames end before the payload does.
    obj[table..table + 4].copy_from_slice(&(first - 1).to_le_bytes());
    reseal(&mut obj);
    let e = decode(&obj, &expected(&tile), Path::new("c/1")).unwrap_err();
    assert!(e.to_string().contains("frames hold"), "{e}");
}

#[test]
fn a_frame_in_a_base_the_chunk_does_not_name_is_corruption() {
    let tile = random_tile(DataType::Byte, 1, 32, 3, false);
    let mut obj = encode(&tile, &zstd_float()).unwrap();
    let at = HEADER_LEN + BASE_FIELD_LEN + 8;
    obj[at..at + 4].copy_from_slice(&100u32.to_le_bytes());
    let head_end = Head::len_from(&obj).unwrap() - 4;
    let crc = crc32c::crc32c(&obj[..head_end]);
    obj[head_end..head_end + 4].copy_from_slice(&crc.to_le_bytes());
    let e = Head::parse(&obj, &expected(&tile), Path::new("c/1")).unwrap_err();
    assert!(e.to_string().contains("names none"), "{e}");
}

#[test]
fn truncation_is_reported_as_corruption() {
    let tile = random_tile(DataType::UInt16, 1, 64, 3, false);
    let enc = Encoding {
        compression: Compression::Zstd,
        level: 3,
        predictor: Predictor::Horizontal,
    };
    let obj = encode(&tile, &enc).unwrap();
    for cut in [0, 10, obj.len() / 2, obj.len() - 1] {
        let e = decode(&obj[..cut], &expected(&tile), Path::new("c/0/0")).unwrap_err();
        assert!(
            e.to_string().contains("c/0/0") && e.to_string().contains("damaged"),
            "{e}"
        );
    }
}

#[test]
fn a_chunk_of_another_shape_is_refused() {
    let tile = random_tile(DataType::Byte, 3, 16, 1, false);
    let enc = Encoding {
        compression: Compression::Lz4,
        level: 0,
        predictor: Predictor::None,
    };
    let obj = encode(&tile, &enc).unwrap();
    let mut other = expected(&tile);
    other.bands = 2;
    assert!(decode(&obj, &other, Path::new("x")).is_err());
}

// Crafted heads: each carries valid checksums (the head's and the object's), so what
// refuses it is the decoder's own checks, before anything is allocated from its numbers.

/// Makes the head checksum (of the head as its fields now describe it) and the object's
/// checksum right again after a field was changed.
fn reseal(obj: &mut [u8]) {
    let head_end = Head::len_from(obj).unwrap() - 4;
    if head_end + 4 <= obj.len() - TRAILER_LEN {
        let crc = crc32c::crc32c(&obj[..head_end]);
        obj[head_end..head_end + 4].copy_from_slice(&crc.to_le_bytes());
    }
    let end = obj.len() - TRAILER_LEN;
    let crc = crc32c::crc32c(&obj[..end]);
    obj[end..].copy_from_slice(&crc.to_le_bytes());
}

/// A version 3 chunk of a 32-pixel Float32 tile of two bands and a mask, cut in blocks.
fn crafted_base() -> (Tile, Vec<u8>) {
    let tile = random_tile(DataType::Float32, 2, 32, 5, true);
    let obj = encode(&tile, &zstd_float()).unwrap();
    assert!(head_of(&obj, &tile).frames().len() > 3, "several frames");
    (tile, obj)
}

fn set_u16(obj: &mut [u8], at: usize, v: u16) {
    obj[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn set_u32(obj: &mut [u8], at: usize, v: u32) {
    obj[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// The error decoding `obj` gives, which must name the chunk.
fn refusal(obj: &[u8], tile: &Tile) -> String {
    let e = decode(obj, &expected(tile), Path::new("chunks/9/x"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("chunks/9/x"), "{e}");
    e
}

#[test]
fn a_head_claiming_a_huge_band_count_is_refused() {
    let (tile, mut obj) = crafted_base();
    set_u16(&mut obj, 8, u16::MAX);
    // The head length this claims saturates rather than overflows.
    assert!(Head::len_from(&obj).unwrap() > obj.len());
    reseal(&mut obj);
    assert!(refusal(&obj, &tile).contains("65535 band(s)"));
}

#[test]
fn blocks_of_one_pixel_whose_table_exceeds_the_object_are_refused() {
    let (tile, mut obj) = crafted_base();
    set_u16(&mut obj, 24, 1);
    set_u16(&mut obj, 26, 1);
    reseal(&mut obj);
    let e = refusal(&obj, &tile);
    assert!(e.contains("blocks of 1 x 1 pixels make 2049 frames"), "{e}");
}

#[test]
fn a_block_larger_than_the_tile_leaves_frames_that_do_not_add_up() {
    let (tile, mut obj) = crafted_base();
    set_u16(&mut obj, 24, u16::MAX);
    set_u16(&mut obj, 26, u16::MAX);
    reseal(&mut obj);
    let e = refusal(&obj, &tile);
    assert!(
        e.contains("frames hold") || e.contains("past the payload"),
        "{e}"
    );
}

#[test]
fn a_payload_claiming_gigabytes_is_refused_before_it_is_read() {
    let (tile, mut obj) = crafted_base();
    set_u32(&mut obj, 20, u32::MAX);
    reseal(&mut obj);
    // Only the head is given, as a reader of part of a chunk has it.
    let head_len = Head::len_from(&obj).unwrap();
    let e = Head::parse(&obj[..head_len], &expected(&tile), Path::new("c"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("more than any chunk"), "{e}");
}

#[test]
fn a_frame_table_claiming_terabytes_is_refused() {
    let (tile, mut obj) = crafted_base();
    let frames = head_of(&obj, &tile).frames().len();
    for i in 0..frames {
        set_u32(
            &mut obj,
            HEADER_LEN + BASE_FIELD_LEN + TABLE_ENTRY_LEN * i,
            u32::MAX,
        );
    }
    reseal(&mut obj);
    let e = refusal(&obj, &tile);
    assert!(
        e.contains("frame 0 claims 4294967295 bytes, but ZSTD makes at most"),
        "{e}"
    );
}

#[test]
fn a_frame_longer_than_its_codec_makes_is_refused() {
    // Uncompressed frames are exactly as long as what they decode to.
    let tile = random_tile(DataType::Byte, 1, 32, 3, false);
    let enc = Encoding {
        compression: Compression::None,
        level: 0,
        predictor: Predictor::None,
    };
    let mut obj = encode(&tile, &enc).unwrap();
    let table = HEADER_LEN + BASE_FIELD_LEN;
    let first = u32::from_le_bytes(obj[table..table + 4].try_into().unwrap());
    set_u32(&mut obj, table, first + 1);
    reseal(&mut obj);
    let e = refusal(&obj, &tile);
    assert!(e.contains("but NONE makes at most"), "{e}");
}

#[test]
fn a_frame_kept_in_a_base_beyond_any_chunk_is_refused() {
    let (tile, mut obj) = crafted_base();
    let entry = HEADER_LEN + BASE_FIELD_LEN;
    obj[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&1u64.to_le_bytes());
    set_u32(&mut obj, entry + 8, u32::MAX - 100);
    reseal(&mut obj);
    let e = Head::parse(&obj, &expected(&tile), Path::new("c"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("of the base chunk, beyond any chunk"), "{e}");
    // And one claiming a huge length there.
    let (_, mut obj) = crafted_base();
    obj[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&1u64.to_le_bytes());
    set_u32(&mut obj, entry, u32::MAX);
    set_u32(&mut obj, entry + 8, 100);
    reseal(&mut obj);
    let e = Head::parse(&obj, &expected(&tile), Path::new("c"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("frame 0 claims"), "{e}");
}

#[test]
fn a_version_1_payload_longer_than_its_codec_makes_is_refused() {
    let tile = random_tile(DataType::Byte, 1, 32, 3, false);
    let enc = Encoding {
        compression: Compression::Lz4,
        level: 0,
        predictor: Predictor::None,
    };
    let v1 = encode_version_1(&tile, &enc);
    let max = Compression::Lz4.max_encoded_len(32 * 32);
    let mut obj = v1[..HEADER_LEN].to_vec();
    obj.resize(HEADER_LEN + max + 1 + TRAILER_LEN, 0);
    set_u32(&mut obj, 20, (max + 1) as u32);
    reseal(&mut obj);
    let e = refusal(&obj, &tile);
    assert!(e.contains("but LZ4 makes at most"), "{e}");
}

#[test]
fn every_chunk_written_is_within_the_bound_readers_apply() {
    // The bound must hold for the worst chunks writers make: noise, which no codec
    // shrinks, in the smallest blocks, with every codec.
    for compression in [
        Compression::None,
        Compression::Zstd,
        Compression::Deflate,
        Compression::Lz4,
    ] {
        for dtype in [DataType::Byte, DataType::Float64] {
            let mut tile = random_tile(dtype, 3, 64, 9, true);
            let mut x = 99u64;
            for b in tile.data.bytes_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let enc = Encoding {
                compression,
                level: compression.default_level(),
                predictor: Predictor::None,
            };
            let obj = encode(&tile, &enc).unwrap();
            assert!(obj.len() <= expected(&tile).max_chunk_len());
            assert_eq!(
                decode(&obj, &expected(&tile), Path::new("c")).unwrap(),
                tile
            );
        }
    }
}

#[test]
fn a_frame_that_decodes_to_more_than_its_block_is_refused() {
    for compression in [Compression::Zstd, Compression::Deflate, Compression::Lz4] {
        let tile = random_tile(DataType::Float32, 2, 32, 5, true);
        let enc = Encoding {
            compression,
            level: compression.default_level(),
            predictor: Predictor::None,
        };
        let obj = encode(&tile, &enc).unwrap();
        let head = head_of(&obj, &tile);
        let first = head.frames()[0];
        // A stream that expands to 128 times the first block, short enough to pass for
        // its frame, in its place, with every checksum and length made right.
        let (rows, cols) = head.block_shape();
        let block = rows * cols * 4;
        let mut bomb = Vec::new();
        compression
            .compress(
                compression.default_level(),
                &vec![0; 128 * block],
                &mut bomb,
            )
            .unwrap();
        assert!(
            bomb.len() <= compression.max_encoded_len(block),
            "{compression:?}"
        );
        let mut crafted = obj[..first.offset].to_vec();
        crafted.extend_from_slice(&bomb);
        crafted.extend_from_slice(&obj[first.offset + first.len..]);
        let entry = HEADER_LEN + BASE_FIELD_LEN;
        set_u32(&mut crafted, entry, bomb.len() as u32);
        set_u32(&mut crafted, entry + 4, crc32c::crc32c(&bomb));
        let payload = crafted.len() - HEADER_LEN - TRAILER_LEN;
        set_u32(&mut crafted, 20, payload as u32);
        reseal(&mut crafted);
        let e = refusal(&crafted, &tile);
        assert!(
            e.contains("band 1 block 0 does not decompress"),
            "{compression:?}: {e}"
        );
    }
}
